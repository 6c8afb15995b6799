import Foundation
import KernelTestSupport
import XCTest

/// vtid's DHCPINFORM answers on the host kernel: vtid in a throwaway network namespace with the
/// road-warrior conn's `existing_device` (a veth, rwdev) and a LAN address 10.3.0.1; the client,
/// Scripts/testbed.d/dhcp-inform-client (Python, its own DHCP decoder), in a namespace of its own
/// holding the veth's other end, sends real datagrams from its pool address 10.0.1.11.
final class DHCPInformHostTests: XCTestCase {
    static let informSettings = """
            dhcp_inform:
              routes: [10.3.0.0/24, 192.168.50.0/23]
              dns: [10.3.0.53]
              domain: corp.example
              search: [corp.example, example.com]

        """
    let script = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .appendingPathComponent("../../Scripts/testbed.d/dhcp-inform-client").standardized.path

    /// Runs the client in a fresh network namespace that receives rwpeer (moved there once the
    /// process exists; the client waits for it), and returns its JSON lines.
    func runClient(_ bed: VTIDBed, _ modes: [String]) throws -> (status: Int32, events: [[String: Any]], output: String) {
        let log = bed.directory + "/client-\(modes.joined(separator: "-")).log"
        let pid = try spawn(["/usr/bin/unshare", "-n", "--", "/usr/bin/python3", script] + modes + [
            "--device", "rwpeer", "--client", "10.0.1.11", "--wait-device", "--timeout", "10",
            "--setup", "link set lo up", "--setup", "addr add 10.0.1.11/32 dev rwpeer", "--setup", "link set rwpeer up",
        ], environment: ["PATH": "/usr/sbin:/usr/bin:/sbin:/bin"], outputPath: log)
        // unshare execs python in the same process: its pid names the new namespace.
        var moved = false
        for _ in 0..<250 where !moved {
            moved = (try? ip("link", "set", "rwpeer", "netns", "\(pid)")) != nil
            if !moved { usleep(20_000) }
        }
        let status = waitForExit(pid)
        let output = (try? String(contentsOfFile: log, encoding: .utf8)) ?? ""
        XCTAssertTrue(moved, "rwpeer never moved into the client's namespace: \(output)")
        let events = output.split(separator: "\n").compactMap {
            (try? JSONSerialization.jsonObject(with: Data($0.utf8))) as? [String: Any]
        }
        return (status, events, output)
    }

    func udpPorts() throws -> Set<Int> {
        let table = try String(contentsOfFile: "/proc/net/udp", encoding: .utf8)
        return Set(table.split(separator: "\n").dropFirst().compactMap { line in
            line.split(separator: " ").dropFirst().first?.split(separator: ":").last.flatMap { Int($0, radix: 16) }
        })
    }

    /// A client's broadcast INFORM (as Windows sends it) is answered from the gateway's LAN
    /// address with the configured routes in 121 and 249, DNS, domain and search; malformed,
    /// non-INFORM and foreign-ciaddr datagrams get no answer; a flood gets its burst only; every
    /// outcome is counted, and logged.
    func testAClientsInformIsAnsweredWithTheConnsRoutes() throws {
        try inFreshNetworkNamespace(self) {
            let bed = try VTIDBed(extraConnSettings: Self.informSettings)
            try ip("link", "add", "lan0", "type", "veth", "peer", "name", "lan0peer")
            try ip("link", "set", "lan0", "up")
            try ip("addr", "add", "10.3.0.1/24", "dev", "lan0")
            let vtid = try bed.startVTID()
            XCTAssertEqual(bed.runHook(roadWarrior("up-client", client: 1)).status, 0)
            XCTAssertEqual(try bed.ourRoutes(), ["10.0.1.11"])
            XCTAssertTrue(eventually(within: 10) { vtid.log.contains("answering DHCPINFORM on rwdev for conn rw") }, vtid.log)
            XCTAssertTrue(try udpPorts().contains(67))

            let started = ContinuousClock.now
            let client = try runClient(bed, ["inform", "malformed", "flood"])
            XCTAssertEqual(client.status, 0, client.output)
            let ack = try XCTUnwrap(client.events.first { $0["event"] as? String == "ack" }, client.output)
            XCTAssertEqual(ack["source"] as? String, "10.3.0.1", "the answer comes from the gateway's address inside the routes")
            XCTAssertEqual(ack["server_identifier"] as? String, "10.3.0.1")
            XCTAssertEqual(ack["ciaddr"] as? String, "10.0.1.11")
            XCTAssertEqual(ack["yiaddr"] as? String, "0.0.0.0")
            XCTAssertEqual(ack["lease_time"] as? Bool, false)
            let routes = [["10.3.0.0/24", "10.3.0.1"], ["192.168.50.0/23", "10.3.0.1"]]
            XCTAssertEqual(ack["routes_121"] as? [[String]], routes)
            XCTAssertEqual(ack["routes_249"] as? [[String]], routes)
            XCTAssertEqual(ack["dns"] as? [String], ["10.3.0.53"])
            XCTAssertEqual(ack["domain"] as? String, "corp.example")
            XCTAssertEqual(ack["search"] as? [String], ["corp.example", "example.com"])
            XCTAssertEqual(ack["sent"] as? Int, 1, "answered at the first INFORM")

            let first = try XCTUnwrap(client.events.first { $0["event"] as? String == "first-answer" }, client.output)
            XCTAssertEqual(first["good"] as? Bool, true, "the malformed, DISCOVER and foreign datagrams before it got no answer")
            let flood = try XCTUnwrap(client.events.first { $0["event"] as? String == "flood" }, client.output)
            let answers = try XCTUnwrap(flood["answers"] as? Int)
            let elapsed = started.duration(to: .now)
            // Burst 4, a token every 2 s: what the client had left plus what the run's time refilled.
            XCTAssertLessThanOrEqual(answers, 4 + Int(elapsed / .seconds(2)), "\(flood), \(elapsed)")

            let reply = try JSONSerialization.jsonObject(with: Data(try bed.client.send("metrics"))) as? [String: Any]
            let metrics = try XCTUnwrap(reply?["metrics"] as? String)
            func count(_ outcome: String) -> Int {
                metrics.split(separator: "\n").first { $0.hasPrefix("vtid_dhcp_inform_total{outcome=\"\(outcome)\"}") }
                    .flatMap { $0.split(separator: " ").last }.flatMap { Int($0) } ?? 0
            }
            XCTAssertEqual(count("answered"), 2 + answers, metrics)
            XCTAssertEqual(count("malformed"), 2, metrics)
            XCTAssertEqual(count("ignored"), 1, metrics)
            XCTAssertEqual(count("address-mismatch"), 1, metrics)
            XCTAssertEqual(count("rate-limited"), 20 - answers, metrics)
            XCTAssertTrue(vtid.log.contains("dhcp: malformed datagram from 10.0.1.11:68 on rwdev, no answer: truncated: 100 bytes"), vtid.log)
            XCTAssertTrue(vtid.log.contains("dhcp: ignored DHCPDISCOVER from 10.0.1.11:68 on rwdev"), vtid.log)
            XCTAssertTrue(vtid.log.contains("that client asks too often"), vtid.log)

            // The client's namespace is gone, and the veth with it: so is the socket. A new rwdev
            // gets a new one.
            XCTAssertTrue(eventually(within: 5) { vtid.log.contains("stopped answering DHCPINFORM on rwdev (device gone)") }, vtid.log)
            try ip("link", "add", "rwdev", "type", "veth", "peer", "name", "rwpeer")
            try ip("link", "set", "rwdev", "up")
            XCTAssertTrue(eventually(within: 5) { vtid.log.components(separatedBy: "answering DHCPINFORM on rwdev").count == 3 }, vtid.log)
        }
    }

    /// Off by default: without `dhcp_inform` vtid opens no port 67 socket.
    func testNoDHCPSocketWithoutDHCPInform() throws {
        try inFreshNetworkNamespace(self) {
            let bed = try VTIDBed()
            let vtid = try bed.startVTID()
            XCTAssertEqual(bed.runHook(roadWarrior("up-client", client: 1)).status, 0)
            XCTAssertFalse(try udpPorts().contains(67))
            XCTAssertFalse(vtid.log.contains("DHCPINFORM"), vtid.log)
        }
    }
}
