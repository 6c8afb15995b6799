import XCTest
@testable import VTIModel

/// `vtictl check` against the host: one broken situation per test, with its message and line.
/// The CLI's tests (VTICtlCheckTests) run the same checks against a real kernel.
final class HostCheckTests: XCTestCase {
    private let hook = "/usr/local/libexec/vtictl/vti-updown"

    private func conns(_ text: String) throws -> [RouteBasedConn] {
        try RouteBasedConn.all(in: IPsecConfig(main: .init(file: "ipsec.conf", text: text)))
    }

    private func findings(_ text: String, settings: HookSettings = HookSettings(), _ configure: (inout HostFacts) -> Void = { _ in }) throws -> [String] {
        var facts = HostFacts()
        facts.executables = [hook]
        configure(&facts)
        return checkHost(try conns(text), settings: settings, facts: facts).map(\.description)
    }

    private var site: String { "conn a\n    mark=0x80010/0xffffffff\n    vti-interface=vti01\n    leftupdown=\(hook)\n" }

    func testACleanHostHasNoFindings() throws {
        XCTAssertEqual(try findings(site) {
            $0.markRules = [.init(priority: 5210, mark: 0x1, mask: 0xff, table: 52)]
            $0.devices = [.init(name: "eth0", vti: nil), .init(name: "vti01", vti: .init(inputKey: 0x80010, outputKey: 0x80010, local: "192.0.2.1", remote: "198.51.100.1"))]
        }, [])
    }

    func testAMarkAnotherFirewallMarkUserSelects() throws {
        // Tailscale's rules select 0x80000/0xff0000: this conn's mark falls inside.
        XCTAssertEqual(try findings(site) { $0.markRules = [.init(priority: 5210, mark: 0x80000, mask: 0xff0000, table: 52)] }, [
            "ipsec.conf:1: error: conn a's mark 524304 (0x80010) is also selected by the kernel's ip rule 5210 (fwmark 0x80000/0xff0000 lookup 52): another firewall-mark user would route this tunnel's packets; give the conn a mark outside that range",
        ])
    }

    func testAnotherDeviceWithTheSameKey() throws {
        XCTAssertEqual(try findings(site) {
            $0.devices = [.init(name: "vti9", vti: .init(inputKey: 0x80010, outputKey: 0x80010, local: "192.0.2.1", remote: "203.0.113.9"))]
        }, [
            "ipsec.conf:1: error: the kernel's vti9 already uses key 524304 (local 192.0.2.1, remote 203.0.113.9): conn a's vti01 with the same key would take or lose its traffic; delete vti9 or give the conn another mark",
        ])
    }

    func testTheDeviceExistsWithOtherKeysOrIsNoVTI() throws {
        XCTAssertEqual(try findings(site) {
            $0.devices = [.init(name: "vti01", vti: .init(inputKey: 7, outputKey: 7, local: "192.0.2.1", remote: "198.51.100.1"))]
        }, ["ipsec.conf:1: error: vti01 exists with keys 7/7, not conn a's 524304/524304: vti-updown will refuse to adopt it (delete it or fix mark=)"])
        XCTAssertEqual(try findings(site) { $0.devices = [.init(name: "vti01", vti: nil)] }, [
            "ipsec.conf:1: error: vti01 exists and is not a VTI device: conn a cannot have it (rename vti-interface= or set existing_device in vtid.yaml)",
        ])
        var settings = HookSettings()
        settings.existingDevices["a"] = InterfaceName("xfrm7")
        XCTAssertEqual(try findings(site, settings: settings), [
            "ipsec.conf:1: warning: conn a's existing_device xfrm7 does not exist (yet): its routes have nowhere to go",
        ])
        XCTAssertEqual(try findings(site, settings: settings) { $0.devices = [.init(name: "xfrm7", vti: nil)] }, [])
    }

    func testAHookThatCannotRun() throws {
        let withArguments = site.replacingOccurrences(of: "leftupdown=\(hook)", with: "leftupdown=\"\(hook) --config /etc/vtictl/hook.conf\"")
        XCTAssertEqual(try findings(withArguments), [], "arguments after the program are the hook's")
        XCTAssertEqual(checkRouteBasedConns(try conns(withArguments)), [], "and it is still vti-updown")
        XCTAssertEqual(try findings(site) { $0.executables = [] }, [
            "ipsec.conf:1: error: conn a: leftupdown=\(hook) is not an executable file here: pluto would fail every state change",
        ])
    }

    func testARouteProtocolARoutingDaemonUses() throws {
        var settings = HookSettings()
        settings.routeProtocol = 186
        XCTAssertEqual(try findings(site, settings: settings), [
            "error: route protocol 186 is bgp's: vtid would prune that daemon's routes on VTI devices as its own (pick an unassigned number, the default is 157)",
        ])
    }

    func testSysctlFilesThatUndoTheHook() throws {
        let text = """
            # hardening
            net.ipv4.conf.all.rp_filter = 1
            -net/ipv4/ip_forward=0
            ; comment
            net.ipv4.conf.vti01.disable_policy = 0
            net/ipv4/conf/vti01/rp_filter = 1
            net.ipv4.conf.eth0.rp_filter = 1
            """
        let lines = SysctlFileSetting.parse(text, file: "/etc/sysctl.d/99-hardening.conf")
        XCTAssertEqual(lines.map { "\($0.location.line) \($0.key)=\($0.value)" }, [
            "2 net.ipv4.conf.all.rp_filter=1", "3 net.ipv4.ip_forward=0", "5 net.ipv4.conf.vti01.disable_policy=0",
            "6 net.ipv4.conf.vti01.rp_filter=1", "7 net.ipv4.conf.eth0.rp_filter=1",
        ])
        XCTAssertEqual(SysctlFileSetting.parse("net/ipv4/conf/eth0.100/rp_filter = 2", file: "f").map(\.key), ["net.ipv4.conf.eth0/100.rp_filter"],
                       "in slash form a dot belongs to a device name")
        let routed = site + "    vti-routing=yes\n    rightsubnet=10.2.0.0/16\n"
        var off = HookSettings()
        off.reversePathFilter = .off
        XCTAssertEqual(try findings(routed, settings: off) { $0.sysctlFiles = lines }, [
            "/etc/sysctl.d/99-hardening.conf:2: warning: net.ipv4.conf.all.rp_filter = 1 overrides rp_filter off on every VTI device (the kernel uses the larger of all and the device): strict checking drops replies that come back through another tunnel",
            "/etc/sysctl.d/99-hardening.conf:3: warning: net.ipv4.ip_forward = 0: route-based conns route clients and subnets; the hook turns forwarding on, and `sysctl --system` would turn it off again",
            "/etc/sysctl.d/99-hardening.conf:5: warning: net.ipv4.conf.vti01.disable_policy = 0: decrypted packets on vti01 would be checked against IPsec policies again and dropped",
            "/etc/sysctl.d/99-hardening.conf:6: warning: net.ipv4.conf.vti01.rp_filter = 1 contradicts the hook's rp_filter off (0) on vti01",
        ])
        // Loose (the default) is max(all, 2) = 2 whatever all says: only the device line conflicts.
        XCTAssertEqual(try findings(site) { $0.sysctlFiles = lines }.count, 2)
    }

    func testAKernelWithoutVTIOrESP() {
        let support = KernelSupport(release: "6.1.0-test", modulesDirectory: "/lib/modules/6.1.0-test", availableModules: ["xfrm_user", "esp4"], xfrmNetlinkError: nil)
        XCTAssertEqual(support.findings.map(\.description), [
            "error: the running kernel (6.1.0-test) has no ip_vti for VTI devices: it is neither loaded, built in, nor in /lib/modules/6.1.0-test (install the distribution's full kernel modules package)",
        ])
        let bare = KernelSupport(release: "r", modulesDirectory: "/m", availableModules: [], xfrmNetlinkError: "socket: protocol not supported")
        XCTAssertEqual(bare.findings.count, 3)
        XCTAssertTrue(bare.findings[2].message.contains("no xfrm_user for pluto's XFRM netlink"), bare.findings[2].message)
        XCTAssertEqual(KernelSupport(release: "r", modulesDirectory: "/m", availableModules: ["ip_vti", "esp4"], xfrmNetlinkError: nil).findings, [],
                       "a working XFRM socket is xfrm_user, built in or loaded")
    }
}
