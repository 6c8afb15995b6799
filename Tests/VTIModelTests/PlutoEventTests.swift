import XCTest
@testable import VTIModel

final class PlutoEventTests: XCTestCase {
    func testEveryRecordedEnvironmentParses() throws {
        let names = allFixtureNames()
        XCTAssertEqual(names.count, 84, "37 calls from shared/fixtures, 21 recorded many-peers calls and 26 recorded IPv6 calls")
        for name in names {
            let parsed = try event(name)
            XCTAssertEqual(parsed.unknownVariables, [], name)
            XCTAssertEqual(parsed.scope, .client, name)
            XCTAssertEqual(parsed.verb.description, try fixtureEnvironment(name)["PLUTO_VERB"], name)
        }
    }

    func testRoadWarriorServerInstance() throws {
        let parsed = try event("rw-server-01-up-client")
        XCTAssertEqual(parsed.verb, .known(steps: [.up], scope: .client, isIPv6: false))
        XCTAssertEqual(parsed.connection.escaped, "rw")
        XCTAssertEqual(parsed.kind, .instance)
        XCTAssertEqual(parsed.family, .ipv4)
        XCTAssertEqual(parsed.me, IPAddress("192.0.2.2"))
        XCTAssertEqual(parsed.peer, IPAddress("192.0.2.11"))
        XCTAssertEqual(parsed.myClient, IPPrefix("0.0.0.0/0"))
        XCTAssertEqual(parsed.peerClient, IPPrefix("10.0.1.10/32"))
        XCTAssertEqual(parsed.myID.escaped, "@east")
        XCTAssertEqual(parsed.peerID.escaped, "@road1")
        XCTAssertEqual(parsed.markIn, FirewallMark(value: 12))
        XCTAssertEqual(parsed.markOut, FirewallMark(value: 12))
        XCTAssertEqual(parsed.vti, PlutoEvent.VTI(interface: InterfaceName("vti02")!, routing: true, shared: true, address: nil))
        XCTAssertEqual(parsed.spiIn, 0xddc4_60b8)
        XCTAssertEqual(parsed.reqid, 16400)
        XCTAssertEqual(parsed.interface, InterfaceName("eth0"))
        XCTAssertEqual(parsed.nextHop, IPAddress("192.0.2.11"))
        XCTAssertTrue(Set(parsed.policy).isSuperset(of: ["IKEv2", "PSK", "TUNNEL", "IKEV2_ALLOW_NARROWING"]))
        XCTAssertTrue(parsed.isModeConfigServer)
        XCTAssertFalse(parsed.isModeConfigClient)
        XCTAssertNil(parsed.mySourceIP, "the server gets no source IP")
        XCTAssertNil(parsed.mtu)
        XCTAssertNil(parsed.metric)
        XCTAssertEqual(try event("rw-server-08-unroute-client").kind, .goingAway)
        XCTAssertEqual(try event("rw-server-08-unroute-client").spiIn, 0)
        XCTAssertEqual(try event("rw-server-07-down-client").inBytes.map { $0 > 0 }, true, "down-client carries counters")
    }

    func testRoadWarriorClientAndSiteToSite() throws {
        let road = try event("rw-road1-03-route-client")
        XCTAssertNil(road.vti)
        XCTAssertEqual(road.mySourceIP, IPAddress("10.0.1.10"))
        XCTAssertTrue(road.isModeConfigClient)
        XCTAssertEqual(road.addTime, 1_795_356_551)
        let west = try event("s2s-west-01-up-client")
        XCTAssertEqual(west.kind, .permanent)
        XCTAssertEqual(west.vti?.routing, false)
        XCTAssertEqual(west.markIn?.value, 5)
    }

    func testConnectionKinds() throws {
        let table: [(String, PlutoEvent.ConnectionKind)] = [
            ("CK_PERMANENT", .permanent), ("CK_INSTANCE", .instance), ("CK_TEMPLATE", .template), ("CK_GROUP", .group),
            ("CK_GOING_AWAY", .goingAway), ("PERMANENT", .permanent), ("CK_LABELED_CHILD", .other("CK_LABELED_CHILD")), ("", .other("")),
        ]
        for (text, kind) in table {
            XCTAssertEqual(try event("s2s-west-01-up-client", changing: ["PLUTO_CONN_KIND": text]).kind, kind, text)
        }
    }

    func testVerbFromTheArgumentWinsOverTheEnvironment() throws {
        var environment = try fixtureEnvironment("s2s-west-01-up-client")
        XCTAssertEqual(try PlutoEvent(environment: environment, verbArgument: "route-client").verb.steps, [.route])
        environment["PLUTO_VERB"] = nil
        XCTAssertEqual(try PlutoEvent(environment: environment, verbArgument: "prepare-route-up").verb.steps, [.prepare, .route, .up])
        XCTAssertThrowsError(try PlutoEvent(environment: environment)) { error in
            XCTAssertEqual((error as? PlutoEventError)?.variable, "PLUTO_VERB")
            XCTAssertEqual((error as? PlutoEventError)?.isUnknownVerb, false, "missing is an error, not an ignorable verb")
        }
    }

    func testUnknownVerbIsIgnorableAndReadsNothingElse() throws {
        // Even with nothing else set: a newer pluto's verb may come with other variables.
        XCTAssertThrowsError(try PlutoEvent(environment: ["PLUTO_VERB": "frobnicate-client"])) { error in
            let failure = error as? PlutoEventError
            XCTAssertEqual(failure?.variable, "PLUTO_VERB")
            XCTAssertEqual(failure?.isUnknownVerb, true)
            XCTAssertEqual("\(error)", "PLUTO_VERB: unknown verb \"frobnicate-client\"")
        }
    }

    func testUnknownVariablesAreCollectedNotFatal() throws {
        let parsed = try event("s2s-west-01-up-client", changing: ["PLUTO_SOMETHING_NEW": "1", "VTI_FUTURE": "x", "CONNMARK": "5", "HOME": "/root"])
        XCTAssertEqual(parsed.unknownVariables, ["PLUTO_SOMETHING_NEW", "VTI_FUTURE"])
    }

    /// 5.x-only variables are known, and its family variable is checked.
    func testLibreswan5Variables() throws {
        let parsed = try event("s2s-west-01-up-client", changing: [
            "PLUTO_CLIENT_FAMILY": "ipv4", "PLUTO_DNS_RESOLVER": "file", "PLUTO_MOBIKE_EVENT": "", "PLUTO_CONN_KIND": "CK_PERMANENT",
        ])
        XCTAssertEqual(parsed.unknownVariables, [])
        XCTAssertThrowsError(try event("s2s-west-01-up-client", changing: ["PLUTO_CLIENT_FAMILY": "ipv6"])) { error in
            XCTAssertEqual((error as? PlutoEventError)?.variable, "PLUTO_CLIENT_FAMILY")
        }
    }

    /// libreswan 4.10 quotes the command line it gives `sh -c`: IDs arrive octal-escaped, and a
    /// replayed command line may leave values wrapped in single quotes.
    func testLibreswan4ShellQuotingIsUndone() throws {
        let escaped = try event("rw-server-01-up-client", changing: ["PLUTO_PEER_ID": "CN=\\044(reboot)\\047\\073rm -rf /", "PLUTO_MY_ID": "@east"])
        XCTAssertEqual(escaped.peerID.raw, Array("CN=$(reboot)';rm -rf /".utf8))
        XCTAssertEqual(escaped.peerID.escaped, "CN=$(reboot)\\x27;rm -rf /")
        let quoted = try event("rw-server-01-up-client", changing: [
            "PLUTO_ME": "'192.0.2.2'", "PLUTO_PEER_CLIENT": "'10.0.1.10/32'", "VTI_ROUTING": "'yes'", "VTI_IFACE": "'vti02'",
            "PLUTO_SA_REQID": "'16400'", "PLUTO_CONN_ADDRFAMILY": "'ipv4'",
        ])
        XCTAssertEqual(quoted, try event("rw-server-01-up-client"))
        // Only one whole pair is removed, and never from text.
        XCTAssertThrowsError(try event("rw-server-01-up-client", changing: ["PLUTO_ME": "''192.0.2.2''"]))
        XCTAssertEqual(try event("rw-server-01-up-client", changing: ["PLUTO_PEER_ID": "'@road1'"]).peerID.escaped, "\\x27@road1\\x27")
    }

    func testEventKeyIdentifiesRepeatedCalls() throws {
        let first = try event("rw-server-01-up-client")
        XCTAssertEqual(first.eventKey, try event("rw-server-01-up-client").eventKey)
        XCTAssertEqual(first.eventKey.description, "up-client rw 192.0.2.11 10.0.1.10/32 0xddc460b8/0x\(String(first.spiOut ?? 0, radix: 16))")
        XCTAssertNotEqual(first.eventKey, try event("rw-server-04-up-client").eventKey, "another client")
        XCTAssertNotEqual(first.eventKey, try event("rw-server-03-route-client").eventKey, "another verb")
        XCTAssertNotEqual(try event("rw-server-04-up-client").eventKey, try event("rw-server-11-up-client").eventKey, "the same client, a new SA")
    }

    /// Hostile and malformed values: each rejected with its variable named, in one bounded line.
    func testHostileAndMalformedEnvironments() throws {
        for (variable, value) in hostileEnvironmentCorpus {
            XCTAssertThrowsError(try event("s2s-west-01-up-client", changing: [variable: value]), "\(variable)=\(value ?? "<unset>")") { error in
                let failure = error as? PlutoEventError
                XCTAssertEqual(failure?.variable, variable, "\(error)")
                XCTAssertEqual(failure?.isUnknownVerb, false)
                XCTAssertFalse("\(error)".contains("\n"), "one line: \(error)")
                XCTAssertLessThan("\(error)".utf8.count, 250, "bounded: \(error)")
                XCTAssertTrue("\(error)".utf8.allSatisfy { $0 >= 0x20 && $0 < 0x7f }, "escaped: \(error)")
            }
        }
    }

    func testErrorMessages() {
        let table: [([String: String?], String)] = [
            (["PLUTO_PEER_CLIENT": "10.0.1.300/32"], "PLUTO_PEER_CLIENT: \"10.0.1.300/32\" is not an IPv4 or IPv6 prefix"),
            (["CONNMARK_IN": "12/0xfffffffff"], "CONNMARK_IN: \"12/0xfffffffff\" is not a mark (VALUE or VALUE/MASK, 32-bit decimal or 0x hex)"),
            (["VTI_IFACE": "$(reboot)"], "VTI_IFACE: \"$(reboot)\" is not a valid interface name (1-15 letters, digits, '.', '-' or '_')"),
            (["PLUTO_PEER": "2001:db8::2"], "PLUTO_PEER: 2001:db8::2 is not of the same family as PLUTO_ME 192.0.2.1"),
            (["PLUTO_ME": nil], "PLUTO_ME: missing"),
            (["CONNMARK_OUT": nil], "CONNMARK_OUT: missing: a VTI conn (vti-interface=vti01) needs mark= (or mark-in= and mark-out=)"),
            (["PLUTO_PEER": "1.2.3.4\n$(reboot)" + String(repeating: "x", count: 500)],
             "PLUTO_PEER: \"1.2.3.4\\x0a$(reboot)" + String(repeating: "x", count: 47) + "\"... is not an IPv4 or IPv6 address"),
        ]
        for (changes, message) in table {
            XCTAssertThrowsError(try event("s2s-west-01-up-client", changing: changes)) { error in
                XCTAssertEqual("\(error)", message)
            }
        }
    }

    /// Remote-chosen text is kept as data, whatever it looks like, and shown escaped.
    func testPeerIDsAreData() throws {
        for hostile in ["$(reboot)", ";rm -rf /", "`id`", "a\nb", "caf\u{e9}", "quote\"and'back\\slash", "\u{1b}[31mred", "%s%n", ""] {
            let parsed = try event("rw-server-01-up-client", changing: ["PLUTO_PEER_ID": hostile])
            XCTAssertEqual(parsed.peerID.raw, Array(hostile.utf8))
            let escaped = parsed.peerID.escaped
            XCTAssertTrue(escaped.utf8.allSatisfy { $0 >= 0x20 && $0 < 0x7f }, escaped)
            XCTAssertFalse(escaped.contains("\"") || escaped.contains("'") || escaped.contains("\n"), escaped)
        }
        XCTAssertEqual(try event("rw-server-01-up-client", changing: ["PLUTO_PEER_ID": nil]).peerID, .empty)
    }

    /// Every verb needs the end points and selectors: removing one is an error naming it.
    func testRequiredVariablesForEveryVerb() throws {
        let required = ["PLUTO_CONNECTION", "PLUTO_ME", "PLUTO_PEER", "PLUTO_MY_CLIENT", "PLUTO_PEER_CLIENT"]
        for step in PlutoVerb.Step.allCases {
            for verb in ["\(step.rawValue)-client", "\(step.rawValue)-host", step.rawValue] {
                XCTAssertNoThrow(try event("s2s-west-01-up-client", changing: ["PLUTO_VERB": verb]), verb)
                for variable in required {
                    XCTAssertThrowsError(try event("s2s-west-01-up-client", changing: ["PLUTO_VERB": verb, variable: nil]), "\(verb) without \(variable)") { error in
                        XCTAssertEqual((error as? PlutoEventError)?.variable, variable)
                    }
                    XCTAssertThrowsError(try event("s2s-west-01-up-client", changing: ["PLUTO_VERB": verb, variable: ""]), "\(verb) with empty \(variable)") { error in
                        XCTAssertEqual((error as? PlutoEventError)?.variable, variable)
                    }
                }
            }
        }
    }

    func testIPv6AndMixedFamilies() throws {
        let v6 = try event("s2s-west-01-up-client", changing: [
            "PLUTO_VERB": "up-client-v6", "PLUTO_CONN_ADDRFAMILY": "ipv6", "PLUTO_ME": "2001:db8::1", "PLUTO_PEER": "2001:db8::2",
            "PLUTO_NEXT_HOP": "2001:db8::2", "PLUTO_MY_CLIENT": "2001:db8:1::/48", "PLUTO_PEER_CLIENT": "2001:db8:2::/48",
        ])
        XCTAssertEqual(v6.family, .ipv6)
        XCTAssertEqual(v6.peerClient.description, "2001:db8:2::/48")
        // IPv6 selectors through IPv4 end points: -client-v6 follows the selectors.
        let inner6 = try event("s2s-west-01-up-client", changing: [
            "PLUTO_VERB": "up-client-v6", "PLUTO_MY_CLIENT": "2001:db8:1::/48", "PLUTO_PEER_CLIENT": "2001:db8:2::/48",
        ])
        XCTAssertEqual(inner6.family, .ipv4)
        XCTAssertEqual(inner6.myClient.family, .ipv6)
        // -host verbs follow the end points: the local selector is the host address.
        let host = try event("s2s-west-01-up-client", changing: ["PLUTO_VERB": "route-host", "PLUTO_MY_CLIENT": "192.0.2.1/32"])
        XCTAssertEqual(host.scope, .host)
        XCTAssertEqual(try event("s2s-west-01-up-client", changing: ["PLUTO_VERB": "route", "PLUTO_MY_CLIENT": "192.0.2.1/32"]).scope, .host,
                       "a compound verb has no suffix: the scope is pluto's own test")
        XCTAssertThrowsError(try event("s2s-west-01-up-client", changing: ["PLUTO_VERB": "up-host-v6"])) { error in
            XCTAssertEqual((error as? PlutoEventError)?.variable, "PLUTO_ME")
        }
        // IPv4 selectors through IPv6 end points: pluto 4.10 says up-client-v6 (recorded,
        // hook-4in6-site-to-site), which once made the hook refuse the event and break the tunnel.
        let inner4 = try event("ipv6-s2s-west-01-up-client-v6", changing: ["PLUTO_MY_CLIENT": "10.1.0.0/24", "PLUTO_PEER_CLIENT": "10.2.0.0/24"])
        XCTAssertEqual(inner4.family, .ipv6)
        XCTAssertEqual(inner4.myClient.family, .ipv4)
        // A suffix that fits neither family is still refused.
        XCTAssertThrowsError(try event("s2s-west-01-up-client", changing: ["PLUTO_VERB": "up-client-v6"])) { error in
            XCTAssertEqual((error as? PlutoEventError)?.variable, "PLUTO_MY_CLIENT")
        }
    }
}

/// (variable, value) pairs that must each be rejected, naming that variable; nil unsets it.
let hostileEnvironmentCorpus: [(String, String?)] = [
    // Interface names: length, path characters, whitespace, non-ASCII, shell.
    ("VTI_IFACE", "vti-with-a-long-name"),
    ("VTI_IFACE", "vti/../../x"),
    ("VTI_IFACE", "vti 01"),
    ("VTI_IFACE", "vti01\n"),
    ("VTI_IFACE", "vtí01"),
    ("VTI_IFACE", "$(reboot)"),
    ("VTI_IFACE", ";rm -rf /"),
    ("VTI_IFACE", "`reboot`"),
    ("VTI_IFACE", ".."),
    ("VTI_IFACE", "eth0:1"),
    ("VTI_IFACE", String(repeating: "v", count: 100_000)),
    ("PLUTO_INTERFACE", "eth0 ; reboot"),
    ("PLUTO_INTERFACE", "../eth0"),
    // Marks.
    ("CONNMARK_IN", "12/0xfffffffff"),
    ("CONNMARK_IN", "-1"),
    ("CONNMARK_IN", "abc"),
    ("CONNMARK_IN", "4294967296"),
    ("CONNMARK_IN", "12/0xffffffff;reboot"),
    ("CONNMARK_OUT", "12/"),
    ("CONNMARK_IN", nil),
    ("CONNMARK_OUT", nil),
    // Prefixes and addresses.
    ("PLUTO_PEER_CLIENT", "10.0.0.0/33"),
    ("PLUTO_PEER_CLIENT", "10.0.0.300/32"),
    ("PLUTO_PEER_CLIENT", "::/129"),
    ("PLUTO_PEER_CLIENT", "10.0.0.0/8/8"),
    ("PLUTO_PEER_CLIENT", "010.0.0.0/8"),
    ("PLUTO_PEER_CLIENT", "2001:db8::/64"),
    ("PLUTO_PEER_CLIENT", "10.0.0.0/8\n"),
    ("PLUTO_MY_CLIENT", nil),
    ("PLUTO_PEER", "192.0.2.2; reboot"),
    ("PLUTO_PEER", "2001:db8::2"),
    ("PLUTO_PEER", nil),
    ("PLUTO_ME", "1.2.3"),
    ("PLUTO_ME", "localhost"),
    ("PLUTO_ME", String(repeating: "1", count: 1_000_000)),
    ("PLUTO_NEXT_HOP", "2001:db8::1"),
    ("PLUTO_NEXT_HOP", "$(reboot)"),
    ("PLUTO_MY_SOURCEIP", "10.0.1.10/32"),
    ("PLUTO_MY_SOURCEIP", "2001:db8::10"),
    ("VTI_IP", "10.0.0.1/40"),
    ("VTI_IP", "vti"),
    // Text that is too long.
    ("PLUTO_CONNECTION", nil),
    ("PLUTO_CONNECTION", ""),
    ("PLUTO_CONNECTION", String(repeating: "c", count: 300)),
    ("PLUTO_PEER_ID", String(repeating: "A", count: 100_000)),
    ("PLUTO_PEER_ID", String(repeating: "\\044", count: 300)),
    ("PLUTO_MY_ID", String(repeating: "B", count: 256)),
    // Numbers.
    ("SPI_IN", "0x1ffffffff"),
    ("SPI_OUT", "spi"),
    ("SPI_OUT", "-0x1"),
    ("PLUTO_INBYTES", "-5"),
    ("PLUTO_INBYTES", "99999999999999999999999"),
    ("PLUTO_OUTBYTES", "1e9"),
    ("PLUTO_ADDTIME", "yesterday"),
    ("PLUTO_SA_REQID", "16400 16401"),
    ("PLUTO_METRIC", "-1"),
    ("PLUTO_MTU", "20"),
    ("PLUTO_MTU", "100000"),
    ("PLUTO_MTU", "1400; reboot"),
    // Flags and families.
    ("VTI_ROUTING", "maybe"),
    ("VTI_SHARED", "YES please"),
    ("PLUTO_CFG_SERVER", "2"),
    ("PLUTO_CONN_ADDRFAMILY", "ipx"),
    ("PLUTO_CONN_ADDRFAMILY", "ipv6"),
    ("PLUTO_CLIENT_FAMILY", "ipv6"),
]
