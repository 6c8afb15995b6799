/// The decoders of what the kernel sends are internal (callers get typed values from dumps and
/// notifications); the fuzz target `Fuzz/NetlinkMessages` reaches them through this SPI rather than
/// through `@testable import`, which would need a build with testing enabled.
@_spi(Fuzzing)
public enum NetlinkFuzzing {
    /// Decodes one netlink message (a 16-byte `nlmsghdr` with its type and flags, then the
    /// payload) every way the module reads a message: as the notification its type names, as an
    /// ACK, and as each kind of object whatever the type says. Malformed input must throw, never trap.
    public static func decodeEveryWay(_ message: [UInt8]) {
        guard message.count >= 16 else { return }
        // nlmsghdr in host order (little-endian here): length, type, flags, sequence, port id.
        let raw = RawMessage(
            type: UInt16(message[4]) | UInt16(message[5]) << 8,
            flags: UInt16(message[6]) | UInt16(message[7]) << 8,
            sequence: 0, portID: 0, payload: Array(message[16...]))
        _ = try? RouteNotification(raw)
        _ = try? XfrmNotification(raw)
        _ = try? decodeAck(raw)
        _ = try? Link(decoding: raw.payload)
        _ = try? Route(decoding: raw.payload)
        _ = try? InterfaceAddress(decoding: raw.payload)
        _ = try? RoutingRule(decoding: raw.payload)
        _ = try? ProxyNeighbour(decoding: raw.payload)
        _ = try? SecurityAssociation(decodingInfoAt: 0, of: raw.payload)
        _ = try? SecurityPolicy(decodingInfoAt: 0, of: raw.payload)
        _ = try? L2TPTunnel(decoding: raw.payload)
    }
}
