import SystemPackage

/// An L2TP tunnel as the kernel's L2TP generic netlink family lists it (`ip l2tp show tunnel`):
/// the tunnels xl2tpd hands to the kernel in its kernel mode, each over a UDP socket connected to
/// the peer. Read only.
public struct L2TPTunnel: Sendable, Hashable {
    /// This end's tunnel id (`L2TP_ATTR_CONN_ID`).
    public var id: UInt32
    /// The peer's tunnel id (`L2TP_ATTR_PEER_CONN_ID`).
    public var peerID: UInt32?
    /// The tunnel socket's addresses (`L2TP_ATTR_IP_SADDR`/`DADDR`, or the IPv6 ones).
    public var local: InetAddress?
    public var peer: InetAddress?

    public init(id: UInt32, peerID: UInt32? = nil, local: InetAddress? = nil, peer: InetAddress? = nil) {
        self.id = id
        self.peerID = peerID
        self.local = local
        self.peer = peer
    }
}

// linux/genetlink.h and linux/l2tp.h: the numbers this file uses.
private enum Generic {
    static let controller: UInt16 = 0x10  // GENL_ID_CTRL
    static let getFamily: UInt8 = 3  // CTRL_CMD_GETFAMILY
    static let familyID: UInt16 = 1  // CTRL_ATTR_FAMILY_ID
    static let familyName: UInt16 = 2  // CTRL_ATTR_FAMILY_NAME
}

private enum L2TPNumbers {
    static let version: UInt8 = 1  // L2TP_GENL_VERSION
    static let tunnelGet: UInt8 = 4  // L2TP_CMD_TUNNEL_GET
    static let connID: UInt16 = 9, peerConnID: UInt16 = 10
    static let ipSource: UInt16 = 24, ipDestination: UInt16 = 25
    static let ip6Source: UInt16 = 31, ip6Destination: UInt16 = 32
}

/// `struct genlmsghdr`: command, version, 2 reserved bytes.
private struct GenericHeader {
    var command: UInt8
    var version: UInt8
    var reserved: UInt16 = 0
}

extension L2TPTunnel {
    /// Decodes one `L2TP_CMD_TUNNEL_GET` reply's payload (after the netlink header).
    init(decoding payload: [UInt8]) throws(NetlinkDecodingError) {
        guard payload.count >= 4 else { throw NetlinkDecodingError(what: "L2TP tunnel message of \(payload.count) bytes", offset: 0) }
        var decoder = AttributeDecoder(payload, from: 4)
        var id: UInt32?, peerID: UInt32?, local: InetAddress?, peer: InetAddress?
        while let attribute = decoder.next() {
            switch attribute.type {
            case L2TPNumbers.connID: id = try attribute.uint32()
            case L2TPNumbers.peerConnID: peerID = try attribute.uint32()
            case L2TPNumbers.ipSource: local = InetAddress(family: .ipv4, bytes: attribute.bytes)
            case L2TPNumbers.ipDestination: peer = InetAddress(family: .ipv4, bytes: attribute.bytes)
            case L2TPNumbers.ip6Source: local = InetAddress(family: .ipv6, bytes: attribute.bytes)
            case L2TPNumbers.ip6Destination: peer = InetAddress(family: .ipv6, bytes: attribute.bytes)
            default: break
            }
        }
        try decoder.finish()
        guard let id else { throw NetlinkDecodingError(what: "L2TP tunnel without L2TP_ATTR_CONN_ID", offset: 4) }
        self.init(id: id, peerID: peerID, local: local, peer: peer)
    }
}

extension NetlinkSocket {
    /// The id of the generic netlink family `name`, or nil when the kernel has none (its module
    /// neither loaded nor loadable). Needs a `.generic` socket.
    public func genericFamilyID(_ name: String) throws(NetlinkError) -> UInt16? {
        let operation = "resolve generic netlink family \(name)"
        let reply: [RawMessage]
        do {
            reply = try query(Request(type: Generic.controller, flags: 0, operation: operation) { writer throws(NetlinkError) in
                try writer.putFixed(GenericHeader(command: Generic.getFamily, version: 1))
                try writer.put(Generic.familyName, string: name)
            })
        } catch where error.errno == .noSuchFileOrDirectory {
            return nil
        }
        for message in reply where message.payload.count >= 4 {
            var decoder = AttributeDecoder(message.payload, from: 4)
            while let attribute = decoder.next() {
                if attribute.type == Generic.familyID {
                    return try decodeOrThrow(operation) { () throws(NetlinkDecodingError) in try attribute.uint16() }
                }
            }
        }
        throw NetlinkError(operation: operation, errno: .badMessage, kernelMessage: "no CTRL_ATTR_FAMILY_ID in the answer")
    }

    /// The kernel's L2TP tunnels in this network namespace (L2TP generic netlink, module
    /// `l2tp_netlink`, which the kernel loads on the first question if it can); nil when the
    /// family is not there. Needs a `.generic` socket and CAP_NET_ADMIN.
    public func l2tpTunnels() throws(NetlinkError) -> [L2TPTunnel]? {
        guard let family = try genericFamilyID("l2tp") else { return nil }
        let messages = try dump(Request(type: family, flags: 0, operation: "list L2TP tunnels") { writer throws(NetlinkError) in
            try writer.putFixed(GenericHeader(command: L2TPNumbers.tunnelGet, version: L2TPNumbers.version))
        })
        return try decodeAll(messages, type: family, operation: "list L2TP tunnels", L2TPTunnel.init(decoding:))
    }
}
