import ControlProtocol
import Foundation
import XCTest

final class JSONValueTests: XCTestCase {
    func testParsesWhatFoundationWrites() throws {
        let record = LeaseRecord(address: "10.0.1.10", connection: "rw", peerID: "CN=r\\xc3\\xa9 \"quoted\"\n", peerAddress: "192.0.2.11",
                                 firstSeen: 1_795_439_656, lastSeen: 1_795_439_700, connected: true, spiIn: 0xddc4_60b8, spiOut: nil,
                                 inBytes: 123_456_789_012, outBytes: 0)
        let data = try JSONEncoder().encode(LeasesReply(leases: [record, record]))
        let value = try JSONValue(parsing: [UInt8](data))
        XCTAssertEqual(value["ok"]?.boolValue, true)
        let lease = try XCTUnwrap(value["leases"]?.arrayValue?.first)
        XCTAssertEqual(lease["peerID"]?.stringValue, record.peerID)
        XCTAssertEqual(lease["inBytes"]?.numberValue, 123_456_789_012)
        XCTAssertEqual(lease["spiIn"]?.numberValue, Double(0xddc4_60b8))
    }

    func testFoundationReadsWhatTheHookWrites() throws {
        let environment = ["PLUTO_PEER_ID": "CN=\u{1}evil\"\\ \u{7f} é 🔑", "PLUTO_VERB": "up-client", "HOME": "/root", "VTI_IFACE": "vti02"]
        let request = HookEventRequest(environment: environment, verbArgument: "up-client")
        let text = request.json.serialized
        XCTAssertFalse(text.contains("\n"), "one line on the wire")
        let object = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any])
        let decoded = try XCTUnwrap(object["environment"] as? [String: String])
        XCTAssertEqual(decoded["PLUTO_PEER_ID"], environment["PLUTO_PEER_ID"])
        XCTAssertNil(decoded["HOME"], "only pluto's variables travel")
        XCTAssertEqual(object["version"] as? Int, 1)
        XCTAssertEqual(try HookEventRequest(json: JSONValue(parsing: text)), request, "and our own parser reads it back")
    }

    func testEscapesAndUnicode() throws {
        XCTAssertEqual(try JSONValue(parsing: #""a\u00e9\ud83d\udd11\n\"\\\/""#), .string("aé🔑\n\"\\/"))
        XCTAssertEqual(JSONValue.string("\u{0}\u{1f}").serialized, #""\u0000\u001f""#)
        XCTAssertEqual(try JSONValue(parsing: " [1, -2.5e3, true, null, {}] "),
                       .array([.number(1), .number(-2500), .bool(true), .null, .object([:])]))
    }

    func testRejectsMalformedAndHostileInput() {
        let bad = [
            "", "{", "[1,]", "{\"a\":1,}", "{\"a\" 1}", "\"unterminated", "\"\\x\"", "\"\\ud800\"", "tru", "01x", "+1", "1 2",
            "{\"a\":1,\"a\":2}", "\"tab\there\"", String(repeating: "[", count: 100) + String(repeating: "]", count: 100), "Infinity", "0x10",
        ]
        for text in bad {
            XCTAssertThrowsError(try JSONValue(parsing: text), "accepted \(text.debugDescription)")
        }
    }

    func testHookReplyRoundTrip() throws {
        let reply = HookEventReply(ok: false, lines: ["route 10.0.1.10/32 dev vti02 proto 157"], error: "device vti02 exists with other parameters")
        XCTAssertEqual(try HookEventReply(json: JSONValue(parsing: reply.json.serialized)), reply)
        XCTAssertThrowsError(try HookEventReply(json: JSONValue(parsing: #"{"version":1}"#)))
    }

    /// vtid's replies go out through JSONLineEncoder; Foundation's decoder (vtictl) must read them
    /// as the same values, and the documents must equal what JSONEncoder would have written.
    func testLineEncoderAgreesWithFoundation() throws {
        let lease = LeaseRecord(address: "10.0.1.10", connection: "rw", peerID: "CN=\u{1}evil\"\\ \u{7f} é 🔑\n\t\r", peerAddress: "192.0.2.11",
                                firstSeen: 1_795_439_656, lastSeen: -3, connected: true, spiIn: 0xddc4_60b8, spiOut: nil,
                                inBytes: UInt64.max, outBytes: 0)
        let status = StatusReply(
            daemon: DaemonRecord(version: "0.2.0", pid: 42, started: 1_795_439_000, configurationFile: "/etc/vtictl/vtid.yaml",
                                 ipsecConf: "/etc/ipsec.conf", reloadError: nil, eventsApplied: 7, eventsFailed: 1),
            connections: [ConnectionRecord(name: "rw", location: "ipsec.conf:3", markIn: "12/0xffffffff", markOut: "12/0xffffffff",
                                           device: "vti02", shared: true, routing: true, managed: true, addressPool: nil,
                                           lastRepair: "device recreated", lastError: nil)],
            leases: [lease, lease], problems: ["vti01: \"quoted\""])
        let events = EventsReply(events: [EventRecord(sequence: 1, time: 5, key: "k", verb: "up-client", connection: "rw", source: .hook,
                                                      result: .failed, lines: [], error: "no such device", microseconds: 12)])
        func check<T: Codable & Equatable>(_ value: T) throws {
            let ours = try JSONLineEncoder().encodeLine(value)
            XCTAssertEqual(ours.last, UInt8(ascii: "\n"))
            XCTAssertEqual(ours.filter { $0 == UInt8(ascii: "\n") }.count, 1, "one line on the wire")
            XCTAssertEqual(try JSONDecoder().decode(T.self, from: Data(ours)), value)
            XCTAssertEqual(try JSONValue(parsing: Array(ours.dropLast())), try JSONValue(parsing: [UInt8](JSONEncoder().encode(value))))
        }
        try check(status)
        try check(LeasesReply(leases: [lease]))
        try check(events)
        try check(LeasesReply(leases: []))
        try check(RoutesReply(routeProtocol: 157, routes: [
            RouteRecord(destination: "10.0.1.10/32", device: "vti02", table: 254, gateway: nil, source: "10.3.0.1", metric: 5,
                        connection: "rw", peerClient: "10.0.1.10/32", reqid: 16397),
        ]))
        var traffic = status
        traffic.connections[0].traffic = ConnectionTraffic(peers: ["192.0.2.11", "192.0.2.12"], associations: 4, since: 1_795_439_001,
                                                           inBytes: 336, outBytes: 0, inPackets: 4, outPackets: 0)
        try check(traffic)
        XCTAssertThrowsError(try JSONLineEncoder().encodeLine(Double.nan))
        XCTAssertEqual(String(decoding: try JSONLineEncoder().encodeLine([Int8(-5), Int8(7)]), as: UTF8.self), "[-5,7]\n")
        XCTAssertEqual(String(decoding: try JSONLineEncoder().encodeLine([Float(1.5)]), as: UTF8.self), "[1.5]\n")
        // A type the encoder has no case for fails, and does not recurse until the stack runs out.
        XCTAssertThrowsError(try JSONLineEncoder().encodeLine([UInt128(1)]))
    }
}
