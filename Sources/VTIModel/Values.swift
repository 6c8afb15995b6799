/// A netfilter/XFRM mark with its mask, as libreswan's `mark=` and `CONNMARK_IN`/`OUT` carry it:
/// `12/0xffffffff`. A VTI device's key is the mark's value.
public struct FirewallMark: Sendable, Hashable, CustomStringConvertible {
    public let value: UInt32
    public let mask: UInt32

    /// Without a mask the whole 32 bits count, as in libreswan.
    public init(value: UInt32, mask: UInt32 = 0xffff_ffff) {
        self.value = value
        self.mask = mask
    }

    /// Parses `12`, `0xc`, `12/0xffffffff`; rejects negatives, overflow and junk.
    public init?(_ text: some StringProtocol) {
        let parts = text.split(separator: "/", maxSplits: 1, omittingEmptySubsequences: false)
        guard let value = parseUInt32(parts[0]) else { return nil }
        if parts.count == 2 {
            guard let mask = parseUInt32(parts[1]) else { return nil }
            self.init(value: value, mask: mask)
        } else {
            self.init(value: value)
        }
    }

    public var description: String { "\(value)/0x\(String(mask, radix: 16))" }
}

/// Decimal or `0x` hexadecimal, at most 32 bits; no sign, no spaces.
func parseUInt32(_ text: some StringProtocol) -> UInt32? {
    let utf8 = Array(text.utf8)
    guard !utf8.isEmpty, utf8.count <= 10 else { return nil }
    if utf8.count > 2, utf8[0] == UInt8(ascii: "0"), utf8[1] | 0x20 == UInt8(ascii: "x") {
        var value: UInt64 = 0
        for character in utf8.dropFirst(2) {
            guard let digit = hexValue(character) else { return nil }
            value = value << 4 | UInt64(digit)
        }
        return value <= UInt64(UInt32.max) ? UInt32(value) : nil
    }
    guard utf8.allSatisfy(isDecimalDigit) else { return nil }
    return UInt32(String(decoding: utf8, as: UTF8.self))
}

/// A Linux interface name: 1-15 bytes of ASCII letters, digits, `.`, `-` and `_`, and not `.` or
/// `..`. Stricter than the kernel, which takes any printable byte but `/`, `:` and whitespace:
/// the name becomes a path component under /proc/sys and appears in logs, firewall rules and the
/// shell commands of other people's scripts, so `$(reboot)` is refused even though the kernel
/// would create it.
public struct InterfaceName: Sendable, Hashable, CustomStringConvertible {
    public let rawValue: String

    public init?(_ text: some StringProtocol) {
        let bytes = Array(text.utf8)
        guard !bytes.isEmpty, bytes.count <= 15, text != ".", text != "..",
              bytes.allSatisfy(isInterfaceNameByte)
        else { return nil }
        rawValue = String(text)
    }

    /// The loopback device, where the stock script puts a policy-based conn's source address.
    public static let loopback = InterfaceName(trusted: "lo")

    public var description: String { rawValue }

    private init(trusted: String) { rawValue = trusted }
}

private func isInterfaceNameByte(_ byte: UInt8) -> Bool {
    switch byte {
    case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "0")...UInt8(ascii: "9"),
         UInt8(ascii: "."), UInt8(ascii: "-"), UInt8(ascii: "_"):
        true
    default:
        false
    }
}

/// Text chosen by the remote side (peer ID, CA, DNS info, banner) or copied from configuration
/// (conn name): kept as bytes, bounded, and only ever shown escaped. Never put into anything that
/// is executed, and never into a log line unescaped.
public struct UntrustedText: Sendable, Hashable, CustomStringConvertible {
    /// The bytes as the peer sent them (after undoing pluto's own escaping, see `pluto(escaped:)`).
    public let raw: [UInt8]

    /// Longer values are refused rather than cut: a cut ID would compare equal to another one.
    public static let maximumLength = 255

    public init?(_ text: some StringProtocol) {
        self.init(bytes: Array(text.utf8))
    }

    public init?(bytes: [UInt8]) {
        guard bytes.count <= Self.maximumLength else { return nil }
        raw = bytes
    }

    /// No text: an unset optional variable.
    public static let empty = UntrustedText(checked: [])

    private init(checked bytes: [UInt8]) { raw = bytes }

    /// Undoes the `\NNN` octal escapes pluto writes into IDs and CA names: libreswan 4.x escapes
    /// `' \ " `` ` `` $` and unprintable bytes so that its `sh -c` command line stays quoted, 5.x
    /// escapes unprintable bytes only. Decoding both gives the peer's real bytes, so the same peer
    /// has the same ID whichever pluto ran the hook. Anything else stays as it came.
    public static func pluto(escaped text: some StringProtocol) -> UntrustedText? {
        let input = Array(text.utf8)
        // Each decoded byte takes at most four escaped ones.
        guard input.count <= 4 * maximumLength else { return nil }
        var bytes: [UInt8] = []
        var index = 0
        while index < input.count {
            if input[index] == UInt8(ascii: "\\"), index + 3 < input.count,
               let value = octalByte(input[index + 1], input[index + 2], input[index + 3]) {
                bytes.append(value)
                index += 4
            } else {
                bytes.append(input[index])
                index += 1
            }
        }
        return UntrustedText(bytes: bytes)
    }

    /// Printable ASCII as is; everything else (control characters, quotes, backslash, non-ASCII)
    /// as `\xNN`, so a log line cannot be forged, broken or coloured by it.
    public var escaped: String {
        var text = ""
        for byte in raw {
            if byte >= 0x20, byte < 0x7f, byte != UInt8(ascii: "\\"), byte != UInt8(ascii: "\""), byte != UInt8(ascii: "'") {
                text.unicodeScalars.append(Unicode.Scalar(byte))
            } else {
                let hex = String(byte, radix: 16)
                text += "\\x" + (hex.count == 1 ? "0" + hex : hex)
            }
        }
        return text
    }

    public var isEmpty: Bool { raw.isEmpty }

    public var description: String { escaped }
}

/// A peer's IKE identity (`PLUTO_PEER_ID`): chosen by the remote side, so only ever data.
public typealias PeerID = UntrustedText

/// `\NNN` with three octal digits, at most 0o377.
private func octalByte(_ a: UInt8, _ b: UInt8, _ c: UInt8) -> UInt8? {
    func digit(_ byte: UInt8) -> Int? {
        byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "7") ? Int(byte - UInt8(ascii: "0")) : nil
    }
    guard let high = digit(a), let middle = digit(b), let low = digit(c), high <= 3 else { return nil }
    return UInt8(high * 64 + middle * 8 + low)
}

/// A non-negative integer in decimal, written here rather than by the standard library's integer
/// printing: that code lies far from the rest of what a hook call runs, and in the hook every page
/// of code touched for the first time is a page fault (README, "Benchmarks").
func decimal(_ value: some BinaryInteger) -> String {
    precondition(value >= 0, "decimal() is for counts, lengths and addresses")
    var digitCount = 1
    var rest = value / 10
    while rest > 0 {
        digitCount += 1
        rest /= 10
    }
    return String(unsafeUninitializedCapacity: digitCount) { buffer in
        var rest = value
        for index in stride(from: digitCount - 1, through: 0, by: -1) {
            buffer[index] = UInt8(ascii: "0") + UInt8(truncatingIfNeeded: rest % 10)
            rest /= 10
        }
        return digitCount
    }
}
