/// TCP MSS clamping on a tunnel device (README "MSS clamping"): a conn's `mss_clamp` in vtid.yaml.
///
/// - `off` (the default): vtid writes no clamp rules for the conn's device.
/// - `auto`: the MSS follows the device's MTU, the largest segment that fits without
///   fragmentation: IPv4 `mtu - 40` (20 bytes IPv4 header, 20 TCP), IPv6 `mtu - 60` (40 + 20).
/// - a number: the IPv4 MSS; IPv6 gets 20 bytes less (its header is 20 bytes longer).
public enum MSSClampSetting: Sendable, Hashable, CustomStringConvertible {
    case off
    case auto
    case fixed(Int)

    /// The smallest and largest number `mss_clamp` accepts: 536 is the IPv4 default MSS every host
    /// takes (RFC 879), 65495 the largest that fits an IPv4 packet (65535 - 40).
    public static let fixedRange = 536...65495

    /// The clamp for a device with MTU `mtu`; nil when off, or when `auto` has no MTU to go by
    /// (device missing) or the MTU leaves no room (below IPv4's minimum of 576).
    public func clamp(deviceMTU mtu: Int?) -> MSSClamp? {
        switch self {
        case .off:
            return nil
        case .auto:
            guard let mtu, mtu >= 576 else { return nil }
            return MSSClamp(ipv4: mtu - 40, ipv6: mtu - 60)
        case .fixed(let mss):
            return MSSClamp(ipv4: mss, ipv6: mss - 20)
        }
    }

    /// As written in vtid.yaml: `off`, `auto` or the number.
    public var description: String {
        switch self {
        case .off: "off"
        case .auto: "auto"
        case .fixed(let mss): String(mss)
        }
    }

    /// Reads vtid.yaml's text; nil for anything else (the caller reports it).
    public init?(_ text: String) {
        switch text {
        case "off", "no", "false": self = .off
        case "auto": self = .auto
        default:
            guard let number = Int(text), Self.fixedRange.contains(number) else { return nil }
            self = .fixed(number)
        }
    }
}

/// The MSS values one device's TCP SYNs are clamped to, per family.
public struct MSSClamp: Sendable, Hashable, CustomStringConvertible {
    public var ipv4: Int
    public var ipv6: Int

    public init(ipv4: Int, ipv6: Int) {
        self.ipv4 = ipv4
        self.ipv6 = ipv6
    }

    /// `1406/1386` (IPv4/IPv6), as `vtictl status` shows it.
    public var description: String { "\(ipv4)/\(ipv6)" }
}
