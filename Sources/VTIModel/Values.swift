/// A netfilter/XFRM mark with its mask, as libreswan's `mark=` and `CONNMARK_IN`/`OUT` carry it:
/// `12/0xffffffff`. A VTI device's key is the mark's value.
public struct FirewallMark: Sendable, Hashable, CustomStringConvertible {
    public let value: UInt32
    public let mask: UInt32

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

/// Decimal or `0x` hexadecimal, at most 32 bits.
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
    guard utf8.allSatisfy({ $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9") }) else { return nil }
    return UInt32(String(decoding: utf8, as: UTF8.self))
}

/// A Linux interface name: 1-15 bytes of letters, digits, `.`, `-` and `_`, and not `.` or `..`.
/// Stricter than the kernel (which also takes shell metacharacters): the name becomes a path
/// component under /proc/sys and appears in logs and firewall rules.
public struct InterfaceName: Sendable, Hashable, CustomStringConvertible {
    public let rawValue: String

    public init?(_ text: some StringProtocol) {
        let bytes = Array(text.utf8)
        guard !bytes.isEmpty, bytes.count <= 15, text != ".", text != "..",
              bytes.allSatisfy(isInterfaceNameByte)
        else { return nil }
        rawValue = String(text)
    }

    public var description: String { rawValue }
}

/// Text chosen by the remote side (peer ID, CA, DNS info, banner) or by configuration: kept as
/// data, bounded, and only ever shown escaped. Never put into anything that is executed.
public struct UntrustedText: Sendable, Hashable, CustomStringConvertible {
    /// The bytes as received.
    public let raw: [UInt8]

    public static let maximumLength = 255

    public init?(_ text: some StringProtocol) {
        let bytes = Array(text.utf8)
        guard bytes.count <= Self.maximumLength else { return nil }
        raw = bytes
    }

    /// Printable ASCII as is; everything else (control characters, quotes, backslash, non-ASCII)
    /// as `\xNN`, so a log line cannot be forged or broken by it.
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

    public var description: String { escaped }
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
