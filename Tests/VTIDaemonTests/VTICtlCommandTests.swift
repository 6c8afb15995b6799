import ControlProtocol
import Foundation
import KernelTestSupport
import XCTest

/// Every vtictl subcommand as an operator runs it, against a real vtid in a throwaway network
/// namespace (real socket, real kernel), then with vtid stopped. Tables are compared whole, with
/// only times, durations, the pid and the temporary directory masked; `--json` documents have
/// their keys checked against the documented schema (README, "vtictl").
final class VTICtlCommandTests: XCTestCase {
    private func vtictl(_ bed: VTIDBed, _ arguments: String...) -> (status: Int32, text: String) {
        let result = runChild([product("vtictl")] + arguments + ["--run-directory", bed.directory + "/run"])
        XCTAssertTrue(result.launched, "vtictl did not start: build it first (swift build)")
        return (result.status, masked(result.output, bed))
    }

    /// Times of day, durations, the pid, microseconds and the test's directory vary from run to run.
    private func masked(_ text: String, _ bed: VTIDBed) -> String {
        var text = text.replacingOccurrences(of: bed.directory, with: "DIR")
        for (pattern, replacement) in [(#"\d\d:\d\d:\d\d"#, "HH:MM:SS"), (#"pid \d+"#, "pid N"), (#"up \d+s"#, "up Ns"),
                                       (#"applied  \d+ *"#, "applied  µs  "), (#"µs +DETAIL"#, "µs  DETAIL")] {
            text = text.replacingOccurrences(of: pattern, with: replacement, options: .regularExpression)
        }
        return text
    }

    private func object(_ text: String) throws -> [String: Any] {
        try XCTUnwrap(JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any], text)
    }

    private func keys(_ value: Any?) -> Set<String> { Set((value as? [String: Any])?.keys ?? [:].keys) }

    private let leaseKeys: Set<String> = ["address", "connection", "peerID", "peerAddress", "firstSeen", "lastSeen", "connected",
                                          "spiIn", "spiOut", "inBytes", "outBytes"]

    /// `status --json` gives each conn its device's state and MTU, as the table's STATE and MTU
    /// columns do, from the kernel: with and without a conn named, up, down and missing.
    func testStatusJSONGivesEachConnItsDeviceStateAndMTU() throws {
        try inFreshNetworkNamespace(self) {
            let bed = try VTIDBed()
            _ = try bed.startVTID()
            try ip("link", "set", "rwdev", "mtu", "1400")
            func conn() throws -> [String: Any] {
                let text = vtictl(bed, "status", "--json").text
                XCTAssertEqual(text.split(separator: "\n").count, 1, "vtid's answer passed through with only its conns re-encoded, not decoded and pretty-printed whole")
                let json = try object(text)
                XCTAssertEqual(json["vtidRunning"] as? Bool, true)
                let named = try object(vtictl(bed, "status", "rw", "--json").text)
                let all = (json["vtid"] as? [String: Any])?["connections"] as? [[String: Any]]
                let one = (named["vtid"] as? [String: Any])?["connections"] as? [[String: Any]]
                XCTAssertEqual(all?.count, 1)
                XCTAssertEqual(all?.first?["deviceState"] as? String, one?.first?["deviceState"] as? String, "status rw --json agrees")
                XCTAssertEqual(all?.first?["deviceMTU"] as? Int, one?.first?["deviceMTU"] as? Int, "status rw --json agrees")
                XCTAssertEqual(all?.first?["location"] as? String, "DIR/ipsec.conf:1", "the rest as vtid sent it")
                return try XCTUnwrap(all?.first)
            }
            var rw = try conn()
            XCTAssertEqual(rw["deviceState"] as? String, "up")
            XCTAssertEqual(rw["deviceMTU"] as? Int, 1400)
            // vtid's answer, byte for byte, with the two fields added (scripts grep it: the test bed's scenarios do).
            let fromVTID = String(decoding: try bed.client.send("status"), as: UTF8.self)
            let text = runChild([product("vtictl"), "status", "--json", "--run-directory", bed.directory + "/run"]).output
            let passed = text.components(separatedBy: "\"vtid\":").last?.components(separatedBy: ",\"vtidRunning\":true}").first
            XCTAssertEqual(passed?.replacingOccurrences(of: ",\"deviceState\":\"up\",\"deviceMTU\":1400", with: ""), fromVTID)
            XCTAssertTrue(vtictl(bed, "status").text.contains("rw    rwdev   up     1400"), "the table says the same")
            try ip("link", "set", "rwdev", "down")
            rw = try conn()
            XCTAssertEqual(rw["deviceState"] as? String, "down")
            XCTAssertEqual(rw["deviceMTU"] as? Int, 1400)
            try ip("link", "del", "rwdev")
            rw = try conn()
            XCTAssertEqual(rw["deviceState"] as? String, "missing")
            XCTAssertNil(rw["deviceMTU"], "no device, no MTU")
        }
    }

    /// `status` marks each route vtid keeps as announced while the kernel holds it with vtid's
    /// protocol (what BIRD's kernel protocol learns and exports), and as not announced, with why,
    /// when it does not; table and JSON agree.
    func testStatusSaysWhichRoutesAreAnnounced() throws {
        try inFreshNetworkNamespace(self) {
            let bed = try VTIDBed()
            _ = try bed.startVTID()
            XCTAssertEqual(bed.runHook(roadWarrior("up-client", client: 1)).status, 0)
            func routes() throws -> [[String: Any]] {
                let json = try object(vtictl(bed, "status", "--json").text)
                let announcements = try XCTUnwrap(json["announcements"] as? [String: Any], "\(json.keys)")
                XCTAssertEqual(Set(announcements.keys), ["routeProtocol", "vtidAnswered", "routes", "birdCheck"])
                XCTAssertEqual(announcements["routeProtocol"] as? Int, 157)
                return try XCTUnwrap(announcements["routes"] as? [[String: Any]])
            }
            var table = vtictl(bed, "status").text
            XCTAssertTrue(table.contains("""
                ROUTE         DEVICE  TABLE  CONN  CLIENT        ANNOUNCED
                10.0.1.11/32  rwdev   main   rw    10.0.1.11/32  yes
                birdc show route export PROTOCOL (PROTOCOL: the BGP session's name in bird.conf) lists what BIRD announces; it learns the kernel's routes with protocol 157
                """), table)
            var entries = try routes()
            XCTAssertEqual(entries.count, 1)
            XCTAssertEqual(Set(entries[0].keys), ["destination", "device", "table", "connection", "peerClient", "recorded", "announced"])
            XCTAssertEqual(entries[0]["announced"] as? Bool, true)

            // The device goes: the kernel drops the route, vtid keeps its record (it removes
            // nothing without knowing the tunnel is gone), and the route is not announced.
            try ip("link", "del", "rwdev")
            table = vtictl(bed, "status").text
            XCTAssertTrue(table.contains("10.0.1.11/32  rwdev   main   rw    10.0.1.11/32  NO: its device rwdev does not exist"), table)
            entries = try routes()
            XCTAssertEqual(entries.first?["announced"] as? Bool, false)
            XCTAssertEqual(entries.first?["why"] as? String, "its device rwdev does not exist")
        }
    }

    func testEverySubcommandAgainstARunningVTIDAndWithoutIt() throws {
        try inFreshNetworkNamespace(self) {
            let bed = try VTIDBed()
            let vtid = try bed.startVTID()
            XCTAssertEqual(bed.runHook(roadWarrior("up-client", client: 1)).status, 0)
            XCTAssertEqual(bed.runHook(roadWarrior("up-client", client: 2)).status, 0)
            // A route with vtid's protocol on a device vtid does not manage: shown, never pruned.
            try ip("link", "add", "other0", "type", "veth", "peer", "name", "other0peer")
            try ip("link", "set", "other0", "up")
            try ip("route", "add", "198.18.0.0/24", "dev", "other0", "proto", "157")

            let status = vtictl(bed, "status")
            XCTAssertEqual(status.status, 0)
            XCTAssertEqual(status.text, """
                vtid: running (pid N, up Ns, 2 events applied, 0 failed), DIR/vtid.yaml

                CONN  DEVICE  STATE  MTU   MARK/IF_ID     SHARED  PEER  SAS SINCE  IN BYTES/PKTS  OUT BYTES/PKTS  POOL                  CLIENTS  DEFINED AT
                rw    rwdev   up     1500  12/0xffffffff  yes     -     -          0/0            0/0             10.0.1.10-10.0.3.250  2        DIR/ipsec.conf:1

                CLIENT     CONN  PEER ID   PEER         STATE      SINCE     IN BYTES  OUT BYTES
                10.0.1.11  rw    @client1  192.0.2.101  connected  HH:MM:SS  0         0
                10.0.1.12  rw    @client2  192.0.2.102  connected  HH:MM:SS  0         0

                ROUTE          DEVICE  TABLE  CONN  CLIENT        ANNOUNCED
                10.0.1.11/32   rwdev   main   rw    10.0.1.11/32  yes
                10.0.1.12/32   rwdev   main   rw    10.0.1.12/32  yes
                198.18.0.0/24  other0  main   -     -             yes (not recorded by vtid)
                birdc show route export PROTOCOL (PROTOCOL: the BGP session's name in bird.conf) lists what BIRD announces; it learns the kernel's routes with protocol 157

                no tunnel devices (VTI or XFRM interface)

                no IPsec SAs

                """)
            let unrecorded = "198.18.0.0/24  other0  main   -     -             yes (not recorded by vtid)\n"
            XCTAssertEqual(vtictl(bed, "status", "rw").text,
                           status.text.replacingOccurrences(of: unrecorded, with: "").replacingOccurrences(of: "ROUTE          ", with: "ROUTE         ")
                               .replacingOccurrences(of: "10.0.1.11/32   ", with: "10.0.1.11/32  ").replacingOccurrences(of: "10.0.1.12/32   ", with: "10.0.1.12/32  "),
                           "the one conn is all there is; a route vtid has no record of belongs to no conn")
            XCTAssertTrue(vtictl(bed, "status", "other").text.contains("no route-based conns"), "an unknown conn filters everything out")

            let statusJSON = try object(vtictl(bed, "status", "--json").text)
            XCTAssertEqual(Set(statusJSON.keys), ["kernel", "vtid", "vtidRunning", "announcements"])
            let announced = try XCTUnwrap(statusJSON["announcements"] as? [String: Any])
            XCTAssertEqual(Set(announced.keys), ["routeProtocol", "vtidAnswered", "routes", "birdCheck"])
            XCTAssertEqual((announced["routes"] as? [[String: Any]])?.map { $0["announced"] as? Bool }, [true, true, true])
            XCTAssertEqual((announced["routes"] as? [[String: Any]])?.map { $0["recorded"] as? Bool }, [true, true, false])
            XCTAssertEqual(statusJSON["vtidRunning"] as? Bool, true)
            XCTAssertEqual(keys(statusJSON["kernel"]), ["devices", "securityAssociations"])
            let reply = try XCTUnwrap(statusJSON["vtid"] as? [String: Any])
            XCTAssertEqual(Set(reply.keys), ["version", "ok", "daemon", "connections", "leases", "problems", "l2tpClients"])
            XCTAssertEqual(keys(reply["daemon"]), ["version", "pid", "started", "configurationFile", "ipsecConf", "eventsApplied", "eventsFailed",
                                                   "eventsNotRecorded", "degraded"])
            let connection = try XCTUnwrap((reply["connections"] as? [Any])?.first)
            XCTAssertEqual(keys(connection), ["name", "location", "markIn", "markOut", "device", "shared", "routing", "managed", "addressPool", "traffic",
                                              "deviceState", "deviceMTU"])
            // The host has no ESP, so no SA: the test bed's scenarios check peers and counters.
            XCTAssertEqual(keys((connection as? [String: Any])?["traffic"]),
                           ["peers", "associations", "inBytes", "outBytes", "inPackets", "outPackets"])
            XCTAssertEqual((reply["leases"] as? [Any])?.map(keys), [leaseKeys, leaseKeys])
            XCTAssertEqual(try object(vtictl(bed, "status", "rw", "--json").text)["vtidRunning"] as? Bool, true)

            XCTAssertEqual(vtictl(bed, "leases").text, """
                CLIENT     CONN  PEER ID   PEER         STATE      FIRST SEEN  LAST SEEN  IN BYTES  OUT BYTES
                10.0.1.11  rw    @client1  192.0.2.101  connected  HH:MM:SS    HH:MM:SS   0         0
                10.0.1.12  rw    @client2  192.0.2.102  connected  HH:MM:SS    HH:MM:SS   0         0

                """)
            XCTAssertEqual(bed.runHook(roadWarrior("down-client", client: 1, extra: ["PLUTO_INBYTES": "4200", "PLUTO_OUTBYTES": "3100"])).status, 0)
            XCTAssertEqual(vtictl(bed, "leases", "--connected").text, """
                CLIENT     CONN  PEER ID   PEER         STATE      FIRST SEEN  LAST SEEN  IN BYTES  OUT BYTES
                10.0.1.12  rw    @client2  192.0.2.102  connected  HH:MM:SS    HH:MM:SS   0         0

                """)
            let leasesJSON = try object(vtictl(bed, "leases", "--json").text)
            XCTAssertEqual(Set(leasesJSON.keys), ["version", "ok", "leases", "l2tpClients"])
            let gone = try XCTUnwrap((leasesJSON["leases"] as? [[String: Any]])?.first)
            XCTAssertEqual(gone["connected"] as? Bool, false)
            XCTAssertEqual(gone["inBytes"] as? Int, 4200)

            let routes = vtictl(bed, "routes")
            XCTAssertEqual(routes.status, 0)
            XCTAssertEqual(routes.text, """
                DESTINATION   DEVICE  TABLE  VIA  SOURCE  CONN  CLIENT        REQID  KERNEL
                10.0.1.12/32  rwdev   main   -    -       rw    10.0.1.12/32  16408  installed

                NOT RECORDED BY VTID  DEVICE  TABLE
                198.18.0.0/24         other0  main

                """)
            let routesJSON = try object(vtictl(bed, "routes", "--json").text)
            XCTAssertEqual(Set(routesJSON.keys), ["vtidRunning", "routeProtocol", "routes", "unrecorded"])
            let entry = try XCTUnwrap((routesJSON["routes"] as? [Any])?.first)
            XCTAssertEqual(keys(entry), ["route", "inKernel"])
            XCTAssertEqual(keys((entry as? [String: Any])?["route"]), ["destination", "device", "table", "connection", "peerClient", "reqid"])

            XCTAssertEqual(vtictl(bed, "events", "--limit", "2").text, """
                #  TIME      VERB         CONN  BY    RESULT   µs  DETAIL
                2  HH:MM:SS  up-client    rw    vtid  applied  µs  route 10.0.1.12/32 dev rwdev proto 157
                3  HH:MM:SS  down-client  rw    vtid  applied  µs  removed route 10.0.1.11/32 dev rwdev proto 157

                """)
            let eventsJSON = try object(vtictl(bed, "events", "--json").text)
            XCTAssertEqual(Set(eventsJSON.keys), ["version", "ok", "events"])
            XCTAssertEqual((eventsJSON["events"] as? [Any])?.map(keys).first,
                           ["sequence", "time", "key", "verb", "connection", "source", "result", "lines", "microseconds"])

            XCTAssertEqual(vtictl(bed, "reconcile", "--dry-run").text, "nothing to repair: the kernel holds what vtid wants\n")
            try ip("route", "del", "10.0.1.12/32", "dev", "rwdev")
            let repaired = vtictl(bed, "reconcile")
            XCTAssertEqual(repaired.status, 0)
            XCTAssertTrue(["nothing needed repair\n", "route 10.0.1.12/32 dev rwdev proto 157\n"].contains(repaired.text) || repaired.text.contains("10.0.1.12/32"),
                          "either the route monitor was first or this pass put it back: \(repaired.text)")
            XCTAssertTrue(eventually(within: 5) { (try? bed.ourRoutes()) == ["10.0.1.12"] })
            XCTAssertEqual(vtictl(bed, "reload").text, "vtid reloaded its configuration\n")
            XCTAssertTrue(vtictl(bed, "metrics").text.contains(#"vtid_events_total{verb="up-client",result="applied"} 2"#))
            // One release for the three programs (and the Debian package, which takes it from here).
            XCTAssertEqual(runChild([product("vtictl"), "version"]).output, "vtictl \(vtictlRelease)\n")
            XCTAssertEqual(runChild([product("vtid"), "--version"]).output, "vtid \(vtictlRelease)\n")
            XCTAssertEqual(runChild([product("vti-updown"), "--version"]).output, "vti-updown \(vtictlRelease)\n")

            // vtid stopped: status and routes show the kernel and say so; the rest fail in one sentence.
            XCTAssertEqual(vtid.stop(), 0)
            let down = "vtid is not running (nothing listens on DIR/run/control.sock)"
            let statusDown = vtictl(bed, "status")
            XCTAssertEqual(statusDown.status, 0)
            XCTAssertEqual(statusDown.text, """
                vtid: NOT RUNNING (\(down)); showing what the kernel holds

                ROUTE          DEVICE  TABLE  CONN  CLIENT  ANNOUNCED
                10.0.1.12/32   rwdev   main   -     -       yes
                198.18.0.0/24  other0  main   -     -       yes
                birdc show route export PROTOCOL (PROTOCOL: the BGP session's name in bird.conf) lists what BIRD announces; it learns the kernel's routes with protocol 157

                no tunnel devices (VTI or XFRM interface)

                no IPsec SAs

                """)
            let statusDownJSON = try object(vtictl(bed, "status", "--json").text)
            XCTAssertEqual(statusDownJSON["vtidRunning"] as? Bool, false)
            XCTAssertEqual(statusDownJSON["vtidError"] as? String, down.replacingOccurrences(of: "DIR", with: bed.directory))
            XCTAssertEqual(vtictl(bed, "routes").text, """
                vtid: NOT RUNNING (\(down)); showing the kernel's routes with protocol 157

                DESTINATION    DEVICE  TABLE
                10.0.1.12/32   rwdev   main
                198.18.0.0/24  other0  main

                """)
            // With vtid down, routes reads the protocol from vtid.yaml.
            try "routes:\n  protocol: 158\n".write(toFile: bed.directory + "/proto158.yaml", atomically: true, encoding: .utf8)
            try ip("route", "add", "198.19.0.0/24", "dev", "other0", "proto", "158")
            XCTAssertEqual(vtictl(bed, "routes", "--config", bed.directory + "/proto158.yaml").text, """
                vtid: NOT RUNNING (\(down)); showing the kernel's routes with protocol 158

                DESTINATION    DEVICE  TABLE
                198.19.0.0/24  other0  main

                """)
            for command in [["leases"], ["events"], ["reconcile", "--dry-run"], ["reload"], ["metrics"]] {
                let result = runChild([product("vtictl")] + command + ["--run-directory", bed.directory + "/run"])
                XCTAssertEqual(result.status, 1, "\(command)")
                XCTAssertEqual(masked(result.output, bed), "vtictl: \(down)\n", "\(command)")
            }
        }
    }
}
