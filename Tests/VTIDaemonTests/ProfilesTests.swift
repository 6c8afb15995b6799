import Foundation
import KernelTestSupport
import VTIConfiguration
import VTIModel
import XCTest

/// Every ready configuration in Profiles/ passes vtictl's checks and vtid's configuration parser.
final class ProfilesTests: XCTestCase {
    let profiles = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("../../Profiles").standardized

    /// The profiles of route-based conns (l2tp-ipsec has none: its own test below).
    func profileDirectories() throws -> [URL] {
        try allProfileDirectories().filter { $0.lastPathComponent != "l2tp-ipsec" }
    }

    func allProfileDirectories() throws -> [URL] {
        try FileManager.default.contentsOfDirectory(at: profiles, includingPropertiesForKeys: [.isDirectoryKey])
            .filter { (try? $0.resourceValues(forKeys: [.isDirectoryKey]).isDirectory) == true }
            .sorted { $0.path < $1.path }
    }

    func testTheDeploymentsAreAllThere() throws {
        XCTAssertEqual(try allProfileDirectories().map(\.lastPathComponent),
                       ["cloud-vpc-gateway", "l2tp-ipsec", "many-peers", "road-warriors", "routed-public-prefix", "site-to-site"])
    }

    /// L2TP/IPsec (issue 21): the 4.x conn passes `vtictl check` for this host's libreswan (Debian's,
    /// which drops IKEv1 unless told) and upstream's 4.10, the 5.x one for 5.2; each without its
    /// `ikev1-policy=accept` is an error naming the file and the conn's IKEv1 line. vtid.yaml answers
    /// DHCPINFORM on ppp links with the LAN behind the gateway, and xl2tpd's files agree.
    func testTheL2TPProfile() throws {
        let directory = profiles.appendingPathComponent("l2tp-ipsec")
        func file(_ name: String) throws -> String { try String(contentsOf: directory.appendingPathComponent(name), encoding: .utf8) }
        let yamlPath = directory.appendingPathComponent("vtid.yaml").path
        let configuration = try DaemonConfiguration(yaml: try file("vtid.yaml"), file: yamlPath)
        XCTAssertEqual(configuration.l2tpDHCPInform?.routes?.map(\.description), ["10.3.0.0/24"])
        XCTAssertEqual(configuration.l2tpDHCPInform?.dnsServers.map(\.description), ["10.3.0.53"])

        let scratch = NSTemporaryDirectory() + "profile-l2tp-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: scratch, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: scratch) }
        func check(_ conf: String, _ extra: [String]) -> ChildResult {
            runChild([product("vtictl"), "check", "--no-kernel", "--config", yamlPath, "--ipsec-conf", conf] + extra)
        }
        for (name, releases) in [("ipsec.conf", [[], ["--libreswan", "4.10"]]), ("ipsec-libreswan5.conf", [["--libreswan", "5.2"]])] {
            let path = directory.appendingPathComponent(name).path
            for release in releases {
                let result = check(path, release)
                XCTAssertEqual(result.status, 0, "\(name) \(release): \(result.output)")
                XCTAssertEqual(result.output, "0 route-based conns checked: 0 errors, 0 warnings\n", "\(name) \(release)")
            }
            // Without ikev1-policy=accept: the error names the file and the line that makes it IKEv1.
            let text = try file(name)
            let lines = text.split(separator: "\n", omittingEmptySubsequences: false).filter { !$0.hasPrefix("    ikev1-policy=accept") }
            let ikev1Line = try XCTUnwrap(lines.firstIndex { $0.hasPrefix("    ikev2=no") || $0.hasPrefix("    keyexchange=ikev1") }) + 1
            let stripped = scratch + "/" + name
            try lines.joined(separator: "\n").write(toFile: stripped, atomically: true, encoding: .utf8)
            let result = check(stripped, ["--libreswan", "5.2"])
            XCTAssertEqual(result.status, 1, result.output)
            XCTAssertTrue(result.output.hasPrefix("\(stripped):\(ikev1Line): error: conn l2tp-psk is IKEv1: libreswan 5.2 drops IKEv1 unless config setup has ikev1-policy=accept"),
                          result.output)
        }

        // xl2tpd's LNS hands out addresses outside the LAN it routes to, and points pppd at the options file.
        let xl2tpd = try file("xl2tpd.conf")
        XCTAssertTrue(xl2tpd.contains("ip range = 10.20.0.10-10.20.0.250") && xl2tpd.contains("local ip = 10.20.0.1"), xl2tpd)
        XCTAssertTrue(xl2tpd.contains("pppoptfile = /etc/ppp/options.xl2tpd"), xl2tpd)
        XCTAssertTrue(try file("options.xl2tpd").contains("require-mschap-v2"))
        XCTAssertTrue(try file("ipsec.conf").contains("leftprotoport=17/1701") && (try file("ipsec.conf")).contains("type=transport"))
    }

    func testEachProfilePassesTheChecksCleanly() throws {
        for directory in try profileDirectories() {
            let name = directory.lastPathComponent
            let conns = try RouteBasedConn.all(in: try loadIPsecConfig(directory.appendingPathComponent("ipsec.conf").path))
            XCTAssertFalse(conns.isEmpty, "\(name): no route-based conn")
            let yamlPath = directory.appendingPathComponent("vtid.yaml").path
            let configuration = try DaemonConfiguration(yaml: try String(contentsOfFile: yamlPath, encoding: .utf8), file: yamlPath)
            XCTAssertEqual(checkRouteBasedConns(conns, managed: configuration.managedConnections).map(\.description), [], "\(name): findings")
            for managed in configuration.managedConnections ?? [] {
                XCTAssertTrue(conns.contains { $0.name == managed }, "\(name): vtid.yaml manages \(managed), which ipsec.conf lacks")
            }
            XCTAssertEqual(Set(conns.map { $0.markIn?.value }).count, Set(conns.map(\.interfaceName)).count, "\(name): one mark per device")
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

    /// The road-warrior profile's own advice: a pool carved out of the LAN, with vtid answering
    /// ARP for the clients there (`proxy_arp`, commented out in its vtid.yaml), passes the check;
    /// the same pool without proxy ARP stays an error, and says what to do.
    func testRoadWarriorsPoolInTheLANWithProxyARPAsTheProfileAdvises() throws {
        let directory = NSTemporaryDirectory() + "profile-rw-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let ipsec = try String(contentsOf: profiles.appendingPathComponent("road-warriors/ipsec.conf"), encoding: .utf8)
        let yaml = try String(contentsOf: profiles.appendingPathComponent("road-warriors/vtid.yaml"), encoding: .utf8)
        // "If the pool were carved out of the LAN (say 10.3.0.200-10.3.0.250)": that pool, in the LAN 10.3.0.0/24.
        XCTAssertTrue(yaml.contains("say 10.3.0.200-10.3.0.250"), yaml)
        XCTAssertTrue(ipsec.contains("leftsubnet=10.3.0.0/24") && ipsec.contains("rightaddresspool=10.10.0.10-10.10.0.250"), ipsec)
        try ipsec.replacingOccurrences(of: "rightaddresspool=10.10.0.10-10.10.0.250", with: "rightaddresspool=10.3.0.200-10.3.0.250")
            .write(toFile: directory + "/ipsec.conf", atomically: true, encoding: .utf8)
        // The commented-out block, uncommented.
        let lines = yaml.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        let start = try XCTUnwrap(lines.firstIndex(of: "# conns:"))
        let advised = lines[..<start] + lines[start...].map { $0.hasPrefix("# ") ? String($0.dropFirst(2)) : $0 }
        XCTAssertEqual(Array(advised[start...].prefix(3)), ["conns:", "  rw:", "    proxy_arp: eth1"])
        try advised.joined(separator: "\n").write(toFile: directory + "/vtid-proxy-arp.yaml", atomically: true, encoding: .utf8)
        try yaml.write(toFile: directory + "/vtid.yaml", atomically: true, encoding: .utf8)

        func check(_ yamlFile: String) -> ChildResult {
            runChild([product("vtictl"), "check", "--no-kernel", "--config", directory + "/" + yamlFile, "--ipsec-conf", directory + "/ipsec.conf"])
        }
        let withProxyARP = check("vtid-proxy-arp.yaml")
        XCTAssertEqual(withProxyARP.status, 0, withProxyARP.output)
        XCTAssertEqual(withProxyARP.output, "1 route-based conn checked: 0 errors, 0 warnings\n")
        let without = check("vtid.yaml")
        XCTAssertEqual(without.status, 1, without.output)
        XCTAssertEqual(without.output, """
            \(directory)/ipsec.conf:5: error: address pool 10.3.0.200-10.3.0.250 lies in the local subnet 10.3.0.0/24: hosts on that LAN would ARP for the clients and get no answer (set conns.rw.proxy_arp: LAN-INTERFACE in vtid.yaml, or use a range outside the LAN)
            1 route-based conn checked: 1 error, 0 warnings

            """)
    }

    func testTheRoutedPrefixProfileDeclaresItsPolicyRouting() throws {
        let path = profiles.appendingPathComponent("routed-public-prefix/vtid.yaml").path
        let configuration = try DaemonConfiguration(yaml: try String(contentsOfFile: path, encoding: .utf8), file: path)
        XCTAssertEqual(configuration.policyRoutes.map { "\($0.from) \($0.table)" }, ["203.0.113.0/28 100"])
    }
}
