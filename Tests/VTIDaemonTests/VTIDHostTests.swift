import ControlProtocol
import Foundation
import KernelTestSupport
import VTIClient
import XCTest

/// vtid as a real process, with real vti-updown processes, on the host kernel in a throwaway
/// network namespace. The host has no VTI, so the road-warrior conn routes into a veth through the
/// `existing_device` setting; the UML test bed covers real VTI devices and pluto.
final class VTIDHostTests: XCTestCase {
    func testHookEventsGoThroughVTIDAndLeasesAreRecorded() throws {
        try inFreshNetworkNamespace(self) {
            let bed = try VTIDBed()
            let vtid = try bed.startVTID()
            XCTAssertEqual(bed.runHook(roadWarrior("up-client", client: 1)).status, 0)
            XCTAssertEqual(bed.runHook(roadWarrior("up-client", client: 2)).status, 0)
            XCTAssertEqual(try bed.ourRoutes(), ["10.0.1.11", "10.0.1.12"])
            var leases = try bed.client.fetch("leases", as: LeasesReply.self).leases
            XCTAssertEqual(leases.map(\.address), ["10.0.1.11", "10.0.1.12"])
            XCTAssertEqual(leases.map(\.peerID), ["@client1", "@client2"])
            XCTAssertEqual(leases.map(\.connected), [true, true])

            let down = bed.runHook(roadWarrior("down-client", client: 1, extra: ["PLUTO_INBYTES": "4200", "PLUTO_OUTBYTES": "3100"]))
            XCTAssertEqual(down.status, 0, down.output)
            XCTAssertTrue(down.output.contains("removed route 10.0.1.11/32 dev rwdev"), "the hook prints vtid's lines for pluto's log: \(down.output)")
            XCTAssertEqual(try bed.ourRoutes(), ["10.0.1.12"], "only client 1's route went")
            leases = try bed.client.fetch("leases", as: LeasesReply.self).leases
            XCTAssertEqual(leases.map(\.connected), [false, true])
            XCTAssertEqual(leases[0].inBytes, 4200)

            let events = try bed.client.fetch("events", as: EventsReply.self).events
            XCTAssertEqual(events.map(\.verb), ["up-client", "up-client", "down-client"])
            XCTAssertEqual(Set(events.map(\.source)), [.vtid])
            XCTAssertEqual(Set(events.map(\.result)), [.applied])
            XCTAssertTrue(vtid.log.contains("down-client rw 192.0.2.101 10.0.1.11/32"), "one log line per change:\n\(vtid.log)")

            let metrics = String(decoding: try bed.client.send("metrics"), as: UTF8.self)
            XCTAssertTrue(metrics.contains(#"vtid_events_total{verb=\"up-client\",result=\"applied\"} 2"#), metrics)
            XCTAssertEqual(vtid.stop(), 0)
            XCTAssertEqual(try bed.ourRoutes(), ["10.0.1.12"], "stopping vtid leaves routes in place")
        }
    }

    func testHostileEventIsRefusedByVTIDAndChangesNothing() throws {
        try inFreshNetworkNamespace(self) {
            let bed = try VTIDBed()
            let vtid = try bed.startVTID()
            let result = bed.runHook(roadWarrior("up-client", client: 1, extra: ["VTI_IFACE": "$(reboot)"]))
            XCTAssertEqual(result.status, 1)
            XCTAssertTrue(result.output.contains("VTI_IFACE"), result.output)
            XCTAssertEqual(try bed.ourRoutes(), [])
            XCTAssertEqual(try bed.client.fetch("leases", as: LeasesReply.self).leases, [])
            // The hook refused it first; vtid's history still shows it (issue 15: rejections travel too).
            var events = try bed.client.fetch("events", as: EventsReply.self).events
            XCTAssertEqual(events.map(\.result), [.rejected])
            XCTAssertTrue(events[0].error?.contains("VTI_IFACE") == true, "\(events)")
            // With vtid away the refusal waits in the spool.
            XCTAssertEqual(vtid.stop(), 0)
            XCTAssertEqual(bed.runHook(roadWarrior("up-client", client: 2, extra: ["VTI_IFACE": "$(reboot)"])).status, 1)
            _ = try bed.startVTID()
            events = try bed.client.fetch("events", as: EventsReply.self).events
            XCTAssertEqual(events.map(\.result), [.rejected])
            XCTAssertEqual(events.map(\.source), [.hook])
        }
    }

    func testFallbackWhenVTIDIsDownIsPickedUpWhenItReturns() throws {
        try inFreshNetworkNamespace(self) {
            let bed = try VTIDBed()
            var vtid = try bed.startVTID()
            XCTAssertEqual(bed.runHook(roadWarrior("up-client", client: 1)).status, 0)
            XCTAssertEqual(vtid.stop(), 0)

            // vtid is down: the hook applies the event itself and leaves it in the spool.
            let alone = bed.runHook(roadWarrior("up-client", client: 2))
            XCTAssertEqual(alone.status, 0, alone.output)
            XCTAssertEqual(try bed.ourRoutes(), ["10.0.1.11", "10.0.1.12"])
            XCTAssertEqual(try bed.spoolFiles().count, 1)

            vtid = try bed.startVTID()
            let leases = try bed.client.fetch("leases", as: LeasesReply.self).leases
            XCTAssertEqual(leases.map(\.address), ["10.0.1.11", "10.0.1.12"], "vtid knows the client that came while it was down")
            let events = try bed.client.fetch("events", as: EventsReply.self).events
            XCTAssertEqual(events.map(\.source), [.hook])
            XCTAssertEqual(try bed.spoolFiles(), [])

            // A restart keeps the lease table.
            XCTAssertEqual(vtid.stop(), 0)
            vtid = try bed.startVTID()
            XCTAssertEqual(try bed.client.fetch("leases", as: LeasesReply.self).leases, leases)
        }
    }

    /// vtid is stalled with the event in its queue: the hook gives up, applies the event itself under
    /// the apply lock, and when vtid resumes its "accepted" fails, so it does not apply it again.
    func testStalledVTIDAndHookNeverBothApplyAnEvent() throws {
        try inFreshNetworkNamespace(self) {
            let bed = try VTIDBed(extraTopLevel: "hook_deadline_ms: 300\n")
            let vtid = try bed.startVTID()
            vtid.signal(SIGSTOP)
            let result = bed.runHook(roadWarrior("up-client", client: 1))
            XCTAssertEqual(result.status, 0, result.output)
            XCTAssertTrue(result.output.contains("vtid did not take the event within 300 ms; applying it here"), result.output)
            XCTAssertEqual(try bed.ourRoutes(), ["10.0.1.11"])
            vtid.signal(SIGCONT)
            XCTAssertTrue(eventually(within: 10) { (try? bed.client.fetch("events", as: EventsReply.self).events.count) == 1 })
            let events = try bed.client.fetch("events", as: EventsReply.self).events
            XCTAssertEqual(events.map(\.source), [.hook], "applied once, by the hook; vtid recorded it from the spool")
            XCTAssertTrue(eventually(within: 5) { vtid.log.contains("the hook gave up waiting for vtid and applies the event itself") }, vtid.log)
        }
    }

    func testConcurrentHooksAreSerializedAndNothingIsLost() throws {
        try inFreshNetworkNamespace(self) {
            let bed = try VTIDBed()
            _ = try bed.startVTID()
            let count = 300
            let pids = try (1...count).map { client in
                try spawn(bed.hookCommand(), environment: roadWarrior("up-client", client: client))
            }
            let statuses = pids.map(waitForExit)
            XCTAssertEqual(statuses.filter { $0 != 0 }.count, 0, "every hook exits 0")
            let routes = try bed.ourRoutes()
            XCTAssertEqual(routes.count, count)
            XCTAssertEqual(Set(routes), Set((1...count).map { clientAddress($0) }))
            let leases = try bed.client.fetch("leases", as: LeasesReply.self).leases
            XCTAssertEqual(Set(leases.map(\.address)), Set(routes))
            XCTAssertTrue(leases.allSatisfy(\.connected))
            let events = try bed.client.fetch("events", as: EventsReply.self).events
            XCTAssertEqual(events.count, count)
            XCTAssertEqual(Set(events.map(\.source)), [.vtid], "vtid took them all; no fallback was needed")
        }
    }

    /// Even if someone opens up the socket file's mode, vtid itself refuses callers that are not
    /// root, its own user or the configured group.
    func testOnlyRootAndTheSocketGroupMayAsk() throws {
        try inFreshNetworkNamespace(self) {
            let bed = try VTIDBed()
            _ = try bed.startVTID()
            let socket = bed.directory + "/run/control.sock"
            XCTAssertEqual(try FileManager.default.attributesOfItem(atPath: socket)[.posixPermissions] as? Int, 0o600)
            XCTAssertEqual(chmod(socket, 0o666), 0)
            chmod(bed.directory, 0o755)
            let asNobody = runChild(["/usr/bin/setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
                                     product("vtictl"), "leases", "--run-directory", bed.directory + "/run"])
            XCTAssertEqual(asNobody.status, 1, asNobody.output)
            XCTAssertTrue(asNobody.output.contains("vtictl: vtid: vtid refused the request: uid 65534 is not root; vtid has no socket_group"), asNobody.output)
            let asRoot = runChild([product("vtictl"), "leases", "--run-directory", bed.directory + "/run"])
            XCTAssertEqual(asRoot.status, 0, asRoot.output)
            XCTAssertTrue(asRoot.output.contains("no leases"), asRoot.output)
        }
    }

    func testVTICtlSaysWhenVTIDIsNotRunning() throws {
        try inFreshNetworkNamespace(self) {
            let bed = try VTIDBed()
            let result = runChild([product("vtictl"), "leases", "--run-directory", bed.directory + "/run"])
            XCTAssertEqual(result.status, 1)
            XCTAssertEqual(result.output, "vtictl: vtid is not running (nothing listens on \(bed.directory)/run/control.sock)\n")
            let status = runChild([product("vtictl"), "status", "--run-directory", bed.directory + "/run"])
            XCTAssertEqual(status.status, 0, status.output)
            XCTAssertTrue(status.output.hasPrefix("vtid: NOT RUNNING (vtid is not running (nothing listens on"), status.output)
            XCTAssertTrue(status.output.contains("no tunnel devices (VTI or XFRM interface)"), status.output)
        }
    }

    func testBrokenConfigurationStopsVTIDFromStarting() throws {
        try inFreshNetworkNamespace(self) {
            let bed = try VTIDBed()
            try "run_directory: \(bed.directory)/run\nroutes:\n  protocol: 3\n".write(toFile: bed.configurationPath, atomically: true, encoding: .utf8)
            let result = runChild([product("vtid"), "--config", bed.configurationPath])
            XCTAssertEqual(result.status, 1)
            XCTAssertTrue(result.output.contains("\(bed.configurationPath):3: routes.protocol must be a number from 5 to 255, not 3"), result.output)
            XCTAssertTrue(result.output.contains("not starting"), result.output)

            try "conn bad\n    mark=12/0xffffffff\n    vti-interface=vti0\n    leftsubnet=10.0.0.0/33\n".write(toFile: bed.ipsecConfPath, atomically: true, encoding: .utf8)
            try bed.writeConfiguration()
            let ipsec = runChild([product("vtid"), "--config", bed.configurationPath])
            XCTAssertEqual(ipsec.status, 1)
            XCTAssertTrue(ipsec.output.contains("\(bed.ipsecConfPath):4:"), ipsec.output)
        }
    }

    /// An include of a file that is not there: `vtid --check` and a start refuse with the
    /// include's FILE:LINE, a reload keeps the running configuration and says why; a wildcard
    /// include that matches nothing changes nothing.
    func testAMissingIncludeStopsVTIDAndFailsAReload() throws {
        try inFreshNetworkNamespace(self) {
            let bed = try VTIDBed()
            let original = try String(contentsOfFile: bed.ipsecConfPath, encoding: .utf8)
            try (original + "include \(bed.directory)/ipsec.d/*.conf\n").write(toFile: bed.ipsecConfPath, atomically: true, encoding: .utf8)
            let wildcard = runChild([product("vtid"), "--check", "--config", bed.configurationPath])
            XCTAssertEqual(wildcard.status, 0, wildcard.output)

            let broken = original + "include \(bed.directory)/ipsec.d/*.conf\ninclude branch.conf\n"
            let line = original.split(separator: "\n", omittingEmptySubsequences: false).count + 1
            let problem = "\(bed.ipsecConfPath):\(line): include \(bed.directory)/branch.conf: no such file; its conns would be missing"
            try broken.write(toFile: bed.ipsecConfPath, atomically: true, encoding: .utf8)
            let check = runChild([product("vtid"), "--check", "--config", bed.configurationPath])
            XCTAssertEqual(check.status, 1, check.output)
            XCTAssertTrue(check.output.contains(problem), check.output)
            // (A vtid that starts regardless would serve until stopped: 10 s, then it fails the test.)
            let start = runChild(["/usr/bin/timeout", "10", product("vtid"), "--config", bed.configurationPath])
            XCTAssertEqual(start.status, 1, start.output)
            XCTAssertTrue(start.output.contains(problem) && start.output.contains("not starting"), start.output)

            try original.write(toFile: bed.ipsecConfPath, atomically: true, encoding: .utf8)
            let vtid = try bed.startVTID()
            try broken.write(toFile: bed.ipsecConfPath, atomically: true, encoding: .utf8)
            XCTAssertThrowsError(try bed.client.send("reload")) { error in
                XCTAssertTrue("\(error)".contains(problem), "\(error)")
            }
            XCTAssertTrue(eventually(within: 5) { vtid.log.contains("reload failed, keeping the running configuration: \(problem)") }, vtid.log)
            XCTAssertEqual(try bed.client.fetch("status", as: StatusReply.self).connections.map(\.name), ["rw"], "the running configuration stays")
        }
    }

    func testReloadWithBrokenFileKeepsTheRunningConfiguration() throws {
        try inFreshNetworkNamespace(self) {
            let bed = try VTIDBed()
            let vtid = try bed.startVTID()
            try (try String(contentsOfFile: bed.configurationPath, encoding: .utf8) + "mtu: huge\n")
                .write(toFile: bed.configurationPath, atomically: true, encoding: .utf8)
            vtid.signal(SIGHUP)
            XCTAssertTrue(eventually(within: 5) { vtid.log.contains("reload failed, keeping the running configuration") }, vtid.log)
            XCTAssertTrue(vtid.log.contains("mtu must be auto or a number from 576 to 9000"), vtid.log)
            let status = try bed.client.fetch("status", as: StatusReply.self)
            XCTAssertNotNil(status.daemon.reloadError)
            // Still routing into the existing device, as configured before the broken reload.
            XCTAssertEqual(bed.runHook(roadWarrior("up-client", client: 1)).status, 0)
            XCTAssertEqual(try bed.ourRoutes(), ["10.0.1.11"])
            XCTAssertThrowsError(try bed.client.send("reload")) { error in
                XCTAssertTrue("\(error)".contains("reload failed, the running configuration stays"), "\(error)")
            }
        }
    }

    func testProxyNeighbourForPoolAddressesOnTheLAN() throws {
        try inFreshNetworkNamespace(self) {
            let bed = try VTIDBed(extraConnSettings: "    proxy_arp: lan0\n")
            try ip("link", "add", "lan0", "type", "veth", "peer", "name", "lan0peer")
            _ = try bed.startVTID()
            XCTAssertEqual(bed.runHook(roadWarrior("up-client", client: 1)).status, 0)
            XCTAssertTrue(try ip("neigh", "show", "proxy").contains("10.0.1.11 dev lan0"))
            // Lost while the client is connected (a LAN device that goes down loses its proxy
            // entries): the next reconcile pass puts it back.
            try ip("neigh", "del", "proxy", "10.0.1.11", "dev", "lan0")
            XCTAssertFalse(try ip("neigh", "show", "proxy").contains("10.0.1.11"))
            let repaired = String(decoding: try bed.client.send("reconcile"), as: UTF8.self)
            XCTAssertTrue(repaired.contains("proxy neighbour 10.0.1.11 on lan0 restored"), repaired)
            XCTAssertTrue(try ip("neigh", "show", "proxy").contains("10.0.1.11 dev lan0"))
            // Someone else's entry on the same device is never vtid's to remove.
            try ip("neigh", "add", "proxy", "10.0.9.9", "dev", "lan0")
            XCTAssertEqual(bed.runHook(roadWarrior("down-client", client: 1)).status, 0)
            XCTAssertFalse(try ip("neigh", "show", "proxy").contains("10.0.1.11"))
            _ = try bed.client.send("reconcile")
            XCTAssertFalse(try ip("neigh", "show", "proxy").contains("10.0.1.11"), "a disconnected client's entry came back")
            XCTAssertTrue(try ip("neigh", "show", "proxy").contains("10.0.9.9 dev lan0"))
        }
    }

    /// An IPv6 pool address gets a proxy NDP entry, and the LAN device proxy_ndp=1, without which
    /// the kernel answers no neighbour solicitation for it (issue 19).
    func testProxyNDPForIPv6PoolAddressesOnTheLAN() throws {
        try inFreshNetworkNamespace(self) {
            let bed = try VTIDBed(extraConnSettings: "    proxy_arp: lan0\n")
            try ip("link", "add", "lan0", "type", "veth", "peer", "name", "lan0peer")
            _ = try bed.startVTID()
            let v6 = ["PLUTO_MY_CLIENT": "::/0", "PLUTO_PEER_CLIENT": "2001:db8:1::11/128"]
            XCTAssertEqual(try String(contentsOfFile: "/proc/sys/net/ipv6/conf/lan0/proxy_ndp", encoding: .utf8), "0\n")
            XCTAssertEqual(bed.runHook(roadWarrior("up-client", client: 1, extra: v6)).status, 0)
            XCTAssertTrue(try ip("-6", "neigh", "show", "proxy").contains("2001:db8:1::11 dev lan0"))
            XCTAssertEqual(try String(contentsOfFile: "/proc/sys/net/ipv6/conf/lan0/proxy_ndp", encoding: .utf8), "1\n")
            XCTAssertEqual(bed.runHook(roadWarrior("down-client", client: 1, extra: v6)).status, 0)
            XCTAssertFalse(try ip("-6", "neigh", "show", "proxy").contains("2001:db8:1::11"))
        }
    }

    func testPolicyRoutingForARoutedPrefix() throws {
        try inFreshNetworkNamespace(self) {
            let bed = try VTIDBed(extraTopLevel: """
                policy_routing:
                  - from: 203.0.113.0/28
                    table: 100
                    priority: 1000
                    via: 192.0.2.1
                    device: uplink0

                """)
            try ip("link", "add", "uplink0", "type", "veth", "peer", "name", "uplink0peer")
            try ip("link", "set", "uplink0", "up")
            try ip("addr", "add", "192.0.2.2/24", "dev", "uplink0")
            let vtid = try bed.startVTID()
            XCTAssertTrue(eventually(within: 5) { (try? ip("rule", "show"))?.contains("1000:\tfrom 203.0.113.0/28 lookup 100") == true },
                          (try? ip("rule", "show")) ?? "")
            XCTAssertTrue(try ip("route", "show", "table", "100").contains("default via 192.0.2.1 dev uplink0 proto 157"))
            // A restart finds both in place and adds no second rule.
            XCTAssertEqual(vtid.stop(), 0)
            _ = try bed.startVTID()
            XCTAssertEqual(try ip("rule", "show").components(separatedBy: "203.0.113.0/28").count, 2)
        }
    }
}

/// The address client N gets from the pool.
func clientAddress(_ client: Int) -> String { "10.0.\(1 + (client + 10) / 250).\((client + 10) % 250)" }

/// A road-warrior server's event for client N, as libreswan 4.10 sends it (trimmed to what matters).
func roadWarrior(_ verb: String, client: Int, extra: [String: String] = [:]) -> [String: String] {
    var environment = [
        "PATH": "/usr/sbin:/usr/bin:/sbin:/bin",
        "PLUTO_VERB": verb, "PLUTO_CONNECTION": "rw", "PLUTO_CONN_KIND": "CK_INSTANCE", "PLUTO_CONN_ADDRFAMILY": "ipv4",
        "PLUTO_ME": "192.0.2.2", "PLUTO_MY_CLIENT": "0.0.0.0/0", "PLUTO_MY_ID": "@east",
        "PLUTO_PEER": "192.0.2.\(100 + client % 150)", "PLUTO_PEER_CLIENT": "\(clientAddress(client))/32",
        "PLUTO_PEER_ID": "@client\(client)", "PLUTO_CFG_SERVER": "1", "PLUTO_CFG_CLIENT": "0",
        "PLUTO_INTERFACE": "eth0", "PLUTO_SA_REQID": "\(16400 + 4 * client)",
        "SPI_IN": "0x\(String(0x1000_0000 + client, radix: 16))", "SPI_OUT": "0x\(String(0x2000_0000 + client, radix: 16))",
        "CONNMARK_IN": "12/0xffffffff", "CONNMARK_OUT": "12/0xffffffff",
        "VTI_IFACE": "vti02", "VTI_ROUTING": "yes", "VTI_SHARED": "yes",
    ]
    environment.merge(extra) { $1 }
    return environment
}

/// A directory with vtid.yaml, hook.conf and an ipsec.conf, and the veth that stands in for the
/// road-warrior conn's shared VTI.
final class VTIDBed {
    let directory: String
    let client: ControlClient
    var configurationPath: String { directory + "/vtid.yaml" }
    var hookConfigurationPath: String { directory + "/hook.conf" }
    var ipsecConfPath: String { directory + "/ipsec.conf" }
    let extraConnSettings: String
    let extraTopLevel: String
    private var processes: [BackgroundProcess] = []

    init(extraConnSettings: String = "", extraTopLevel: String = "") throws {
        directory = NSTemporaryDirectory() + "vtid-test-\(UUID().uuidString)"
        self.extraConnSettings = extraConnSettings
        self.extraTopLevel = extraTopLevel
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        client = ControlClient(runDirectory: directory + "/run")
        try ip("link", "set", "lo", "up")
        try ip("link", "add", "rwdev", "type", "veth", "peer", "name", "rwpeer")
        try ip("link", "set", "rwdev", "up")
        try ip("link", "set", "rwpeer", "up")
        try """
            conn rw
                left=192.0.2.2
                right=%any
                rightaddresspool=10.0.1.10-10.0.3.250
                mark=12/0xffffffff
                vti-interface=vti02
                vti-routing=yes
                vti-shared=yes
                leftupdown=/usr/libexec/vtictl/vti-updown

            """.write(toFile: ipsecConfPath, atomically: true, encoding: .utf8)
        try writeConfiguration()
        try "vtid = \(directory)/run\n".write(toFile: hookConfigurationPath, atomically: true, encoding: .utf8)
    }

    func writeConfiguration() throws {
        try """
            # vtid for the host tests: the road-warrior conn routes into a veth
            ipsec_conf: \(ipsecConfPath)
            run_directory: \(directory)/run
            state_directory: \(directory)/state
            \(extraTopLevel)conns:
              rw:
                existing_device: rwdev
            \(extraConnSettings)
            """.write(toFile: configurationPath, atomically: true, encoding: .utf8)
    }

    deinit {
        for process in processes { process.stop() }
        try? FileManager.default.removeItem(atPath: directory)
    }

    /// Starts vtid and waits until it answers.
    func startVTID() throws -> BackgroundProcess {
        let process = try BackgroundProcess([product("vtid"), "--config", configurationPath], logPath: directory + "/vtid.log")
        processes.append(process)
        guard eventually(within: 10, { (try? client.send("status")) != nil }) else {
            throw CommandError(message: "vtid did not start answering within 10 s:\n\(process.log)")
        }
        return process
    }

    func hookCommand() -> [String] { [product("vti-updown"), "--config", hookConfigurationPath] }

    func runHook(_ environment: [String: String]) -> ChildResult {
        runChild(["/usr/bin/env", "-i"] + environment.map { "\($0)=\($1)" } + hookCommand())
    }

    /// Destinations of routes with vtid's protocol on the road-warrior device, sorted by address.
    func ourRoutes() throws -> [String] {
        try ip("-4", "route", "show", "proto", "157", "dev", "rwdev").split(separator: "\n").map { String($0.split(separator: " ")[0]) }
            .sorted { $0.split(separator: ".").map { Int($0) ?? 0 }.lexicographicallyPrecedes($1.split(separator: ".").map { Int($0) ?? 0 }) }
    }

    func spoolFiles() throws -> [String] {
        try FileManager.default.contentsOfDirectory(atPath: directory + "/run/spool")
    }
}
