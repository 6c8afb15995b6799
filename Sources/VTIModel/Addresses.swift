/// IP addresses and prefixes parsed by hand: this module imports nothing, so the hook starts fast,
/// and every parse is strict (no octal, no shorthand, no zone) because the text may come from a peer.

/// Which IP version: the one family type of the project (the Netlink module uses it too). The raw
/// value is the kernel's `AF_*` number, which netlink's family fields carry.
public enum AddressFamily: UInt8, Sendable, Hashable, CustomStringConvertible {
    /// `AF_INET`.
    case ipv4 = 2
    /// `AF_INET6`.
    case ipv6 = 10

    public var bitCount: Int { self == .ipv4 ? 32 : 128 }
    /// Bytes in an address of this family.
    public var addressLength: Int { self == .ipv4 ? 4 : 16 }

    /// `ipv4` or `ipv6`, as pluto writes `PLUTO_CONN_ADDRFAMILY`.
    public var description: String { self == .ipv4 ? "ipv4" : "ipv6" }
}

/// An IPv4 address; `rawValue` in host order so that masks are plain integer arithmetic.
public struct IPv4Address: Sendable, Hashable, Comparable, CustomStringConvertible {
    public let rawValue: UInt32

    public init(rawValue: UInt32) { self.rawValue = rawValue }

    /// Dotted quad only: four decimal parts, no leading zeros (which some parsers read as octal).
    public init?(_ text: some StringProtocol) {
        guard let value = parseIPv4(text.utf8) else { return nil }
        rawValue = value
    }

    init(bytes: [UInt8]) {
        rawValue = bytes.reduce(0) { $0 << 8 | UInt32($1) }
    }

    /// Network order.
    public var bytes: [UInt8] { [24, 16, 8, 0].map { UInt8(truncatingIfNeeded: rawValue >> $0) } }

    public var description: String {
        // Four small strings, no arrays: the hook writes an address into each line it logs.
        decimal(rawValue >> 24) + "." + decimal(rawValue >> 16 & 0xff) + "." + decimal(rawValue >> 8 & 0xff) + "." + decimal(rawValue & 0xff)
    }

    public static func < (a: IPv4Address, b: IPv4Address) -> Bool { a.rawValue < b.rawValue }

    func masked(to length: Int) -> IPv4Address {
        IPv4Address(rawValue: length == 0 ? 0 : rawValue & (UInt32.max << (32 - length)))
    }
}

/// An IPv6 address as two 64-bit halves, host order.
public struct IPv6Address: Sendable, Hashable, Comparable, CustomStringConvertible {
    public let high: UInt64
    public let low: UInt64

    public init(high: UInt64, low: UInt64) {
        self.high = high
        self.low = low
    }

    /// RFC 4291 text (`2001:db8::1`, `::ffff:192.0.2.1`); no zone index (`%eth0`), which has no
    /// place in a pluto variable.
    public init?(_ text: some StringProtocol) {
        let utf8 = Array(text.utf8)
        guard utf8.count <= 45, let bytes = parseIPv6(utf8) else { return nil }
        self.init(bytes: bytes)
    }

    init(bytes: [UInt8]) {
        high = bytes[0..<8].reduce(0) { $0 << 8 | UInt64($1) }
        low = bytes[8..<16].reduce(0) { $0 << 8 | UInt64($1) }
    }

    /// Network order.
    public var bytes: [UInt8] {
        let shifts: [UInt64] = [56, 48, 40, 32, 24, 16, 8, 0]
        return shifts.map { UInt8(truncatingIfNeeded: high >> $0) } + shifts.map { UInt8(truncatingIfNeeded: low >> $0) }
    }

    /// RFC 5952: lowercase, no leading zeros, the longest run of zero groups as `::`.
    public var description: String { formatIPv6(bytes) }

    public static func < (a: IPv6Address, b: IPv6Address) -> Bool { (a.high, a.low) < (b.high, b.low) }

    func masked(to length: Int) -> IPv6Address {
        func mask(_ bits: Int) -> UInt64 { bits <= 0 ? 0 : bits >= 64 ? .max : UInt64.max << (64 - bits) }
        return IPv6Address(high: high & mask(length), low: low & mask(length - 64))
    }
}

/// An IPv4 or IPv6 address.
public enum IPAddress: Sendable, Hashable, Comparable, CustomStringConvertible {
    case v4(IPv4Address)
    case v6(IPv6Address)

    /// 4 or 16 bytes, network order.
    public init?(bytes: [UInt8]) {
        switch bytes.count {
        case 4: self = .v4(IPv4Address(bytes: bytes))
        case 16: self = .v6(IPv6Address(bytes: bytes))
        default: return nil
        }
    }

    /// Parses `192.0.2.1` or an IPv6 address (`2001:db8::1`, `::ffff:192.0.2.1`).
    public init?(_ text: some StringProtocol) {
        if let v4 = IPv4Address(text) {
            self = .v4(v4)
        } else if let v6 = IPv6Address(text) {
            self = .v6(v6)
        } else {
            return nil
        }
    }

    /// 0.0.0.0 or `::`: the "any" remote of a VTI device shared by several peers.
    public static func unspecified(_ family: AddressFamily) -> IPAddress {
        family == .ipv4 ? .v4(IPv4Address(rawValue: 0)) : .v6(IPv6Address(high: 0, low: 0))
    }

    public var family: AddressFamily {
        switch self {
        case .v4: .ipv4
        case .v6: .ipv6
        }
    }

    /// 4 or 16 bytes, network order.
    public var bytes: [UInt8] {
        switch self {
        case .v4(let address): address.bytes
        case .v6(let address): address.bytes
        }
    }

    public var isUnspecified: Bool { self == .unspecified(family) }

    public var description: String {
        switch self {
        case .v4(let address): address.description
        case .v6(let address): address.description
        }
    }

    /// The address with all but the first `length` bits cleared.
    func masked(to length: Int) -> IPAddress {
        switch self {
        case .v4(let address): .v4(address.masked(to: length))
        case .v6(let address): .v6(address.masked(to: length))
        }
    }
}

/// An address and a prefix length, e.g. a client subnet or a VTI address. The address may have
/// host bits set (`10.0.1.1/24` is an interface address); `network` and `isCanonicalNetwork` say
/// whether it names a network.
public struct IPPrefix: Sendable, Hashable, CustomStringConvertible {
    public let address: IPAddress
    public let length: Int

    /// Nil when the length does not fit the family (over 32 or 128, or negative).
    public init?(_ address: IPAddress, length: Int) {
        guard length >= 0, length <= address.family.bitCount else { return nil }
        self.address = address
        self.length = length
    }

    /// Parses `10.0.1.0/24`; a bare address is a host prefix (/32 or /128). The length is decimal
    /// without leading zeros or sign.
    public init?(_ text: some StringProtocol) {
        guard let slash = text.utf8.firstIndex(of: UInt8(ascii: "/")) else {
            guard let address = IPAddress(text) else { return nil }
            self.init(address, length: address.family.bitCount)
            return
        }
        guard let address = IPAddress(text[..<slash]) else { return nil }
        let digits = text.utf8[text.utf8.index(after: slash)...]
        guard !digits.isEmpty, digits.count <= 3, digits.allSatisfy(isDecimalDigit),
              digits.count == 1 || digits.first != UInt8(ascii: "0")
        else { return nil }
        self.init(address, length: digits.reduce(0) { $0 * 10 + Int($1 - UInt8(ascii: "0")) })
    }

    /// A host prefix: /32 or /128.
    public init(host address: IPAddress) {
        self.address = address
        length = address.family.bitCount
    }

    public var family: AddressFamily { address.family }
    public var isHost: Bool { length == family.bitCount }
    /// 0.0.0.0/0 or ::/0.
    public var isDefault: Bool { length == 0 }

    /// The prefix with host bits cleared: what a route's destination must be.
    public var network: IPPrefix { IPPrefix(trusted: address.masked(to: length), length: length) }

    /// The prefix's last address: every host bit set (`10.0.1.255` for `10.0.1.0/24`).
    public var lastAddress: IPAddress {
        var bytes = address.bytes
        for bit in length..<(bytes.count * 8) { bytes[bit / 8] |= UInt8(0x80) >> UInt8(bit % 8) }
        return IPAddress(bytes: bytes) ?? address
    }

    /// Whether no host bits are set (`10.0.1.0/24`, not `10.0.1.7/24`).
    public var isCanonicalNetwork: Bool { address.masked(to: length) == address }

    /// Whether the address is inside this prefix.
    public func contains(_ other: IPAddress) -> Bool {
        other.family == family && other.masked(to: length) == address.masked(to: length)
    }

    /// Whether the two prefixes share any address.
    public func overlaps(_ other: IPPrefix) -> Bool {
        guard other.family == family else { return false }
        return length <= other.length ? contains(other.address) : other.contains(address)
    }

    public var description: String { address.description + "/" + decimal(length) }

    /// For lengths this module has already checked.
    private init(trusted address: IPAddress, length: Int) {
        self.address = address
        self.length = length
    }
}

func isDecimalDigit(_ byte: UInt8) -> Bool {
    byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9")
}

/// A dotted quad into a host-order integer, without building anything on the way (the hook parses
/// half a dozen addresses per call).
private func parseIPv4<Bytes: Collection<UInt8>>(_ text: Bytes) -> UInt32? {
    guard text.count <= 15 else { return nil }
    var result: UInt32 = 0
    var parts = 0
    var value: UInt32 = 0
    var digits = 0
    for character in text {
        if isDecimalDigit(character) {
            // A leading zero would be octal to some parsers: refuse it.
            if digits == 1 && value == 0 { return nil }
            value = value * 10 + UInt32(character - UInt8(ascii: "0"))
            digits += 1
            guard digits <= 3, value <= 255 else { return nil }
        } else if character == UInt8(ascii: ".") {
            guard digits > 0, parts < 3 else { return nil }
            result = result << 8 | value
            parts += 1
            value = 0
            digits = 0
        } else {
            return nil
        }
    }
    guard digits > 0, parts == 3 else { return nil }
    return result << 8 | value
}

private func parseIPv6(_ text: [UInt8]) -> [UInt8]? {
    guard text.contains(UInt8(ascii: ":")) else { return nil }
    // Split at "::" (at most once) into a head and a tail of 16-bit groups.
    var head: [UInt16] = []
    var tail: [UInt16] = []
    var sawDoubleColon = false
    var embeddedIPv4: [UInt8]?
    let groups = text.split(separator: UInt8(ascii: ":"), omittingEmptySubsequences: false)
    guard groups.count <= 9 else { return nil }
    var index = 0
    // "::" at the start produces two empty groups that are one compression.
    if groups.count >= 2, groups[0].isEmpty {
        guard groups[1].isEmpty else { return nil }
        index = 1
    }
    while index < groups.count {
        let group = groups[index]
        if group.isEmpty {
            // An empty last group is the end of a trailing "::", never a lone trailing ":".
            if index == groups.count - 1, index > 0, !groups[index - 1].isEmpty { return nil }
            guard !sawDoubleColon else {
                // Only a trailing "::" may leave a second empty group, as the very last one.
                if index == groups.count - 1, groups[index - 1].isEmpty { index += 1; continue }
                return nil
            }
            sawDoubleColon = true
            index += 1
            continue
        }
        if index == groups.count - 1, group.contains(UInt8(ascii: ".")) {
            guard let v4 = parseIPv4(group) else { return nil }
            embeddedIPv4 = [24, 16, 8, 0].map { UInt8(truncatingIfNeeded: v4 >> $0) }
            index += 1
            continue
        }
        guard group.count <= 4 else { return nil }
        var value: UInt16 = 0
        for character in group {
            guard let digit = hexValue(character) else { return nil }
            value = value << 4 | UInt16(digit)
        }
        if sawDoubleColon { tail.append(value) } else { head.append(value) }
        index += 1
    }
    let v4Groups = embeddedIPv4 == nil ? 0 : 2
    let total = head.count + tail.count + v4Groups
    if sawDoubleColon {
        guard total <= 7 else { return nil }
    } else {
        guard total == 8 else { return nil }
    }
    let zeros = [UInt16](repeating: 0, count: 8 - total)
    var bytes: [UInt8] = []
    for group in head + zeros + tail {
        bytes.append(UInt8(group >> 8))
        bytes.append(UInt8(group & 0xff))
    }
    if let embeddedIPv4 { bytes += embeddedIPv4 }
    return bytes.count == 16 ? bytes : nil
}

func hexValue(_ character: UInt8) -> UInt8? {
    switch character {
    case UInt8(ascii: "0")...UInt8(ascii: "9"): character - UInt8(ascii: "0")
    case UInt8(ascii: "a")...UInt8(ascii: "f"): character - UInt8(ascii: "a") + 10
    case UInt8(ascii: "A")...UInt8(ascii: "F"): character - UInt8(ascii: "A") + 10
    default: nil
    }
}

private func formatIPv6(_ bytes: [UInt8]) -> String {
    let groups = stride(from: 0, to: 16, by: 2).map { UInt16(bytes[$0]) << 8 | UInt16(bytes[$0 + 1]) }
    var bestStart = -1, bestLength = 0, runStart = -1
    for (index, group) in groups.enumerated() {
        if group == 0 {
            if runStart < 0 { runStart = index }
            let length = index - runStart + 1
            if length > bestLength { bestStart = runStart; bestLength = length }
        } else {
            runStart = -1
        }
    }
    if bestLength < 2 { bestStart = -1 }
    var text = ""
    var index = 0
    while index < 8 {
        if index == bestStart {
            text += "::"
            index += bestLength
            continue
        }
        if !text.isEmpty && !text.hasSuffix(":") { text += ":" }
        text += String(groups[index], radix: 16)
        index += 1
    }
    return text
}
