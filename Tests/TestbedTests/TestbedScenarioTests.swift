import Foundation
import XCTest

/// The User-Mode Linux test bed's scenarios, with real pluto peers and libreswan's stock updown
/// script (the baseline later issues compare against). Each scenario asserts reachability, device
/// state, routes and SA counters itself and prints "ok - ..." per check; these tests check that
/// the checks ran and passed, and that a broken setup fails saying what did not happen.
final class TestbedScenarioTests: XCTestCase {
    func testSiteToSiteRoadWarriorsAndManyPeersInOneBoot() throws {
        let result = try testbed(["scenario", "site-to-site", "road-warriors", "many-peers"])
        XCTAssertEqual(result.status, 0, "scenarios failed:\n\(result.output.suffix(6000))")
        for expected in [
            "ok - site-to-site: west: 10.1.0.1 reaches 10.2.0.1",
            "ok - site-to-site: west: SA byte counters moved",
            "ok - site-to-site: west: vti01 carried traffic",
            "ok - site-to-site: east: vti01 is up, remote 192.0.2.1 local 192.0.2.2, ikey/okey 5",
            "ok - road-warriors: gw: vti02 is up, remote 0.0.0.0 local 192.0.2.2, ikey/okey 12",
            "ok - road-warriors: road1: 10.0.1.10 reaches 10.3.0.1",
            "ok - road-warriors: road2: 10.0.1.11 reaches 10.3.0.1",
            "ok - road-warriors: road2: 10.0.1.11 reaches 10.3.0.1 (road2 after road1 disconnected)",
            "ok - road-warriors: gw: SA byte counters moved",
            "ok - many-peers: hub: vti13 is up, remote 192.0.2.23 local 192.0.2.2, ikey/okey 13",
            "ok - many-peers: hub: 10.20.0.1 reaches 10.23.0.1",
            "=== site-to-site: passed", "=== road-warriors: passed", "=== many-peers: passed",
        ] {
            XCTAssertTrue(result.output.contains(expected), "missing from the test bed's output: \(expected)")
        }
    }

    func testABrokenPreSharedKeyFailsSayingWhatDidNotHappen() throws {
        let result = try testbed(["scenario", "broken-psk"])
        XCTAssertNotEqual(result.status, 0, "a tunnel with mismatched PSKs must not pass:\n\(result.output.suffix(3000))")
        XCTAssertTrue(result.output.contains("FAIL - broken-psk: west: IKE and IPsec SAs with east were not established within 20 s"),
                      result.output.suffix(3000).description)
        XCTAssertTrue(result.output.contains("AUTHENTICATION_FAILED") || result.output.contains("authentication failed"),
                      "the reason is named:\n\(result.output.suffix(3000))")
    }

    private func testbed(_ arguments: [String]) throws -> (status: Int32, output: String) {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        let script = root.appendingPathComponent("Scripts/testbed")
        let process = Process()
        process.executableURL = script
        process.arguments = arguments
        process.currentDirectoryURL = root
        let output = Pipe()
        process.standardOutput = output
        process.standardError = output
        try process.run()
        let data = output.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        let text = String(decoding: data, as: UTF8.self)
        print(text)
        return (process.terminationStatus, text)
    }
}
