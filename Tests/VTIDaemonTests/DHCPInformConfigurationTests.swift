import DHCP
import Foundation
import VTIConfiguration
import VTIModel
import XCTest

/// `conns.NAME.dhcp_inform` in vtid.yaml: read strictly, errors with their line, and the routes
/// defaulting to the conn's leftsubnets.
final class DHCPInformConfigurationTests: XCTestCase {
    func network(_ text: String) -> IPv4Network {
        let prefix = IPPrefix(text)!
        guard case .v4(let address) = prefix.address else { fatalError(text) }
        return IPv4Network(address: address, length: prefix.length)!
    }

    func testEverySetting() throws {
        let configuration = try DaemonConfiguration(yaml: """
            conns:
              rw:
                dhcp_inform:
                  routes: [10.3.0.0/24, 192.168.50.0/23]
                  router: on-link
                  dns: [10.3.0.53, 10.3.0.54]
                  domain: corp.example
                  search: [corp.example, example.com]
                  server_identifier: 10.3.0.1
              other:
                dhcp_inform: yes
              off:
                dhcp_inform: no
            """, file: "vtid.yaml")
        let inform = try XCTUnwrap(configuration.connections["rw"]?.dhcpInform)
        XCTAssertEqual(inform.routes, [network("10.3.0.0/24"), network("192.168.50.0/23")])
        XCTAssertEqual(inform.router, .onLink)
        XCTAssertEqual(inform.dnsServers, [IPv4Address("10.3.0.53")!, IPv4Address("10.3.0.54")!])
        XCTAssertEqual(inform.domainName, "corp.example")
        XCTAssertEqual(inform.searchDomains, ["corp.example", "example.com"])
        XCTAssertEqual(inform.serverIdentifier, IPv4Address("10.3.0.1"))
        XCTAssertEqual(configuration.connections["other"]?.dhcpInform, DaemonConfiguration.DHCPInformSettings(), "yes: every default")
        XCTAssertNil(configuration.connections["off"]?.dhcpInform)
        XCTAssertNil(try DaemonConfiguration(yaml: "conns:\n  rw:\n    proxy_arp: eth1\n", file: "vtid.yaml").connections["rw"]?.dhcpInform,
                      "off by default")
        let single = try DaemonConfiguration(yaml: "conns:\n  rw:\n    dhcp_inform:\n      dns: 10.3.0.53\n      router: 10.3.0.254\n", file: "vtid.yaml")
        XCTAssertEqual(single.connections["rw"]?.dhcpInform?.dnsServers, [IPv4Address("10.3.0.53")!], "one value for a list")
        XCTAssertEqual(single.connections["rw"]?.dhcpInform?.router, .address(IPv4Address("10.3.0.254")!))
    }

    func testErrorsNameTheLine() {
        let start = "conns:\n  rw:\n    dhcp_inform:\n"
        let cases: [(String, String)] = [
            ("      routes: [10.3.0.1/24]\n", "vtid.yaml:4: conns.rw.dhcp_inform.routes: 10.3.0.1/24 has host bits set; the network is 10.3.0.0/24"),
            ("      routes: [2001:db8::/64]\n", "vtid.yaml:4: conns.rw.dhcp_inform.routes: 2001:db8::/64 is not an IPv4 prefix"),
            ("      router: gateway\n", "vtid.yaml:4: conns.rw.dhcp_inform.router (server, on-link or an address): gateway is not an IPv4 address"),
            ("      dns: [10.3.0.300]\n", "vtid.yaml:4: conns.rw.dhcp_inform.dns: 10.3.0.300 is not an IPv4 address"),
            ("      domain: \"bad domain\"\n", "vtid.yaml:4: conns.rw.dhcp_inform.domain: bad domain: only letters"),
            ("      search: [ok.example, a..b]\n", "vtid.yaml:4: conns.rw.dhcp_inform.search: a..b: each label must be 1 to 63 characters"),
            ("      lease: 3600\n", "vtid.yaml:4: unknown setting lease in conns.rw.dhcp_inform"),
            ("      routes: [\(( 0..<40).map { "10.\($0).0.0/24" }.joined(separator: ", "))]\n",
             "vtid.yaml:4: conns.rw.dhcp_inform: the answer would be 898 bytes, over the 548"),
        ]
        for (text, expected) in cases {
            XCTAssertThrowsError(try DaemonConfiguration(yaml: start + text, file: "vtid.yaml"), text) { error in
                XCTAssertTrue("\(error)".contains(expected), "\(text.debugDescription): got \(error), expected \(expected)")
            }
        }
        XCTAssertThrowsError(try DaemonConfiguration(yaml: "conns:\n  rw:\n    dhcp_inform: maybe\n", file: "vtid.yaml")) { error in
            XCTAssertTrue("\(error)".contains("vtid.yaml:3: conns.rw.dhcp_inform must be yes or no"), "\(error)")
        }
    }

    /// `l2tp.dhcp_inform`: the same settings for every ppp link (L2TP/IPsec clients), which belong
    /// to no conn, so `routes:` is required; errors name the line.
    func testL2TPBlock() throws {
        let configuration = try DaemonConfiguration(yaml: """
            l2tp:
              dhcp_inform:
                routes: [10.3.0.0/24]
                dns: 10.3.0.53
            """, file: "vtid.yaml")
        XCTAssertEqual(configuration.l2tpDHCPInform?.routes, [network("10.3.0.0/24")])
        XCTAssertEqual(configuration.l2tpDHCPInform?.dnsServers, [IPv4Address("10.3.0.53")!])
        XCTAssertEqual(configuration.lines["l2tp.dhcp_inform"], 3, "where its settings start, as for conns")
        XCTAssertNil(try DaemonConfiguration(yaml: "l2tp:\n  dhcp_inform: no\n", file: "vtid.yaml").l2tpDHCPInform)
        XCTAssertNil(try DaemonConfiguration(yaml: "conns: {}\n", file: "vtid.yaml").l2tpDHCPInform, "off by default")
        let cases: [(String, String)] = [
            ("l2tp:\n  dhcp_inform: yes\n", "vtid.yaml:2: l2tp.dhcp_inform needs routes: (the networks behind the gateway)"),
            ("l2tp:\n  dhcp_inform:\n    dns: [10.3.0.53]\n", "vtid.yaml:3: l2tp.dhcp_inform needs routes:"),
            ("l2tp:\n  dhcp_inform:\n    routes: [10.3.0.1/24]\n", "vtid.yaml:3: l2tp.dhcp_inform.routes: 10.3.0.1/24 has host bits set"),
            ("l2tp:\n  pool: 10.20.0.0/24\n", "vtid.yaml:2: unknown setting pool in l2tp"),
        ]
        for (text, expected) in cases {
            XCTAssertThrowsError(try DaemonConfiguration(yaml: text, file: "vtid.yaml"), text) { error in
                XCTAssertTrue("\(error)".contains(expected), "\(text.debugDescription): got \(error), expected \(expected)")
            }
        }
    }

    /// Without `routes:`, the answers carry the conn's IPv4 leftsubnets, never 0.0.0.0/0; vtictl
    /// check says when that leaves nothing to send.
    func testRoutesDefaultToTheConnsLeftSubnets() throws {
        let conns = try RouteBasedConn.all(in: IPsecConfig(main: .init(file: "ipsec.conf", text: """
            conn rw
                left=192.0.2.2
                leftsubnet=10.3.0.0/24,10.4.0.0/16
                right=%any
                rightaddresspool=10.0.1.10-10.0.1.50
                mark=12/0xffffffff
                vti-interface=vti02
                vti-routing=yes
                vti-shared=yes
            conn everything
                left=192.0.2.2
                leftsubnet=0.0.0.0/0
                right=%any
                mark=13/0xffffffff
                vti-interface=vti03
                vti-routing=yes
            """)))
        let byName = Dictionary(uniqueKeysWithValues: conns.map { ($0.name, $0) })
        let defaults = DaemonConfiguration.DHCPInformSettings()
        XCTAssertEqual(dhcpInformRoutes(defaults, leftSubnets: try XCTUnwrap(byName["rw"]).leftSubnets),
                       [network("10.3.0.0/24"), network("10.4.0.0/16")])
        XCTAssertEqual(dhcpInformRoutes(defaults, leftSubnets: try XCTUnwrap(byName["everything"]).leftSubnets), [])
        var configured = defaults
        configured.routes = [network("172.16.0.0/12")]
        XCTAssertEqual(dhcpInformRoutes(configured, leftSubnets: try XCTUnwrap(byName["rw"]).leftSubnets), [network("172.16.0.0/12")])

        let configuration = try DaemonConfiguration(yaml: "conns:\n  rw:\n    dhcp_inform: yes\n  everything:\n    dhcp_inform: yes\n", file: "vtid.yaml")
        let findings = configuration.findings(against: conns, file: "vtid.yaml").map(\.message)
        XCTAssertEqual(findings.filter { $0.contains("dhcp_inform") }.count, 2, "\(findings)")
        XCTAssertTrue(findings.contains { $0.hasPrefix("conns.everything.dhcp_inform: no routes to send") }, "\(findings)")
        XCTAssertTrue(findings.contains { $0.hasPrefix("conns.everything.dhcp_inform: conn everything has no rightaddresspool=") }, "\(findings)")
    }
}
