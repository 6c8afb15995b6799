import ControlProtocol
import Foundation
import KernelTestSupport
import VTIDaemon
import XCTest

/// vtid's MSS clamp rules on the host kernel (a veth stands in for the VTI, `mss_clamp: auto`):
/// made from the device's MTU at start, following an MTU change, repaired after a rule is deleted
/// by hand, shown by `vtictl status`, removed when the conn's clamp is turned off; a foreign
/// nftables table is never touched.
final class MSSClampHostTests: XCTestCase {
    func testClampRulesFollowTheDeviceAndAreRepaired() throws {
        try inFreshNetworkNamespace(self) {
            try nft("add", "table", "inet", "other")
            try nft("add", "chain", "inet", "other", "forward", "{ type filter hook forward priority 0; policy accept; }")
            try nft("add", "rule", "inet", "other", "forward", "oifname", "\"rwdev\"", "counter", "comment", "\"vtictl:rwdev\"")
            let foreign = try nft("-j", "list", "table", "inet", "other")

            let bed = try VTIDBed(extraConnSettings: "    mss_clamp: auto\n")
            try ip("link", "set", "rwdev", "mtu", "1446")
            _ = try bed.startVTID()
            _ = try bed.client.send("reconcile")
            XCTAssertEqual(try clampLines(), expected(1406, 1386))
            var status = try bed.client.fetch("status", as: StatusReply.self)
            XCTAssertEqual(status.connections.first?.mssClamp, "auto: 1406/1386")

            // The MTU changes: the next pass follows it.
            try ip("link", "set", "rwdev", "mtu", "1400")
            _ = try bed.client.send("reconcile")
            XCTAssertEqual(try clampLines(), expected(1360, 1340))

            // A rule deleted by hand comes back.
            let handle = try XCTUnwrap(try nft("-a", "list", "chain", "inet", "vtictl", "forward")
                .split(separator: "\n").first { $0.contains("iifname \"rwdev\" meta nfproto ipv6") }?
                .split(separator: " ").last.map(String.init))
            try nft("delete", "rule", "inet", "vtictl", "forward", "handle", handle)
            XCTAssertEqual(try clampLines().count, 3)
            _ = try bed.client.send("reconcile")
            XCTAssertEqual(try clampLines(), expected(1360, 1340))
            status = try bed.client.fetch("status", as: StatusReply.self)
            XCTAssertEqual(status.connections.first?.mssClamp, "auto: 1360/1340")
            let shown = runChild([product("vtictl"), "status", "--run-directory", bed.directory + "/run"])
            XCTAssertTrue(shown.output.contains("rw: MSS clamp auto: 1360/1340"), shown.output)

            // Turned off: the rules go, and the table with them.
            try "ipsec_conf: \(bed.ipsecConfPath)\nrun_directory: \(bed.directory)/run\nstate_directory: \(bed.directory)/state\nconns:\n  rw:\n    existing_device: rwdev\n    mss_clamp: off\n"
                .write(toFile: bed.configurationPath, atomically: true, encoding: .utf8)
            _ = try bed.client.send("reload")
            _ = try bed.client.send("reconcile")
            XCTAssertEqual(try clampLines(), [])
            status = try bed.client.fetch("status", as: StatusReply.self)
            XCTAssertNil(status.connections.first?.mssClamp)
            // No conn clamps any more: the table is gone with its last rule.
            let tables = try nft("list", "tables")
            XCTAssertFalse(tables.contains("table inet vtictl"), "vtid's empty table stayed: \(tables)")
            XCTAssertTrue(tables.contains("table inet other"), tables)

            XCTAssertEqual(try nft("-j", "list", "table", "inet", "other"), foreign, "the foreign table changed")
        }
    }

    private func expected(_ mss: Int, _ mss6: Int) -> [String] {
        ["oifname \"rwdev\" meta nfproto ipv4 tcp flags syn tcp option maxseg size > \(mss) tcp option maxseg size set \(mss) comment \"vtictl:rwdev\"",
         "oifname \"rwdev\" meta nfproto ipv6 tcp flags syn tcp option maxseg size > \(mss6) tcp option maxseg size set \(mss6) comment \"vtictl:rwdev\"",
         "iifname \"rwdev\" meta nfproto ipv4 tcp flags syn tcp option maxseg size > \(mss) tcp option maxseg size set \(mss) comment \"vtictl:rwdev\"",
         "iifname \"rwdev\" meta nfproto ipv6 tcp flags syn tcp option maxseg size > \(mss6) tcp option maxseg size set \(mss6) comment \"vtictl:rwdev\""]
    }

    /// The rules of vtid's chain as nft prints them (an empty or missing table: none).
    private func clampLines() throws -> [String] {
        let result = runChild(["/usr/sbin/nft", "list", "chain", "inet", "vtictl", "forward"])
        guard result.status == 0 else { return [] }
        return result.output.split(separator: "\n").map { $0.trimmingCharacters(in: .whitespaces) }
            .filter { $0.contains("maxseg") }
    }

    @discardableResult
    private func nft(_ arguments: String...) throws -> String {
        let result = runChild(["/usr/sbin/nft"] + arguments)
        guard result.launched else { throw CommandError(message: "nft is missing: apt-get install nftables") }
        guard result.status == 0 else { throw CommandError(message: "nft \(arguments.joined(separator: " ")) failed: \(result.output)") }
        return result.output
    }
}
