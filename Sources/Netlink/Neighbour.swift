public import VTIModel
internal import CLibmnl

/// A proxy neighbour entry: the kernel answers ARP / neighbour solicitations for `address` on the
/// interface, so hosts on a LAN reach a pool address that lives behind a tunnel.
public struct ProxyNeighbour: Hashable, Sendable, CustomStringConvertible {
    public var interfaceIndex: Int32
    public var address: InetAddress

    public init(interfaceIndex: Int32, address: InetAddress) {
        self.interfaceIndex = interfaceIndex
        self.address = address
    }

    public var description: String { "proxy \(address) dev #\(interfaceIndex)" }
}

extension NetlinkSocket {
    /// Proxy entries of one family. Equivalent to `ip neigh show proxy`.
    public func proxyNeighbours(family: AddressFamily) throws(NetlinkError) -> [ProxyNeighbour] {
        let messages = try dump(Request(type: UInt16(RTM_GETNEIGH), flags: 0, operation: "list proxy neighbours") { writer throws(NetlinkError) in
            var header = ndmsg()
            header.ndm_family = family.rawValue
            header.ndm_flags = UInt8(NTF_PROXY)
            try writer.putFixed(header)
        })
        return try decodeAll(messages, type: RTM_NEWNEIGH, operation: "list proxy neighbours", ProxyNeighbour.init(decoding:))
    }

    /// Adds or keeps a proxy entry. Equivalent to `ip neigh replace proxy A dev D`.
    public func replaceProxyNeighbour(_ entry: ProxyNeighbour) throws(NetlinkError) {
        try execute(proxyRequest(RTM_NEWNEIGH, flags: UInt16(NLM_F_CREATE | NLM_F_REPLACE), entry, verb: "add"))
    }

    /// Removes a proxy entry. Equivalent to `ip neigh del proxy A dev D`.
    public func deleteProxyNeighbour(_ entry: ProxyNeighbour) throws(NetlinkError) {
        try execute(proxyRequest(RTM_DELNEIGH, flags: 0, entry, verb: "delete"))
    }

    func proxyRequest<T: BinaryInteger>(_ type: T, flags: UInt16, _ entry: ProxyNeighbour, verb: String) -> Request {
        Request(type: UInt16(type), flags: flags, operation: "\(verb) \(entry)") { writer throws(NetlinkError) in
            var header = ndmsg()
            header.ndm_family = entry.address.family.rawValue
            header.ndm_ifindex = entry.interfaceIndex
            header.ndm_state = UInt16(NUD_PERMANENT)
            header.ndm_flags = UInt8(NTF_PROXY)
            try writer.putFixed(header)
            try writer.put(UInt16(NDA_DST), bytes: entry.address.bytes)
        }
    }
}

extension ProxyNeighbour {
    init(decoding payload: [UInt8]) throws(NetlinkDecodingError) {
        let header = try loadFixed(ndmsg.self, from: payload, what: "ndmsg")
        guard let family = AddressFamily(rawValue: header.ndm_family) else {
            throw NetlinkDecodingError(what: "neighbour family \(header.ndm_family)", offset: 0)
        }
        var address: InetAddress?
        var decoder = AttributeDecoder(payload, from: alignedSize(of: ndmsg.self))
        while let attribute = decoder.next() {
            if Int(attribute.type) == Int(NDA_DST) { address = try decodeAddress(attribute, family: family) }
        }
        try decoder.finish()
        guard let address else { throw NetlinkDecodingError(what: "neighbour without NDA_DST", offset: 0) }
        self.init(interfaceIndex: header.ndm_ifindex, address: address)
    }
}
