import XCTest
@testable import VTIModel

/// Addresses, prefixes, marks, interface names and untrusted text: the typed values every pluto
/// variable becomes.
final class ValuesTests: XCTestCase {
    func testIPv4Addresses() {
        XCTAssertEqual(IPAddress("192.0.2.1"), .v4(IPv4Address(rawValue: 0xc000_0201)))
        XCTAssertEqual(IPv4Address("10.0.1.10")?.bytes, [10, 0, 1, 10])
        XCTAssertEqual(IPAddress("0.0.0.0")?.isUnspecified, true)
        XCTAssertEqual(IPAddress("255.255.255.255")?.description, "255.255.255.255")
        for bad in ["", "1.2.3", "1.2.3.4.5", "1..2.3", "256.1.1.1", "010.0.0.1", "1.2.3.4 ", " 1.2.3.4", "1.2.3.-4",
                    "0x1.2.3.4", "1.2.3.4/24", "1.2.3.4\n", "١.٢.٣.٤"] {
            XCTAssertNil(IPAddress(bad), bad)
        }
    }

    /// The hook's own integer printing (addresses, prefix lengths, route fields in its log lines).
    func testDecimal() {
        XCTAssertEqual(decimal(0), "0")
        XCTAssertEqual(decimal(7), "7")
        XCTAssertEqual(decimal(10), "10")
        XCTAssertEqual(decimal(UInt8(157)), "157")
        XCTAssertEqual(decimal(UInt8.max), "255")
        XCTAssertEqual(decimal(UInt32(1_000_000)), "1000000")
        XCTAssertEqual(decimal(UInt32.max), "4294967295")
        XCTAssertEqual(decimal(UInt64.max), "18446744073709551615")  // more digits than a small string holds
        for value in [UInt32(1), 9, 99, 100, 101, 65535, 4_000_000_000] {
            XCTAssertEqual(decimal(value), String(value))
        }
        XCTAssertEqual(IPAddress("10.0.1.10")?.description, "10.0.1.10")
        XCTAssertEqual(IPPrefix("0.0.0.0/0")?.description, "0.0.0.0/0")
        XCTAssertEqual(IPPrefix("2001:db8::/32")?.description, "2001:db8::/32")
    }

    func testIPv6Addresses() {
        let table: [(String, String)] = [
            ("2001:db8::1", "2001:db8::1"),
            ("::", "::"),
            ("::1", "::1"),
            ("2001:0db8:0000:0000:0000:0000:0000:0001", "2001:db8::1"),
            ("fe80::", "fe80::"),
            ("1:0:0:2:0:0:0:3", "1:0:0:2::3"),
            ("2001:DB8:0:0:1::", "2001:db8:0:0:1::"),
            ("::ffff:192.0.2.1", "::ffff:c000:201"),
            ("1:2:3:4:5:6:7:8", "1:2:3:4:5:6:7:8"),
        ]
        for (text, canonical) in table {
            XCTAssertEqual(IPAddress(text)?.description, canonical, text)
            XCTAssertEqual(IPAddress(text)?.family, .ipv6, text)
        }
        XCTAssertEqual(IPAddress("::ffff:192.0.2.1")?.bytes.suffix(4), [192, 0, 2, 1])
        XCTAssertEqual(IPv6Address("8000::"), IPv6Address(high: 0x8000 << 48, low: 0))
        for bad in ["1:2:3:4:5:6:7:8:9", "1::2::3", ":1:2", "1:2:", "12345::", "g::", "::1/128", "fe80::1%eth0",
                    "::ffff:192.0.2", "1.2.3.4::", ":::", "1:2:3:4:5:6:7::8:9"] {
            XCTAssertNil(IPAddress(bad), bad)
        }
    }

    func testAddressOrderIsFamilyThenValue() {
        let sorted = ["::1", "10.0.0.2", "10.0.0.10", "2001:db8::"].compactMap { IPAddress($0) }.sorted()
        XCTAssertEqual(sorted.map(\.description), ["10.0.0.2", "10.0.0.10", "::1", "2001:db8::"])
    }

    func testPrefixes() {
        XCTAssertEqual(IPPrefix("10.0.1.77/24")?.network.description, "10.0.1.0/24")
        XCTAssertEqual(IPPrefix("10.0.1.77/24")?.isCanonicalNetwork, false)
        XCTAssertEqual(IPPrefix("10.0.1.0/24")?.isCanonicalNetwork, true)
        XCTAssertEqual(IPPrefix("2001:db8:1:2::5/63")?.network.description, "2001:db8:1:2::/63")
        XCTAssertEqual(IPPrefix("2001:db8::1/65")?.network.description, "2001:db8::/65")
        XCTAssertEqual(IPPrefix("192.0.2.5")?.description, "192.0.2.5/32", "a bare address is a host prefix")
        XCTAssertEqual(IPPrefix("::/0")?.isDefault, true)
        XCTAssertTrue(IPPrefix("0.0.0.0/0")?.contains(IPAddress("192.0.2.2")!) ?? false)
        XCTAssertFalse(IPPrefix("10.0.0.0/8")?.contains(IPAddress("192.0.2.2")!) ?? true)
        XCTAssertFalse(IPPrefix("0.0.0.0/0")?.contains(IPAddress("::1")!) ?? true, "families never mix")
        XCTAssertTrue(IPPrefix("10.0.0.0/8")?.overlaps(IPPrefix("10.1.0.0/16")!) ?? false)
        XCTAssertFalse(IPPrefix("10.0.0.0/16")?.overlaps(IPPrefix("10.1.0.0/16")!) ?? true)
        for bad in ["10.0.0.0/33", "10.0.0.300/32", "::/129", "10.0.0.0/", "10.0.0.0/-1", "10.0.0.0/08", "10.0.0.0/8/8",
                    "/8", "10.0.0.0/ 8", "10.0.0.0/1000"] {
            XCTAssertNil(IPPrefix(bad), bad)
        }
    }

    func testFirewallMarks() {
        XCTAssertEqual(FirewallMark("12/0xffffffff"), FirewallMark(value: 12, mask: 0xffff_ffff))
        XCTAssertEqual(FirewallMark("0xc/0xff"), FirewallMark(value: 12, mask: 0xff))
        XCTAssertEqual(FirewallMark("5"), FirewallMark(value: 5, mask: 0xffff_ffff), "the mask defaults to all bits")
        XCTAssertEqual(FirewallMark("4294967295/0"), FirewallMark(value: .max, mask: 0))
        XCTAssertEqual(FirewallMark("12/0xff")?.description, "12/0xff")
        for bad in ["12/0xfffffffff", "-1", "abc", "4294967296", "12/", "/12", "0x", "12 ", "+12", "12/0xffffffff/1", "1e3"] {
            XCTAssertNil(FirewallMark(bad), bad)
        }
    }

    func testInterfaceNames() {
        for good in ["vti01", "eth0.100", "br-lan", "a", "enp0s31f6", "x_y", String(repeating: "v", count: 15)] {
            XCTAssertEqual(InterfaceName(good)?.rawValue, good, good)
        }
        for bad in ["", ".", "..", String(repeating: "v", count: 16), "vti/1", "vti 1", "vti\t1", "vti1\n", "eth0:1",
                    "vtí1", "$(reboot)", ";rm -rf /", "`id`", "a'b", "a\"b", "a\\b", "a\u{0}b"] {
            XCTAssertNil(InterfaceName(bad), bad.debugDescription)
        }
    }

    func testUntrustedTextIsBoundedAndEscaped() {
        XCTAssertEqual(UntrustedText("a\nb\"c")?.escaped, "a\\x0ab\\x22c")
        XCTAssertEqual(UntrustedText("caf\u{e9}")?.escaped, "caf\\xc3\\xa9")
        XCTAssertEqual(UntrustedText("it's \\o/")?.escaped, "it\\x27s \\x5co/")
        XCTAssertEqual(UntrustedText("\u{1b}[31m")?.escaped, "\\x1b[31m")
        XCTAssertEqual(UntrustedText("$(reboot);rm -rf /")?.escaped, "$(reboot);rm -rf /", "printable ASCII is shown as is: it is never executed")
        XCTAssertNotNil(UntrustedText(String(repeating: "x", count: 255)))
        XCTAssertNil(UntrustedText(String(repeating: "x", count: 256)))
    }

    /// pluto 4.x writes `' \ " ` $` and unprintable bytes of IDs as `\NNN`; 5.x only unprintable ones.
    func testPlutoOctalEscapesAreDecoded() {
        XCTAssertEqual(UntrustedText.pluto(escaped: "\\044(reboot)")?.raw, Array("$(reboot)".utf8))
        XCTAssertEqual(UntrustedText.pluto(escaped: "O=Acme\\054 Inc\\047s CA")?.raw, Array("O=Acme, Inc's CA".utf8))
        XCTAssertEqual(UntrustedText.pluto(escaped: "a\\012b")?.raw, [0x61, 0x0a, 0x62])
        XCTAssertEqual(UntrustedText.pluto(escaped: "\\134\\134")?.raw, Array("\\\\".utf8))
        XCTAssertEqual(UntrustedText.pluto(escaped: "@road1")?.raw, Array("@road1".utf8))
        // Not an escape: kept as it came.
        XCTAssertEqual(UntrustedText.pluto(escaped: "\\8\\400\\12")?.raw, Array("\\8\\400\\12".utf8))
        XCTAssertNil(UntrustedText.pluto(escaped: String(repeating: "\\044", count: 256)), "256 bytes once decoded")
        XCTAssertEqual(UntrustedText.pluto(escaped: String(repeating: "\\044", count: 255))?.raw.count, 255)
    }
}
