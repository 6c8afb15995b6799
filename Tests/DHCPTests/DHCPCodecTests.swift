import DHCP
import Foundation
import VTIModel
import XCTest

/// The codec byte for byte: RFC 3442's and RFC 3397's examples, and a real exchange captured
/// between dhcpcd 9.4.1 (`--inform`) and dnsmasq 2.90 (Fixtures/README.md says how).
final class DHCPCodecTests: XCTestCase {
    func address(_ text: String) -> IPv4Address { IPv4Address(text)! }

    func fixture(_ name: String) throws -> [UInt8] {
        let url = try XCTUnwrap(Bundle.module.url(forResource: "Fixtures/" + name, withExtension: nil))
        return Array(try Data(contentsOf: url))
    }

    func network(_ text: String) -> IPv4Network {
        let parts = text.split(separator: "/")
        return IPv4Network(address: address(String(parts[0])), length: Int(parts[1])!)!
    }

    /// RFC 3442, "Classless Route Option Format": each example's destination descriptor, then the
    /// router's four bytes.
    func testRFC3442DestinationDescriptors() {
        let examples: [(String, Int, [UInt8])] = [
            ("0.0.0.0", 0, [0]),
            ("10.0.0.0", 8, [8, 10]),
            ("10.0.0.0", 24, [24, 10, 0, 0]),
            ("10.17.0.0", 16, [16, 10, 17]),
            ("10.27.129.0", 24, [24, 10, 27, 129]),
            ("10.229.0.128", 25, [25, 10, 229, 0, 128]),
            ("10.198.122.47", 32, [32, 10, 198, 122, 47]),
        ]
        let router = address("192.0.2.1")
        for (destination, length, descriptor) in examples {
            let route = ClasslessRoute(destination: address(destination), prefixLength: length, router: router)
            XCTAssertEqual(route?.encoded, descriptor + [192, 0, 2, 1], "\(destination)/\(length)")
        }
        // All of them in one option, and read back as a client reads them.
        let routes = examples.compactMap { ClasslessRoute(destination: address($0.0), prefixLength: $0.1, router: router) }
        let data = encodeClasslessRoutes(routes)
        XCTAssertEqual(data, examples.flatMap { $0.2 + [192, 0, 2, 1] })
        XCTAssertEqual(try decodeClasslessRoutes(data), routes)
    }

    func testClasslessRoutesRejectWhatCannotBeSent() {
        XCTAssertNil(ClasslessRoute(destination: address("10.3.0.1"), prefixLength: 24, router: address("0.0.0.0")), "host bits set")
        XCTAssertNil(ClasslessRoute(destination: address("10.3.0.0"), prefixLength: 33, router: address("0.0.0.0")))
        XCTAssertThrowsError(try decodeClasslessRoutes([33, 10, 0, 0, 0, 0, 1, 2, 3, 4]))
        XCTAssertThrowsError(try decodeClasslessRoutes([24, 10, 3, 0, 10, 0, 1]), "router cut short")
        XCTAssertThrowsError(try decodeClasslessRoutes([16, 10, 3, 1, 10, 0, 1, 1, 0]) as [ClasslessRoute])
        XCTAssertEqual(try decodeClasslessRoutes([]), [])
    }

    /// RFC 3397 section 4's example: "eng.apple.com." and "marketing.apple.com.", the second
    /// ending in a pointer to "apple.com." at offset 4.
    func testRFC3397DomainSearchExample() throws {
        let data = try encodeDomainSearch(["eng.apple.com.", "marketing.apple.com."])
        let expected: [UInt8] = [3] + Array("eng".utf8) + [5] + Array("apple".utf8) + [3] + Array("com".utf8) + [0]
            + [9] + Array("marketing".utf8) + [0xc0, 0x04]
        XCTAssertEqual(data, expected)
        XCTAssertEqual(data.count, 27)
        // Case does not defeat the pointer; nothing shared, nothing pointed at.
        XCTAssertEqual(try encodeDomainSearch(["eng.apple.com", "EXAMPLE.Apple.COM"]).suffix(2), [0xc0, 0x04])
        XCTAssertEqual(try encodeDomainSearch(["a.b", "a.b"]), [1, 0x61, 1, 0x62, 0, 0xc0, 0x00])
        XCTAssertThrowsError(try encodeDomainSearch(["bad..name"]))
        XCTAssertThrowsError(try encodeDomainSearch(["sp ace.example"]))
        XCTAssertThrowsError(try encodeDomainSearch([String(repeating: "a", count: 64) + ".example"]))
    }

    func testParsesDhcpcdsInform() throws {
        let inform = try DHCPPacket(parsing: try fixture("dhcpcd-inform.bin"))
        XCTAssertEqual(inform.op, DHCPPacket.bootRequest)
        XCTAssertEqual(inform.messageType, .inform)
        XCTAssertEqual(inform.htype, 1)
        XCTAssertEqual(Array(inform.hardwareAddress), [0x02, 0, 0, 0, 0x01, 0x0b])
        XCTAssertEqual(inform.xid, 0x1bf3_dbd2)
        XCTAssertEqual(inform.ciaddr, address("10.0.1.11"))
        XCTAssertEqual(inform.yiaddr.rawValue, 0)
        XCTAssertEqual(inform.requestedParameters, [1, 121, 3, 6, 15, 28, 33, 51, 119, 249])
        XCTAssertEqual(inform.maximumMessageSize, 1472)
        XCTAssertEqual(inform.options.map(\.code), [53, 55, 57, 60, 145])
    }

    /// dnsmasq's answer carries the same option 121, 249, 119, 15 and 6 bytes as ours for the
    /// same configuration (its router field: the server address it was given).
    func testOurOptionsMatchDnsmasqs() throws {
        let ack = try DHCPPacket(parsing: try fixture("dnsmasq-ack.bin"))
        XCTAssertEqual(ack.messageType, .ack)
        XCTAssertEqual(ack.option(DHCPOptionCode.serverIdentifier), [10, 0, 1, 1])
        let parameters = InformParameters(
            routes: [network("10.3.0.0/24"), network("192.168.50.0/23")], dnsServers: [address("10.3.0.53")],
            domainName: "corp.example", searchDomains: ["corp.example", "example.com"])
        let ours = Dictionary(uniqueKeysWithValues: try parameters.options(serverIdentifier: address("10.0.1.1")).map { ($0.code, $0.value) })
        for code in [DHCPOptionCode.classlessStaticRoutes, DHCPOptionCode.microsoftClasslessStaticRoutes, DHCPOptionCode.domainSearch,
                     DHCPOptionCode.domainName, DHCPOptionCode.domainNameServers] {
            XCTAssertEqual(ours[code], ack.option(code), "option \(code)")
        }
        XCTAssertEqual(try decodeClasslessRoutes(ack.option(121)!).map(\.description), ["10.3.0.0/24 via 10.0.1.1", "192.168.50.0/23 via 10.0.1.1"])
    }

    /// Our DHCPACK for dhcpcd's INFORM: the fixed header as dnsmasq wrote it (but secs, which RFC
    /// 2131 table 3 says is 0, and siaddr, dnsmasq's next server), and the whole message equal to
    /// Fixtures/vtid-ack.bin, whose decoding by tshark 4.0 is Fixtures/vtid-ack.tshark.txt.
    func testOurAckForDhcpcdsInform() throws {
        let request = try DHCPPacket(parsing: try fixture("dhcpcd-inform.bin"))
        let parameters = InformParameters(
            routes: [network("10.3.0.0/24"), network("192.168.50.0/23")], dnsServers: [address("10.3.0.53")],
            domainName: "corp.example", searchDomains: ["corp.example", "example.com"])
        let ours = try makeInformAck(for: request, serverIdentifier: address("10.0.1.1"), parameters: parameters)
        let dnsmasqs = try fixture("dnsmasq-ack.bin")
        for offset in 0..<240 where !(8..<10).contains(offset) && !(20..<24).contains(offset) {
            XCTAssertEqual(ours[offset], dnsmasqs[offset], "header byte \(offset)")
        }
        XCTAssertEqual(ours, try fixture("vtid-ack.bin"))

        let parsed = try DHCPPacket(parsing: ours)
        XCTAssertEqual(parsed.messageType, .ack)
        XCTAssertEqual(parsed.op, DHCPPacket.bootReply)
        XCTAssertEqual(parsed.xid, request.xid)
        XCTAssertEqual(parsed.ciaddr, request.ciaddr)
        XCTAssertEqual(parsed.yiaddr.rawValue, 0, "RFC 2131 4.3.5: no yiaddr")
        XCTAssertNil(parsed.option(51), "RFC 2131 4.3.5: no lease time")
        XCTAssertEqual(parsed.options.map(\.code), [53, 54, 6, 15, 119, 121, 249])
        // A short answer is padded to BOOTP's 300-byte minimum (RFC 1542), zeros after END.
        let short = try makeInformAck(for: request, serverIdentifier: address("10.0.1.1"), parameters: InformParameters(routes: []))
        XCTAssertEqual(short.count, 300)
        XCTAssertEqual(Array(short[249...]), [255] + [UInt8](repeating: 0, count: 50))
    }

    func testReplyRefusals() throws {
        var bytes = try fixture("dhcpcd-inform.bin")
        let parameters = InformParameters(routes: [network("10.3.0.0/24")])
        let server = address("10.0.1.1")
        // Not an INFORM: a DISCOVER gets nothing from vtid.
        bytes[242] = DHCPMessageType.discover.rawValue
        XCTAssertThrowsError(try makeInformAck(for: try DHCPPacket(parsing: bytes), serverIdentifier: server, parameters: parameters)) {
            XCTAssertEqual($0 as? InformReplyError, .notAnInform)
        }
        bytes[242] = DHCPMessageType.inform.rawValue
        bytes.replaceSubrange(12..<16, with: [0, 0, 0, 0])
        XCTAssertThrowsError(try makeInformAck(for: try DHCPPacket(parsing: bytes), serverIdentifier: server, parameters: parameters)) {
            XCTAssertEqual($0 as? InformReplyError, .noClientAddress)
        }
        // 60 /24 routes, twice (121 and 249): 960 bytes of routes split into 255-byte instances.
        // dhcpcd takes 1472-byte messages; a client that says nothing takes 576-byte datagrams.
        let many = InformParameters(routes: (0..<60).map { network("10.\($0).0.0/24") })
        let request = try DHCPPacket(parsing: try fixture("dhcpcd-inform.bin"))
        let big = try makeInformAck(for: request, serverIdentifier: server, parameters: many)
        let parsed = try DHCPPacket(parsing: big)
        XCTAssertEqual(try decodeClasslessRoutes(parsed.option(121)!).count, 60, "RFC 3396 pieces joined again")
        XCTAssertEqual(parsed.option(249), parsed.option(121))
        var quiet = try fixture("dhcpcd-inform.bin")
        XCTAssertEqual(quiet[255], 57)
        quiet[255] = 250  // option 57 becomes an unknown one: no size given
        XCTAssertThrowsError(try makeInformAck(for: try DHCPPacket(parsing: quiet), serverIdentifier: server, parameters: many)) {
            guard case .tooLarge(_, 548) = $0 as? InformReplyError else { return XCTFail("\($0)") }
        }
    }

    /// Every way a datagram can be broken: a typed error each, never a trap.
    func testMalformedPacketsAreTypedErrors() throws {
        let good = try fixture("dhcpcd-inform.bin")
        func parse(_ bytes: [UInt8]) -> DHCPParseError? {
            do { _ = try DHCPPacket(parsing: bytes); return nil } catch { return error }
        }
        func changed(_ body: (inout [UInt8]) -> Void) -> [UInt8] {
            var bytes = good
            body(&bytes)
            return bytes
        }
        XCTAssertNil(parse(good))
        XCTAssertEqual(parse(Array(good.prefix(239))), .truncated(length: 239))
        XCTAssertEqual(parse([]), .truncated(length: 0))
        XCTAssertEqual(parse(good + [UInt8](repeating: 0, count: 1500)), .tooLong(length: good.count + 1500))
        XCTAssertEqual(parse(changed { $0[0] = 3 }), .badOperation(3))
        XCTAssertEqual(parse(changed { $0[2] = 17 }), .badHardwareAddressLength(17))
        XCTAssertEqual(parse(changed { $0[236] = 0 }), .badMagicCookie)
        // The parameter list (55, at 243) claims more bytes than the field has.
        XCTAssertEqual(parse(changed { $0[244] = 255 }), .optionOverrunsField(code: 55, field: .options))
        // No END: the options run to the end of the datagram.
        let end = good.lastIndex(of: 255)!
        XCTAssertEqual(parse(Array(good.prefix(end))), .missingEnd(.options))
        // A code as the datagram's last byte: its length byte is missing.
        XCTAssertEqual(parse(Array(good.prefix(end)) + [12]), .optionOverrunsField(code: 12, field: .options))
        // Messages with the INFORM's header and these options.
        func packet(_ options: [UInt8], file: [UInt8] = []) -> [UInt8] {
            var bytes = Array(good.prefix(240)) + options
            bytes.replaceSubrange(108..<108 + file.count, with: file)
            return bytes
        }
        XCTAssertNil(parse(packet([53, 1, 8, 255])))
        XCTAssertEqual(parse(packet([53, 2, 8, 8, 255])), .badOptionLength(code: 53, length: 2))
        XCTAssertEqual(parse(packet([53, 1, 200, 255])), .unknownMessageType(200))
        XCTAssertEqual(parse(packet([55, 1, 1, 255])), .noMessageType, "BOOTP")
        XCTAssertEqual(parse(packet([53, 1, 8, 55, 200, 1, 255])), .optionOverrunsField(code: 55, field: .options))
        XCTAssertEqual(parse(packet([53, 1, 8])), .missingEnd(.options))
        XCTAssertEqual(parse(packet([53, 1, 8, 54, 3, 1, 2, 3, 255])), .badOptionLength(code: 54, length: 3))
        XCTAssertEqual(parse(packet([53, 1, 8, 55, 0, 255])), .badOptionLength(code: 55, length: 0))
        XCTAssertEqual(parse(packet([53, 1, 8, 6, 5, 1, 2, 3, 4, 5, 255])), .badOptionLength(code: 6, length: 5))
        // Overload: a bad value; an overload naming `file`, which then has no END.
        XCTAssertEqual(parse(packet([53, 1, 8, 52, 1, 7, 255])), .badOverload)
        XCTAssertEqual(parse(packet([53, 1, 8, 52, 2, 1, 1, 255])), .badOverload)
        XCTAssertEqual(parse(packet([53, 1, 8, 52, 1, 1, 255])), .missingEnd(.file))
        XCTAssertEqual(parse(packet([53, 1, 8, 52, 1, 1, 255], file: [UInt8](repeating: 0, count: 126) + [200, 9])),
                       .optionOverrunsField(code: 200, field: .file))
        XCTAssertEqual(parse(packet([53, 1, 8, 52, 1, 1, 255], file: [52, 1, 2, 255])), .badOverload, "52 only in the options field")
        // Options lent to `file` and `sname`, ended properly: read after the options field, in
        // that order, and a split option joined (RFC 3396).
        var lent = packet([53, 1, 8, 61, 2, 1, 2, 52, 1, 3, 255], file: [54, 4, 10, 0, 1, 1, 61, 1, 3, 255])
        lent.replaceSubrange(44..<49, with: [61, 1, 4, 0, 255])
        let parsed = try DHCPPacket(parsing: lent)
        XCTAssertEqual(parsed.option(54), [10, 0, 1, 1])
        XCTAssertEqual(parsed.option(61), [1, 2, 3, 4])
        XCTAssertEqual(parsed.options.map(\.code), [53, 61, 54])
    }
}
