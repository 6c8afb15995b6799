import XCTest
@testable import VTIModel

/// What pluto told the updown for `ipsec-interface=` conns, as recorded in the qemu test bed
/// (docs/xfrm-interfaces.md states these facts; this keeps the recordings and the text in step).
final class XfrmInterfaceRecordingTests: XCTestCase {
    func testEveryRecordedXfrmInterfaceCallParsesAsAnEventWithoutVTIOrMarks() throws {
        for (version, count) in [(Libreswan.v4_10_xfrmi, 34), (.v5_2_xfrmi, 50)] {
            let names = allFixtureNames(version)
            XCTAssertEqual(names.count, count, "the recordings of \(version.rawValue)")
            for name in names {
                let event = try event(name, version)
                XCTAssertNil(event.vti, name)
                XCTAssertNil(event.markIn, name)
                XCTAssertNil(event.markOut, name)
                XCTAssertEqual(event.unknownVariables, [], name)
            }
        }
    }

    /// The device's name is all pluto gives (no if_id): `ipsecN` for `ipsec-interface=N`, even when
    /// the device is someone else's under another name (`ipsec-interface-managed=no`, vpn0 here).
    func testTheGatewaysCallsNameTheDeviceButNoIfID() throws {
        for (name, version, device) in [
            ("s2s-west-03-up-client", Libreswan.v5_2_xfrmi, "ipsec1"), ("rw-server-03-up-client", .v5_2_xfrmi, "ipsec2"),
            ("unmanaged-west-03-up-client", .v5_2_xfrmi, "ipsec1"),
            ("s2s-west-01-up-client", .v4_10_xfrmi, "ipsec1"), ("rw-server-01-up-client", .v4_10_xfrmi, "ipsec2"),
        ] {
            let environment = try fixtureEnvironment(name, version)
            XCTAssertEqual(environment["PLUTO_VIRT_INTERFACE"], device, name)
            XCTAssertEqual(environment["PLUTO_XFRMI_ROUTE"], "yes", name)
            // Empty: the peer's address is outside PLUTO_PEER_CLIENT and no mark= was set.
            XCTAssertEqual(environment["PLUTO_XFRMI_FWMARK"], "", name)
            XCTAssertEqual(environment["VTI_IFACE"], "", name)
            XCTAssertNil(environment["CONNMARK_OUT"], name)
            XCTAssertTrue(environment.keys.filter { $0.contains("IF_ID") }.isEmpty, name)
        }
        // A client without ipsec-interface=: pluto says NULL, and no PLUTO_XFRMI_FWMARK at all.
        for (name, version) in [("rw-road1-03-up-client", Libreswan.v5_2_xfrmi), ("rw-road1-01-up-client", .v4_10_xfrmi)] {
            let client = try fixtureEnvironment(name, version)
            XCTAssertEqual(client["PLUTO_VIRT_INTERFACE"], "NULL", name)
            XCTAssertEqual(client["PLUTO_XFRMI_ROUTE"], "", name)
            XCTAssertNil(client["PLUTO_XFRMI_FWMARK"], name)
        }
    }

    /// The gateway's instances come as with VTI: prepare, route and up per client (4.10: up first),
    /// down and unroute when it leaves, told apart by PLUTO_PEER_CLIENT.
    func testTheGatewaySeesEachClientsInstance() throws {
        for (version, connect) in [(Libreswan.v5_2_xfrmi, ["prepare-client", "route-client", "up-client"]),
                                   (.v4_10_xfrmi, ["up-client", "prepare-client", "route-client"])] {
            let calls = allFixtureNames(version).filter { $0.hasPrefix("rw-server-") }
            let verbs = try calls.map { try fixtureEnvironment($0, version)["PLUTO_VERB"] ?? "" }
            XCTAssertEqual(verbs, connect + connect + ["down-client", "unroute-client"] + ["down-client", "unroute-client"], version.rawValue)
            let clients = try calls.map { try fixtureEnvironment($0, version)["PLUTO_PEER_CLIENT"] ?? "" }
            XCTAssertEqual(Set(clients), ["10.0.1.10/32", "10.0.1.11/32"], version.rawValue)
            // 4.10 says CK_GOING_AWAY in a deleted instance's unroute-client, as for VTI conns.
            let kinds = try calls.map { try fixtureEnvironment($0, version)["PLUTO_CONN_KIND"] ?? "" }
            let leaving = version == .v4_10_xfrmi ? "CK_GOING_AWAY" : "CK_INSTANCE"
            XCTAssertEqual(kinds, Array(repeating: "CK_INSTANCE", count: 6) + ["CK_INSTANCE", leaving, "CK_INSTANCE", leaving], version.rawValue)
        }
    }
}
