import Foundation
import KernelTestSupport
import VTIDaemon
import VTIModel
import XCTest

/// Every ready configuration in Profiles/ passes vtictl's checks and vtid's configuration parser.
final class ProfilesTests: XCTestCase {
    let profiles = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("../../Profiles").standardized

    func profileDirectories() throws -> [URL] {
        try FileManager.default.contentsOfDirectory(at: profiles, includingPropertiesForKeys: [.isDirectoryKey])
            .filter { (try? $0.resourceValues(forKeys: [.isDirectoryKey]).isDirectory) == true }
            .sorted { $0.path < $1.path }
    }

    func testTheDeploymentsAreAllThere() throws {
        XCTAssertEqual(try profileDirectories().map(\.lastPathComponent),
                       ["cloud-vpc-gateway", "many-peers", "road-warriors", "routed-public-prefix", "site-to-site"])
    }

    func testEachProfilePassesTheChecksCleanly() throws {
        for directory in try profileDirectories() {
            let name = directory.lastPathComponent
            let conns = try RouteBasedConn.all(in: try loadIPsecConfig(directory.appendingPathComponent("ipsec.conf").path))
            XCTAssertFalse(conns.isEmpty, "\(name): no route-based conn")
            XCTAssertEqual(checkRouteBasedConns(conns).map(\.description), [], "\(name): findings")
            let yamlPath = directory.appendingPathComponent("vtid.yaml").path
            let configuration = try DaemonConfiguration(yaml: try String(contentsOfFile: yamlPath, encoding: .utf8), file: yamlPath)
            for managed in configuration.managedConnections ?? [] {
                XCTAssertTrue(conns.contains { $0.name == managed }, "\(name): vtid.yaml manages \(managed), which ipsec.conf lacks")
            }
            XCTAssertEqual(Set(conns.map(\.markIn.value)).count, Set(conns.map(\.vtiInterface)).count, "\(name): one mark per device")
        }
    }

    func testVTICtlCheckAcceptsThem() throws {
        for directory in try profileDirectories() {
            let result = runChild([product("vtictl"), "check", "--no-kernel", "--config", directory.appendingPathComponent("vtid.yaml").path,
                                   "--ipsec-conf", directory.appendingPathComponent("ipsec.conf").path])
            XCTAssertEqual(result.status, 0, "\(directory.lastPathComponent): \(result.output)")
            XCTAssertTrue(result.output.contains(": 0 errors, 0 warnings"), result.output)
        }
    }

    func testTheRoutedPrefixProfileDeclaresItsPolicyRouting() throws {
        let path = profiles.appendingPathComponent("routed-public-prefix/vtid.yaml").path
        let configuration = try DaemonConfiguration(yaml: try String(contentsOfFile: path, encoding: .utf8), file: path)
        XCTAssertEqual(configuration.policyRoutes.map { "\($0.from) \($0.table)" }, ["203.0.113.0/28 100"])
    }
}
