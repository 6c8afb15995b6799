import XCTest
@testable import VTIModel

final class PlutoEventTests: XCTestCase {
    func testEveryRecordedEnvironmentParses() throws {
        let names = allFixtureNames()
        XCTAssertGreaterThanOrEqual(names.count, 59, "the 37 fixtures from shared/ and 22 recorded many-peers calls")
        for name in names {
            XCTAssertNoThrow(try event(name), name)
        }
    }

    func testRoadWarriorServerInstance() throws {
        let parsed = try event("rw-server-01-up-client")
        XCTAssertEqual(parsed.verb.steps, [.up])
        XCTAssertEqual(parsed.verb.scope, .client)
        XCTAssertEqual(parsed.connection.escaped, "rw")
        XCTAssertEqual(parsed.kind, .instance)
        XCTAssertEqual(parsed.me, IPAddress("192.0.2.2"))
        XCTAssertEqual(parsed.peer, IPAddress("192.0.2.11"))
        XCTAssertEqual(parsed.peerClient, IPPrefix("10.0.1.10/32"))
        XCTAssertEqual(parsed.peerID.escaped, "@road1")
        XCTAssertEqual(parsed.markIn, FirewallMark(value: 12))
        XCTAssertEqual(parsed.vti, PlutoEvent.VTI(interface: InterfaceName("vti02")!, routing: true, shared: true, address: nil))
        XCTAssertEqual(parsed.spiIn, 0xddc4_60b8)
        XCTAssertEqual(parsed.reqid, 16400)
        XCTAssertTrue(parsed.policy.contains("IKEv2"))
        XCTAssertNil(parsed.mySourceIP)
        XCTAssertEqual(parsed.unknownVariables, [])
        XCTAssertEqual(try event("rw-server-08-unroute-client").kind, .goingAway)
    }

    func testVerbs() {
        XCTAssertEqual(PlutoVerb("up-client")?.steps, [.up])
        XCTAssertEqual(PlutoVerb("prepare-host")?.scope, .host)
        XCTAssertEqual(PlutoVerb("route-client-v6")?.isIPv6, true)
        XCTAssertEqual(PlutoVerb("unroute-host-v6")?.steps, [.unroute])
        XCTAssertEqual(PlutoVerb("prepare-route-up")?.steps, [.prepare, .route, .up])
        XCTAssertEqual(PlutoVerb("down-unroute-client")?.steps, [.down, .unroute])
        for bad in ["", "-client", "up-client-v4", "up-up-client", "client-up", "up-client-v6-x", "UP-CLIENT", "up;reboot", "up-client\n"] {
            XCTAssertNil(PlutoVerb(bad), bad)
        }
        XCTAssertEqual(PlutoVerb("up")?.steps, [.up], "a bare step is a compound verb of one")
    }

    func testUnknownVerbAndVariablesAreReportedNotFatal() throws {
        XCTAssertThrowsError(try event("s2s-west-01-up-client", changing: ["PLUTO_VERB": "frobnicate-client"])) { error in
            XCTAssertEqual((error as? PlutoEventError)?.variable, "PLUTO_VERB")
        }
        let parsed = try event("s2s-west-01-up-client", changing: ["PLUTO_SOMETHING_NEW": "1", "VTI_FUTURE": "x"])
        XCTAssertEqual(parsed.unknownVariables, ["PLUTO_SOMETHING_NEW", "VTI_FUTURE"])
        XCTAssertEqual(try PlutoEvent(environment: (try fixtureEnvironment("s2s-west-01-up-client")).filter { $0.key != "PLUTO_VERB" },
                                      verbArgument: "up-client").verb.steps, [.up], "5.x may pass the verb as an argument")
    }

    /// Hostile and malformed values: each rejected with its variable named, or kept as data.
    func testHostileAndMalformedEnvironments() throws {
        let rejected: [(String, String?)] = [
            ("VTI_IFACE", "vti-with-a-long-name"),
            ("VTI_IFACE", "vti/../../x"),
            ("VTI_IFACE", "vti 01"),
            ("VTI_IFACE", "vti01\n"),
            ("VTI_IFACE", "vtí01"),
            ("VTI_IFACE", "$(reboot)"),
            ("VTI_IFACE", ";rm -rf /"),
            ("VTI_IFACE", ".."),
            ("VTI_IFACE", "eth0:1"),
            ("CONNMARK_IN", "12/0xfffffffff"),
            ("CONNMARK_IN", "-1"),
            ("CONNMARK_IN", "abc"),
            ("CONNMARK_IN", "4294967296"),
            ("CONNMARK_OUT", "12/"),
            ("PLUTO_PEER_CLIENT", "10.0.0.0/33"),
            ("PLUTO_PEER_CLIENT", "10.0.0.300/32"),
            ("PLUTO_PEER_CLIENT", "::/129"),
            ("PLUTO_PEER_CLIENT", "10.0.0.0/8/8"),
            ("PLUTO_PEER_CLIENT", "010.0.0.0/8"),
            ("PLUTO_PEER_CLIENT", "2001:db8::/64"),
            ("PLUTO_MY_CLIENT", nil),
            ("PLUTO_PEER", "192.0.2.2; reboot"),
            ("PLUTO_PEER", "2001:db8::2"),
            ("PLUTO_PEER", nil),
            ("PLUTO_ME", "1.2.3"),
            ("PLUTO_CONNECTION", nil),
            ("PLUTO_CONNECTION", String(repeating: "c", count: 300)),
            ("PLUTO_PEER_ID", String(repeating: "A", count: 100_000)),
            ("SPI_IN", "0x1ffffffff"),
            ("SPI_OUT", "spi"),
            ("PLUTO_INBYTES", "-5"),
            ("PLUTO_INBYTES", "99999999999999999999999"),
            ("PLUTO_SA_REQID", "16400 16401"),
            ("VTI_ROUTING", "maybe"),
            ("VTI_IP", "10.0.0.1/40"),
            ("PLUTO_CONN_ADDRFAMILY", "ipx"),
        ]
        for (variable, value) in rejected {
            XCTAssertThrowsError(try event("s2s-west-01-up-client", changing: [variable: value]), "\(variable)=\(value ?? "<unset>")") { error in
                let failure = error as? PlutoEventError
                XCTAssertEqual(failure?.variable, variable, "\(error)")
                XCTAssertFalse("\(error)".contains("\n"), "one line: \(error)")
                XCTAssertLessThan("\(error)".utf8.count, 300, "bounded: \(error)")
            }
        }
        // Removing the marks of a VTI conn is an error about the marks.
        XCTAssertThrowsError(try event("s2s-west-01-up-client", changing: ["CONNMARK_IN": nil, "CONNMARK_OUT": nil])) { error in
            XCTAssertEqual((error as? PlutoEventError)?.variable, "CONNMARK_IN")
        }
        // Remote-chosen text is kept as data and escaped for logs.
        for hostile in ["$(reboot)", ";rm -rf /", "`id`", "a\nb", "caf\u{e9}", "quote\"and'back\\slash", "\u{1b}[31mred"] {
            let parsed = try event("rw-server-01-up-client", changing: ["PLUTO_PEER_ID": hostile])
            XCTAssertEqual(parsed.peerID.raw, Array(hostile.utf8))
            let escaped = parsed.peerID.escaped
            XCTAssertTrue(escaped.utf8.allSatisfy { $0 >= 0x20 && $0 < 0x7f }, escaped)
            XCTAssertFalse(escaped.contains("\"") || escaped.contains("'") || escaped.contains("\n"), escaped)
        }
        XCTAssertEqual(UntrustedText("a\nb\"c")?.escaped, "a\\x0ab\\x22c")
        // An error message about a hostile value shows it escaped and cut short.
        XCTAssertThrowsError(try event("s2s-west-01-up-client", changing: ["PLUTO_PEER": "1.2.3.4\n$(reboot)" + String(repeating: "x", count: 500)])) { error in
            XCTAssertTrue("\(error)".hasPrefix("PLUTO_PEER: \"1.2.3.4\\x0a$(reboot)"), "\(error)")
            XCTAssertTrue("\(error)".contains("...\" is not") || "\(error)".contains("..."), "\(error)")
        }
    }

    func testAddressesAndPrefixes() {
        XCTAssertEqual(IPAddress("2001:db8::1")?.description, "2001:db8::1")
        XCTAssertEqual(IPAddress("::")?.description, "::")
        XCTAssertEqual(IPAddress("::1")?.description, "::1")
        XCTAssertEqual(IPAddress("2001:0db8:0000:0000:0000:0000:0000:0001")?.description, "2001:db8::1")
        XCTAssertEqual(IPAddress("::ffff:192.0.2.1")?.bytes.suffix(4), [192, 0, 2, 1])
        XCTAssertEqual(IPAddress("fe80::")?.description, "fe80::")
        XCTAssertEqual(IPAddress("1:0:0:2:0:0:0:3")?.description, "1:0:0:2::3")
        for bad in ["", "1.2.3.4.5", "1..2.3", "256.1.1.1", "1:2:3:4:5:6:7:8:9", "1::2::3", ":1:2", "12345::", "g::", "1.2.3.4/24", " 1.2.3.4"] {
            XCTAssertNil(IPAddress(bad), bad)
        }
        XCTAssertEqual(IPPrefix("10.0.1.77/24")?.network.description, "10.0.1.0/24")
        XCTAssertTrue(IPPrefix("0.0.0.0/0")!.contains(IPAddress("192.0.2.2")!))
        XCTAssertFalse(IPPrefix("10.0.0.0/8")!.contains(IPAddress("192.0.2.2")!))
        XCTAssertTrue(IPPrefix("10.0.0.0/8")!.overlaps(IPPrefix("10.1.0.0/16")!))
        XCTAssertEqual(FirewallMark("0xc/0xff"), FirewallMark(value: 12, mask: 0xff))
        XCTAssertEqual(FirewallMark("5"), FirewallMark(value: 5, mask: 0xffff_ffff))
    }
}
