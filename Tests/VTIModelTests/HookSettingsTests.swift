import XCTest
@testable import VTIModel

final class HookSettingsTests: XCTestCase {
    func testDefaults() {
        let defaults = HookSettings()
        XCTAssertEqual(defaults.routeProtocol, 157)
        XCTAssertEqual(defaults.reversePathFilter, .loose)
        XCTAssertEqual(defaults.reversePathFilter.rawValue, 2)
        XCTAssertEqual(defaults.mtu, .derived(fallbackSuite: .conservative))
        XCTAssertFalse(defaults.routeDefaultThroughTunnel)
        XCTAssertEqual(defaults.routeTable, 254)
        XCTAssertNil(defaults.routeMetric)
        XCTAssertEqual(try HookSettings(parsing: "", file: "empty.conf"), defaults)
    }

    func testAFullFile() throws {
        let parsed = try HookSettings(parsing: """
            # vti-updown settings
            route_protocol = 201
            \trp_filter=off   # asymmetric paths

            mtu = 1400\r
            route_default = yes
            route_table = 100
            route_metric = 20
            """, file: "hook.conf")
        XCTAssertEqual(parsed.routeProtocol, 201)
        XCTAssertEqual(parsed.reversePathFilter, .off)
        XCTAssertEqual(parsed.mtu, .fixed(1400))
        XCTAssertTrue(parsed.routeDefaultThroughTunnel)
        XCTAssertEqual(parsed.routeTable, 100)
        XCTAssertEqual(parsed.routeMetric, 20)
        XCTAssertEqual(try HookSettings(parsing: "mtu = auto\nroute_table = main\nrp_filter = 2", file: "x").mtu, .derived(fallbackSuite: .conservative))
    }

    func testErrorsNameTheFileAndLine() {
        let broken: [(String, String)] = [
            ("route_protocol = 2", "hook.conf:3: route_protocol: \"2\" is not a route protocol number 5-255 (0-4 belong to the kernel)"),
            ("route_protocol = 256", "hook.conf:3: route_protocol: \"256\" is not a route protocol number 5-255 (0-4 belong to the kernel)"),
            ("rp_filter = strict", "hook.conf:3: rp_filter: \"strict\" is not loose or off (strict breaks asymmetric routing through tunnels)"),
            ("mtu = 100", "hook.conf:3: mtu: \"100\" is not auto or a number from 576 to 9000"),
            ("route_default = maybe", "hook.conf:3: route_default: \"maybe\" is not yes or no"),
            ("route_table = 255", "hook.conf:3: route_table: \"255\" is not main or a table number other than 0, 253 (default) and 255 (local)"),
            ("route_table = 253", "hook.conf:3: route_table: \"253\" is not main or a table number other than 0, 253 (default) and 255 (local)"),
            ("route_metric = -1", "hook.conf:3: route_metric: \"-1\" is not a metric (0-4294967295)"),
            ("colour = blue", "hook.conf:3: unknown setting \"colour\" (known: route_protocol, rp_filter, mtu, route_default, route_table, route_metric, vtid, vtid_deadline_ms, existing_device.CONN, keep_device.CONN)"),
            ("vtid = relative", "hook.conf:3: vtid: \"relative\" is not no or vtid's run directory (an absolute path, default /run/vtid)"),
            ("existing_device.rw = bad/name", "hook.conf:3: existing_device.rw: \"bad/name\" is not an interface name (1-15 of A-Z a-z 0-9 . - _)"),
            ("just words", "hook.conf:3: expected key = value, got \"just words\""),
            ("mtu = 1400\nmtu = 1300", "hook.conf:4: \"mtu\" is already set on line 3"),
            ("route_protocol = $(reboot)", "hook.conf:3: route_protocol: \"$(reboot)\" is not a route protocol number 5-255 (0-4 belong to the kernel)"),
        ]
        for (line, message) in broken {
            XCTAssertThrowsError(try HookSettings(parsing: "# first line\n\n\(line)\n", file: "hook.conf"), line) { error in
                XCTAssertEqual("\(error)", message)
                XCTAssertEqual((error as? SettingsError)?.line, message.contains(":4:") ? 4 : 3)
            }
        }
    }

    /// vtid publishes its settings in this format and the hook reads them back: nothing may change.
    func testRenderedSettingsReadBackTheSame() throws {
        var settings = HookSettings()
        settings.routeProtocol = 200
        settings.reversePathFilter = .off
        settings.mtu = .fixed(1400)
        settings.routeDefaultThroughTunnel = true
        settings.routeTable = 100
        settings.routeMetric = 7
        settings.vtidDeadlineMilliseconds = 500
        settings.existingDevices = ["rw": InterfaceName("veth0")!, "s2s-east": InterfaceName("xfrm1")!]
        settings.keptDevices = ["s2s", "branch-2"]
        XCTAssertEqual(try HookSettings(parsing: settings.rendered, file: "hook.conf"), settings)
        XCTAssertEqual(try HookSettings(parsing: HookSettings().rendered, file: "hook.conf"), HookSettings())
    }
}
