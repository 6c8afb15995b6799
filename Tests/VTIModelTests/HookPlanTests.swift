import XCTest
@testable import VTIModel

/// The plan for each recorded pluto call, written out as the lines an operator reads in the log.
final class HookPlanTests: XCTestCase {
    private let settings = HookSettings()

    private func plan(_ fixture: String, changing changes: [String: String?] = [:], settings: HookSettings? = nil) throws -> [String] {
        planHook(event: try event(fixture, changing: changes), settings: settings ?? self.settings).map(\.description)
    }

    /// Checks a recorded sequence, one row per call.
    private func assertSequence(_ rows: [(String, [String])], changing changes: [String: String?] = [:],
                                file: StaticString = #filePath, line: UInt = #line) throws {
        for (fixture, expected) in rows {
            XCTAssertEqual(try plan(fixture, changing: changes), expected, fixture, file: file, line: line)
        }
    }

    private static let derivedMTU = "(derived (fallback AES-CBC+HMAC-SHA2-512-256))"

    private static func setup(_ device: String, local: String, remote: String, key: Int, routing: Bool) -> [String] {
        expectedDeviceSetup(device, local: local, remote: remote, key: key, routing: routing)
    }

    // MARK: Recorded sequences

    func testExistingDeviceKeepsOnlyRoutesAimedAtIt() throws {
        var settings = HookSettings()
        settings.existingDevices = ["rw": InterfaceName("veth0")!]
        XCTAssertEqual(try plan("rw-server-01-up-client", settings: settings), [
            "set net.ipv4.ip_forward=1",
            "add route 10.0.1.10/32 dev veth0 proto 157",
        ])
        XCTAssertEqual(try plan("rw-server-08-unroute-client", settings: settings), ["delete route 10.0.1.10/32 dev veth0 proto 157"])
        // Another conn is planned as usual.
        XCTAssertEqual(try plan("s2s-west-01-up-client", settings: settings).first, "ensure VTI vti01 local 192.0.2.1 remote 192.0.2.2 ikey 5 okey 5")
    }

    func testKeptDeviceOutlivesItsConn() throws {
        var settings = HookSettings()
        settings.keptDevices = ["westeast"]
        XCTAssertFalse(try plan("s2s-west-05-unroute-client", settings: settings).contains { $0.hasPrefix("delete VTI") },
                       "vtid keeps the device of a conn in its configuration")
    }

    func testSiteToSiteWest() throws {
        // vti-routing=no: the device and its settings, no routes; the device outlives the conn.
        let setup = Self.setup("vti01", local: "192.0.2.1", remote: "192.0.2.2", key: 5, routing: false)
        try assertSequence([
            ("s2s-west-01-up-client", setup),
            ("s2s-west-02-prepare-client", setup),
            ("s2s-west-03-route-client", setup),
            ("s2s-west-04-down-client", []),
            ("s2s-west-05-unroute-client", []),
        ])
    }

    func testSiteToSiteEast() throws {
        let setup = Self.setup("vti01", local: "192.0.2.2", remote: "192.0.2.1", key: 5, routing: false)
        try assertSequence([
            ("s2s-east-01-up-client", setup),
            ("s2s-east-02-prepare-client", setup),
            ("s2s-east-03-route-client", setup),
            ("s2s-east-04-down-client", []),
            ("s2s-east-05-unroute-client", []),
        ])
    }

    /// Two clients on one shared device: each call touches exactly its client's /32, never the
    /// other's, and the device stays even when both instances are deleted.
    func testRoadWarriorServer() throws {
        let setup = Self.setup("vti02", local: "192.0.2.2", remote: "0.0.0.0", key: 12, routing: true)
        let road1 = "10.0.1.10/32 dev vti02 proto 157", road2 = "10.0.1.11/32 dev vti02 proto 157"
        try assertSequence([
            ("rw-server-01-up-client", setup + ["add route \(road1)"]),
            ("rw-server-02-prepare-client", setup),
            ("rw-server-03-route-client", setup + ["add route \(road1)"]),
            ("rw-server-04-up-client", setup + ["add route \(road2)"]),
            ("rw-server-05-prepare-client", setup),
            ("rw-server-06-route-client", setup + ["add route \(road2)"]),
            ("rw-server-07-down-client", ["delete route \(road1)"]),
            ("rw-server-08-unroute-client", ["delete route \(road1)"]),
            ("rw-server-09-down-client", ["delete route \(road2)"]),
            ("rw-server-10-unroute-client", ["delete route \(road2)"]),
            ("rw-server-11-up-client", setup + ["add route \(road2)"]),
            ("rw-server-12-prepare-client", setup),
            ("rw-server-13-route-client", setup + ["add route \(road2)"]),
            ("rw-server-14-down-client", ["delete route \(road2)"]),
            ("rw-server-15-unroute-client", ["delete route \(road2)"]),
        ])
        // The MTU of a shared device is planned from the fallback suite, whatever this SA says.
        let mtu = planHook(event: try event("rw-server-01-up-client"), settings: settings).compactMap { action -> MTUInputs? in
            if case .ensureMTU(_, _, let inputs) = action { return inputs }
            return nil
        }
        XCTAssertEqual(mtu, [MTUInputs(outerFamily: .ipv4, spis: [0xddc4_60b8, try event("rw-server-01-up-client").spiOut ?? 0], shared: true)])
    }

    /// Policy-based clients (no VTI) behind a leftupdown= in %default: what the stock script does.
    func testRoadWarriorClientsWithoutVTI() throws {
        func rows(_ name: String, _ address: String, _ calls: [(String, String)]) -> [(String, [String])] {
            let halves = ["0.0.0.0/1 dev eth0 src \(address) proto 157", "128.0.0.0/1 dev eth0 src \(address) proto 157"]
            let source = "ensure address \(address)/32 on lo"
            return calls.map { call, verb in
                switch verb {
                case "up": ("\(name)-\(call)", [source])
                case "route": ("\(name)-\(call)", [source] + halves.map { "add route \($0)" })
                case "unroute": ("\(name)-\(call)", halves.map { "delete route \($0)" })
                default: ("\(name)-\(call)", [])
                }
            }
        }
        try assertSequence(rows("rw-road1", "10.0.1.10", [
            ("01-up-client", "up"), ("02-prepare-client", "prepare"), ("03-route-client", "route"),
            ("04-down-client", "down"), ("05-unroute-client", "unroute"),
        ]))
        try assertSequence(rows("rw-road2", "10.0.1.11", [
            ("01-up-client", "up"), ("02-prepare-client", "prepare"), ("03-route-client", "route"), ("04-down-client", "down"),
            ("05-up-client", "up"), ("06-down-client", "down"), ("07-unroute-client", "unroute"),
        ]))
    }

    func testManyPeersEachOnItsOwnDeviceAndMark() throws {
        var hubDevices: Set<String> = []
        for name in allFixtureNames() where name.hasPrefix("many-peers-hub") && (name.hasSuffix("up-client") || name.hasSuffix("prepare-client")) {
            if let first = try plan(name).first { hubDevices.insert(first) }
        }
        XCTAssertEqual(hubDevices, [
            "ensure VTI vti11 local 192.0.2.2 remote 192.0.2.21 ikey 11 okey 11",
            "ensure VTI vti12 local 192.0.2.2 remote 192.0.2.22 ikey 12 okey 12",
            "ensure VTI vti13 local 192.0.2.2 remote 192.0.2.23 ikey 13 okey 13",
        ])
        XCTAssertEqual(try plan("many-peers-hub-10-down-client"), [], "a down keeps the device for the reconnect")
        XCTAssertEqual(try plan("many-peers-hub-11-unroute-client"), [],
                       "the hub deleted peer2's conn: its device stays (the hook cannot tell a delete from a 5.x disconnect)")
        XCTAssertEqual(try plan("many-peers-peer2-01-up-client").first, "ensure VTI vti01 local 192.0.2.22 remote 192.0.2.2 ikey 12 okey 12")
    }

    // MARK: Decisions

    /// No event makes the hook delete a device: libreswan 5.x sends `unroute` on a responder whose
    /// peer merely disconnected, indistinguishable from the one at `whack --delete` (README, "Device
    /// lifetime"); vtid removes a device when its conn leaves ipsec.conf.
    func testTheHookNeverDeletesADevice() throws {
        for kind in ["CK_PERMANENT", "CK_TEMPLATE", "CK_INSTANCE", "CK_GOING_AWAY", "CK_LABELED_CHILD"] {
            for shared in ["no", "yes"] {
                for verb in ["unroute-client", "unroute-host", "down-client", "down-host"] {
                    let changes: [String: String?] = ["PLUTO_CONN_KIND": kind, "VTI_SHARED": shared, "PLUTO_VERB": verb, "VTI_ROUTING": "yes",
                                                      "PLUTO_PEER_CLIENT": "10.2.0.0/24",
                                                      "PLUTO_MY_CLIENT": verb.hasSuffix("host") ? "192.0.2.1/32" : "0.0.0.0/0"]
                    let planned = try plan("s2s-west-05-unroute-client", changing: changes)
                    XCTAssertFalse(planned.contains { $0.hasPrefix("delete VTI") }, "\(kind) \(shared) \(verb): \(planned)")
                    XCTAssertEqual(planned, verb.hasSuffix("client") ? ["delete route 10.2.0.0/24 dev vti01 proto 157"] : [],
                                   "\(kind) \(shared) \(verb) still removes the conn's routes")
                }
            }
        }
    }

    func testRoutingToASubnet() throws {
        let changes: [String: String?] = ["VTI_ROUTING": "yes", "PLUTO_PEER_CLIENT": "10.2.0.0/24"]
        let setup = Self.setup("vti01", local: "192.0.2.1", remote: "192.0.2.2", key: 5, routing: true)
        let route = "10.2.0.0/24 dev vti01 proto 157"
        try assertSequence([
            ("s2s-west-01-up-client", setup + ["add route \(route)"]),
            ("s2s-west-02-prepare-client", setup),
            ("s2s-west-03-route-client", setup + ["add route \(route)"]),
            ("s2s-west-04-down-client", ["delete route \(route)"]),
            ("s2s-west-05-unroute-client", ["delete route \(route)"]),
        ], changing: changes)
        // A peer client with host bits set is routed as its network.
        XCTAssertEqual(try plan("s2s-west-01-up-client", changing: ["VTI_ROUTING": "yes", "PLUTO_PEER_CLIENT": "10.2.0.9/24"]).last, "add route \(route)")
    }

    func testDefaultPeerClientGetsNoRouteUnlessConfiguredThenHalvesAndAPinnedPeer() throws {
        let routing: [String: String?] = ["VTI_ROUTING": "yes"]
        XCTAssertEqual(try plan("s2s-west-01-up-client", changing: routing).last, "note: peer client 0.0.0.0/0 gets no route (route_default = no)")
        XCTAssertEqual(try plan("s2s-west-04-down-client", changing: routing), [])
        var halves = settings
        halves.routeDefaultThroughTunnel = true
        XCTAssertEqual(Array(try plan("s2s-west-01-up-client", changing: routing, settings: halves).suffix(3)), [
            "add route 192.0.2.2/32 dev eth0 proto 157",
            "add route 0.0.0.0/1 dev vti01 proto 157",
            "add route 128.0.0.0/1 dev vti01 proto 157",
        ])
        XCTAssertEqual(try plan("s2s-west-04-down-client", changing: routing, settings: halves), [
            "delete route 192.0.2.2/32 dev eth0 proto 157",
            "delete route 0.0.0.0/1 dev vti01 proto 157",
            "delete route 128.0.0.0/1 dev vti01 proto 157",
        ])
        XCTAssertEqual(try plan("s2s-west-01-up-client", changing: ["VTI_ROUTING": "yes", "PLUTO_NEXT_HOP": "192.0.2.254"], settings: halves)
            .first { $0.contains("/32") }, "add route 192.0.2.2/32 via 192.0.2.254 dev eth0 proto 157")
        XCTAssertEqual(try plan("s2s-west-01-up-client", changing: ["VTI_ROUTING": "yes", "PLUTO_INTERFACE": "NULL"], settings: halves).last,
                       "note: peer client 0.0.0.0/0 gets no route: PLUTO_INTERFACE is unknown, so the peer 192.0.2.2 cannot be kept out of the tunnel")
    }

    func testAPeerClientThatContainsThePeerIsNotRoutedIntoTheTunnel() throws {
        let looping = try plan("s2s-west-01-up-client", changing: ["VTI_ROUTING": "yes", "PLUTO_PEER_CLIENT": "192.0.2.0/24"])
        XCTAssertFalse(looping.contains { $0.hasPrefix("add route") })
        XCTAssertEqual(looping.last, "note: peer client 192.0.2.0/24 contains the peer 192.0.2.2: no route, it would loop the tunnel into itself")
    }

    func testHostVerbsRouteNothing() throws {
        let changes: [String: String?] = ["VTI_ROUTING": "yes", "PLUTO_PEER_CLIENT": "10.2.0.0/24", "PLUTO_MY_CLIENT": "192.0.2.1/32"]
        let setup = Self.setup("vti01", local: "192.0.2.1", remote: "192.0.2.2", key: 5, routing: true)
        for verb in ["prepare-host", "route-host", "up-host"] {
            var verbChange = changes
            verbChange["PLUTO_VERB"] = verb
            XCTAssertEqual(try plan("s2s-west-01-up-client", changing: verbChange), setup, verb)
        }
        var down = changes
        down["PLUTO_VERB"] = "down-host"
        XCTAssertEqual(try plan("s2s-west-01-up-client", changing: down), [])
    }

    /// libreswan 5.4's async compound verb: each step in order, marked (a failure names its step),
    /// and what an earlier step already planned is not planned again.
    func testCompoundVerbsPlanEachStepOnce() throws {
        let changes: [String: String?] = ["PLUTO_VERB": "prepare-route-up", "VTI_ROUTING": "yes", "PLUTO_PEER_CLIENT": "10.2.0.0/24"]
        XCTAssertEqual(try plan("s2s-west-01-up-client", changing: changes),
                       ["note: step prepare of prepare-route-up"]
                       + Self.setup("vti01", local: "192.0.2.1", remote: "192.0.2.2", key: 5, routing: true)
                       + ["note: step route of prepare-route-up", "add route 10.2.0.0/24 dev vti01 proto 157", "note: step up of prepare-route-up"])
        let prepareUp = try event("s2s-west-01-up-client", changing: ["PLUTO_VERB": "prepare-up"])
        XCTAssertEqual(planHook(event: prepareUp, settings: settings).compactMap(\.compoundStep), ["prepare of prepare-up", "up of prepare-up"])
        XCTAssertEqual(try plan("s2s-west-01-up-client", changing: ["PLUTO_VERB": "up-client"]).filter { $0.hasPrefix("note: step") }, [],
                       "a single verb has no step markers")
    }

    func testUnknownVerbPlansNothing() throws {
        var unknown = try event("s2s-west-01-up-client")
        unknown.verb = .unknown("frobnicate-client")
        XCTAssertEqual(planHook(event: unknown, settings: settings), [])
    }

    func testAddressesOnTheDevice() throws {
        let withVTIAddress = try plan("s2s-west-01-up-client", changing: ["VTI_IP": "10.255.0.1/30"])
        XCTAssertEqual(withVTIAddress[1], "ensure address 10.255.0.1/30 on vti01", "right after the device, before routes")
        // A VTI client with a mode-config address: on the device when it routes, else on lo (stock addsource).
        let client: [String: String?] = ["PLUTO_MY_SOURCEIP": "10.0.1.10", "VTI_ROUTING": "yes", "PLUTO_PEER_CLIENT": "10.2.0.0/24"]
        let routed = try plan("s2s-west-01-up-client", changing: client)
        XCTAssertEqual(routed[1], "ensure address 10.0.1.10/32 on vti01")
        XCTAssertEqual(routed.last, "add route 10.2.0.0/24 dev vti01 src 10.0.1.10 proto 157")
        var notRouted = client
        notRouted["VTI_ROUTING"] = "no"
        XCTAssertEqual(try plan("s2s-west-01-up-client", changing: notRouted)[1], "ensure address 10.0.1.10/32 on lo")
    }

    func testSettingsOverrides() throws {
        var custom = settings
        custom.reversePathFilter = .off
        custom.mtu = .fixed(1400)
        custom.routeProtocol = 201
        custom.routeTable = 100
        custom.routeMetric = 50
        let up = try plan("rw-server-01-up-client", settings: custom)
        XCTAssertTrue(up.contains("set net.ipv4.conf.vti02.rp_filter=0"))
        XCTAssertTrue(up.contains("set net.ipv4.conf.all.rp_filter=0"), "off needs conf/all at 0 too")
        XCTAssertFalse(try plan("rw-server-01-up-client").contains { $0.contains("conf.all") }, "loose changes nothing host-wide")
        XCTAssertTrue(up.contains("ensure MTU of vti02 (fixed 1400)"))
        XCTAssertEqual(up.last, "add route 10.0.1.10/32 dev vti02 table 100 metric 50 proto 201")
        XCTAssertEqual(try plan("rw-server-07-down-client", settings: custom), ["delete route 10.0.1.10/32 dev vti02 table 100 metric 50 proto 201"])
        // pluto's own mtu= and metric= count unless the settings say otherwise.
        let fromPluto = try plan("rw-server-01-up-client", changing: ["PLUTO_MTU": "1380", "PLUTO_METRIC": "7"])
        XCTAssertTrue(fromPluto.contains("ensure MTU of vti02 (fixed 1380)"))
        XCTAssertEqual(fromPluto.last, "add route 10.0.1.10/32 dev vti02 metric 7 proto 157")
    }

    func testIPv6() throws {
        let v6: [String: String?] = [
            "PLUTO_VERB": "up-client-v6", "PLUTO_CONN_ADDRFAMILY": "ipv6", "PLUTO_ME": "2001:db8::1", "PLUTO_PEER": "2001:db8::2",
            "PLUTO_NEXT_HOP": "2001:db8::2", "PLUTO_MY_CLIENT": "2001:db8:1::/48", "PLUTO_PEER_CLIENT": "2001:db8:2::/48", "VTI_ROUTING": "yes",
        ]
        XCTAssertEqual(try plan("s2s-west-01-up-client", changing: v6), [
            "ensure VTI vti01 local 2001:db8::1 remote 2001:db8::2 ikey 5 okey 5",
            "set net.ipv6.conf.vti01.disable_policy=1",
            "set net.ipv6.conf.vti01.forwarding=1",
            "set net.ipv6.conf.vti01.accept_redirects=0",
            "set net.ipv6.conf.vti01.accept_ra=0",
            "set net.ipv6.conf.vti01.disable_ipv6=0",
            "set net.ipv6.conf.all.forwarding=1",
            "ensure MTU of vti01 \(Self.derivedMTU)",
            "add route 2001:db8:2::/48 dev vti01 proto 157",
        ])
        var halves = settings
        halves.routeDefaultThroughTunnel = true
        var everything = v6
        everything["PLUTO_PEER_CLIENT"] = "::/0"
        everything["PLUTO_MY_CLIENT"] = "::/0"
        XCTAssertEqual(Array(try plan("s2s-west-01-up-client", changing: everything, settings: halves).suffix(3)), [
            "add route 2001:db8::2/128 dev eth0 proto 157",
            "add route ::/1 dev vti01 proto 157",
            "add route 8000::/1 dev vti01 proto 157",
        ])
        // IPv6 through an IPv4 tunnel: the inner family's settings, and no pinned route (other family).
        var inner6 = everything
        inner6["PLUTO_CONN_ADDRFAMILY"] = "ipv4"
        inner6["PLUTO_ME"] = "192.0.2.1"
        inner6["PLUTO_PEER"] = "192.0.2.2"
        inner6["PLUTO_NEXT_HOP"] = "192.0.2.2"
        let mixed = try plan("s2s-west-01-up-client", changing: inner6, settings: halves)
        XCTAssertEqual(mixed.first, "ensure VTI vti01 local 192.0.2.1 remote 192.0.2.2 ikey 5 okey 5")
        XCTAssertTrue(mixed.contains("set net.ipv6.conf.vti01.disable_policy=1"))
        XCTAssertEqual(Array(mixed.suffix(2)), ["add route ::/1 dev vti01 proto 157", "add route 8000::/1 dev vti01 proto 157"])
    }

    func testPolicyBasedConnsLikeTheStockScript() throws {
        // No source IP and no mtu=: the kernel's policies do everything.
        XCTAssertEqual(try plan("rw-road1-03-route-client", changing: ["PLUTO_MY_SOURCEIP": nil]), [])
        // mtu= alone makes the stock script route, without a source.
        XCTAssertEqual(try plan("rw-road1-03-route-client", changing: ["PLUTO_MY_SOURCEIP": nil, "PLUTO_MTU": "1400", "PLUTO_PEER_CLIENT": "10.9.0.0/16"]),
                       ["add route 10.9.0.0/16 dev eth0 proto 157"])
        // A next hop that is not the peer is the gateway.
        XCTAssertEqual(try plan("rw-road1-03-route-client", changing: ["PLUTO_NEXT_HOP": "192.0.2.254", "PLUTO_PEER_CLIENT": "10.9.0.0/16"]), [
            "ensure address 10.0.1.10/32 on lo",
            "add route 10.9.0.0/16 via 192.0.2.254 dev eth0 src 10.0.1.10 proto 157",
        ])
        XCTAssertEqual(try plan("rw-road1-03-route-client", changing: ["PLUTO_INTERFACE": "NULL"]).last, "note: no route for 0.0.0.0/0: PLUTO_INTERFACE is unknown")
        XCTAssertEqual(try plan("rw-road1-03-route-client", changing: ["PLUTO_INTERFACE": "eth0:1", "PLUTO_PEER_CLIENT": "10.9.0.0/16"]).last,
                       "add route 10.9.0.0/16 dev eth0 src 10.0.1.10 proto 157", "an alias label is dropped")
        // IPv6 ::/0 as 2000::/3, as the stock script does.
        XCTAssertEqual(try plan("rw-road1-03-route-client", changing: [
            "PLUTO_VERB": "route-client-v6", "PLUTO_CONN_ADDRFAMILY": "ipv6", "PLUTO_ME": "2001:db8::11", "PLUTO_PEER": "2001:db8::2",
            "PLUTO_NEXT_HOP": "2001:db8::2", "PLUTO_MY_CLIENT": "2001:db8:5::10/128", "PLUTO_PEER_CLIENT": "::/0", "PLUTO_MY_SOURCEIP": "2001:db8:5::10",
        ]), [
            "ensure address 2001:db8:5::10/128 on lo",
            "add route 2000::/3 dev eth0 src 2001:db8:5::10 proto 157",
        ])
    }

    func testEveryPlanIsFreeOfDuplicatesAndEveryRouteIsOurs() throws {
        for name in allFixtureNames() {
            let actions = planHook(event: try event(name), settings: settings)
            XCTAssertEqual(Set(actions).count, actions.count, name)
            for case .addRoute(let route) in actions { XCTAssertEqual(route.routeProtocol, 157, name) }
            for case .deleteRoute(let route) in actions { XCTAssertEqual(route.routeProtocol, 157, name) }
        }
    }
}
