import ControlProtocol
import Foundation
import VTIDaemon
import VTIModel
import XCTest

final class StateStoreTests: XCTestCase {
    func testLeasesSurviveReopeningAndTrackTheirClient() throws {
        let path = NSTemporaryDirectory() + "leases-\(UUID().uuidString).sqlite"
        defer { for suffix in ["", "-wal", "-shm"] { try? FileManager.default.removeItem(atPath: path + suffix) } }
        do {
            let store = try StateStore(path: path)
            try store.connected(address: "10.0.1.10", connection: "rw", peerID: "@road1", peerAddress: "192.0.2.11", spiIn: 1, spiOut: 2, at: 100)
            try store.connected(address: "10.0.1.11", connection: "rw", peerID: "@road2", peerAddress: "192.0.2.12", spiIn: 3, spiOut: 4, at: 110)
            try store.disconnected(address: "10.0.1.10", connection: "rw", inBytes: 500, outBytes: 600, at: 120)
            // Another conn's down for the same address is not this lease's.
            try store.disconnected(address: "10.0.1.11", connection: "other", inBytes: nil, outBytes: nil, at: 130)
        }
        let store = try StateStore(path: path)
        var leases = try store.all()
        XCTAssertEqual(leases.map(\.address), ["10.0.1.10", "10.0.1.11"])
        XCTAssertEqual(leases.map(\.connected), [false, true])
        XCTAssertEqual(leases[0].inBytes, 500)
        XCTAssertEqual(leases[0].lastSeen, 120)

        // The same client back: first seen stays. Another client on the address: a new lease.
        try store.connected(address: "10.0.1.10", connection: "rw", peerID: "@road1", peerAddress: "192.0.2.99", spiIn: 5, spiOut: 6, at: 200)
        try store.connected(address: "10.0.1.11", connection: "rw", peerID: "@road3", peerAddress: "192.0.2.13", spiIn: 7, spiOut: 8, at: 210)
        leases = try store.all()
        XCTAssertEqual(leases[0].firstSeen, 100)
        XCTAssertEqual(leases[0].peerAddress, "192.0.2.99")
        XCTAssertEqual(leases[1].peerID, "@road3")
        XCTAssertEqual(leases[1].firstSeen, 210)
    }

    /// A route row whose numbers are out of range (a damaged file, a hand edit) is shown as
    /// unreadable, never read as some other route and never a crash; the other rows are read.
    func testARouteRowWithNumbersOutOfRangeIsUnreadableNotMisread() throws {
        let path = NSTemporaryDirectory() + "routes-\(UUID().uuidString).sqlite"
        defer { for suffix in ["", "-wal", "-shm"] { try? FileManager.default.removeItem(atPath: path + suffix) } }
        do {
            let store = try StateStore(path: path)
            try store.batch { batch in
                for client in ["10.0.1.10/32", "10.0.1.11/32"] {
                    let prefix = IPPrefix(client)!
                    try batch.save(OwnedRoute(connection: "rw", peerClient: prefix,
                                              route: PlannedRoute(destination: prefix, device: InterfaceName("vti02")!, routeProtocol: 157), reqid: 16400))
                }
            }
        }
        let sqlite = Process()
        sqlite.executableURL = URL(fileURLWithPath: "/usr/bin/sqlite3")
        guard FileManager.default.isExecutableFile(atPath: "/usr/bin/sqlite3") else {
            return XCTFail("this test needs the sqlite3 command (Debian package sqlite3)")
        }
        sqlite.arguments = [path, "UPDATE route SET protocol = 413 WHERE destination = '10.0.1.10/32'"]
        try sqlite.run()
        sqlite.waitUntilExit()
        XCTAssertEqual(sqlite.terminationStatus, 0)
        let read = try StateStore(path: path).routes()
        XCTAssertEqual(read.records.map(\.peerClient.description), ["10.0.1.11/32"])
        XCTAssertEqual(read.unreadable.count, 1, "\(read.unreadable)")
    }

    /// A device record keeps its backend: a VTI its keys, an XFRM interface its if_id and uplink
    /// (the migration adds the columns to a store written before them).
    func testDeviceRecordsKeepTheirBackend() throws {
        let path = NSTemporaryDirectory() + "devices-\(UUID().uuidString).sqlite"
        defer { for suffix in ["", "-wal", "-shm"] { try? FileManager.default.removeItem(atPath: path + suffix) } }
        let vti = OwnedDevice(connection: "s2s", setup: DeviceSetup(
            device: VTIDeviceSpec(name: InterfaceName("vti01")!, local: IPAddress("192.0.2.1")!, remote: IPAddress("192.0.2.2")!, inputKey: 5, outputKey: 6),
            routing: true, shared: false, clientFamily: .ipv4, mtu: .fixed(1400)))
        let xfrm = OwnedDevice(connection: "rw", setup: DeviceSetup(
            device: .xfrmInterface(XfrmInterfaceSpec(name: InterfaceName("ipsec0")!, interfaceID: 16384, underlying: InterfaceName("eth0"),
                                                     local: IPAddress("192.0.2.1")!, remote: IPAddress("0.0.0.0")!)),
            routing: true, shared: true, clientFamily: .ipv6, mtu: .derived(fallbackSuite: .conservative)))
        let bare = OwnedDevice(connection: "bare", setup: DeviceSetup(
            device: .xfrmInterface(XfrmInterfaceSpec(name: InterfaceName("ipsec9")!, interfaceID: 9, local: IPAddress("192.0.2.1")!, remote: IPAddress("192.0.2.3")!)),
            routing: true, shared: false, clientFamily: .ipv4, mtu: .derived(fallbackSuite: .conservative)))
        do {
            let store = try StateStore(path: path)
            try store.batch { batch in for device in [vti, xfrm, bare] { try batch.save(device) } }
        }
        let read = try StateStore(path: path).devices()
        XCTAssertEqual(read.unreadable, [])
        XCTAssertEqual(Set(read.records), [vti, xfrm, bare])
    }
}
