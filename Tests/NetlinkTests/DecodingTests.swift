import XCTest
@testable import Netlink

/// Decoding without root: iproute2's recorded requests carry the same header and attributes as the
/// kernel's replies and notifications, so decoding them must give back what the command said.
/// Malformed input must become an error, never a crash.
final class DecodingTests: XCTestCase {
    func testDecodesIproute2sVTIRequestAsALink() throws {
        let link = try Link(decoding: payload("vti-create"))
        XCTAssertEqual(link.name, "vti01")
        XCTAssertEqual(link.kind, "vti")
        XCTAssertEqual(link.vti, VTIParameters(local: address("192.0.2.1"), remote: address("192.0.2.2"), inputKey: 5, outputKey: 6))
    }

    func testDecodesIproute2sXfrmInterfaceRequestsAsLinks() throws {
        let withDevice = try Link(decoding: payload("xfrm-create"))
        XCTAssertEqual(withDevice.name, "xfrm7")
        XCTAssertEqual(withDevice.kind, "xfrm")
        XCTAssertNil(withDevice.vti)
        XCTAssertEqual(withDevice.xfrmInterface, XfrmInterfaceParameters(interfaceID: 7, underlyingIndex: 3))
        XCTAssertEqual(try Link(decoding: payload("xfrm-create-nodev")).xfrmInterface, XfrmInterfaceParameters(interfaceID: 9))
        XCTAssertEqual(try Link(decoding: payload("xfrm-create-external")).xfrmInterface,
                       XfrmInterfaceParameters(interfaceID: 0, collectsMetadata: true))
        // A VTI is not an XFRM interface.
        XCTAssertNil(try Link(decoding: payload("vti-create")).xfrmInterface)
    }

    func testDecodesIproute2sRouteRequests() throws {
        let table = try Route(decoding: payload("route-add-v4-table"))
        XCTAssertEqual(table.destination.description, "10.2.0.0/16")
        XCTAssertEqual(table.table, RouteTable(rawValue: 1000))
        XCTAssertEqual(table.gateway, address("10.0.0.254"))
        XCTAssertEqual(table.protocol, RouteProtocol(rawValue: 250))
        XCTAssertEqual(table.outputInterface, 3)
        XCTAssertEqual(table.scope, .universe)

        let mtu = try Route(decoding: payload("route-add-v4-mtu"))
        XCTAssertEqual(mtu.mtu, 1400)
        XCTAssertEqual(mtu.preferredSource, address("10.0.0.1"))
        XCTAssertEqual(mtu.scope, .link)
        XCTAssertEqual(mtu.table, .main)

        let v6 = try Route(decoding: payload("route-add-v6"))
        XCTAssertEqual(v6.destination.description, "2001:db8:1::/48")
        XCTAssertEqual(v6.metric, 1024)
    }

    func testDecodesIproute2sAddressRuleAndNeighbourRequests() throws {
        let address6 = try InterfaceAddress(decoding: payload("address-add-v6"))
        XCTAssertEqual(address6.prefix.description, "2001:db8::1/64")
        XCTAssertEqual(address6.interfaceIndex, 3)
        XCTAssertNil(address6.peer)

        let rule = try RoutingRule(decoding: payload("rule-add-fwmark"))
        XCTAssertEqual(rule.priority, 1001)
        XCTAssertEqual(rule.firewallMark, 5)
        XCTAssertEqual(rule.firewallMask, 0xff)
        XCTAssertEqual(rule.table, RouteTable(rawValue: 1000))
        XCTAssertEqual(rule.protocol, RouteProtocol(rawValue: 250))

        let ruleV6 = try RoutingRule(decoding: payload("rule-add-v6"))
        XCTAssertEqual(ruleV6.source?.description, "2001:db8:5::/48")
        XCTAssertEqual(ruleV6.destination?.description, "2001:db8:6::/48")
        XCTAssertEqual(ruleV6.table, RouteTable(rawValue: 200))

        let proxy = try ProxyNeighbour(decoding: payload("neighbour-proxy-add"))
        XCTAssertEqual(proxy, ProxyNeighbour(interfaceIndex: 3, address: address("10.0.0.5")))
    }

    func testTruncatedOrOversizedAttributesAreErrorsNotCrashes() throws {
        let good = try payload("route-add-v4-table")
        // Every truncation of the message fails cleanly or decodes what is complete.
        for length in 0..<good.count {
            _ = try? Route(decoding: Array(good.prefix(length)))
        }
        // An attribute claiming more bytes than there are.
        var lying = good
        lying[12] = 0xff  // length of the first attribute (RTA_TABLE) after the 12-byte rtmsg
        XCTAssertThrowsError(try Route(decoding: lying)) { error in
            XCTAssertTrue("\(error)".contains("malformed netlink message"), "\(error)")
        }
        // An address attribute of the wrong size for its family.
        var wrongSize = try payload("neighbour-proxy-add")
        wrongSize[12] = 6  // NDA_DST length 6: two address bytes
        XCTAssertThrowsError(try ProxyNeighbour(decoding: wrongSize))
        // Random bytes never trap.
        var generator = SystemRandomNumberGenerator()
        for _ in 0..<2000 {
            let noise = (0..<Int.random(in: 0..<120, using: &generator)).map { _ in UInt8.random(in: 0...255, using: &generator) }
            _ = try? Route(decoding: noise)
            _ = try? Link(decoding: noise)
            _ = try? InterfaceAddress(decoding: noise)
            _ = try? RoutingRule(decoding: noise)
            _ = try? SecurityAssociation(decodingInfoAt: 0, of: noise)
        }
    }

    func testKernelErrorWithExtendedAckTextAndOffset() throws {
        // NLMSG_ERROR, flags CAPPED|ACK_TLVS: nlmsgerr (error -95, the request's header) then
        // NLMSGERR_ATTR_MSG "Unknown device type" and NLMSGERR_ATTR_OFFS 52.
        var payload: [UInt8] = [0xa1, 0xff, 0xff, 0xff]  // -95
        payload += [0x3c, 0, 0, 0, 0x10, 0, 0x05, 0x06, 1, 0, 0, 0, 0, 0, 0, 0]
        let text = Array("Unknown device type".utf8) + [0]
        payload += [UInt8(4 + text.count), 0, 1, 0] + text
        payload += [UInt8](repeating: 0, count: (4 - text.count % 4) % 4)
        payload += [8, 0, 2, 0, 52, 0, 0, 0]
        let ack = try decodeAck(RawMessage(type: 2, flags: 0x300, sequence: 1, portID: 0, payload: payload))
        XCTAssertEqual(ack.errno, 95)
        XCTAssertEqual(ack.message, "Unknown device type")
        XCTAssertEqual(ack.offset, 52)

        let plainAck = try decodeAck(RawMessage(type: 2, flags: 0x100, sequence: 1, portID: 0, payload: [0, 0, 0, 0] + [UInt8](repeating: 0, count: 16)))
        XCTAssertEqual(plainAck.errno, 0)
        XCTAssertNil(plainAck.message)

        XCTAssertThrowsError(try decodeAck(RawMessage(type: 2, flags: 0, sequence: 1, portID: 0, payload: [1, 2])))
    }

    /// Found by Fuzz/netlink-messages: an error of Int32.min has no errno (its negation traps).
    func testAckWithTheSmallestErrorIsAnErrorNotATrap() {
        let payload: [UInt8] = [0, 0, 0, 0x80] + [UInt8](repeating: 0, count: 16)
        XCTAssertThrowsError(try decodeAck(RawMessage(type: 2, flags: 0, sequence: 1, portID: 0, payload: payload))) { error in
            XCTAssertTrue("\(error)".contains("nlmsgerr: error -2147483648"), "\(error)")
        }
    }

    func testAddressAndPrefixParsing() {
        XCTAssertEqual(InetPrefix("10.0.1.0/24")?.description, "10.0.1.0/24")
        XCTAssertEqual(InetPrefix("10.0.1.10")?.length, 32)
        XCTAssertEqual(InetPrefix("2001:db8::/32")?.family, .ipv6)
        XCTAssertNil(InetPrefix("10.0.0.0/33"))
        XCTAssertNil(InetPrefix("10.0.0.300/32"))
        XCTAssertNil(InetPrefix("::/129"))
        XCTAssertNil(InetPrefix("10.0.0.0/"))
        XCTAssertEqual(InetAddress(ipv4: 0x0a40_0001).description, "10.64.0.1")
    }

    /// The payload (after the 16-byte netlink header) of a recorded iproute2 request.
    /// The kernel's own notifications of a ppp link (pppd's, for an L2TP client), recorded in the
    /// test bed's UML guest by Scripts/testbed.d/netlink-record-ppp (the host kernel has no PPP):
    /// the link decodes as ARPHRD_PPP, and its address carries the client's as the peer.
    func testDecodesTheKernelsPPPLinkAndAddressNotifications() throws {
        let link = try kernelMessage("ppp-newlink")
        XCTAssertEqual(link.type, 16, "RTM_NEWLINK")
        guard case .linkChanged(let ppp)? = try RouteNotification(link) else { return XCTFail("not a link notification") }
        XCTAssertEqual(ppp.name, "ppp0")
        XCTAssertEqual(ppp.hardwareType, 512)
        XCTAssertTrue(ppp.isPPP)
        XCTAssertEqual(ppp.kind, "ppp")
        XCTAssertTrue(ppp.isUp)
        XCTAssertEqual(ppp.mtu, 1400)
        XCTAssertNil(ppp.vti)
        XCTAssertNil(ppp.xfrmInterface)

        guard case .addressAdded(let added)? = try RouteNotification(try kernelMessage("ppp-newaddr")) else { return XCTFail("not an address notification") }
        XCTAssertEqual(added.interfaceIndex, ppp.index)
        XCTAssertEqual(added.prefix.description, "10.20.0.1/32")
        XCTAssertEqual(added.peer, address("10.20.0.10"), "the client's address inside the tunnel")
        XCTAssertEqual(added.label, "ppp0")

        // A VTI is not a ppp link.
        XCTAssertFalse(try Link(decoding: payload("vti-create")).isPPP)
    }

    private func kernelMessage(_ name: String) throws -> RawMessage {
        guard let url = Bundle.module.url(forResource: name, withExtension: "hex", subdirectory: "Fixtures/kernel") else {
            throw FixtureError(message: "missing fixture Fixtures/kernel/\(name).hex; run the vtid-l2tp-ipsec scenario with TESTBED_RECORD=1")
        }
        let bytes = try String(contentsOf: url, encoding: .utf8).split(separator: "\n").filter { !$0.hasPrefix("#") }
            .flatMap { $0.split(separator: " ") }.compactMap { UInt8($0, radix: 16) }
        XCTAssertEqual(bytes.count, Int(bytes[0]) | Int(bytes[1]) << 8 | Int(bytes[2]) << 16 | Int(bytes[3]) << 24, "\(name): nlmsg_len")
        return RawMessage(type: UInt16(bytes[4]) | UInt16(bytes[5]) << 8, flags: UInt16(bytes[6]) | UInt16(bytes[7]) << 8, sequence: 0, portID: 0, payload: Array(bytes.dropFirst(16)))
    }

    private func payload(_ fixture: String) throws -> [UInt8] {
        Array(try loadFixture(fixture).bytes.dropFirst(16))
    }
}
