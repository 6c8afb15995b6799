import Foundation
import KernelTestSupport
import XCTest

/// vti-updown exec'd exactly as libreswan 5.4's pluto execs it with `updown-config=exec` and
/// `updown-config=async`: no shell, argv the `leftupdown=` string split on spaces (the hook's own
/// flags among them, no verb), envp a real environment in pluto's order (PATH first,
/// PLUTO_DNS_RESOLVER, UPDOWN_DEBUG), async's compound verb `prepare-route-up` for the first
/// selector pair. Debian has no 5.4 to record from: the calls are Fixtures/libreswan-5.4-exec,
/// derived by `Scripts/derive-5.4-fixtures` from real 5.2 calls to match 5.4's
/// programs/pluto/updown.c. Each runs in a throwaway network namespace, routing into veth devices
/// (`existing_device`: the host kernel has no VTI).
final class Libreswan54ExecTests: XCTestCase {
    private let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .appendingPathComponent("../VTIModelTests/Fixtures/libreswan-5.4-exec").standardized.path

    /// pluto's argv: leftupdown= split on " ", empty pieces dropped (argv_from_exec_command).
    private func argv(config: String) throws -> [String] {
        let leftupdown = try String(contentsOfFile: "\(fixtures)/leftupdown", encoding: .utf8)
            .trimmingCharacters(in: .newlines)
            .replacingOccurrences(of: "@HOOK@", with: product("vti-updown"))
            .replacingOccurrences(of: "@CONFIG@", with: config)
        return leftupdown.split(separator: " ", omittingEmptySubsequences: true).map(String.init)
    }

    private func envp(_ call: String) throws -> [String] {
        try String(contentsOfFile: "\(fixtures)/\(call).env", encoding: .utf8).split(separator: "\n").map(String.init)
    }

    /// execve(argv[0], argv, envp) with nothing else: no shell, no inherited environment.
    private func execLikePluto(_ call: String, config: String, arguments given: [String]? = nil) throws -> (status: Int32, output: String) {
        let arguments = try given ?? argv(config: config)
        let result = runChild(arguments, exactEnvironment: try envp(call))
        guard result.launched else { throw CommandError(message: result.output) }
        return (result.status, result.output)
    }

    private func settingsFile(_ text: String) throws -> String {
        let path = NSTemporaryDirectory() + "vti-updown-54-\(getpid())-\(UUID().uuidString).conf"
        try text.write(toFile: path, atomically: true, encoding: .utf8)
        addTeardownBlock { try? FileManager.default.removeItem(atPath: path) }
        return path
    }

    private func veth(_ name: String) throws {
        try ip("link", "add", name, "type", "veth", "peer", "name", name + "p")
        try ip("link", "set", name, "up")
    }

    /// What pluto 5.4 gives the hook, as the fixtures have it.
    func testTheFixturesAreWhat54Sends() throws {
        let config = "/etc/vtictl/hook.conf"
        XCTAssertEqual(try argv(config: config), [product("vti-updown"), "--config", config], "split on spaces, the double space eaten")
        for call in ["exec-s2s-east-01-prepare-client", "async-rw-server-01-prepare-route-up"] {
            let environment = try envp(call)
            XCTAssertTrue(environment.first?.hasPrefix("PATH=") == true, "\(call): PATH first")
            XCTAssertTrue(environment.dropFirst().first?.hasPrefix("PLUTO_VERB=") == true, "\(call): then the verb")
            XCTAssertTrue(environment.contains("PLUTO_DNS_RESOLVER=file"), call)
        }
        XCTAssertTrue(try envp("exec-s2s-east-03-up-client").last == "UPDOWN_DEBUG=yes")
        XCTAssertTrue(try envp("async-rw-server-01-prepare-route-up").contains("PLUTO_VERB=prepare-route-up"), "no -client suffix")
    }

    /// updown-config=exec on a site-to-site responder: the synchronous verbs in 5.x order; the
    /// route comes with route-client and goes with down-client; no variable is "unknown" (PATH,
    /// PLUTO_DNS_RESOLVER, UPDOWN_DEBUG are known).
    func testExecModeSiteToSite() throws {
        try inFreshNetworkNamespace(self) {
            try veth("s2sdev")
            let config = try settingsFile("vtid = no\nexisting_device.s2s = s2sdev\n")
            for (call, routed) in [("exec-s2s-east-01-prepare-client", false), ("exec-s2s-east-02-route-client", true),
                                   ("exec-s2s-east-03-up-client", true), ("exec-s2s-east-04-down-client", false),
                                   ("exec-s2s-east-05-unroute-client", false)] {
                let result = try execLikePluto(call, config: config)
                XCTAssertEqual(result.status, 0, "\(call): \(result.output)")
                XCTAssertFalse(result.output.contains("unknown"), "\(call): \(result.output)")
                let route = try ip("route", "show", "10.1.0.0/24"), all = try ip("route")
                XCTAssertEqual(route.contains("dev s2sdev proto 157"), routed, "\(call): routes now: \(all)")
            }
            XCTAssertTrue(try ip("link", "show", "s2sdev").contains("s2sdev"), "the device is not the hook's to delete")
        }
    }

    /// updown-config=async on a road-warrior gateway: one prepare-route-up per client, each step
    /// printed in order; road1's down-client removes exactly its /32.
    func testAsyncCompoundVerbOnARoadWarriorGateway() throws {
        try inFreshNetworkNamespace(self) {
            try veth("rwdev")
            let config = try settingsFile("vtid = no\nexisting_device.rw = rwdev\n")
            let first = try execLikePluto("async-rw-server-01-prepare-route-up", config: config)
            XCTAssertEqual(first.status, 0, first.output)
            XCTAssertEqual(first.output.split(separator: "\n").map(String.init), [
                "vti-updown: step prepare of prepare-route-up",
                "vti-updown: set net.ipv4.ip_forward=1",
                "vti-updown: step route of prepare-route-up",
                "vti-updown: route 10.0.1.10/32 dev rwdev proto 157",
                "vti-updown: step up of prepare-route-up",
            ])
            let second = try execLikePluto("async-rw-server-02-prepare-route-up", config: config)
            XCTAssertEqual(second.status, 0, second.output)
            XCTAssertTrue(second.output.contains("route 10.0.1.11/32 dev rwdev proto 157"), second.output)
            for call in ["async-rw-server-03-down-client", "async-rw-server-04-unroute-client"] {
                let result = try execLikePluto(call, config: config)
                XCTAssertEqual(result.status, 0, "\(call): \(result.output)")
            }
            XCTAssertEqual(try ip("route", "show", "10.0.1.10/32"), "", "road1 left")
            let all = try ip("route")
            XCTAssertTrue(try ip("route", "show", "10.0.1.11/32").contains("dev rwdev proto 157"), "road2 stays: \(all)")
        }
    }

    /// leftupdown="vti-updown --config=FILE --plan": one word per flag, as exec splits it.
    func testFlagsAsOneWordEach() throws {
        let config = try settingsFile("vtid = no\nexisting_device.rw = rwdev\n")
        let result = try execLikePluto("async-rw-server-01-prepare-route-up", config: config,
                                       arguments: [product("vti-updown"), "--config=" + config, "--plan"])
        XCTAssertEqual(result.status, 0, result.output)
        XCTAssertTrue(result.output.contains("add route 10.0.1.10/32 dev rwdev proto 157"), "the settings file was read: \(result.output)")
        let missing = try execLikePluto("async-rw-server-01-prepare-route-up", config: config,
                                        arguments: [product("vti-updown"), "--config=/nonexistent/hook.conf", "--plan"])
        XCTAssertEqual(missing.status, 1, missing.output)
        XCTAssertTrue(missing.output.contains("cannot read /nonexistent/hook.conf"), missing.output)
    }

    /// pluto logs only an async call's exit status (and whatever it printed): a failure says which
    /// step failed and which were applied before it, in one line on stderr.
    func testAsyncFailureNamesItsStep() throws {
        try inFreshNetworkNamespace(self) {
            let config = try settingsFile("vtid = no\nexisting_device.rw = nosuchdev\n")
            let result = try execLikePluto("async-rw-server-01-prepare-route-up", config: config)
            XCTAssertEqual(result.status, 1, result.output)
            let lines = result.output.split(separator: "\n")
            XCTAssertEqual(lines.count, 1, result.output)
            XCTAssertTrue(result.output.hasPrefix("vti-updown: prepare-route-up rw peer 192.0.2.11 id @road1: step route of prepare-route-up failed (applied before it: prepare): "),
                          result.output)
            XCTAssertTrue(result.output.contains("nosuchdev"), result.output)
        }
    }
}
