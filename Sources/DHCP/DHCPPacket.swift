public import VTIModel

// BOOTP/DHCP messages (RFC 951, RFC 2131, RFC 2132), read strictly: the bytes come from a remote
// client through a tunnel, so anything short, long, or inconsistent is a typed error and never a
// trap. No Foundation: vtid links this module, and so does a fuzz target.

/// Why a datagram is not a DHCP message vtid will look at. `description` is one short line for
/// the log (no remote bytes in it but numbers).
public enum DHCPParseError: Error, Sendable, Hashable, CustomStringConvertible {
    /// Shorter than the fixed header and the magic cookie (240 bytes).
    case truncated(length: Int)
    /// Longer than any DHCP message vtid accepts (`DHCPPacket.maximumLength`).
    case tooLong(length: Int)
    /// `op` is neither BOOTREQUEST (1) nor BOOTREPLY (2).
    case badOperation(UInt8)
    /// `hlen` over 16, the size of `chaddr`.
    case badHardwareAddressLength(UInt8)
    /// The four bytes after the fixed header are not 99.130.83.99: BOOTP vendor data, not DHCP.
    case badMagicCookie
    /// An option's length byte, or the length byte itself, runs past the end of its field.
    case optionOverrunsField(code: UInt8, field: DHCPOptionField)
    /// A field holding options has no END option (255).
    case missingEnd(DHCPOptionField)
    /// An option vtid reads has a length its definition does not allow.
    case badOptionLength(code: UInt8, length: Int)
    /// Option overload (52) with a value other than 1, 2 or 3, or outside the options field.
    case badOverload
    /// No message type (53): a BOOTP message, which vtid does not answer.
    case noMessageType
    /// A message type that RFC 2131 and its successors do not define.
    case unknownMessageType(UInt8)

    public var description: String {
        switch self {
        case .truncated(let length): "truncated: \(length) bytes, a DHCP message has at least 240"
        case .tooLong(let length): "too long: \(length) bytes, over \(DHCPPacket.maximumLength)"
        case .badOperation(let op): "op \(op) is neither BOOTREQUEST nor BOOTREPLY"
        case .badHardwareAddressLength(let length): "hlen \(length) is over 16"
        case .badMagicCookie: "no DHCP magic cookie"
        case .optionOverrunsField(let code, let field): "option \(code) runs past the end of the \(field) field"
        case .missingEnd(let field): "the \(field) field has no END option"
        case .badOptionLength(let code, let length): "option \(code) has length \(length)"
        case .badOverload: "a bad option overload (52)"
        case .noMessageType: "no DHCP message type (53): BOOTP"
        case .unknownMessageType(let type): "unknown DHCP message type \(type)"
        }
    }

    /// A short stable name per kind, for metrics labels and rate-limited log causes.
    public var cause: String {
        switch self {
        case .truncated: "truncated"
        case .tooLong: "too-long"
        case .badOperation: "bad-op"
        case .badHardwareAddressLength: "bad-hlen"
        case .badMagicCookie: "no-cookie"
        case .optionOverrunsField: "option-overrun"
        case .missingEnd: "no-end"
        case .badOptionLength: "bad-option-length"
        case .badOverload: "bad-overload"
        case .noMessageType: "bootp"
        case .unknownMessageType: "unknown-type"
        }
    }
}

/// Where options were found: the options field, or `file`/`sname` when option 52 lends them.
public enum DHCPOptionField: String, Sendable, Hashable, CustomStringConvertible {
    case options, file, sname
    public var description: String { rawValue }
}

/// DHCP message types (option 53): RFC 2131, RFC 3203 (FORCERENEW), RFC 4388 (lease query),
/// RFC 6926 (bulk lease query), RFC 7724 (active lease query).
public enum DHCPMessageType: UInt8, Sendable, Hashable, CaseIterable, CustomStringConvertible {
    case discover = 1, offer, request, decline, ack, nak, release, inform
    case forceRenew, leaseQuery, leaseUnassigned, leaseUnknown, leaseActive
    case bulkLeaseQuery, leaseQueryDone, activeLeaseQuery, leaseQueryStatus, tls

    public var description: String {
        switch self {
        case .discover: "DHCPDISCOVER"
        case .offer: "DHCPOFFER"
        case .request: "DHCPREQUEST"
        case .decline: "DHCPDECLINE"
        case .ack: "DHCPACK"
        case .nak: "DHCPNAK"
        case .release: "DHCPRELEASE"
        case .inform: "DHCPINFORM"
        default: "DHCP message type \(rawValue)"
        }
    }
}

/// Option codes vtid reads or writes.
public enum DHCPOptionCode {
    public static let pad: UInt8 = 0
    public static let subnetMask: UInt8 = 1
    public static let domainNameServers: UInt8 = 6
    public static let domainName: UInt8 = 15
    public static let overload: UInt8 = 52
    public static let messageType: UInt8 = 53
    public static let serverIdentifier: UInt8 = 54
    public static let parameterRequestList: UInt8 = 55
    public static let maximumMessageSize: UInt8 = 57
    public static let clientIdentifier: UInt8 = 61
    public static let domainSearch: UInt8 = 119
    public static let classlessStaticRoutes: UInt8 = 121
    public static let microsoftClasslessStaticRoutes: UInt8 = 249
    public static let end: UInt8 = 255
}

/// One BOOTP/DHCP message: the fixed header, and the options from every field that holds them,
/// an option split over several instances joined into one value (RFC 3396).
public struct DHCPPacket: Sendable, Hashable {
    /// vtid reads no more of a datagram than this: far over any INFORM (Windows sends about 300
    /// bytes), and under the 1500-byte MTU a tunnel carries without fragments.
    public static let maximumLength = 1500
    public static let fixedLength = 236
    public static let magicCookie: [UInt8] = [99, 130, 83, 99]

    /// 1 BOOTREQUEST, 2 BOOTREPLY.
    public var op: UInt8
    public var htype: UInt8
    public var hlen: UInt8
    public var hops: UInt8
    public var xid: UInt32
    public var secs: UInt16
    public var flags: UInt16
    public var ciaddr: IPv4Address
    public var yiaddr: IPv4Address
    public var siaddr: IPv4Address
    public var giaddr: IPv4Address
    /// All 16 bytes of `chaddr` (`hlen` says how many are the address).
    public var chaddr: [UInt8]
    /// Option values by code, in the order they first appeared.
    public var options: [(code: UInt8, value: [UInt8])]
    public var messageType: DHCPMessageType

    public static let bootRequest: UInt8 = 1
    public static let bootReply: UInt8 = 2

    public static func == (a: DHCPPacket, b: DHCPPacket) -> Bool {
        a.op == b.op && a.htype == b.htype && a.hlen == b.hlen && a.hops == b.hops && a.xid == b.xid && a.secs == b.secs
            && a.flags == b.flags && a.ciaddr == b.ciaddr && a.yiaddr == b.yiaddr && a.siaddr == b.siaddr && a.giaddr == b.giaddr
            && a.chaddr == b.chaddr && a.messageType == b.messageType
            && a.options.map(\.code) == b.options.map(\.code) && a.options.map(\.value) == b.options.map(\.value)
    }

    public func hash(into hasher: inout Hasher) {
        hasher.combine(xid)
        hasher.combine(chaddr)
        for option in options {
            hasher.combine(option.code)
            hasher.combine(option.value)
        }
    }

    /// The value of option `code`, nil if the message does not carry it.
    public func option(_ code: UInt8) -> [UInt8]? {
        options.first { $0.code == code }?.value
    }

    /// The client's hardware address: the first `hlen` bytes of `chaddr`.
    public var hardwareAddress: ArraySlice<UInt8> { chaddr.prefix(Int(hlen)) }

    /// The parameter request list (55), empty without one.
    public var requestedParameters: [UInt8] { option(DHCPOptionCode.parameterRequestList) ?? [] }

    /// Parses one datagram's payload.
    public init(parsing bytes: some Collection<UInt8>) throws(DHCPParseError) {
        let count = bytes.count
        guard count <= Self.maximumLength else { throw .tooLong(length: count) }
        guard count >= Self.fixedLength + 4 else { throw .truncated(length: count) }
        let data = Array(bytes)
        func u16(_ at: Int) -> UInt16 { UInt16(data[at]) << 8 | UInt16(data[at + 1]) }
        func u32(_ at: Int) -> UInt32 { UInt32(u16(at)) << 16 | UInt32(u16(at + 2)) }

        op = data[0]
        guard op == Self.bootRequest || op == Self.bootReply else { throw .badOperation(op) }
        htype = data[1]
        hlen = data[2]
        guard hlen <= 16 else { throw .badHardwareAddressLength(hlen) }
        hops = data[3]
        xid = u32(4)
        secs = u16(8)
        flags = u16(10)
        ciaddr = IPv4Address(rawValue: u32(12))
        yiaddr = IPv4Address(rawValue: u32(16))
        siaddr = IPv4Address(rawValue: u32(20))
        giaddr = IPv4Address(rawValue: u32(24))
        chaddr = Array(data[28..<44])
        guard data[236..<240].elementsEqual(Self.magicCookie) else { throw .badMagicCookie }

        var collected = OptionCollector()
        try collected.read(data[240...], field: .options)
        if let overload = collected.overload {
            // RFC 2131 §4.1: the options field first, then `file`, then `sname`.
            if overload & 1 != 0 { try collected.read(data[108..<236], field: .file) }
            if overload & 2 != 0 { try collected.read(data[44..<108], field: .sname) }
        }
        options = collected.options

        guard let type = options.first(where: { $0.code == DHCPOptionCode.messageType })?.value else { throw .noMessageType }
        guard type.count == 1 else { throw .badOptionLength(code: DHCPOptionCode.messageType, length: type.count) }
        guard let known = DHCPMessageType(rawValue: type[0]) else { throw .unknownMessageType(type[0]) }
        messageType = known
        for (code, value) in options {
            switch code {
            case DHCPOptionCode.serverIdentifier, DHCPOptionCode.subnetMask:
                guard value.count == 4 else { throw .badOptionLength(code: code, length: value.count) }
            case DHCPOptionCode.maximumMessageSize:
                guard value.count == 2 else { throw .badOptionLength(code: code, length: value.count) }
            case DHCPOptionCode.parameterRequestList:
                guard !value.isEmpty else { throw .badOptionLength(code: code, length: 0) }
            case DHCPOptionCode.domainNameServers:
                guard !value.isEmpty, value.count % 4 == 0 else { throw .badOptionLength(code: code, length: value.count) }
            default:
                break
            }
        }
    }

    /// The client's maximum DHCP message size (option 57), if it sent a usable one (RFC 2132: at
    /// least 576).
    public var maximumMessageSize: Int? {
        guard let value = option(DHCPOptionCode.maximumMessageSize), value.count == 2 else { return nil }
        let size = Int(value[0]) << 8 | Int(value[1])
        return size >= 576 ? size : nil
    }
}

/// Reads options out of the fields that hold them, joining split options (RFC 3396).
private struct OptionCollector {
    var options: [(code: UInt8, value: [UInt8])] = []
    var overload: UInt8?

    mutating func read(_ field: ArraySlice<UInt8>, field name: DHCPOptionField) throws(DHCPParseError) {
        var index = field.startIndex
        while index < field.endIndex {
            let code = field[index]
            if code == DHCPOptionCode.pad {
                index += 1
                continue
            }
            // END: what follows is padding, whatever its bytes.
            if code == DHCPOptionCode.end { return }
            guard index + 1 < field.endIndex else { throw .optionOverrunsField(code: code, field: name) }
            let length = Int(field[index + 1])
            let start = index + 2
            guard start + length <= field.endIndex else { throw .optionOverrunsField(code: code, field: name) }
            let value = field[start..<start + length]
            if code == DHCPOptionCode.overload {
                guard name == .options, overload == nil, length == 1, (1...3).contains(value[start]) else { throw .badOverload }
                overload = value[start]
            } else if let existing = options.firstIndex(where: { $0.code == code }) {
                options[existing].value += value
            } else {
                options.append((code, Array(value)))
            }
            index = start + length
        }
        throw .missingEnd(name)
    }
}
