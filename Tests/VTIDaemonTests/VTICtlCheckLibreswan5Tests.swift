import Foundation
import KernelTestSupport
import XCTest

/// `vtictl check`'s libreswan 5.x rules through the binary: the release it judges for comes from
/// `--libreswan`, or from the installed package (dpkg's status file).
final class VTICtlCheckLibreswan5Tests: XCTestCase {
    private var directory = ""

    override func setUpWithError() throws {
        directory = NSTemporaryDirectory() + "vtictl-check5-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        try "".write(toFile: "\(directory)/vtid.yaml", atomically: true, encoding: .utf8)
        try """
            conn site
                left=192.0.2.1
                right=198.51.100.1
                mark=5/0xffffffff
                vti-interface=vti01
                leftupdown="/usr/libexec/vtictl/vti-updown --config /etc/vtictl/hook.conf"
                updown-config=exec
                rightupdown="/usr/libexec/vtictl/vti-updown --config /etc/vtictl/hook.conf"
            conn legacy
                left=192.0.2.1
                right=198.51.100.2
                keyexchange=ikev1
            """.write(toFile: "\(directory)/ipsec.conf", atomically: true, encoding: .utf8)
    }

    override func tearDown() {
        try? FileManager.default.removeItem(atPath: directory)
    }

    private func check(_ extra: [String]) -> (status: Int32, lines: [String]) {
        let result = runChild([product("vtictl"), "check", "--no-kernel", "--config", "\(directory)/vtid.yaml",
                               "--ipsec-conf", "\(directory)/ipsec.conf"] + extra)
        XCTAssertTrue(result.launched, "vtictl did not start: build it first (swift build)")
        return (result.status, result.output.split(separator: "\n").map { $0.replacingOccurrences(of: directory + "/", with: "") })
    }

    func testForLibreswan52() {
        let result = check(["--libreswan", "5.2"])
        XCTAssertEqual(result.status, 1, result.lines.joined(separator: "\n"))
        XCTAssertEqual(result.lines, [
            "ipsec.conf:5: warning: conn site: vti-interface= is deprecated in libreswan 5.2 in favour of ipsec-interface= (XFRM interfaces, created by pluto); it still works, and vti-updown and vtid handle it as before",
            "ipsec.conf:7: error: conn site: updown-config= needs libreswan 5.4; libreswan 5.2 refuses the file (unrecognized keyword)",
            "ipsec.conf:12: error: conn legacy is IKEv1: libreswan 5.2 drops IKEv1 unless config setup has ikev1-policy=accept (5.0's default is drop)",
            "1 route-based conn checked: 2 errors, 1 warning",
        ])
    }

    func testForLibreswan54() {
        let result = check(["--libreswan", "5.4"])
        XCTAssertEqual(result.lines.filter { $0.contains("updown-config") }, [], "5.4 honours updown-config=exec")
        XCTAssertTrue(result.lines.contains { $0.contains("vti-interface= is deprecated in libreswan 5.4") }, result.lines.joined(separator: "\n"))
    }

    /// Without --libreswan: the installed package's release (this project's machines: Debian 12's 4.10).
    func testTheInstalledReleaseByDefault() throws {
        let status = (try? String(contentsOfFile: "/var/lib/dpkg/status", encoding: .utf8)) ?? ""
        let installed = status.components(separatedBy: "\n\n").first { $0.hasPrefix("Package: libreswan\n") && $0.contains("Status: install ok installed") }
        let version = installed?.split(separator: "\n").first { $0.hasPrefix("Version: ") }.map { String($0.dropFirst(9)) }
        let result = check([])
        if let version, version.hasPrefix("4.") {
            // Debian's package drops IKEv1 by default from 4.5-2 on (the test bed's 4.10 refused to
            // load an IKEv1 conn without ikev1-policy=accept); upstream 4.x accepts it.
            let release = version.prefix { $0 != "-" }
            let dropsIKEv1 = (releaseNumbers(release).map { $0 >= (4, 6) }) ?? false
            XCTAssertEqual(result.lines, [
                "ipsec.conf:7: error: conn site: updown-config= needs libreswan 5.4; libreswan \(release) refuses the file (unrecognized keyword)",
            ] + (dropsIKEv1 ? [
                "ipsec.conf:12: error: conn legacy is IKEv1: Debian's libreswan \(release) drops IKEv1 unless config setup has ikev1-policy=accept (Debian's default since 4.5-2 is drop; pluto refuses to load the conn)",
                "1 route-based conn checked: 2 errors, 0 warnings",
            ] : ["1 route-based conn checked: 1 error, 0 warnings"]), "Debian's 4.x: VTI keywords current, updown-config unknown, IKEv1 dropped from 4.6")
        } else if let version, version.hasPrefix("5.") {
            XCTAssertTrue(result.lines.contains { $0.contains("deprecated in libreswan 5.") }, "libreswan \(version): \(result.lines)")
        } else {
            XCTFail("libreswan is not installed here (Scripts/install-packages installs it): \(result.lines)")
        }
    }

    func testABadReleaseIsRefused() {
        let result = check(["--libreswan", "five"])
        XCTAssertNotEqual(result.status, 0)
        XCTAssertTrue(result.lines.first?.contains("--libreswan wants a release like 5.2, not five") == true, result.lines.joined(separator: "\n"))
    }
}

/// MAJOR.MINOR of a release such as `4.10`, as a tuple to compare.
private func releaseNumbers(_ text: Substring) -> (Int, Int)? {
    let parts = text.split(separator: ".").compactMap { Int($0) }
    return parts.count >= 2 ? (parts[0], parts[1]) : nil
}
