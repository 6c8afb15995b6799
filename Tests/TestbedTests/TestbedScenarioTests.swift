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

    /// vti-updown in place of the stock script, on every host, with real pluto peers.
    func testVTIUpdownWithRealPlutoPeers() throws {
        let hook = URL(fileURLWithPath: productsDirectory()).appendingPathComponent("vti-updown").path
        XCTAssertTrue(FileManager.default.isExecutableFile(atPath: hook), "build vti-updown first (swift build): \(hook)")
        let result = try testbed(["scenario", "site-to-site", "road-warriors", "hook-site-to-site", "hook-road-warriors", "hook-events"], updown: hook)
        XCTAssertEqual(result.status, 0, "scenarios failed with vti-updown:\n\(result.output.suffix(6000))")
        for expected in [
            "=== site-to-site: passed", "=== road-warriors: passed",
            "ok - road-warriors: gw: the /32 route of road1 (10.0.1.10) is gone",
            "ok - hook-site-to-site: west: route 10.2.0.0/24 carries proto 157",
            "ok - hook-site-to-site: west: vti01 MTU 1446 (AES-GCM-16 over IPv4 without NAT-T)",
            "ok - hook-site-to-site: west: net.ipv4.conf.vti01.rp_filter = 2",
            "ok - hook-site-to-site: west: 10.1.0.1 reaches 10.2.0.1 (west LAN to east LAN, routed by the hook)",
            "ok - hook-site-to-site: west: vti01 stays while the conn is only down",
            "ok - hook-site-to-site: west: vti01 is gone (the conn was deleted)",
            "ok - hook-road-warriors: gw: no route 10.0.1.10 (road1 disconnected",
            "ok - hook-road-warriors: gw: vti02 MTU 1406 (shared device: worst common suite with NAT-T)",
            "ok - hook-road-warriors: road2: 10.0.1.11 reaches 10.3.0.1 (road2 untouched by road1 leaving)",
            "ok - hook-road-warriors: road1: 10.0.1.10 reaches 10.3.0.1 (road1 after reconnecting)",
            "ok - hook-events: gw: the same up-client twice leaves the kernel as the first left it",
            "ok - hook-events: gw: repeated down and unroute are harmless",
            "ok - hook-events: gw: a foreign route to the same prefix survives our down-client",
            "ok - hook-events: gw: a vti01 with other parameters is refused and untouched",
            "ok - hook-events: gw: rejected input changed nothing",
            "ok - hook-events: gw: a hostile peer ID is data",
            "=== hook-site-to-site: passed", "=== hook-road-warriors: passed", "=== hook-events: passed",
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

    /// Where swift build put the products: next to this test bundle.
    private func productsDirectory() -> String {
        let executable = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
        return URL(fileURLWithPath: executable).deletingLastPathComponent().path
    }

    private func testbed(_ arguments: [String], updown: String? = nil) throws -> (status: Int32, output: String) {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        let script = root.appendingPathComponent("Scripts/testbed")
        let process = Process()
        process.executableURL = script
        process.arguments = arguments
        process.currentDirectoryURL = root
        if let updown { process.environment = ProcessInfo.processInfo.environment.merging(["UPDOWN": updown]) { $1 } }
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
