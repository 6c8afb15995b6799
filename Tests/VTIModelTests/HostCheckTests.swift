import XCTest
@testable import VTIModel

/// `vtictl check` against the host: one broken situation per test, with its message and line.
/// The CLI's tests (VTICtlCheckTests) run the same checks against a real kernel.
final class HostCheckTests: XCTestCase {
    private let hook = "/usr/libexec/vtictl/vti-updown"

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
            $0.markRules = [.init(priority: 5210, mark: 0x1, mask: 0xff, action: "lookup 52"),
                            // wg-quick's: packets without 0x80010 go to its table, so 0x80010's are passed over.
                            .init(priority: 32764, mark: 0x80010, mask: 0xffff_ffff, action: "lookup 51820", isInverted: true)]
            $0.devices = [.init(name: "eth0", vti: nil), .init(name: "vti01", vti: .init(inputKey: 0x80010, outputKey: 0x80010, local: "192.0.2.1", remote: "198.51.100.1"))]
        }, [])
    }

    func testAMarkAnotherFirewallMarkUserSelects() throws {
        // Tailscale's rules select 0x80000/0xff0000 in both families: this conn's mark falls inside.
        let tailscale: [HostFacts.MarkRule] = [5210, 5230, 5250].flatMap { priority in
            Array(repeating: HostFacts.MarkRule(priority: priority, mark: 0x80000, mask: 0xff0000,
                                                action: [5210: "lookup main", 5230: "lookup default", 5250: "unreachable"][priority]!), count: 2)
        }
        XCTAssertEqual(try findings(site) { $0.markRules = Array(tailscale.prefix(2)) }, [
            "ipsec.conf:1: error: conn a's mark 524304 (0x80010) is also selected by the kernel's ip rule 5210 (fwmark 0x80000/0xff0000 lookup main): another firewall-mark user would route this tunnel's packets; give the conn a mark outside that range",
        ])
        XCTAssertEqual(try findings(site) { $0.markRules = tailscale }, [
            "ipsec.conf:1: error: conn a's mark 524304 (0x80010) is also selected by the kernel's ip rules 5210 (fwmark 0x80000/0xff0000 lookup main), 5230 (fwmark 0x80000/0xff0000 lookup default), 5250 (fwmark 0x80000/0xff0000 unreachable): another firewall-mark user would route this tunnel's packets; give the conn a mark outside that range",
        ], "one finding per mark, each rule once")
        // wg-quick's `not fwmark 51820`: every other mark is taken by it.
        XCTAssertEqual(try findings(site) { $0.markRules = [.init(priority: 32764, mark: 51820, mask: 0xffff_ffff, action: "lookup 51820", isInverted: true)] }, [
            "ipsec.conf:1: error: conn a's mark 524304 (0x80010) is also selected by the kernel's ip rule 32764 (not fwmark 0xca6c/0xffffffff lookup 51820): another firewall-mark user would route this tunnel's packets; give the conn a mark outside that range",
        ])
    }

    func testAnotherDeviceWithTheSameKey() throws {
        XCTAssertEqual(try findings(site) {
            $0.devices = [.init(name: "vti9", vti: .init(inputKey: 0x80010, outputKey: 0x80010, local: "192.0.2.1", remote: "203.0.113.9"))]
        }, [
            "ipsec.conf:1: error: the kernel's vti9 already uses key 524304 (local 192.0.2.1, remote 203.0.113.9): conn a's vti01 with the same key would take or lose its traffic; delete vti9 or give the conn another mark",
        ])
        XCTAssertEqual(try findings(site) {
            $0.devices = [.init(name: "vti9", vti: .init(inputKey: 9, outputKey: 0x80010, local: "192.0.2.1", remote: "203.0.113.9"))]
        }.count, 1, "the output key counts too")
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

    /// Each side this host may be runs its own updown: a right side that may be this host is
    /// checked too; a right=%any side never runs here.
    func testTheRightSidesHookIsCheckedWhereThisHostMayBeRight() throws {
        let both = "conn a\n    left=192.0.2.1\n    right=198.51.100.7\n    mark=0x80010/0xffffffff\n    vti-interface=vti01\n    leftupdown=\(hook)\n    rightupdown=/opt/missing/vti-updown\n"
        XCTAssertEqual(try findings(both), [
            "ipsec.conf:1: error: conn a: rightupdown=/opt/missing/vti-updown is not an executable file here: pluto would fail every state change",
        ])
        XCTAssertEqual(try findings(both.replacingOccurrences(of: "right=198.51.100.7", with: "right=%any")), [], "right=%any is never this host")
        XCTAssertEqual(try findings(both.replacingOccurrences(of: "/opt/missing/vti-updown", with: hook)) { $0.executables = [] }, [
            "ipsec.conf:1: error: conn a: leftupdown=\(hook) is not an executable file here: pluto would fail every state change",
        ], "one program, one finding")
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
        XCTAssertEqual(lines.map { "\($0.location.line) \($0.key)=\($0.value ?? "-")" }, [
            "2 net.ipv4.conf.all.rp_filter=1", "3 net.ipv4.ip_forward=0", "5 net.ipv4.conf.vti01.disable_policy=0",
            "6 net.ipv4.conf.vti01.rp_filter=1", "7 net.ipv4.conf.eth0.rp_filter=1",
        ])
        let routed = site + "    vti-routing=yes\n    rightsubnet=10.2.0.0/16\n"
        var off = HookSettings()
        off.reversePathFilter = .off
        XCTAssertEqual(try findings(routed, settings: off) { $0.sysctlFiles = lines }, [
            "/etc/sysctl.d/99-hardening.conf:3: warning: net.ipv4.ip_forward = 0: route-based conns route clients and subnets; the hook turns forwarding on, and `sysctl --system` would turn it off again",
            "/etc/sysctl.d/99-hardening.conf:2: warning: net.ipv4.conf.all.rp_filter = 1: overrides rp_filter off on every VTI device (the kernel uses the larger of all and the device): strict checking drops replies that come back through another tunnel",
            "/etc/sysctl.d/99-hardening.conf:6: warning: net.ipv4.conf.vti01.rp_filter = 1: contradicts the hook's rp_filter off (0) on vti01",
            "/etc/sysctl.d/99-hardening.conf:5: warning: net.ipv4.conf.vti01.disable_policy = 0: decrypted packets on vti01 would be checked against IPsec policies again and dropped",
        ])
        // Loose (the default) is max(all, 2) = 2 whatever all says: only the device's lines conflict.
        XCTAssertEqual(try findings(site) { $0.sysctlFiles = lines }, [
            "/etc/sysctl.d/99-hardening.conf:6: warning: net.ipv4.conf.vti01.rp_filter = 1: contradicts the hook's rp_filter loose (2) on vti01",
            "/etc/sysctl.d/99-hardening.conf:5: warning: net.ipv4.conf.vti01.disable_policy = 0: decrypted packets on vti01 would be checked against IPsec policies again and dropped",
        ])
    }

    /// What `sysctl --system` ends with is judged: later lines win, an explicit key beats a glob,
    /// an exclusion takes a key out of the globs, dotted keys may hold a slash for a dot.
    func testSysctlFilesAreJudgedOnTheirFinalValues() throws {
        let hardening = SysctlFileSetting.parse("net.ipv4.conf.all.rp_filter = 1\nnet.ipv4.ip_forward = 0\n", file: "/usr/lib/sysctl.d/10-hardening.conf")
        let fixed = SysctlFileSetting.parse("net.ipv4.conf.all.rp_filter = 0\nnet.ipv4.ip_forward = 1\n", file: "/etc/sysctl.d/99-vpn.conf")
        var off = HookSettings()
        off.reversePathFilter = .off
        let routed = site + "    vti-routing=yes\n    rightsubnet=10.2.0.0/16\n"
        XCTAssertEqual(try findings(routed, settings: off) { $0.sysctlFiles = hardening + fixed }, [], "the later file corrects the earlier one")
        // systemd's 50-default.conf: a glob over every device, all excluded.
        let globbed = SysctlFileSetting.parse("net.ipv4.conf.default.rp_filter = 2\nnet.ipv4.conf.*.rp_filter = 2\n-net.ipv4.conf.all.rp_filter\n",
                                              file: "/usr/lib/sysctl.d/50-default.conf")
        XCTAssertEqual(try findings(routed, settings: off) { $0.sysctlFiles = globbed }, [
            "/usr/lib/sysctl.d/50-default.conf:2: warning: net.ipv4.conf.*.rp_filter = 2 (so net.ipv4.conf.vti01.rp_filter): contradicts the hook's rp_filter off (0) on vti01",
        ])
        let explicit = SysctlFileSetting.parse("net.ipv4.conf.vti01.rp_filter = 0\n", file: "/etc/sysctl.d/60-vti.conf")
        XCTAssertEqual(try findings(routed, settings: off) { $0.sysctlFiles = explicit + globbed }, [], "an explicit key beats a glob, whatever the order")
        XCTAssertEqual(SysctlFileSetting.parse("net.ipv4.conf.eth0/100.rp_filter = 2\nnet/ipv4/conf/eth0.100/rp_filter = 2\nnet.ipv4.conf.all.forwarding=0", file: "f").map(\.key),
                       ["net.ipv4.conf.eth0/100.rp_filter", "net.ipv4.conf.eth0/100.rp_filter", "net.ipv4.conf.all.forwarding"],
                       "a dot inside a device name, written either way")
        XCTAssertEqual(try findings(routed) { $0.sysctlFiles = SysctlFileSetting.parse("net.ipv4.conf.all.forwarding=0", file: "f") }, [
            "f:1: warning: net.ipv4.conf.all.forwarding = 0: route-based conns route clients and subnets; the hook turns forwarding on, and `sysctl --system` would turn it off again",
        ])
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

    // MARK: XFRM interfaces

    private var xfrmSite: String { "conn a\n    ipsec-interface=1\n    leftupdown=\(hook)\n" }

    /// ipsecN exists with another if_id, or is no XFRM interface at all: pluto refuses it.
    func testTheXfrmInterfaceNameIsTakenByAnotherDevice() throws {
        XCTAssertEqual(try findings(xfrmSite) { $0.devices = [.init(name: "ipsec1", vti: nil, xfrmInterfaceID: 1)] }, [], "pluto's own device, as it makes it")
        XCTAssertEqual(try findings(xfrmSite) { $0.devices = [.init(name: "ipsec1", vti: nil, xfrmInterfaceID: 7)] }, [
            "ipsec.conf:1: error: ipsec1 exists as an XFRM interface with if_id 7, not conn a's 1: pluto refuses to use it (delete it, or fix ipsec-interface=)",
        ])
        XCTAssertEqual(try findings(xfrmSite) { $0.devices = [.init(name: "ipsec1", vti: .init(inputKey: 5, outputKey: 5, local: "192.0.2.1", remote: "0.0.0.0"))] }, [
            "ipsec.conf:1: error: ipsec1 exists and is not an XFRM interface (a VTI): conn a's ipsec-interface= needs that name for its XFRM interface (delete it once its tunnels are gone, or pick another ipsec-interface= number)",
        ])
        XCTAssertEqual(try findings(xfrmSite) { $0.devices = [.init(name: "ipsec1", vti: nil)] }.count, 1, "a device of any other kind")
    }

    /// The kernel has one XFRM interface per if_id: another name with the if_id leaves none for ipsecN.
    func testAnotherXfrmInterfaceHasTheIfID() throws {
        XCTAssertEqual(try findings(xfrmSite) { $0.devices = [.init(name: "vpn0", vti: nil, xfrmInterfaceID: 1)] }, [
            "ipsec.conf:1: error: the kernel's vpn0 already has if_id 1: pluto cannot create conn a's ipsec1 beside it (one XFRM interface per if_id); delete vpn0, or pick another ipsec-interface= number",
        ])
        let unmanaged = "config setup\n    ipsec-interface-managed=no\n" + xfrmSite
        XCTAssertEqual(try findings(unmanaged) { $0.devices = [.init(name: "vpn0", vti: nil, xfrmInterfaceID: 1)] }.first?.contains("vtid cannot create conn a's ipsec1"), true)
        var settings = HookSettings()
        settings.existingDevices = ["a": InterfaceName("vpn0")!]
        XCTAssertEqual(try findings(unmanaged, settings: settings) { $0.devices = [.init(name: "vpn0", vti: nil, xfrmInterfaceID: 1)] }, [],
                       "vtid.yaml names vpn0 the conn's device: the one with the if_id")
    }

    /// ipsec-interface= needs xfrm_interface; a host with only VTI conns does not.
    func testAKernelWithoutXfrmInterface() throws {
        let support = KernelSupport(release: "6.1.0-test", modulesDirectory: "/lib/modules/6.1.0-test", availableModules: ["ip_vti", "esp4", "xfrm_user"], xfrmNetlinkError: nil)
        XCTAssertEqual(support.findings(for: try conns(xfrmSite)).map(\.description), [
            "ipsec.conf:1: error: the running kernel (6.1.0-test) has no xfrm_interface for XFRM interfaces (ipsec-interface= of conn a): it is neither loaded, built in, nor in /lib/modules/6.1.0-test (a kernel with CONFIG_XFRM_INTERFACE, e.g. the distribution's full kernel modules package)",
        ])
        XCTAssertEqual(support.findings(for: try conns(site)), [], "VTI conns only")
        var with = support
        with.availableModules.insert("xfrm_interface")
        XCTAssertEqual(with.findings(for: try conns(xfrmSite)), [])
    }
}
