public import VTIModel
internal import CLibmnl

/// An address assigned to an interface (`RTM_NEWADDR`).
public struct InterfaceAddress: Hashable, Sendable {
    public var interfaceIndex: Int32
    public var prefix: InetPrefix
    /// `IFA_ADDRESS` when it differs from the local address: the peer of a point-to-point link.
    public var peer: InetAddress?
    public var scope: RouteScope
    public var label: String?

    public init(interfaceIndex: Int32, prefix: InetPrefix, peer: InetAddress? = nil, scope: RouteScope = .universe) {
        self.interfaceIndex = interfaceIndex
        self.prefix = prefix
        self.peer = peer
        self.scope = scope
    }
}

extension NetlinkSocket {
    /// Addresses of one family, or all. Equivalent to `ip addr show`.
    public func addresses(family: AddressFamily? = nil) throws(NetlinkError) -> [InterfaceAddress] {
        let messages = try dump(Request(type: UInt16(RTM_GETADDR), flags: 0, operation: "list addresses") { writer throws(NetlinkError) in
            var header = ifaddrmsg()
            header.ifa_family = family?.rawValue ?? 0
            try writer.putFixed(header)
        })
        return try decodeAll(messages, type: RTM_NEWADDR, operation: "list addresses", InterfaceAddress.init(decoding:))
    }

    /// Adds an address; fails with `.fileExists` if present. Equivalent to `ip addr add P dev D`.
    public func addAddress(_ address: InterfaceAddress) throws(NetlinkError) {
        try execute(addressRequest(RTM_NEWADDR, flags: UInt16(NLM_F_CREATE | NLM_F_EXCL), address, verb: "add"))
    }

    /// Adds an address unless the device has it; whether it was added. For the hook's every call:
    /// the kernel's "exists" is an answer here, not an error to describe.
    @discardableResult
    public func addAddressIfMissing(_ address: InterfaceAddress) throws(NetlinkError) -> Bool {
        try execute(addressRequest(RTM_NEWADDR, flags: UInt16(NLM_F_CREATE | NLM_F_EXCL), address, verb: "add"), tolerating: .fileExists)
    }

    /// Adds or updates an address. Equivalent to `ip addr replace P dev D`.
    public func replaceAddress(_ address: InterfaceAddress) throws(NetlinkError) {
        try execute(addressRequest(RTM_NEWADDR, flags: UInt16(NLM_F_CREATE | NLM_F_REPLACE), address, verb: "replace"))
    }

    /// Removes an address. Equivalent to `ip addr del P dev D`.
    public func deleteAddress(_ address: InterfaceAddress) throws(NetlinkError) {
        try execute(addressRequest(RTM_DELADDR, flags: 0, address, verb: "delete"))
    }

    func addressRequest<T: BinaryInteger>(_ type: T, flags: UInt16, _ address: InterfaceAddress, verb: String) -> Request {
        Request(type: UInt16(type), flags: flags, operation: "\(verb) address \(address.prefix) on link \(address.interfaceIndex)") { writer throws(NetlinkError) in
            var header = ifaddrmsg()
            header.ifa_family = address.prefix.family.rawValue
            header.ifa_prefixlen = address.prefix.length
            header.ifa_scope = address.scope.rawValue
            header.ifa_index = UInt32(bitPattern: address.interfaceIndex)
            try writer.putFixed(header)
            try writer.put(UInt16(IFA_LOCAL), bytes: address.prefix.address.bytes)
            try writer.put(UInt16(IFA_ADDRESS), bytes: (address.peer ?? address.prefix.address).bytes)
        }
    }
}

extension InterfaceAddress {
    init(decoding payload: [UInt8]) throws(NetlinkDecodingError) {
        let header = try loadFixed(ifaddrmsg.self, from: payload, what: "ifaddrmsg")
        guard let family = AddressFamily(rawValue: header.ifa_family) else {
            throw NetlinkDecodingError(what: "address family \(header.ifa_family)", offset: 0)
        }
        var local: InetAddress?
        var address: InetAddress?
        var label: String?
        var decoder = AttributeDecoder(payload, from: alignedSize(of: ifaddrmsg.self))
        while let attribute = decoder.next() {
            switch Int(attribute.type) {
            case Int(IFA_LOCAL): local = try decodeAddress(attribute, family: family)
            case Int(IFA_ADDRESS): address = try decodeAddress(attribute, family: family)
            case Int(IFA_LABEL): label = attribute.string
            default: break
            }
        }
        try decoder.finish()
        guard let own = local ?? address, let prefix = InetPrefix(own, length: header.ifa_prefixlen) else {
            throw NetlinkDecodingError(what: "address message without IFA_LOCAL or IFA_ADDRESS", offset: 0)
        }
        self.init(interfaceIndex: Int32(bitPattern: header.ifa_index), prefix: prefix,
                  peer: (address != nil && address != own) ? address : nil,
                  scope: RouteScope(rawValue: header.ifa_scope))
        self.label = label
    }
}
