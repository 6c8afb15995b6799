import VTIModel
internal import CLibmnl

/// A network interface as the kernel reports it (`RTM_NEWLINK`).
public struct Link: Hashable, Sendable {
    public var index: Int32
    public var name: String
    /// `IFLA_INFO_KIND`: "vti", "veth", "bridge", ...; nil for devices without link info (lo, eth).
    public var kind: String?
    public var mtu: UInt32
    /// Administratively up (`IFF_UP`).
    public var isUp: Bool
    /// Carrier and operational state say it passes traffic (`IFF_LOWER_UP`).
    public var hasCarrier: Bool
    /// `IFLA_LINK`: the parent device index, 0 if none.
    public var parentIndex: Int32
    /// Present for VTI devices.
    public var vti: VTIParameters?
    /// Present for XFRM interfaces (kind "xfrm").
    public var xfrmInterface: XfrmInterfaceParameters?
    public var statistics: LinkStatistics?
    /// `ifi_type`, the ARPHRD_* hardware type: 512 for a PPP link (pppd's, L2TP's), 768 for a VTI.
    public var hardwareType: UInt16 = 0

    /// ARPHRD_PPP: a link pppd made (L2TP/IPsec clients on the gateway).
    public static let pppHardwareType: UInt16 = 512
    public var isPPP: Bool { hardwareType == Self.pppHardwareType }
}

/// A VTI device's tunnel end points and keys. The keys are the XFRM marks the device matches.
public struct VTIParameters: Hashable, Sendable {
    public var local: InetAddress
    public var remote: InetAddress
    public var inputKey: UInt32
    public var outputKey: UInt32
    /// Index of the underlying device the tunnel is bound to; 0 for none.
    public var underlyingIndex: UInt32

    public init(local: InetAddress, remote: InetAddress, inputKey: UInt32, outputKey: UInt32, underlyingIndex: UInt32 = 0) {
        self.local = local
        self.remote = remote
        self.inputKey = inputKey
        self.outputKey = outputKey
        self.underlyingIndex = underlyingIndex
    }
}

/// An XFRM interface's parameters (`ip link add NAME type xfrm [dev DEV] if_id N`). Unlike a VTI it
/// has no end points or keys: the SAs and policies whose if_id is the device's carry its traffic
/// (libreswan's `ipsec-interface=N`).
public struct XfrmInterfaceParameters: Hashable, Sendable {
    /// `IFLA_XFRM_IF_ID`: the XFRM if_id of the SAs and policies the device belongs to.
    public var interfaceID: UInt32
    /// `IFLA_XFRM_LINK`: index of the underlying device; 0 for none.
    public var underlyingIndex: UInt32
    /// `IFLA_XFRM_COLLECT_METADATA` (`external`): one device per namespace for every if_id, chosen
    /// per packet from metadata; such a device has if_id and underlying device 0.
    public var collectsMetadata: Bool

    public init(interfaceID: UInt32, underlyingIndex: UInt32 = 0, collectsMetadata: Bool = false) {
        self.interfaceID = interfaceID
        self.underlyingIndex = underlyingIndex
        self.collectsMetadata = collectsMetadata
    }
}

/// Packet and byte counters of a link (`IFLA_STATS64`).
public struct LinkStatistics: Hashable, Sendable {
    public var receivedPackets: UInt64
    public var transmittedPackets: UInt64
    public var receivedBytes: UInt64
    public var transmittedBytes: UInt64
    public var receiveErrors: UInt64
    public var transmitErrors: UInt64
}

extension NetlinkSocket {
    /// All links. Equivalent to `ip -d -s link show`.
    public func links() throws(NetlinkError) -> [Link] {
        let messages = try dump(Request(type: UInt16(RTM_GETLINK), flags: 0, operation: "list links") { writer throws(NetlinkError) in
            try writer.putFixed(ifinfomsg())
        })
        return try decodeAll(messages, type: RTM_NEWLINK, operation: "list links", Link.init(decoding:))
    }

    /// The link called `name`, or nil if there is none. Equivalent to `ip -d link show NAME`.
    public func link(named name: String) throws(NetlinkError) -> Link? {
        let operation = "get link \(name)"
        guard let reply = try linkMessage(named: name, operation: operation) else { return nil }
        return try decodeOrThrow(operation) { () throws(NetlinkDecodingError) in try Link(decoding: reply.payload) }
    }

    /// The index of the link called `name`, or nil if there is none; reads nothing else of it (the
    /// hook asks this before each route, and decoding a whole link costs more than the question).
    public func interfaceIndex(named name: String) throws(NetlinkError) -> Int32? {
        let operation = "get link \(name)"
        guard let reply = try linkMessage(named: name, operation: operation) else { return nil }
        return try decodeOrThrow(operation) { () throws(NetlinkDecodingError) in
            try loadFixed(ifinfomsg.self, from: reply.payload, what: "ifinfomsg").ifi_index
        }
    }

    /// The link with this index, or nil if there is none.
    public func link(index: Int32) throws(NetlinkError) -> Link? {
        let operation = "get link \(index)"
        guard let reply = try linkMessage(index: index, operation: operation) else { return nil }
        return try decodeOrThrow(operation) { () throws(NetlinkDecodingError) in try Link(decoding: reply.payload) }
    }

    /// RTM_GETLINK for one link, by name or by index, without the statistics (a third of the
    /// answer, unused here); nil when there is no such link.
    private func linkMessage(named name: String? = nil, index: Int32 = 0, operation: String) throws(NetlinkError) -> RawMessage? {
        do {
            let replies = try query(Request(type: UInt16(RTM_GETLINK), flags: 0, operation: operation) { writer throws(NetlinkError) in
                var header = ifinfomsg()
                header.ifi_index = index
                try writer.putFixed(header)
                if let name { try writer.put(UInt16(IFLA_IFNAME), string: name) }
                try writer.put(UInt16(IFLA_EXT_MASK), UInt32(RTEXT_FILTER_SKIP_STATS))
            })
            return replies.first(where: { $0.type == UInt16(RTM_NEWLINK) })
        } catch where error.errno == .operationNotSupportedByDevice {
            return nil
        }
    }

    /// Creates a VTI device. Equivalent to
    /// `ip link add NAME type vti local L remote R ikey I okey O`; fails with `.fileExists` if taken.
    /// With `up`, the device is created up (`ip link add ... up`): one request less.
    public func createVTI(named name: String, _ parameters: VTIParameters, up: Bool = false) throws(NetlinkError) {
        try execute(.createVTI(named: name, parameters, up: up))
    }

    /// Creates an XFRM interface. Equivalent to `ip link add NAME type xfrm [dev DEV] if_id N`
    /// (`external` when `collectsMetadata`); fails with `.fileExists` if the name is taken, and with
    /// "Unknown device type" on kernels without `CONFIG_XFRM_INTERFACE`. With `up`, the device is
    /// created up.
    public func createXfrmInterface(named name: String, _ parameters: XfrmInterfaceParameters, up: Bool = false) throws(NetlinkError) {
        try execute(.createXfrmInterface(named: name, parameters, up: up))
    }

    /// Creates a veth pair; both ends start down. Equivalent to `ip link add NAME type veth peer name PEER`.
    public func createVethPair(named name: String, peer: String) throws(NetlinkError) {
        try execute(.createVethPair(named: name, peer: peer))
    }

    /// Creates a device of a kind that needs no parameters (`dummy`, `bridge`).
    /// Equivalent to `ip link add NAME type KIND`; the kernel says "Unknown device type" for kinds it lacks.
    public func createLink(named name: String, kind: String) throws(NetlinkError) {
        try execute(.createLink(named: name, kind: kind))
    }

    /// Sets a link up or down. Equivalent to `ip link set dev NAME up|down`.
    public func setLink(index: Int32, up: Bool) throws(NetlinkError) {
        try execute(.setLink(index: index, up: up))
    }

    /// Sets a link's MTU. Equivalent to `ip link set dev NAME mtu MTU`.
    public func setLink(index: Int32, mtu: UInt32) throws(NetlinkError) {
        try execute(.setLink(index: index, mtu: mtu))
    }

    /// Deletes a link. Equivalent to `ip link del dev NAME`.
    public func deleteLink(index: Int32) throws(NetlinkError) {
        try execute(.deleteLink(index: index))
    }
}

extension NetlinkSocket.Request {
    static func createVTI(named name: String, _ parameters: VTIParameters, up: Bool = false) -> Self {
        let operation = "create VTI device \(name) (local \(parameters.local) remote \(parameters.remote) ikey \(parameters.inputKey) okey \(parameters.outputKey))"
        return Self(type: UInt16(RTM_NEWLINK), flags: UInt16(NLM_F_CREATE | NLM_F_EXCL), operation: operation) { writer throws(NetlinkError) in
            var header = ifinfomsg()
            if up {
                header.ifi_change = UInt32(IFF_UP.rawValue)
                header.ifi_flags = UInt32(IFF_UP.rawValue)
            }
            try writer.putFixed(header)
            try writer.put(UInt16(IFLA_IFNAME), string: name)
            try writer.nest(UInt16(IFLA_LINKINFO)) { info throws(NetlinkError) in
                // IPv6 end points need the vti6 driver (ip6_vti); the attributes are the same.
                try info.put(UInt16(IFLA_INFO_KIND), bytes: Array((parameters.local.family == .ipv6 ? "vti6" : "vti").utf8))
                try info.nest(UInt16(IFLA_INFO_DATA)) { data throws(NetlinkError) in
                    try encodeVTI(parameters, into: &data)
                }
            }
        }
    }

    static func createXfrmInterface(named name: String, _ parameters: XfrmInterfaceParameters, up: Bool = false) -> Self {
        let operation = "create XFRM interface \(name) (if_id \(parameters.interfaceID) dev \(parameters.underlyingIndex)\(parameters.collectsMetadata ? " external" : ""))"
        return Self(type: UInt16(RTM_NEWLINK), flags: UInt16(NLM_F_CREATE | NLM_F_EXCL), operation: operation) { writer throws(NetlinkError) in
            var header = ifinfomsg()
            if up {
                header.ifi_change = UInt32(IFF_UP.rawValue)
                header.ifi_flags = UInt32(IFF_UP.rawValue)
            }
            try writer.putFixed(header)
            try writer.put(UInt16(IFLA_IFNAME), string: name)
            try writer.nest(UInt16(IFLA_LINKINFO)) { info throws(NetlinkError) in
                try info.put(UInt16(IFLA_INFO_KIND), bytes: Array("xfrm".utf8))
                try info.nest(UInt16(IFLA_INFO_DATA)) { data throws(NetlinkError) in
                    // iproute2's order: the if_id (or the metadata flag), then the underlying device.
                    if parameters.collectsMetadata {
                        try data.putFlag(UInt16(IFLA_XFRM_COLLECT_METADATA))
                    } else {
                        try data.put(UInt16(IFLA_XFRM_IF_ID), parameters.interfaceID)
                    }
                    if parameters.underlyingIndex != 0 { try data.put(UInt16(IFLA_XFRM_LINK), parameters.underlyingIndex) }
                }
            }
        }
    }

    static func createVethPair(named name: String, peer: String) -> Self {
        Self(type: UInt16(RTM_NEWLINK), flags: UInt16(NLM_F_CREATE | NLM_F_EXCL), operation: "create veth pair \(name)/\(peer)") { writer throws(NetlinkError) in
            try writer.putFixed(ifinfomsg())
            try writer.put(UInt16(IFLA_IFNAME), string: name)
            try writer.nest(UInt16(IFLA_LINKINFO)) { info throws(NetlinkError) in
                try info.put(UInt16(IFLA_INFO_KIND), bytes: Array("veth".utf8))
                try info.nest(UInt16(IFLA_INFO_DATA)) { data throws(NetlinkError) in
                    try data.nest(UInt16(VETH_INFO_PEER)) { peerInfo throws(NetlinkError) in
                        try peerInfo.putFixed(ifinfomsg())
                        try peerInfo.put(UInt16(IFLA_IFNAME), string: peer)
                    }
                }
            }
        }
    }

    static func createLink(named name: String, kind: String) -> Self {
        Self(type: UInt16(RTM_NEWLINK), flags: UInt16(NLM_F_CREATE | NLM_F_EXCL), operation: "create \(kind) device \(name)") { writer throws(NetlinkError) in
            try writer.putFixed(ifinfomsg())
            try writer.put(UInt16(IFLA_IFNAME), string: name)
            try writer.nest(UInt16(IFLA_LINKINFO)) { info throws(NetlinkError) in
                try info.put(UInt16(IFLA_INFO_KIND), bytes: Array(kind.utf8))
            }
        }
    }

    static func setLink(index: Int32, up: Bool) -> Self {
        Self(type: UInt16(RTM_NEWLINK), flags: 0, operation: "set link \(index) \(up ? "up" : "down")") { writer throws(NetlinkError) in
            var header = ifinfomsg()
            header.ifi_index = index
            header.ifi_change = UInt32(IFF_UP.rawValue)
            header.ifi_flags = up ? UInt32(IFF_UP.rawValue) : 0
            try writer.putFixed(header)
        }
    }

    static func setLink(index: Int32, mtu: UInt32) -> Self {
        Self(type: UInt16(RTM_NEWLINK), flags: 0, operation: "set link \(index) mtu \(mtu)") { writer throws(NetlinkError) in
            var header = ifinfomsg()
            header.ifi_index = index
            try writer.putFixed(header)
            try writer.put(UInt16(IFLA_MTU), mtu)
        }
    }

    static func deleteLink(index: Int32) -> Self {
        Self(type: UInt16(RTM_DELLINK), flags: 0, operation: "delete link \(index)") { writer throws(NetlinkError) in
            var header = ifinfomsg()
            header.ifi_index = index
            try writer.putFixed(header)
        }
    }
}

private func encodeVTI(_ parameters: VTIParameters, into data: inout MessageWriter) throws(NetlinkError) {
    if parameters.underlyingIndex != 0 { try data.put(UInt16(IFLA_VTI_LINK), parameters.underlyingIndex) }
    // Keys travel in network byte order, as iproute2 sends them.
    try data.put(UInt16(IFLA_VTI_IKEY), parameters.inputKey.bigEndian)
    try data.put(UInt16(IFLA_VTI_OKEY), parameters.outputKey.bigEndian)
    try data.put(UInt16(IFLA_VTI_LOCAL), bytes: parameters.local.bytes)
    try data.put(UInt16(IFLA_VTI_REMOTE), bytes: parameters.remote.bytes)
    try data.put(UInt16(IFLA_VTI_FWMARK), UInt32(0))
}

extension Link {
    init(decoding payload: [UInt8]) throws(NetlinkDecodingError) {
        let header = try loadFixed(ifinfomsg.self, from: payload, what: "ifinfomsg")
        index = header.ifi_index
        hardwareType = header.ifi_type
        isUp = header.ifi_flags & UInt32(IFF_UP.rawValue) != 0
        hasCarrier = header.ifi_flags & UInt32(IFF_LOWER_UP.rawValue) != 0
        name = ""
        mtu = 0
        parentIndex = 0
        var decoder = AttributeDecoder(payload, from: alignedSize(of: ifinfomsg.self))
        var kindData: [UInt8]?
        while let attribute = decoder.next() {
            switch Int(attribute.type) {
            case Int(IFLA_IFNAME): name = attribute.string
            case Int(IFLA_MTU): mtu = try attribute.uint32()
            case Int(IFLA_LINK): parentIndex = Int32(bitPattern: try attribute.uint32())
            case Int(IFLA_STATS64):
                let stats = try loadFixed(rtnl_link_stats64.self, from: attribute.bytes, what: "IFLA_STATS64")
                statistics = LinkStatistics(
                    receivedPackets: stats.rx_packets, transmittedPackets: stats.tx_packets,
                    receivedBytes: stats.rx_bytes, transmittedBytes: stats.tx_bytes,
                    receiveErrors: stats.rx_errors, transmitErrors: stats.tx_errors)
            case Int(IFLA_LINKINFO):
                var info = attribute.nested()
                while let item = info.next() {
                    switch Int(item.type) {
                    case Int(IFLA_INFO_KIND): kind = item.string
                    case Int(IFLA_INFO_DATA): kindData = item.bytes
                    default: break
                    }
                }
                try info.finish()
            default: break
            }
        }
        try decoder.finish()
        if kind == "vti", let kindData { vti = try VTIParameters(decoding: kindData, family: .ipv4) }
        if kind == "vti6", let kindData { vti = try VTIParameters(decoding: kindData, family: .ipv6) }
        if kind == "xfrm", let kindData { xfrmInterface = try XfrmInterfaceParameters(decoding: kindData) }
    }
}

extension VTIParameters {
    init(decoding data: [UInt8], family: AddressFamily) throws(NetlinkDecodingError) {
        var local = InetAddress.any(family)
        var remote = InetAddress.any(family)
        var inputKey: UInt32 = 0
        var outputKey: UInt32 = 0
        var underlying: UInt32 = 0
        var decoder = AttributeDecoder(data)
        while let attribute = decoder.next() {
            switch Int(attribute.type) {
            case Int(IFLA_VTI_LINK): underlying = try attribute.uint32()
            case Int(IFLA_VTI_IKEY): inputKey = UInt32(bigEndian: try attribute.uint32())
            case Int(IFLA_VTI_OKEY): outputKey = UInt32(bigEndian: try attribute.uint32())
            case Int(IFLA_VTI_LOCAL): local = try decodeAddress(attribute, family: family)
            case Int(IFLA_VTI_REMOTE): remote = try decodeAddress(attribute, family: family)
            default: break
            }
        }
        try decoder.finish()
        self.init(local: local, remote: remote, inputKey: inputKey, outputKey: outputKey, underlyingIndex: underlying)
    }
}

extension XfrmInterfaceParameters {
    init(decoding data: [UInt8]) throws(NetlinkDecodingError) {
        self.init(interfaceID: 0)
        var decoder = AttributeDecoder(data)
        while let attribute = decoder.next() {
            switch Int(attribute.type) {
            case Int(IFLA_XFRM_IF_ID): interfaceID = try attribute.uint32()
            case Int(IFLA_XFRM_LINK): underlyingIndex = try attribute.uint32()
            case Int(IFLA_XFRM_COLLECT_METADATA): collectsMetadata = true
            default: break
            }
        }
        try decoder.finish()
    }
}

/// An address attribute of a known family; wrong lengths are a decoding error.
func decodeAddress(_ attribute: AttributeDecoder.Attribute, family: AddressFamily) throws(NetlinkDecodingError) -> InetAddress {
    guard let address = InetAddress(family: family, bytes: attribute.bytes) else {
        throw NetlinkDecodingError(what: "address attribute \(attribute.type) of \(attribute.value.count) bytes for \(family)", offset: attribute.value.startIndex)
    }
    return address
}

/// Turns a decoding failure of a kernel reply into the operation's error.
func decodeOrThrow<Value>(_ operation: String, _ decode: () throws(NetlinkDecodingError) -> Value) throws(NetlinkError) -> Value {
    do {
        return try decode()
    } catch {
        throw NetlinkError(operation: operation, errno: .badMessage, kernelMessage: error.description)
    }
}

/// Decodes every message of one type from a dump, failing on the first malformed one.
func decodeAll<Value, MessageType: BinaryInteger>(
    _ messages: [RawMessage], type: MessageType, operation: String,
    _ decode: ([UInt8]) throws(NetlinkDecodingError) -> Value
) throws(NetlinkError) -> [Value] {
    var values: [Value] = []
    values.reserveCapacity(messages.count)
    for message in messages where message.type == UInt16(type) {
        values.append(try decodeOrThrow(operation) { () throws(NetlinkDecodingError) in try decode(message.payload) })
    }
    return values
}
