import ControlProtocol
import Foundation
import VTIDaemon
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
}
