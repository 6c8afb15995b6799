import XCTest
@testable import VTIModel

/// The plan for each recorded pluto call, written out as the lines an operator would read.
final class HookPlanTests: XCTestCase {
    private let settings = HookSettings()

    private func plan(_ fixture: String, changing changes: [String: String?] = [:], settings: HookSettings? = nil) throws -> [String] {
        planHook(event: try event(fixture, changing: changes), settings: settings ?? self.settings).map(\.description)
    }

    private let vti01Setup = [
        "ensure VTI vti01 local 192.0.2.1 remote 192.0.2.2 ikey 5 okey 5",
        "set net.ipv4.conf.vti01.disable_policy=1",
        "set net.ipv4.conf.vti01.rp_filter=2",
        "set net.ipv4.conf.vti01.forwarding=1",
        "set net.ipv4.conf.vti01.accept_redirects=0",
        "set net.ipv4.conf.vti01.send_redirects=0",
        "ensure MTU of vti01 (derived (fallback AES-CBC+HMAC-SHA2-512-256))",
    ]

    func testSiteToSiteWestWithoutRouting() throws {
        // vti-routing=no: the device and its settings, no routes.
        XCTAssertEqual(try plan("s2s-west-01-up-client"), vti01Setup)
        XCTAssertEqual(try plan("s2s-west-02-prepare-client"), vti01Setup)
        XCTAssertEqual(try plan("s2s-west-03-route-client"), vti01Setup)
        XCTAssertEqual(try plan("s2s-west-04-down-client"), [], "a down keeps the device for the reconnect")
        XCTAssertEqual(try plan("s2s-west-05-unroute-client"), ["delete VTI vti01 local 192.0.2.1 remote 192.0.2.2 ikey 5 okey 5"],
                       "the conn is deleted: its own device goes")
    }

    func testSiteToSiteWithRoutingToASubnet() throws {
        let changes: [String: String?] = ["VTI_ROUTING": "yes", "PLUTO_PEER_CLIENT": "10.2.0.0/24"]
        let up = try plan("s2s-west-01-up-client", changing: changes)
        XCTAssertEqual(up.last, "add route 10.2.0.0/24 dev vti01 proto 157")
        XCTAssertTrue(up.contains("set net.ipv4.ip_forward=1"))
        XCTAssertFalse(try plan("s2s-west-02-prepare-client", changing: changes).contains { $0.hasPrefix("add route") },
                       "prepare makes the device, it routes nothing")
        XCTAssertEqual(try plan("s2s-west-04-down-client", changing: changes), ["delete route 10.2.0.0/24 dev vti01 proto 157"])
        XCTAssertEqual(try plan("s2s-west-05-unroute-client", changing: changes), [
            "delete route 10.2.0.0/24 dev vti01 proto 157",
            "delete VTI vti01 local 192.0.2.1 remote 192.0.2.2 ikey 5 okey 5",
        ])
    }

    func testDefaultPeerClientGetsNoRouteUnlessConfiguredThenTwoHalves() throws {
        let routing: [String: String?] = ["VTI_ROUTING": "yes"]
        XCTAssertEqual(try plan("s2s-west-01-up-client", changing: routing).last, "note: peer client 0.0.0.0/0 gets no route (route_default = no)")
        var halves = settings
        halves.routeDefaultThroughTunnel = true
        XCTAssertEqual(Array(try plan("s2s-west-01-up-client", changing: routing, settings: halves).suffix(2)), [
            "add route 0.0.0.0/1 dev vti01 proto 157",
            "add route 128.0.0.0/1 dev vti01 proto 157",
        ])
    }

    func testRoadWarriorServerOnASharedDevice() throws {
        let shared = "ensure VTI vti02 local 192.0.2.2 remote 0.0.0.0 ikey 12 okey 12"
        let road1 = try plan("rw-server-01-up-client")
        XCTAssertEqual(road1.first, shared)
        XCTAssertTrue(road1.contains("set net.ipv4.ip_forward=1"))
        XCTAssertEqual(road1.last, "add route 10.0.1.10/32 dev vti02 proto 157")
        XCTAssertEqual(try plan("rw-server-04-up-client").last, "add route 10.0.1.11/32 dev vti02 proto 157")
        // road1 leaves: exactly its route goes, never road2's, and the shared device stays.
        XCTAssertEqual(try plan("rw-server-07-down-client"), ["delete route 10.0.1.10/32 dev vti02 proto 157"])
        XCTAssertEqual(try plan("rw-server-08-unroute-client"), ["delete route 10.0.1.10/32 dev vti02 proto 157"])
        XCTAssertEqual(try plan("rw-server-10-unroute-client"), ["delete route 10.0.1.11/32 dev vti02 proto 157"])
    }

    func testRoadWarriorClientWithoutVTIRoutesLikeTheStockScript() throws {
        XCTAssertEqual(try plan("rw-road1-01-up-client"), [
            "ensure address 10.0.1.10/32 on eth0",
            "add route 0.0.0.0/1 via 192.0.2.2 dev eth0 src 10.0.1.10 proto 157",
            "add route 128.0.0.0/1 via 192.0.2.2 dev eth0 src 10.0.1.10 proto 157",
        ])
        XCTAssertEqual(try plan("rw-road1-02-prepare-client"), [])
        XCTAssertEqual(try plan("rw-road1-05-unroute-client"), [
            "delete route 0.0.0.0/1 via 192.0.2.2 dev eth0 src 10.0.1.10 proto 157",
            "delete route 128.0.0.0/1 via 192.0.2.2 dev eth0 src 10.0.1.10 proto 157",
        ])
    }

    func testManyPeersEachOnItsOwnDeviceAndMark() throws {
        var devices: Set<String> = []
        for name in allFixtureNames() where name.hasPrefix("many-peers-hub") && name.hasSuffix("up-client") {
            if let first = try plan(name).first { devices.insert(first) }
        }
        XCTAssertEqual(devices, [
            "ensure VTI vti11 local 192.0.2.2 remote 192.0.2.21 ikey 11 okey 11",
            "ensure VTI vti12 local 192.0.2.2 remote 192.0.2.22 ikey 12 okey 12",
            "ensure VTI vti13 local 192.0.2.2 remote 192.0.2.23 ikey 13 okey 13",
        ])
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
        XCTAssertTrue(up.contains("ensure MTU of vti02 (fixed 1400)"))
        XCTAssertEqual(up.last, "add route 10.0.1.10/32 dev vti02 table 100 metric 50 proto 201")
        // pluto's own mtu= wins over the settings.
        XCTAssertTrue(try plan("rw-server-01-up-client", changing: ["PLUTO_MTU": "1380"]).contains("ensure MTU of vti02 (fixed 1380)"))
    }

    func testVTIAddressCompoundVerbsAndIPv6() throws {
        XCTAssertTrue(try plan("s2s-west-01-up-client", changing: ["VTI_IP": "10.255.0.1/30"]).contains("ensure address 10.255.0.1/30 on vti01"))
        let compound = try plan("s2s-west-01-up-client", changing: ["PLUTO_VERB": "prepare-route-up", "VTI_ROUTING": "yes", "PLUTO_PEER_CLIENT": "10.2.0.0/24"])
        XCTAssertEqual(compound.filter { $0.hasPrefix("ensure VTI") }.count, 3, "each step planned, applying is idempotent")
        XCTAssertEqual(compound.filter { $0.hasPrefix("add route") }.count, 2)
        let v6 = try plan("s2s-west-01-up-client", changing: [
            "PLUTO_VERB": "up-client-v6", "PLUTO_CONN_ADDRFAMILY": "ipv6", "PLUTO_ME": "2001:db8::1", "PLUTO_PEER": "2001:db8::2",
            "PLUTO_MY_CLIENT": "2001:db8:1::/48", "PLUTO_PEER_CLIENT": "2001:db8:2::/48", "VTI_ROUTING": "yes",
        ])
        XCTAssertEqual(v6.first, "ensure VTI vti01 local 2001:db8::1 remote 2001:db8::2 ikey 5 okey 5")
        XCTAssertTrue(v6.contains("set net.ipv6.conf.vti01.disable_policy=1"))
        XCTAssertEqual(v6.last, "add route 2001:db8:2::/48 dev vti01 proto 157")
    }

    func testAPeerClientThatContainsThePeerIsNotRoutedIntoTheTunnel() throws {
        let looping = try plan("s2s-west-01-up-client", changing: ["VTI_ROUTING": "yes", "PLUTO_PEER_CLIENT": "192.0.2.0/24"])
        XCTAssertFalse(looping.contains { $0.hasPrefix("add route") })
        XCTAssertTrue(looping.last?.contains("would loop the tunnel into itself") ?? false)
    }

    func testSettingsFile() throws {
        let parsed = try HookSettings(parsing: """
            # vti-updown settings
            route_protocol = 201
            rp_filter = off   # asymmetric paths
            mtu = 1400
            route_default = yes
            route_table = 100
            route_metric = 20
            """, file: "hook.conf")
        XCTAssertEqual(parsed.routeProtocol, 201)
        XCTAssertEqual(parsed.reversePathFilter, .off)
        XCTAssertEqual(parsed.mtu, .fixed(1400))
        XCTAssertTrue(parsed.routeDefaultThroughTunnel)
        XCTAssertEqual(parsed.routeTable, 100)
        XCTAssertEqual(parsed.routeMetric, 20)
        let broken: [(String, String)] = [
            ("route_protocol = 2", "hook.conf:2: route_protocol: \"2\" is not a route protocol number 5-255 (0-4 belong to the kernel)"),
            ("rp_filter = strict", "hook.conf:2: rp_filter: \"strict\" is not loose or off (strict breaks asymmetric routing through tunnels)"),
            ("mtu = 100", "hook.conf:2: mtu: \"100\" is not auto or a number from 576 to 9000"),
            ("colour = blue", "hook.conf:2: unknown setting \"colour\" (known: route_protocol, rp_filter, mtu, route_default, route_table, route_metric)"),
            ("just words", "hook.conf:2: expected key = value, got \"just words\""),
        ]
        for (line, message) in broken {
            XCTAssertThrowsError(try HookSettings(parsing: "# first line\n\(line)\n", file: "hook.conf")) { error in
                XCTAssertEqual("\(error)", message)
            }
        }
    }
}
