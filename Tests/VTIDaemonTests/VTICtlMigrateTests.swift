import Foundation
import KernelTestSupport
import XCTest

/// `vtictl migrate` as an operator runs it: the real binary, its --diff applied with
/// `patch -p1 -d /` as the plan says, `vtictl check` content with the result, and `patch -R`
/// giving back the files. The planner's own cases are VTIModelTests.MigrationTests.
final class VTICtlMigrateTests: XCTestCase {
    private var directory = ""
    private let hook = "/usr/local/libexec/vtictl/vti-updown"

    override func setUpWithError() throws {
        directory = (NSTemporaryDirectory() as NSString).standardizingPath + "/vtictl-migrate-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: directory + "/ipsec.d", withIntermediateDirectories: true)
    }

    override func tearDown() {
        try? FileManager.default.removeItem(atPath: directory)
    }

    private func vtictl(_ arguments: String...) -> (status: Int32, output: String) {
        let result = runChild([product("vtictl")] + arguments)
        XCTAssertTrue(result.launched, "vtictl did not start: build it first (swift build)")
        return (result.status, result.output.replacingOccurrences(of: directory, with: "DIR"))
    }

    private func patch(_ file: String, reverse: Bool = false) -> Int32 {
        runChild(["/usr/bin/patch", "-p1", "-d", "/", "--batch", "--quiet", "-i", file] + (reverse ? ["-R"] : [])).status
    }

    func testTheDiffAppliesChecksCleanAndRollsBack() throws {
        let main = "config setup\n    uniqueids=yes\n\ninclude ipsec.d/*.conf\n"
        let site = "conn site\n    left=192.0.2.1\n    right=198.51.100.1\n    leftsubnet=10.1.0.0/24\n    rightsubnet=10.2.0.0/24\n    mark=5\n    vti-interface=vti05\n    vti-routing=yes\n    leftupdown=\(hook)\n    rightupdown=\(hook)\n    auto=start\n"
        let rw = "conn rw\n    left=192.0.2.1\n    leftsubnet=10.1.0.0/24\n    right=%any\n    rightaddresspool=10.0.1.10-10.0.1.50\n    mark=12\n    vti-interface=vti12\n    vti-shared=yes\n    leftupdown=\(hook)\n    auto=add\n"
        try main.write(toFile: directory + "/ipsec.conf", atomically: true, encoding: .utf8)
        try site.write(toFile: directory + "/ipsec.d/site.conf", atomically: true, encoding: .utf8)
        try rw.write(toFile: directory + "/ipsec.d/rw.conf", atomically: true, encoding: .utf8)

        let plan = vtictl("migrate", "--ipsec-conf", directory + "/ipsec.conf", "--libreswan", "5.2")
        XCTAssertEqual(plan.status, 0, plan.output)
        XCTAssertTrue(plan.output.contains("  vti12 -> ipsec12 (ipsec-interface=12, if_id 12; vti12's own number): conn rw\n"), plan.output)
        XCTAssertTrue(plan.output.contains("  1. vtictl migrate --diff --ipsec-conf DIR/ipsec.conf --libreswan 5.2 > vti-to-xfrm.diff\n"), plan.output)

        let diff = runChild([product("vtictl"), "migrate", "--diff", "--ipsec-conf", directory + "/ipsec.conf", "--libreswan", "5.2"])
        XCTAssertEqual(diff.status, 0, diff.output)
        try diff.output.write(toFile: directory + "/migrate.diff", atomically: true, encoding: .utf8)
        XCTAssertEqual(diff.output.components(separatedBy: "\n--- a").count, 2, "one diff per edited file (stderr is empty)")
        XCTAssertEqual(patch(directory + "/migrate.diff"), 0)
        XCTAssertEqual(try String(contentsOfFile: directory + "/ipsec.d/rw.conf", encoding: .utf8), rw.replacingOccurrences(of: "    mark=12\n    vti-interface=vti12\n    vti-shared=yes\n", with: "    ipsec-interface=12\n"))
        try "".write(toFile: directory + "/vtid.yaml", atomically: true, encoding: .utf8)
        let check = vtictl("check", "--no-kernel", "--config", directory + "/vtid.yaml", "--ipsec-conf", directory + "/ipsec.conf", "--libreswan", "5.2")
        XCTAssertEqual(check.output, "2 route-based conns checked: 0 errors, 0 warnings\n")
        XCTAssertEqual(vtictl("migrate", "--ipsec-conf", directory + "/ipsec.conf").output, "Nothing to migrate: no route-based VTI conn.\n", "done")
        XCTAssertEqual(patch(directory + "/migrate.diff", reverse: true), 0)
        XCTAssertEqual(try String(contentsOfFile: directory + "/ipsec.d/site.conf", encoding: .utf8), site)
        XCTAssertEqual(try String(contentsOfFile: directory + "/ipsec.d/rw.conf", encoding: .utf8), rw)
        XCTAssertEqual(try String(contentsOfFile: directory + "/ipsec.conf", encoding: .utf8), main)
    }

    /// A conn that cannot move: exit 1, the reason on standard error, nothing of it in the diff.
    func testABlockedConnExitsOne() throws {
        try "conn a\n    left=192.0.2.1\n    right=198.51.100.1\n    leftsourceip=10.1.0.1\n    leftvti=10.255.0.1/30\n    mark=5\n    vti-interface=vti05\n    leftupdown=\(hook)\n"
            .write(toFile: directory + "/ipsec.conf", atomically: true, encoding: .utf8)
        let result = vtictl("migrate", "--diff", "--ipsec-conf", directory + "/ipsec.conf")
        XCTAssertEqual(result.status, 1)
        XCTAssertTrue(result.output.hasPrefix("error: conn a (DIR/ipsec.conf:1) is not in the diff: it has leftvti="), result.output)
        XCTAssertFalse(result.output.contains("--- a"), result.output)
        let unknown = vtictl("migrate", "--ipsec-conf", directory + "/ipsec.conf", "--conn", "b")
        XCTAssertEqual(unknown.status, 1)
        XCTAssertEqual(unknown.output, "error: no conn b in the configuration\n")
    }
}
