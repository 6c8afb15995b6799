/// IP addresses and prefixes parsed by hand: this module imports nothing, so the hook starts fast,
/// and every parse is strict (no octal, no shorthand) because the text may come from a peer.

/// Which IP version.
public enum IPFamily: Sendable, Hashable {
    case ipv4, ipv6

    public var bitCount: Int { self == .ipv4 ? 32 : 128 }
}

/// An IPv4 or IPv6 address as network-order bytes.
public struct IPAddress: Sendable, Hashable, Comparable, CustomStringConvertible {
    public let family: IPFamily
    /// 4 or 16 bytes, network order.
    public let bytes: [UInt8]

    public init?(bytes: [UInt8]) {
        switch bytes.count {
        case 4: family = .ipv4
        case 16: family = .ipv6
        default: return nil
        }
        self.bytes = bytes
    }

    /// Parses `192.0.2.1` or an IPv6 address (`2001:db8::1`, `::ffff:192.0.2.1`).
    public init?(_ text: some StringProtocol) {
        let utf8 = Array(text.utf8)
        guard !utf8.isEmpty, utf8.count <= 45 else { return nil }
        if let v4 = parseIPv4(utf8) {
            self.init(bytes: v4)
        } else if let v6 = parseIPv6(utf8) {
            self.init(bytes: v6)
        } else {
            return nil
        }
    }

    public static func unspecified(_ family: IPFamily) -> IPAddress {
        IPAddress(bytes: [UInt8](repeating: 0, count: family.bitCount / 8))!
    }

    public var isUnspecified: Bool { bytes.allSatisfy { $0 == 0 } }

    public var description: String {
        family == .ipv4 ? bytes.map { String($0) }.joined(separator: ".") : formatIPv6(bytes)
    }

    public static func < (a: IPAddress, b: IPAddress) -> Bool {
        if a.family != b.family { return a.family == .ipv4 }
        return a.bytes.lexicographicallyPrecedes(b.bytes)
    }
}

/// An address and a prefix length, e.g. a client subnet or a VTI address.
public struct IPPrefix: Sendable, Hashable, CustomStringConvertible {
    public let address: IPAddress
    public let length: Int

    public init?(_ address: IPAddress, length: Int) {
        guard length >= 0, length <= address.family.bitCount else { return nil }
        self.address = address
        self.length = length
    }

    /// Parses `10.0.1.0/24`; a bare address is a host prefix (/32 or /128).
    public init?(_ text: some StringProtocol) {
        let parts = text.split(separator: "/", maxSplits: 1, omittingEmptySubsequences: false)
        guard let address = IPAddress(parts[0]) else { return nil }
        if parts.count == 1 {
            self.init(address, length: address.family.bitCount)
            return
        }
        let digits = parts[1]
        guard !digits.isEmpty, digits.count <= 3, digits.allSatisfy(\.isASCIIDigit), let length = Int(digits) else { return nil }
        self.init(address, length: length)
    }

    public var family: IPFamily { address.family }
    public var isHost: Bool { length == family.bitCount }
    /// 0.0.0.0/0 or ::/0.
    public var isDefault: Bool { length == 0 }

    /// The prefix with host bits cleared.
    public var network: IPPrefix {
        var bytes = address.bytes
        for index in bytes.indices {
            let bitsBefore = index * 8
            if bitsBefore >= length { bytes[index] = 0 }
            else if bitsBefore + 8 > length { bytes[index] &= UInt8(truncatingIfNeeded: 0xff << (8 - (length - bitsBefore))) }
        }
        return IPPrefix(IPAddress(bytes: bytes)!, length: length)!
    }

    /// Whether the address is inside this prefix.
    public func contains(_ other: IPAddress) -> Bool {
        guard other.family == family else { return false }
        return IPPrefix(other, length: length)!.network == network
    }

    /// Whether the two prefixes share any address.
    public func overlaps(_ other: IPPrefix) -> Bool {
        guard other.family == family else { return false }
        return length <= other.length ? contains(other.address) : other.contains(address)
    }

    public var description: String { "\(address)/\(length)" }
}

extension Character {
    var isASCIIDigit: Bool { isASCII && isNumber }
}

private func parseIPv4(_ text: [UInt8]) -> [UInt8]? {
    var result: [UInt8] = []
    var value = 0
    var digits = 0
    for character in text + [UInt8(ascii: ".")] {
        if character >= UInt8(ascii: "0"), character <= UInt8(ascii: "9") {
            // A leading zero would be octal to some parsers: refuse it.
            if digits == 1 && value == 0 { return nil }
            value = value * 10 + Int(character - UInt8(ascii: "0"))
            digits += 1
            guard digits <= 3, value <= 255 else { return nil }
        } else if character == UInt8(ascii: ".") {
            guard digits > 0 else { return nil }
            result.append(UInt8(value))
            value = 0
            digits = 0
        } else {
            return nil
        }
    }
    return result.count == 4 ? result : nil
}

private func parseIPv6(_ text: [UInt8]) -> [UInt8]? {
    guard text.contains(UInt8(ascii: ":")) else { return nil }
    // Split at "::" (at most once) into a head and a tail of 16-bit groups.
    var head: [UInt16] = []
    var tail: [UInt16] = []
    var sawDoubleColon = false
    var embeddedIPv4: [UInt8]?
    let groups = text.split(separator: UInt8(ascii: ":"), omittingEmptySubsequences: false)
    var index = 0
    // "::" at the start or end produces empty groups that are part of the compression.
    if groups.count >= 2, groups[0].isEmpty {
        guard groups[1].isEmpty else { return nil }
        index = 1
    }
    while index < groups.count {
        let group = groups[index]
        if group.isEmpty {
            guard !sawDoubleColon else {
                // Only the trailing "::" may leave a second empty group, as the very last one.
                if index == groups.count - 1, groups[index - 1].isEmpty { index += 1; continue }
                return nil
            }
            sawDoubleColon = true
            index += 1
            continue
        }
        if index == groups.count - 1, group.contains(UInt8(ascii: ".")) {
            guard let v4 = parseIPv4(Array(group)) else { return nil }
            embeddedIPv4 = v4
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

/// RFC 5952 text: lowercase, leading zeros dropped, the longest run of zero groups as "::".
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
