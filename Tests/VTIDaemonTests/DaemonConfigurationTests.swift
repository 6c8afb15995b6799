import Foundation
import VTIConfiguration
import VTIModel
import XCTest

final class DaemonConfigurationTests: XCTestCase {
    func testTheShippedExampleParses() throws {
        let path = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("../../Profiles/vtid.yaml.example").standardized.path
        let configuration = try DaemonConfiguration(yaml: try String(contentsOfFile: path, encoding: .utf8), file: path)
        XCTAssertEqual(configuration.hook.routeProtocol, 157)
        XCTAssertEqual(configuration.hook.reversePathFilter, .loose)
        XCTAssertEqual(configuration.runDirectory, "/run/vtid")
    }

    func testEverySetting() throws {
        let configuration = try DaemonConfiguration(yaml: """
            ipsec_conf: /etc/ipsec.conf
            state_directory: /var/lib/vtid
            socket_group: 27
            routes:
              protocol: 200
              table: 100
              metric: 20
              default: yes
            rp_filter: off
            mtu: 1400
            manage: [rw, s2s]
            conns:
              rw:
                proxy_arp: eth1
            policy_routing:
              - from: 203.0.113.0/28
                table: 100
                priority: 900
                via: 192.0.2.1
                device: eth0
            event_history: 50
            hook_deadline_ms: 500
            """, file: "vtid.yaml")
        XCTAssertEqual(configuration.hook.routeProtocol, 200)
        XCTAssertEqual(configuration.hook.routeTable, 100)
        XCTAssertEqual(configuration.hook.routeMetric, 20)
        XCTAssertTrue(configuration.hook.routeDefaultThroughTunnel)
        XCTAssertEqual(configuration.hook.reversePathFilter, .off)
        XCTAssertEqual(configuration.hook.mtu, .fixed(1400))
        XCTAssertEqual(configuration.managedConnections, ["rw", "s2s"])
        XCTAssertFalse(configuration.manages("other"))
        XCTAssertEqual(configuration.connections["rw"]?.proxyARP?.rawValue, "eth1")
        XCTAssertEqual(configuration.policyRoutes.first?.priority, 900)
        XCTAssertEqual(configuration.socketGroup, 27)
        XCTAssertEqual(configuration.eventHistory, 50)
        XCTAssertEqual(configuration.hook.vtidDeadlineMilliseconds, 500, "the hook's deadline comes from vtid.yaml")
    }

    func testErrorsNameTheLine() {
        let cases: [(String, String)] = [
            ("routes:\n  protocl: 157\n", "vtid.yaml:2: unknown setting protocl in routes"),
            ("mtu: 100\n", "vtid.yaml:1: mtu must be auto or a number from 576 to 9000"),
            ("rp_filter: strict\n", "vtid.yaml:1: rp_filter must be loose or off"),
            ("# comment\nconns:\n  rw:\n    proxy_arp: \"eth 1\"\n", "vtid.yaml:4: proxy_arp: eth 1 is not an interface name"),
            ("policy_routing:\n  - from: 203.0.113.0/33\n    table: 100\n", "vtid.yaml:2: from: 203.0.113.0/33 is not a prefix"),
            ("policy_routing:\n  - from: 203.0.113.0/28\n    table: main\n", "vtid.yaml:3: policy_routing needs its own table"),
            ("routes:\n  table: 255\n", "vtid.yaml:2: routes.table must be main or a table number"),
            ("ipsec_conf: relative/path\n", "vtid.yaml:1: ipsec_conf must be an absolute path"),
            ("mtu: auto\nmtu: 1400\n", "a key is set twice: mtu"),
            ("routes: [unclosed\n", "vtid.yaml:2: not valid YAML"),
            ("unknown_key: 1\n", "vtid.yaml:1: unknown setting unknown_key in the top level"),
            ("manage: [rw]\nconns:\n  other:\n    proxy_arp: eth1\n", "conns.other has settings but manage: does not list it"),
            ("# metrics\nmetrics_listen: localhost:9719\n", "vtid.yaml:2: metrics_listen must be an IP address and port, such as 127.0.0.1:9719 or [::1]:9719, not localhost:9719"),
            ("metrics_listen: 127.0.0.1\n", "vtid.yaml:1: metrics_listen must be an IP address and port"),
            ("metrics_listen: 127.0.0.1:0\n", "vtid.yaml:1: metrics_listen must be an IP address and port"),
            ("metrics_listen: 127.0.0.1:65536\n", "vtid.yaml:1: metrics_listen must be an IP address and port"),
            ("metrics_listen: \"::1:9719\"\n", "vtid.yaml:1: metrics_listen must be an IP address and port"),
            ("metrics_listen: \"[127.0.0.1]:9719\"\n", "vtid.yaml:1: metrics_listen must be an IP address and port"),
            ("metrics_listen: \"[::1]9719\"\n", "vtid.yaml:1: metrics_listen must be an IP address and port"),
            ("metrics_listen: [127.0.0.1:9719]\n", "vtid.yaml:1: metrics_listen must be a single value"),
        ]
        for (text, expected) in cases {
            XCTAssertThrowsError(try DaemonConfiguration(yaml: text, file: "vtid.yaml"), text) { error in
                XCTAssertTrue("\(error)".contains(expected), "\(text.debugDescription): got \(error), expected \(expected)")
            }
        }
    }

    /// Yams hashes and sorts every mapping's keys, recursively and twice per level, so these
    /// short texts took Yams seconds to hours before vtid ever saw them (found by the vtid-yaml
    /// fuzz target). They are refused by line, at once.
    func testYAMLWhoseParsingCostIsUnboundedIsRefusedByLineNotAHang() {
        // An alias key expanding ten-fold per anchor: 10^7 nodes hashed (about 7 s before, 70 s
        // with one more line).
        var laughs = "a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n"
        for level in 1..<7 { laughs += "a\(level): &a\(level) [" + Array(repeating: "*a\(level - 1)", count: 10).joined(separator: ", ") + "]\n" }
        laughs += "*a6 : 1\n"
        let nestedKeys = "socket_group: 5\n" + String(repeating: "? ", count: 40) + "x\n"
        let cases: [(String, String)] = [
            (laughs, "vtid.yaml:1: anchors (&name) are not allowed"),
            ("# ok\nconns: *c\n", "vtid.yaml:2: aliases (*name) are not allowed"),
            (nestedKeys, "vtid.yaml:2: explicit keys (? key) are not allowed"),
            ("routes: {table: [[[[1]]]]}\n", "vtid.yaml:1: lists and mappings in [ ] or { } nest more than 4 deep"),
            ("conns: {? [a]: 1}\n", "vtid.yaml:1: explicit keys"),
            ("manage: ['rw,\n  x']\n", "vtid.yaml:1: a quoted value must end on the line where it starts"),
            ("manage:\n" + String(repeating: " ", count: 65) + "- rw\n", "vtid.yaml:2: indented more than 64 columns"),
            ("manage:\n  - - - - - rw\n", "vtid.yaml:2: more than 4 list entries"),
            ("--- &doc\n", "vtid.yaml:1: anchors"),
            ("manage: [rw, !!str &x a]\n", "vtid.yaml:1: anchors"),
        ]
        for (text, expected) in cases {
            XCTAssertThrowsError(try DaemonConfiguration(yaml: text, file: "vtid.yaml"), text) { error in
                XCTAssertTrue("\(error)".contains(expected), "\(text.prefix(80).debugDescription): got \(error), expected \(expected)")
            }
        }
    }

    /// What the guard must not refuse: &, *, ? and quotes inside values and comments.
    func testIndicatorsInsideValuesAndCommentsAreNotRefused() throws {
        let text = """
            # routes & MTU: *not* an alias, ? not a key
            ipsec_conf: "/etc/ipsec.d/*.conf" # quoted *
            state_directory: /var/lib/vtid&x
            run_directory: '/run/it''s'
            manage: [rw, "s2s", 'x*y']
            conns:
              rw:
                proxy_arp: eth1   # & here too
            """
        let configuration = try DaemonConfiguration(yaml: text, file: "vtid.yaml")
        XCTAssertEqual(configuration.ipsecConf, "/etc/ipsec.d/*.conf")
        XCTAssertEqual(configuration.stateDirectory, "/var/lib/vtid&x")
        XCTAssertEqual(configuration.runDirectory, "/run/it's")
        XCTAssertEqual(configuration.managedConnections, ["rw", "s2s", "x*y"])
    }

    func testEmptyFileMeansDefaults() throws {
        XCTAssertEqual(try DaemonConfiguration(yaml: "# nothing\n", file: "vtid.yaml"), DaemonConfiguration())
        XCTAssertNil(DaemonConfiguration().metricsListen, "no metrics server unless asked for")
    }

    func testMetricsListenTakesIPv4AndIPv6Literals() throws {
        let v4 = try DaemonConfiguration(yaml: "metrics_listen: 127.0.0.1:9719\n", file: "vtid.yaml")
        XCTAssertEqual(v4.metricsListen, ListenAddress(address: IPAddress("127.0.0.1")!, port: 9719))
        XCTAssertEqual(v4.lines["metrics_listen"], 1)
        let v6 = try DaemonConfiguration(yaml: "metrics_listen: \"[2001:db8::1]:80\"\n", file: "vtid.yaml")
        XCTAssertEqual(v6.metricsListen?.description, "[2001:db8::1]:80")
        XCTAssertEqual(try DaemonConfiguration(yaml: "metrics_listen: 0.0.0.0:9719\n", file: "vtid.yaml").metricsListen?.description, "0.0.0.0:9719")
    }
}
