import ControlProtocol
import Foundation
import KernelTestSupport
import VTIDaemon
import XCTest

/// vtid's self-healing on the host kernel (a veth stands in for the VTI): routes deleted from
/// outside come back, routes whose tunnel ended go, others' routes stay, and a vtid killed in the
/// middle of a burst converges when it is back. Real VTI devices and SAs: the UML scenario
/// vtid-self-healing.
final class VTIDReconcileHostTests: XCTestCase {
    func testARouteDeletedFromOutsideComesBack() throws {
        try inFreshNetworkNamespace(self) {
            let bed = try VTIDBed()
            let vtid = try bed.startVTID()
            XCTAssertEqual(bed.runHook(roadWarrior("up-client", client: 1)).status, 0)
            XCTAssertEqual(bed.runHook(roadWarrior("up-client", client: 2)).status, 0)
            try ip("route", "del", "10.0.1.11/32", "dev", "rwdev")
            XCTAssertTrue(eventually(within: 5) { (try? bed.ourRoutes()) == ["10.0.1.11", "10.0.1.12"] }, (try? bed.ourRoutes())?.description ?? "")
            XCTAssertTrue(eventually(within: 2) { vtid.log.contains("reconcile (route 10.0.1.11/32 removed): route 10.0.1.11/32 dev rwdev proto 157") }, vtid.log)
        }
    }

    /// vtid removes a route of its protocol on its device only when it knows the route's tunnel
    /// ended (a recorded down): a route it has no record of stays (issue 14: a record vtid failed to
    /// write, or a fallback it has not read yet, must not cut a client off), others' routes stay.
    func testOnlyRoutesWhoseTunnelEndedArePruned() throws {
        try inFreshNetworkNamespace(self) {
            let bed = try VTIDBed()
            _ = try bed.startVTID()
            XCTAssertEqual(bed.runHook(roadWarrior("up-client", client: 1)).status, 0)
            XCTAssertEqual(bed.runHook(roadWarrior("up-client", client: 2)).status, 0)
            XCTAssertEqual(bed.runHook(roadWarrior("down-client", client: 2)).status, 0)
            try ip("link", "add", "other0", "type", "veth", "peer", "name", "other1")
            try ip("link", "set", "other0", "up")
            try ip("route", "add", "10.0.9.0/24", "dev", "rwdev", "proto", "static")   // someone else's, on our device
            try ip("route", "add", "10.0.7.0/24", "dev", "other0", "proto", "157")     // our number, not our device
            try ip("route", "add", "10.0.8.8/32", "dev", "rwdev", "proto", "157")      // ours, but no record of it
            try ip("route", "add", "10.0.1.12/32", "dev", "rwdev", "proto", "157")     // back after its recorded down
            let dryRun = String(decoding: try bed.client.send("reconcile", ["dry_run": .bool(true)]), as: UTF8.self)
            XCTAssertTrue(dryRun.contains("delete route 10.0.1.12/32 dev rwdev proto 157"), dryRun)
            XCTAssertFalse(dryRun.contains("10.0.8.8"), dryRun)
            XCTAssertTrue(try ip("route", "show", "proto", "157").contains("10.0.1.12"), "a dry run changes nothing")
            _ = try bed.client.send("reconcile")
            _ = try bed.client.send("reconcile")
            let routes = try ip("route", "show")
            XCTAssertFalse(routes.contains("10.0.1.12"), routes)
            XCTAssertTrue(routes.contains("10.0.8.8 dev rwdev proto 157"), "no record is no reason: \(routes)")
            XCTAssertTrue(routes.contains("10.0.9.0/24 dev rwdev proto static"), routes)
            XCTAssertTrue(routes.contains("10.0.7.0/24 dev other0 proto 157"), routes)
            XCTAssertTrue(routes.contains("10.0.1.11 dev rwdev proto 157"), routes)
            let status = try bed.client.fetch("status", as: StatusReply.self)
            XCTAssertTrue(status.problems.contains { $0.contains("1 routes of protocol 157 on vtid's devices have no record") && $0.contains("10.0.8.8/32") },
                          "\(status.problems)")
            XCTAssertEqual(status.daemon.degraded, false, "a finding about the kernel, not a fault of vtid's")
        }
    }

    /// What vtid says about a route leaves with the route (issue 15: status objects are pruned with
    /// their object, not kept under PROBLEMS until a restart).
    func testARoutesProblemGoesWithTheRoute() throws {
        try inFreshNetworkNamespace(self) {
            let bed = try VTIDBed()
            _ = try bed.startVTID()
            XCTAssertEqual(bed.runHook(roadWarrior("up-client", client: 1)).status, 0)
            try ip("link", "set", "rwdev", "down")   // the kernel drops its routes; vtid cannot put them back
            _ = try bed.client.send("reconcile")
            var problems = try bed.client.fetch("status", as: StatusReply.self).problems
            XCTAssertTrue(problems.contains { $0.hasPrefix("route 10.0.1.11/32: ") }, "\(problems)")
            XCTAssertEqual(bed.runHook(roadWarrior("down-client", client: 1)).status, 0)
            problems = try bed.client.fetch("status", as: StatusReply.self).problems
            XCTAssertFalse(problems.contains { $0.contains("10.0.1.11") }, "\(problems)")
        }
    }

    func testVTICtlReconcileShowsThenRepairs() throws {
        try inFreshNetworkNamespace(self) {
            let bed = try VTIDBed()
            _ = try bed.startVTID()
            XCTAssertEqual(bed.runHook(roadWarrior("up-client", client: 1)).status, 0)
            XCTAssertEqual(bed.runHook(roadWarrior("up-client", client: 2)).status, 0)
            XCTAssertEqual(bed.runHook(roadWarrior("down-client", client: 2)).status, 0)
            let vtictl = [product("vtictl"), "reconcile", "--run-directory", bed.directory + "/run"]
            XCTAssertEqual(runChild(vtictl + ["--dry-run"]).output, "nothing to repair: the kernel holds what vtid wants\n", "converged")
            // Drift that raises no kernel notification (an added route), so no pass repairs it first.
            try ip("route", "add", "10.0.1.12/32", "dev", "rwdev", "proto", "157")
            let dryRun = runChild(vtictl + ["--dry-run"])
            XCTAssertEqual(dryRun.status, 0, dryRun.output)
            XCTAssertEqual(dryRun.output, "delete route 10.0.1.12/32 dev rwdev proto 157\n")
            XCTAssertTrue(try ip("route", "show").contains("10.0.1.12"))
            let repair = runChild(vtictl)
            // The dry run's lines are what the real pass did, step for step.
            XCTAssertEqual(repair.output, "removed route 10.0.1.12/32 dev rwdev proto 157\n")
            XCTAssertEqual(runChild(vtictl + ["--dry-run"]).output, "nothing to repair: the kernel holds what vtid wants\n")
            let status = runChild([product("vtictl"), "status", "--json", "--run-directory", bed.directory + "/run"])
            let json = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(status.output.utf8)) as? [String: Any], status.output)
            XCTAssertEqual(json["vtidRunning"] as? Bool, true)
            let vtid = try XCTUnwrap(json["vtid"] as? [String: Any])
            XCTAssertEqual(vtid["problems"] as? [String], [])
            XCTAssertEqual((vtid["leases"] as? [[String: Any]])?.first?["address"] as? String, "10.0.1.11")
            XCTAssertNotNil((json["kernel"] as? [String: Any])?["devices"])
        }
    }

    /// vtid is killed (-9) in the middle of a burst of hooks; those it had not taken fall back and
    /// spool; when it is back its records, leases and the kernel agree, one route per client.
    func testKilledInABurstAndRestartedItConverges() throws {
        try inFreshNetworkNamespace(self) {
            let bed = try VTIDBed(extraTopLevel: "hook_deadline_ms: 500\n")
            let vtid = try bed.startVTID()
            let count = 150
            var pids: [pid_t] = []
            for client in 1...count {
                pids.append(try spawn(bed.hookCommand(), environment: roadWarrior("up-client", client: client)))
                if client == count / 3 { vtid.signal(SIGKILL) }
            }
            XCTAssertEqual(pids.map(waitForExit).filter { $0 != 0 }.count, 0, "every hook exits 0, vtid or not")
            XCTAssertEqual(vtid.wait(), 128 + SIGKILL)
            _ = try bed.startVTID()
            let wanted = Set((1...count).map { clientAddress($0) })
            XCTAssertEqual(Set(try bed.ourRoutes()), wanted, "no missing, no extra routes")
            let leases = try bed.client.fetch("leases", as: LeasesReply.self).leases
            XCTAssertEqual(Set(leases.filter(\.connected).map(\.address)), wanted, "the lease table knows every client")
            let events = try bed.client.fetch("events", as: EventsReply.self).events
            XCTAssertTrue(events.contains { $0.source == .hook }, "some events were applied by the hooks while vtid was dead")
            // A stray route removed and a lost one restored by the start's reconcile, with nothing else changed.
            let again = String(decoding: try bed.client.send("reconcile", ["dry_run": .bool(true)]), as: UTF8.self)
            XCTAssertFalse(again.contains("route"), "converged: \(again)")
        }
    }
}
