import VTIModel
internal import CLibmnl

/// An XFRM mark: which packets an SA or policy applies to (`value & mask`). VTI devices set it
/// from their keys.
public struct XfrmMark: Hashable, Sendable, CustomStringConvertible {
    public var value: UInt32
    public var mask: UInt32
    public init(value: UInt32, mask: UInt32) {
        self.value = value
        self.mask = mask
    }
    public var description: String { "\(value)/0x\(String(mask, radix: 16))" }
}

extension XfrmMark {
    init(decoding attribute: AttributeDecoder.Attribute) throws(NetlinkDecodingError) {
        let value = try loadFixed(xfrm_mark.self, from: attribute.bytes, what: "XFRMA_MARK")
        self.init(value: value.v, mask: value.m)
    }
}

/// Traffic selector of an SA or policy.
public struct XfrmSelector: Hashable, Sendable {
    public var source: InetPrefix
    public var destination: InetPrefix
    /// IP protocol number, 0 for any.
    public var ipProtocol: UInt8
}

/// The ESP algorithms of an SA, as names the kernel uses (`rfc4106(gcm(aes))`, `cbc(aes)`, ...).
public struct XfrmAlgorithms: Hashable, Sendable {
    /// Combined-mode cipher and its ICV length in bits.
    public var aead: (name: String, icvBits: UInt32)?
    public var encryption: String?
    /// Authentication and its truncation length in bits.
    public var authentication: (name: String, truncationBits: UInt32)?

    public static func == (a: XfrmAlgorithms, b: XfrmAlgorithms) -> Bool {
        a.aead?.name == b.aead?.name && a.aead?.icvBits == b.aead?.icvBits && a.encryption == b.encryption
            && a.authentication?.name == b.authentication?.name
            && a.authentication?.truncationBits == b.authentication?.truncationBits
    }
    public func hash(into hasher: inout Hasher) {
        hasher.combine(aead?.name)
        hasher.combine(encryption)
        hasher.combine(authentication?.name)
    }
}

/// UDP encapsulation of ESP (NAT traversal).
public struct XfrmEncapsulation: Hashable, Sendable {
    public var type: UInt16
    public var sourcePort: UInt16
    public var destinationPort: UInt16
}

/// An IPsec SA as the kernel holds it (`ip xfrm state`), with its counters.
public struct SecurityAssociation: Hashable, Sendable, CustomStringConvertible {
    public var source: InetAddress
    public var destination: InetAddress
    /// The SPI in host order (the kernel keeps it in network order).
    public var spi: UInt32
    /// IP protocol: 50 for ESP.
    public var ipProtocol: UInt8
    public var reqid: UInt32
    /// 0 transport, 1 tunnel.
    public var mode: UInt8
    public var selector: XfrmSelector
    public var mark: XfrmMark?
    public var interfaceID: UInt32?
    public var algorithms: XfrmAlgorithms
    public var encapsulation: XfrmEncapsulation?
    public var bytes: UInt64
    public var packets: UInt64
    /// Seconds since the epoch when the SA was added.
    public var addTime: UInt64

    public var description: String {
        "\(source) -> \(destination) spi 0x\(String(spi, radix: 16)) reqid \(reqid)" + (mark.map { " mark \($0)" } ?? "")
    }
}

/// The direction of a policy.
public struct XfrmDirection: RawRepresentable, Hashable, Sendable {
    public let rawValue: UInt8
    public init(rawValue: UInt8) { self.rawValue = rawValue }
    /// The corresponding C constant is `XFRM_POLICY_IN`.
    public static let input = XfrmDirection(rawValue: 0)
    /// The corresponding C constant is `XFRM_POLICY_OUT`.
    public static let output = XfrmDirection(rawValue: 1)
    /// The corresponding C constant is `XFRM_POLICY_FWD`.
    public static let forward = XfrmDirection(rawValue: 2)
}

/// An IPsec policy (`ip xfrm policy`).
public struct SecurityPolicy: Hashable, Sendable {
    public var selector: XfrmSelector
    public var direction: XfrmDirection
    public var priority: UInt32
    public var index: UInt32
    /// 0 allow, 1 block.
    public var action: UInt8
    public var mark: XfrmMark?
    public var interfaceID: UInt32?
    /// reqids of the templates, in order.
    public var templateReqids: [UInt32]
    public var bytes: UInt64
    public var packets: UInt64
}

extension NetlinkSocket {
    /// All SAs with counters. Equivalent to `ip -s xfrm state`. Needs a socket on `.xfrm`.
    public func securityAssociations() throws(NetlinkError) -> [SecurityAssociation] {
        let messages = try dump(Request(type: UInt16(XFRM_MSG_GETSA), flags: 0, operation: "list XFRM SAs") { writer throws(NetlinkError) in
            // No fixed header: the kernel reads a dump request's payload as filter attributes only.
            _ = writer
        })
        return try decodeAll(messages, type: XFRM_MSG_NEWSA, operation: "list XFRM SAs") { payload throws(NetlinkDecodingError) in
            try SecurityAssociation(decodingInfoAt: 0, of: payload)
        }
    }

    /// All policies. Equivalent to `ip -s xfrm policy`. Needs a socket on `.xfrm`.
    public func securityPolicies() throws(NetlinkError) -> [SecurityPolicy] {
        let messages = try dump(Request(type: UInt16(XFRM_MSG_GETPOLICY), flags: 0, operation: "list XFRM policies") { writer throws(NetlinkError) in
            // No fixed header, as for SAs.
            _ = writer
        })
        return try decodeAll(messages, type: XFRM_MSG_NEWPOLICY, operation: "list XFRM policies") { payload throws(NetlinkDecodingError) in
            try SecurityPolicy(decodingInfoAt: 0, of: payload)
        }
    }
}

extension XfrmSelector {
    init(_ selector: xfrm_selector) throws(NetlinkDecodingError) {
        let family = AddressFamily(rawValue: UInt8(truncatingIfNeeded: selector.family)) ?? .ipv4
        let count = family.addressLength
        guard let source = InetPrefix(InetAddress(family: family, bytes: bytesOf(selector.saddr, count: count))!, length: selector.prefixlen_s),
              let destination = InetPrefix(InetAddress(family: family, bytes: bytesOf(selector.daddr, count: count))!, length: selector.prefixlen_d)
        else { throw NetlinkDecodingError(what: "selector prefix lengths \(selector.prefixlen_s)/\(selector.prefixlen_d)", offset: 0) }
        self.init(source: source, destination: destination, ipProtocol: selector.proto)
    }
}

extension SecurityAssociation {
    /// Decodes an `xfrm_usersa_info` at `offset`, and attributes from `attributesStart` (default:
    /// right after the struct).
    init(decodingInfoAt offset: Int, of payload: [UInt8], attributesStart: Int? = nil) throws(NetlinkDecodingError) {
        let info = try loadFixed(xfrm_usersa_info.self, from: payload, at: offset, what: "xfrm_usersa_info")
        guard let family = AddressFamily(rawValue: UInt8(truncatingIfNeeded: info.family)) else {
            throw NetlinkDecodingError(what: "SA family \(info.family)", offset: offset)
        }
        let count = family.addressLength
        source = InetAddress(family: family, bytes: bytesOf(info.saddr, count: count))!
        destination = InetAddress(family: family, bytes: bytesOf(info.id.daddr, count: count))!
        spi = UInt32(bigEndian: info.id.spi)
        ipProtocol = info.id.proto
        reqid = info.reqid
        mode = info.mode
        selector = try XfrmSelector(info.sel)
        bytes = info.curlft.bytes
        packets = info.curlft.packets
        addTime = info.curlft.add_time
        algorithms = XfrmAlgorithms()
        var decoder = AttributeDecoder(payload, from: attributesStart ?? offset + alignedSize(of: xfrm_usersa_info.self))
        while let attribute = decoder.next() {
            switch Int(attribute.type) {
            case Int(XFRMA_MARK.rawValue): mark = try XfrmMark(decoding: attribute)
            case Int(XFRMA_IF_ID.rawValue): interfaceID = try attribute.uint32()
            case Int(XFRMA_ALG_AEAD.rawValue):
                let aead = try loadFixed(xfrm_algo_aead.self, from: attribute.bytes, what: "XFRMA_ALG_AEAD")
                algorithms.aead = (algorithmName(attribute), aead.alg_icv_len)
            case Int(XFRMA_ALG_CRYPT.rawValue):
                algorithms.encryption = algorithmName(attribute)
            case Int(XFRMA_ALG_AUTH_TRUNC.rawValue):
                let auth = try loadFixed(xfrm_algo_auth.self, from: attribute.bytes, what: "XFRMA_ALG_AUTH_TRUNC")
                algorithms.authentication = (algorithmName(attribute), auth.alg_trunc_len)
            case Int(XFRMA_ENCAP.rawValue):
                let encap = try loadFixed(xfrm_encap_tmpl.self, from: attribute.bytes, what: "XFRMA_ENCAP")
                encapsulation = XfrmEncapsulation(type: encap.encap_type, sourcePort: UInt16(bigEndian: encap.encap_sport),
                                                  destinationPort: UInt16(bigEndian: encap.encap_dport))
            default: break
            }
        }
        try decoder.finish()
    }
}

/// The NUL-terminated 64-byte name that starts every `xfrm_algo*` struct.
private func algorithmName(_ attribute: AttributeDecoder.Attribute) -> String {
    String(decoding: attribute.value.prefix(64).prefix { $0 != 0 }, as: UTF8.self)
}

extension SecurityPolicy {
    init(decodingInfoAt offset: Int, of payload: [UInt8], attributesStart: Int? = nil) throws(NetlinkDecodingError) {
        let info = try loadFixed(xfrm_userpolicy_info.self, from: payload, at: offset, what: "xfrm_userpolicy_info")
        selector = try XfrmSelector(info.sel)
        direction = XfrmDirection(rawValue: info.dir)
        priority = info.priority
        index = info.index
        action = info.action
        bytes = info.curlft.bytes
        packets = info.curlft.packets
        templateReqids = []
        var decoder = AttributeDecoder(payload, from: attributesStart ?? offset + alignedSize(of: xfrm_userpolicy_info.self))
        while let attribute = decoder.next() {
            switch Int(attribute.type) {
            case Int(XFRMA_MARK.rawValue): mark = try XfrmMark(decoding: attribute)
            case Int(XFRMA_IF_ID.rawValue): interfaceID = try attribute.uint32()
            case Int(XFRMA_TMPL.rawValue):
                let size = MemoryLayout<xfrm_user_tmpl>.size
                let raw = attribute.bytes
                var start = 0
                while start + size <= raw.count {
                    templateReqids.append(try loadFixed(xfrm_user_tmpl.self, from: raw, at: start, what: "XFRMA_TMPL").reqid)
                    start += size
                }
            default: break
            }
        }
        try decoder.finish()
    }
}
