import XCTest
@testable import VTIModel

/// The plans for libreswan 5.2's calls, recorded from real pluto (Debian 13) in the qemu test bed
/// (`TESTBED_RECORD=1 Scripts/testbed --kernel debian12 --root debian13 scenario hook-site-to-site
/// hook-road-warriors`, prefixes renamed to s2s-/rw-server-/rw-roadN-, the recorder's own shell
/// variables left out), and the same plans from 4.10's and 5.2's calls where they mean the same.
final class Libreswan5PlanTests: XCTestCase {
    private let settings = HookSettings()

    private func plan(_ fixture: String, _ version: Libreswan, changing changes: [String: String?] = [:]) throws -> [String] {
        planHook(event: try event(fixture, version, changing: changes), settings: settings).map(\.description)
    }

    private func assertSequence(_ version: Libreswan, _ rows: [(String, [String])], file: StaticString = #filePath, line: UInt = #line) throws {
        for (fixture, expected) in rows {
            XCTAssertEqual(try plan(fixture, version), expected, "\(version.rawValue)/\(fixture)", file: file, line: line)
        }
    }

    private static func setup(_ device: String, local: String, remote: String, key: Int, routing: Bool) -> [String] {
        expectedDeviceSetup(device, local: local, remote: remote, key: key, routing: routing)
    }

    // MARK: What 5.2 sends

    func testEvery52CallParsesWithNothingUnknown() throws {
        let names = allFixtureNames(.v5_2)
        XCTAssertEqual(names.count, 80, "the 5.2 recording, 26 of its calls IPv6 and 12 dual-stack: \(names)")
        for name in names {
            let parsed = try event(name, .v5_2)
            XCTAssertEqual(parsed.unknownVariables, [], name)
            XCTAssertFalse(parsed.verb.isUnknown, name)
        }
    }

    /// 5.0 reordered the verbs of a new Child SA: prepare, route, up (4.10: up, prepare, route).
    func testVerbOrderOfANewChildSA() throws {
        func verbs(_ prefix: String, _ version: Libreswan) -> [String] {
            allFixtureNames(version).filter { $0.hasPrefix(prefix) }.prefix(3).map { String($0.dropFirst(prefix.count + 3)) }
        }
        XCTAssertEqual(verbs("s2s-west-", .v5_2), ["prepare-client", "route-client", "up-client"])
        XCTAssertEqual(verbs("rw-server-", .v5_2), ["prepare-client", "route-client", "up-client"])
        XCTAssertEqual(verbs("s2s-west-", .v4_10), ["up-client", "prepare-client", "route-client"])
    }

    // MARK: Golden plans

    /// vti-routing=yes, subnets 10.1.0.0/24 and 10.2.0.0/24. west takes the tunnel down (down,
    /// unroute on both ends in 5.2), reconnects, and the conn is deleted (down, unroute again):
    /// routes come and go, the device stays throughout.
    func testSiteToSite() throws {
        for (host, local, remote, peerLAN) in [("west", "192.0.2.1", "192.0.2.2", "10.2.0.0/24"), ("east", "192.0.2.2", "192.0.2.1", "10.1.0.0/24")] {
            let setup = Self.setup("vti01", local: local, remote: remote, key: 5, routing: true)
            let route = "\(peerLAN) dev vti01 proto 157"
            try assertSequence(.v5_2, [
                ("s2s-\(host)-01-prepare-client", setup),
                ("s2s-\(host)-02-route-client", setup + ["add route \(route)"]),
                ("s2s-\(host)-03-up-client", setup + ["add route \(route)"]),
                ("s2s-\(host)-04-down-client", ["delete route \(route)"]),
                ("s2s-\(host)-05-unroute-client", ["delete route \(route)"]),
                ("s2s-\(host)-06-prepare-client", setup),
                ("s2s-\(host)-07-route-client", setup + ["add route \(route)"]),
                ("s2s-\(host)-08-up-client", setup + ["add route \(route)"]),
                ("s2s-\(host)-09-down-client", ["delete route \(route)"]),
                ("s2s-\(host)-10-unroute-client", ["delete route \(route)"]),
            ])
        }
    }

    /// The 5.2 device-lifetime bug, as recorded: east's unroute when west merely took the tunnel
    /// down and east's unroute when the conn was deleted differ only in time, SPIs and counters;
    /// both plans keep the device (and are the same).
    func testTheResponderUnrouteOfADisconnectKeepsTheDevice() throws {
        let disconnect = try fixtureEnvironment("s2s-east-05-unroute-client", .v5_2)
        let delete = try fixtureEnvironment("s2s-east-10-unroute-client", .v5_2)
        let differing = Set(disconnect.keys).union(delete.keys).filter { disconnect[$0] != delete[$0] }
        XCTAssertEqual(differing, ["PLUTO_ADDTIME", "PLUTO_INBYTES", "PLUTO_OUTBYTES", "SPI_IN", "SPI_OUT"])
        XCTAssertEqual(try plan("s2s-east-05-unroute-client", .v5_2), try plan("s2s-east-10-unroute-client", .v5_2))
        XCTAssertFalse(try plan("s2s-east-05-unroute-client", .v5_2).contains { $0.hasPrefix("delete VTI") })
    }

    /// Two clients on the shared vti02: each call touches its client's /32 only; road1 leaves
    /// (down, unroute of its instance) and comes back as 10.0.1.10 again.
    func testRoadWarriorServer() throws {
        let setup = Self.setup("vti02", local: "192.0.2.2", remote: "0.0.0.0", key: 12, routing: true)
        let road1 = "10.0.1.10/32 dev vti02 proto 157", road2 = "10.0.1.11/32 dev vti02 proto 157"
        try assertSequence(.v5_2, [
            ("rw-server-01-prepare-client", setup),
            ("rw-server-02-route-client", setup + ["add route \(road1)"]),
            ("rw-server-03-up-client", setup + ["add route \(road1)"]),
            ("rw-server-04-prepare-client", setup),
            ("rw-server-05-route-client", setup + ["add route \(road2)"]),
            ("rw-server-06-up-client", setup + ["add route \(road2)"]),
            ("rw-server-07-down-client", ["delete route \(road1)"]),
            ("rw-server-08-unroute-client", ["delete route \(road1)"]),
            ("rw-server-09-prepare-client", setup),
            ("rw-server-10-route-client", setup + ["add route \(road1)"]),
            ("rw-server-11-up-client", setup + ["add route \(road1)"]),
        ])
    }

    /// The clients have no VTI: the stock script's source address and default halves.
    func testRoadWarriorClientsWithoutVTI() throws {
        func expected(_ verb: String, _ address: String) -> [String] {
            let halves = ["0.0.0.0/1 dev eth0 src \(address) proto 157", "128.0.0.0/1 dev eth0 src \(address) proto 157"]
            let source = "ensure address \(address)/32 on lo"
            switch verb {
            case "up-client", "prepare-client": return verb == "up-client" ? [source] : []
            case "route-client": return [source] + halves.map { "add route \($0)" }
            case "unroute-client": return halves.map { "delete route \($0)" }
            default: return []
            }
        }
        for (client, address) in [("rw-road1-", "10.0.1.10"), ("rw-road2-", "10.0.1.11")] {
            let names = allFixtureNames(.v5_2).filter { $0.hasPrefix(client) }
            XCTAssertFalse(names.isEmpty)
            for name in names {
                XCTAssertEqual(try plan(name, .v5_2), expected(String(name.dropFirst(client.count + 3)), address), name)
            }
        }
    }

    // MARK: 5.4 (built from its updown.c, see Scripts/derive-5.4-fixtures)

    /// Every variable 5.4 sends is known, in exec and async calls alike; async's compound verb is
    /// its three steps without a suffix.
    func testEvery54VariableIsKnown() throws {
        let names = allFixtureNames(.v5_4)
        XCTAssertEqual(names.count, 9)
        for name in names {
            let environment = try fixtureEnvironment(name, .v5_4)
            XCTAssertEqual(environment.keys.filter { !PlutoEvent.isKnown($0) }, [], name)
            XCTAssertEqual(try event(name, .v5_4).unknownVariables, [], name)
        }
        let async = try event("async-rw-server-01-prepare-route-up", .v5_4)
        XCTAssertEqual(async.verb, .known(steps: [.prepare, .route, .up], scope: nil, isIPv6: false))
        XCTAssertEqual(async.scope, .client, "the selector 0.0.0.0/0 is not the host's address")
    }

    /// async's one compound call plans what 5.2's prepare, route and up planned together, once.
    func testAsyncPlansWhatTheThreeCallsPlanned() throws {
        let async = try plan("async-rw-server-01-prepare-route-up", .v5_4).filter { !$0.hasPrefix("note: step ") }
        var separate: [String] = []
        for call in ["rw-server-01-prepare-client", "rw-server-02-route-client", "rw-server-03-up-client"] {
            for line in try plan(call, .v5_2) where !separate.contains(line) { separate.append(line) }
        }
        XCTAssertEqual(async, separate)
        XCTAssertEqual(try plan("exec-s2s-east-02-route-client", .v5_4), try plan("s2s-east-02-route-client", .v5_2),
                       "exec changes how the hook is run, not what it plans")
    }

    // MARK: 4.x and 5.x agree

    /// Where a 4.10 call and a 5.2 call mean the same thing (the same verb for the same client of
    /// the same conn), the plans are the same. The site-to-site recordings come from differently
    /// configured conns, so both are given the same conn, subnets and routing first.
    func testSameMeaningSamePlanAcross4And5() throws {
        let sameConn: [String: String?] = ["PLUTO_CONNECTION": "s2s", "PLUTO_MY_CLIENT": "10.1.0.0/24", "PLUTO_PEER_CLIENT": "10.2.0.0/24",
                                           "VTI_ROUTING": "yes"]
        let pairs: [(old: String, new: String, changes: [String: String?])] = [
            // Site-to-site, west (initiator): a new Child SA, its end, the conn deleted.
            ("s2s-west-01-up-client", "s2s-west-03-up-client", sameConn),
            ("s2s-west-02-prepare-client", "s2s-west-01-prepare-client", sameConn),
            ("s2s-west-03-route-client", "s2s-west-02-route-client", sameConn),
            ("s2s-west-04-down-client", "s2s-west-09-down-client", sameConn),
            ("s2s-west-05-unroute-client", "s2s-west-10-unroute-client", sameConn),
            // Road-warrior gateway: road1 arrives, road2 arrives, road1 leaves (its instance deleted).
            ("rw-server-01-up-client", "rw-server-03-up-client", [:]),
            ("rw-server-02-prepare-client", "rw-server-01-prepare-client", [:]),
            ("rw-server-03-route-client", "rw-server-02-route-client", [:]),
            ("rw-server-04-up-client", "rw-server-06-up-client", [:]),
            ("rw-server-06-route-client", "rw-server-05-route-client", [:]),
            ("rw-server-07-down-client", "rw-server-07-down-client", [:]),
            ("rw-server-08-unroute-client", "rw-server-08-unroute-client", [:]),
            // Road-warrior client road1: up, route, down, unroute.
            ("rw-road1-01-up-client", "rw-road1-03-up-client", [:]),
            ("rw-road1-03-route-client", "rw-road1-02-route-client", [:]),
            ("rw-road1-04-down-client", "rw-road1-04-down-client", [:]),
            ("rw-road1-05-unroute-client", "rw-road1-05-unroute-client", [:]),
        ]
        for pair in pairs {
            let old = try event(pair.old, .v4_10, changing: pair.changes), new = try event(pair.new, .v5_2, changing: pair.changes)
            XCTAssertEqual(old.verb, new.verb, "\(pair.old) and \(pair.new) are not the same verb")
            XCTAssertEqual(old.peerClient, new.peerClient, "\(pair.old) and \(pair.new) are not about the same client")
            let oldPlan = planHook(event: old, settings: settings), newPlan = planHook(event: new, settings: settings)
            XCTAssertEqual(oldPlan.map(\.description), newPlan.map(\.description), "4.10 \(pair.old) vs 5.2 \(pair.new)")
            XCTAssertFalse(newPlan.isEmpty && !pair.new.contains("prepare") && !pair.new.contains("down-client"),
                           "\(pair.new) plans nothing: the comparison would prove little")
        }
    }
}
