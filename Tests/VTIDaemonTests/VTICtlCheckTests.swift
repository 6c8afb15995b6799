import Foundation
import KernelTestSupport
import XCTest

/// `vtictl check` as an operator runs it: the real binary on files with one mistake each, and,
/// in a throwaway network namespace, against real ip rules and devices.
final class VTICtlCheckTests: XCTestCase {
    private var directory = ""
    private let hook = "/usr/libexec/vtictl/vti-updown"

    override func setUpWithError() throws {
        directory = NSTemporaryDirectory() + "vtictl-check-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
    }

    override func tearDown() {
        try? FileManager.default.removeItem(atPath: directory)
    }

    /// Writes the two files and runs check; returns exit status and output lines.
    private func check(ipsec: String, yaml: String = "", _ extra: [String] = ["--no-kernel"]) throws -> (status: Int32, lines: [String]) {
        try ipsec.write(toFile: "\(directory)/ipsec.conf", atomically: true, encoding: .utf8)
        try yaml.write(toFile: "\(directory)/vtid.yaml", atomically: true, encoding: .utf8)
        let result = runChild([product("vtictl"), "check", "--config", "\(directory)/vtid.yaml", "--ipsec-conf", "\(directory)/ipsec.conf"] + extra)
        XCTAssertTrue(result.launched, "vtictl did not start: build it first (swift build)")
        return (result.status, result.output.split(separator: "\n").map { $0.replacingOccurrences(of: directory + "/", with: "") })
    }

    private var siteConn: String { "conn site\n    left=192.0.2.1\n    right=198.51.100.1\n    mark=0x80010/0xffffffff\n    vti-interface=vti01\n    leftupdown=\(hook)\n    rightupdown=\(hook)\n" }

    /// Two gateways' files: a pool that overlaps the other gateway's is an error at this file's
    /// line naming the other's file and line; an unreadable other file is an error too.
    func testPoolsOverlappingAnotherGatewaysAreErrorsNamingBothFiles() throws {
        let rw = { (pool: String) in "conn rw\n    left=192.0.2.2\n    right=%any\n    rightaddresspool=\(pool)\n    mark=12/0xffffffff\n    vti-interface=vti02\n    vti-shared=yes\n    leftupdown=\(self.hook)\n" }
        try "# the other gateway\nconn rw\n    rightaddresspool=10.0.1.100-10.0.1.199\n".write(toFile: "\(directory)/west.conf", atomically: true, encoding: .utf8)
        let overlap = try check(ipsec: rw("10.0.1.10-10.0.1.150"), ["--no-kernel", "--peer-ipsec-conf", "\(directory)/west.conf"])
        XCTAssertEqual(overlap.status, 1)
        XCTAssertEqual(overlap.lines, [
            "ipsec.conf:4: error: conn rw's address pool 10.0.1.10-10.0.1.150 overlaps conn rw's 10.0.1.100-10.0.1.199 on the other gateway (west.conf:3): "
                + "both would lease the same addresses, and both announce their routes; give each gateway its own pool",
            "1 route-based conn checked: 1 error, 0 warnings",
        ])
        let apart = try check(ipsec: rw("10.0.1.10-10.0.1.99"), ["--no-kernel", "--peer-ipsec-conf", "\(directory)/west.conf"])
        XCTAssertEqual(apart.lines, ["1 route-based conn checked: 0 errors, 0 warnings"])
        XCTAssertEqual(apart.status, 0)
        let missing = try check(ipsec: rw("10.0.1.10-10.0.1.99"), ["--no-kernel", "--peer-ipsec-conf", "\(directory)/nowhere.conf"])
        XCTAssertEqual(missing.status, 1)
        XCTAssertEqual(missing.lines.first, "error: the other gateway's file: cannot read nowhere.conf (no such file)")
    }

    /// An include that names a file which is not there leaves its conns out of pluto and vtid
    /// alike: an error at the include's line. A wildcard that matches nothing is libreswan's
    /// default (`include /etc/ipsec.d/*.conf`) and no finding.
    func testAMissingIncludeIsAnErrorAtItsLine() throws {
        let ipsec = "config setup\n    uniqueids=yes\ninclude \(directory)/ipsec.d/*.conf\n\n" + siteConn + "include branch.conf\n"
        let result = try check(ipsec: ipsec)
        XCTAssertEqual(result.status, 1, result.lines.joined(separator: "\n"))
        XCTAssertEqual(result.lines, [
            "ipsec.conf:12: error: include branch.conf: no such file; its conns would be missing (pluto only warns and starts without them)",
            "0 route-based conns checked: 1 error, 0 warnings",
        ])
        try FileManager.default.createDirectory(atPath: directory + "/branch.conf", withIntermediateDirectories: true)
        XCTAssertEqual(try check(ipsec: ipsec).lines.first,
                       "ipsec.conf:12: error: include branch.conf: a directory, not a file; its conns would be missing (pluto only warns and starts without them)")
        try FileManager.default.removeItem(atPath: directory + "/branch.conf")
        try "conn branch\n    left=192.0.2.1\n    right=203.0.113.7\n    mark=7/0xffffffff\n    vti-interface=vti07\n    leftupdown=\(hook)\n    rightupdown=\(hook)\n"
            .write(toFile: directory + "/branch.conf", atomically: true, encoding: .utf8)
        let found = try check(ipsec: ipsec)
        XCTAssertEqual(found.status, 0, found.lines.joined(separator: "\n"))
        XCTAssertEqual(found.lines, ["2 route-based conns checked: 0 errors, 0 warnings"], "with the file there, both conns")
    }

    /// A conn vtid manages with libreswan's stock updown: vtid would hear nothing of it (exit 1);
    /// the same conn left out of `manage:` only gets a warning.
    func testStockUpdownOnAConnVTIDManagesIsAnError() throws {
        let stock = siteConn.replacingOccurrences(of: "    rightupdown=\(hook)\n", with: "")
            .replacingOccurrences(of: "leftupdown=\(hook)", with: "leftupdown=/usr/libexec/ipsec/_updown")
            .replacingOccurrences(of: "right=198.51.100.1", with: "right=%any")
        let managed = try check(ipsec: stock, yaml: "manage: [site]\n")
        XCTAssertEqual(managed.status, 1, managed.lines.joined(separator: "\n"))
        XCTAssertEqual(managed.lines, [
            "ipsec.conf:6: error: conn site is managed by vtid but runs leftupdown=/usr/libexec/ipsec/_updown, libreswan's stock updown script: vtid gets no events from it, so it installs no routes and records no leases; set leftupdown=/usr/libexec/vtictl/vti-updown",
            "1 route-based conn checked: 1 error, 0 warnings",
        ])
        let unmanaged = try check(ipsec: stock + "conn other\n    mark=9\n    vti-interface=vti09\n    leftupdown=\(hook)\n", yaml: "manage: [other]\n")
        XCTAssertEqual(unmanaged.status, 0, unmanaged.lines.joined(separator: "\n"))
        XCTAssertEqual(unmanaged.lines, [
            "ipsec.conf:6: warning: conn site runs leftupdown=/usr/libexec/ipsec/_updown, libreswan's stock updown script: devices, routes and MTU are left to it (vtid does not manage it)",
            "2 route-based conns checked: 0 errors, 1 warning",
        ])
    }

    func testAWildcardIncludeThatMatchesNothingIsFine() throws {
        let result = try check(ipsec: "include \(directory)/nowhere/*.conf\ninclude \(directory)/*.secrets-none\n" + siteConn)
        XCTAssertEqual(result.status, 0, result.lines.joined(separator: "\n"))
        XCTAssertEqual(result.lines, ["1 route-based conn checked: 0 errors, 0 warnings"])
    }

    func testABrokenVTIDConfigurationNamesItsLine() throws {
        let result = try check(ipsec: siteConn, yaml: "routes:\n  protocol: 157\n  tabel: 100\n")
        XCTAssertEqual(result.status, 1)
        XCTAssertEqual(result.lines, [
            "vtid.yaml:3: error: unknown setting tabel in routes (known: protocol, table, metric, default)",
            "1 route-based conn checked: 1 error, 0 warnings",
        ])
    }

    func testVTIDConfigurationThatNamesNothing() throws {
        let ipsec = siteConn + "conn rw\n    mark=12\n    vti-interface=vti02\n    vti-shared=yes\n    leftupdown=\(hook)\n"
        let yaml = """
            manage:
              - site
              - sight
              - rw
            conns:
              rw:
                proxy_arp: eth1
              rw2:
                existing_device: xfrm2
            policy_routing:
              - from: 203.0.113.0/28
                table: 100
            routes:
              table: 100
            """
        let result = try check(ipsec: ipsec, yaml: yaml.replacingOccurrences(of: "  - rw\n", with: "  - rw\n  - rw2\n"))
        XCTAssertEqual(result.status, 1)
        XCTAssertEqual(result.lines, [
            "vtid.yaml:3: warning: manage: lists sight, which is not a route-based conn (mark= and vti-interface=) in ipsec.conf",
            "vtid.yaml:5: warning: manage: lists rw2, which is not a route-based conn (mark= and vti-interface=) in ipsec.conf",
            "vtid.yaml:7: warning: conns.rw.proxy_arp: conn rw has no rightaddresspool=, so there are no client addresses to answer ARP for",
            "vtid.yaml:9: warning: conns.rw2: no route-based conn of that name in ipsec.conf; these settings apply to nothing",
            "vtid.yaml:12: warning: policy_routing from 203.0.113.0/28: no conn's rightaddresspool= hands out addresses in it, so the rule matches no client",
            "vtid.yaml:12: error: policy_routing table 100 is also routes.table, where the clients' routes go: its default route would capture every client's replies; use a table of its own",
            "2 route-based conns checked: 1 error, 5 warnings",
        ])
    }

    /// Findings about ipsec.conf only (the host's kernel support is tested on its own).
    private func connFindings(_ result: (status: Int32, lines: [String])) -> [String] {
        result.lines.filter { $0.hasPrefix("ipsec.conf:") }
    }

    func testAMarkThatAnotherIpRuleSelects() throws {
        try inFreshNetworkNamespace(self) {
            // What Tailscale installs: every packet marked 0x80000/0xff0000 goes to its table.
            _ = try ip("rule", "add", "pref", "5210", "fwmark", "0x80000/0xff0000", "table", "52")
            let result = try check(ipsec: siteConn, [])
            XCTAssertEqual(result.status, 1)
            XCTAssertEqual(connFindings(result), [
                "ipsec.conf:1: error: conn site's mark 524304 (0x80010) is also selected by the kernel's ip rule 5210 (fwmark 0x80000/0xff0000 lookup 52): another firewall-mark user would route this tunnel's packets; give the conn a mark outside that range",
                "ipsec.conf:1: error: conn site: leftupdown=\(hook) is not an executable file here: pluto would fail every state change",
            ].filter { !$0.contains("leftupdown") || !FileManager.default.isExecutableFile(atPath: hook) })
            _ = try ip("rule", "del", "pref", "5210")
            XCTAssertEqual(connFindings(try check(ipsec: siteConn.replacingOccurrences(of: hook, with: "/bin/true"), [])).filter { !$0.contains("vti-updown") }, [],
                           "with the rule gone, nothing about the mark")
        }
    }

    func testADeviceInTheWay() throws {
        try inFreshNetworkNamespace(self) {
            _ = try ip("link", "add", "vti01", "type", "veth", "peer", "name", "vti01-peer")
            let conn = siteConn.replacingOccurrences(of: hook, with: "/bin/true")
            XCTAssertEqual(connFindings(try check(ipsec: conn, [])).filter { !$0.contains("vti-updown") }, [
                "ipsec.conf:1: error: vti01 exists and is not a VTI device: conn site cannot have it (rename vti-interface= or set existing_device in vtid.yaml)",
            ])
            XCTAssertEqual(connFindings(try check(ipsec: conn, yaml: "conns:\n  site:\n    existing_device: vti01\n", [])).filter { !$0.contains("vti-updown") }, [],
                           "a device named by existing_device is the conn's to use")
        }
    }

    /// The kernel check agrees with what `find` sees in the module tree and /sys/module.
    func testKernelSupportMatchesTheRunningKernel() throws {
        let result = try check(ipsec: siteConn, [])
        for module in ["ip_vti", "esp4"] {
            let probe = runChild(["/bin/sh", "-c", "test -e /sys/module/\(module) || grep -q '/\(module).ko' /lib/modules/$(uname -r)/modules.builtin 2>/dev/null || [ -n \"$(find /lib/modules/$(uname -r) -name '\(module).ko*' 2>/dev/null | head -1)\" ]"])
            let reported = result.lines.contains { $0.hasPrefix("error: the running kernel") && $0.contains("has no \(module) ") }
            XCTAssertEqual(reported, probe.status != 0, "\(module): check says \(reported ? "missing" : "present"), the module tree says \(probe.status == 0 ? "present" : "missing")")
            if reported { XCTAssertEqual(result.status, 1) }
        }
    }

    func testJSONReport() throws {
        let result = runChild([product("vtictl"), "check", "--json", "--no-kernel", "--config", "\(directory)/none.yaml", "--ipsec-conf", "\(directory)/none.conf"])
        XCTAssertEqual(result.status, 1)
        let report = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(result.output.utf8)) as? [String: Any], result.output)
        XCTAssertEqual(Set(report.keys), ["routeBasedConns", "errors", "warnings", "findings"])
        XCTAssertEqual(report["errors"] as? Int, 2)
        let findings = try XCTUnwrap(report["findings"] as? [[String: Any]])
        XCTAssertEqual(findings.map { $0["severity"] as? String }, ["error", "error"])
        XCTAssertEqual(findings.first?["message"] as? String, "\(directory)/none.yaml: cannot read the file")
        XCTAssertTrue(findings.allSatisfy { Set($0.keys).isSubset(of: ["severity", "file", "line", "message"]) })
        let good = try check(ipsec: siteConn, ["--no-kernel", "--json"])
        XCTAssertEqual(good.status, 0)
        let clean = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(good.lines.joined(separator: "\n").utf8)) as? [String: Any])
        XCTAssertEqual(clean["routeBasedConns"] as? Int, 1)
        XCTAssertEqual((clean["findings"] as? [Any])?.count, 0)
    }
}
