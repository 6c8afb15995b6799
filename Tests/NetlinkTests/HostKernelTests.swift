import Foundation
import SystemPackage
import XCTest
@testable import Netlink
import KernelTestSupport

/// The Netlink module against the host's real kernel, each test in its own network namespace.
/// What the host kernel lacks (VTI, ESP) is in GuestKernelTests, run inside User-Mode Linux.
final class HostKernelTests: XCTestCase {
    private let ours = RouteProtocol(rawValue: 250)

    func testVethLinkLifecycle() throws {
        try inFreshNetworkNamespace(self) {
            let socket = try NetlinkSocket(.route)
            try socket.createVethPair(named: "vt-a", peer: "vt-b")
            let created = try XCTUnwrap(socket.link(named: "vt-a"))
            XCTAssertEqual(created.kind, "veth")
            XCTAssertFalse(created.isUp)
            XCTAssertEqual(Set(try socket.links().map(\.name)), ["lo", "vt-a", "vt-b"])

            try socket.setLink(index: created.index, up: true)
            try socket.setLink(index: created.index, mtu: 1400)
            let changed = try XCTUnwrap(socket.link(named: "vt-a"))
            XCTAssertTrue(changed.isUp)
            XCTAssertEqual(changed.mtu, 1400)
            XCTAssertTrue(try ip("-o", "link", "show", "dev", "vt-a").contains("mtu 1400"), "ip agrees on the MTU")

            try socket.setLink(index: created.index, up: false)
            XCTAssertFalse(try XCTUnwrap(socket.link(named: "vt-a")).isUp)

            try socket.deleteLink(index: created.index)
            XCTAssertNil(try socket.link(named: "vt-a"))
            XCTAssertNil(try socket.link(named: "vt-b"), "deleting one end removes the pair")
        }
    }

    /// Reads only: the child that the next test starts in the machine's own namespace runs this.
    func testLoopbackIsIndexOne() throws {
        try inFreshNetworkNamespace(self) {
            XCTAssertEqual(try NetlinkSocket(.route).interfaceIndex(named: "lo"), 1)
        }
    }

    /// VTICTL_TEST_NETNS=1 means "already in a throwaway namespace"; set by mistake (a test binary
    /// started with it in the namespace it was started from), a kernel test must refuse to run
    /// rather than change the host.
    func testKernelTestsRefuseTheirParentsNamespace() throws {
        let result = runChild([currentExecutable(), "NetlinkTests.HostKernelTests/testLoopbackIsIndexOne"],
                              environment: ["VTICTL_TEST_NETNS": "1"])
        XCTAssertTrue(result.launched)
        XCTAssertNotEqual(result.status, 0, result.output)
        XCTAssertTrue(result.output.contains("not a throwaway one"), result.output)
    }

    func testInterfaceIndexAndLinkByIndexAgreeWithTheWholeLink() throws {
        try inFreshNetworkNamespace(self) {
            let socket = try NetlinkSocket(.route)
            try socket.createVethPair(named: "vt-a", peer: "vt-b")
            let whole = try XCTUnwrap(socket.link(named: "vt-b"))
            XCTAssertEqual(try socket.interfaceIndex(named: "vt-b"), whole.index)
            XCTAssertEqual(try socket.interfaceIndex(named: "lo"), 1)
            XCTAssertTrue(try ip("-o", "link", "show", "dev", "vt-b").hasPrefix("\(whole.index): vt-b"), "ip agrees on the index")
            let byIndex = try XCTUnwrap(socket.link(index: whole.index))
            XCTAssertEqual(byIndex.name, "vt-b")
            XCTAssertEqual(byIndex.kind, "veth")
            XCTAssertEqual(byIndex.mtu, whole.mtu)
            XCTAssertNil(try socket.interfaceIndex(named: "vt-none"))
            XCTAssertNil(try socket.link(index: 99_999))
        }
    }

    func testKernelErrorsAreTypedAndCarryTheKernelsMessage() throws {
        try inFreshNetworkNamespace(self) {
            let socket = try NetlinkSocket(.route)
            // No such device kind on this kernel (the host kernel has no VTI either).
            XCTAssertThrowsError(try socket.createLink(named: "x0", kind: "no-such-kind")) { error in
                let failure = error as? NetlinkError
                XCTAssertEqual(failure?.errno, .notSupportedOnSocket)
                XCTAssertEqual(failure?.kernelMessage, "Unknown device type")
                XCTAssertTrue(failure?.description.contains("create no-such-kind device x0") ?? false)
            }
            // A route through a device that does not exist.
            let missingDevice = Route(destination: try prefix("10.9.0.0/24"), protocol: ours, outputInterface: 4242)
            XCTAssertThrowsError(try socket.addRoute(missingDevice)) { error in
                let failure = error as? NetlinkError
                XCTAssertEqual(failure?.errno, .operationNotSupportedByDevice, "\(error)")
                XCTAssertEqual(failure?.description, "add route 10.9.0.0/24 dev #4242 proto 250: No such device")
            }
            // A route through a device that is down: here the kernel says why in words.
            try socket.createVethPair(named: "vt-a", peer: "vt-b")
            let device = try XCTUnwrap(socket.link(named: "vt-a"))
            let route = Route(destination: try prefix("10.9.0.0/24"), protocol: ours, outputInterface: device.index)
            XCTAssertThrowsError(try socket.addRoute(route)) { error in
                XCTAssertEqual((error as? NetlinkError)?.errno, .networkDown, "\(error)")
                XCTAssertEqual((error as? NetlinkError)?.kernelMessage, "Device for nexthop is not up")
            }
            // The same route twice.
            try socket.setLink(index: device.index, up: true)
            try socket.addRoute(route)
            XCTAssertThrowsError(try socket.addRoute(route)) { error in
                XCTAssertEqual((error as? NetlinkError)?.errno, .fileExists)
            }
            // Replace is the idempotent form.
            try socket.replaceRoute(route)
            // The same link name twice.
            XCTAssertThrowsError(try socket.createVethPair(named: "vt-a", peer: "vt-c")) { error in
                XCTAssertEqual((error as? NetlinkError)?.errno, .fileExists)
            }
        }
    }

    func testAddressesIPv4AndIPv6() throws {
        try inFreshNetworkNamespace(self) {
            let socket = try NetlinkSocket(.route)
            let device = try upVeth(socket)
            let v4 = InterfaceAddress(interfaceIndex: device, prefix: try prefix("10.0.0.1/24"))
            let v6 = InterfaceAddress(interfaceIndex: device, prefix: try prefix("2001:db8::1/64"))
            try socket.addAddress(v4)
            try socket.addAddress(v6)
            XCTAssertThrowsError(try socket.addAddress(v4)) { XCTAssertEqual(($0 as? NetlinkError)?.errno, .fileExists) }
            try socket.replaceAddress(v4)
            let onDevice = try socket.addresses().filter { $0.interfaceIndex == device }.map(\.prefix)
            XCTAssertTrue(onDevice.contains(v4.prefix))
            XCTAssertTrue(onDevice.contains(v6.prefix))
            XCTAssertEqual(try socket.addresses(family: .ipv4).filter { $0.interfaceIndex == device }.map(\.prefix), [v4.prefix])
            XCTAssertTrue(try ip("-o", "addr", "show", "dev", "vt-a").contains("10.0.0.1/24"))
            try socket.deleteAddress(v4)
            XCTAssertFalse(try socket.addresses(family: .ipv4).contains { $0.prefix == v4.prefix })
        }
    }

    /// The hook's form: "already there" is an answer, any other refusal still an error.
    func testAddAddressIfMissing() throws {
        try inFreshNetworkNamespace(self) {
            let socket = try NetlinkSocket(.route)
            let device = try upVeth(socket)
            let address = InterfaceAddress(interfaceIndex: device, prefix: try prefix("10.0.0.1/24"))
            XCTAssertTrue(try socket.addAddressIfMissing(address))
            XCTAssertFalse(try socket.addAddressIfMissing(address))
            XCTAssertEqual(try socket.addresses(family: .ipv4).filter { $0.interfaceIndex == device }.map(\.prefix), [address.prefix])
            // The socket goes on answering after the tolerated refusal.
            XCTAssertTrue(try socket.addAddressIfMissing(InterfaceAddress(interfaceIndex: device, prefix: try prefix("10.0.0.2/24"))))
            let missingDevice = InterfaceAddress(interfaceIndex: 9999, prefix: try prefix("10.0.0.3/24"))
            XCTAssertThrowsError(try socket.addAddressIfMissing(missingDevice)) { error in
                XCTAssertEqual((error as? NetlinkError)?.errno, Errno(rawValue: ENODEV))
                XCTAssertEqual((error as? NetlinkError)?.operation, "add address 10.0.0.3/24 on link 9999")
            }
        }
    }

    func testRoutesWithTableProtocolMetricGatewayAndIPv6() throws {
        try inFreshNetworkNamespace(self) {
            let socket = try NetlinkSocket(.route)
            let device = try upVeth(socket)
            try socket.addAddress(InterfaceAddress(interfaceIndex: device, prefix: try prefix("10.0.0.1/24")))
            try socket.addAddress(InterfaceAddress(interfaceIndex: device, prefix: try prefix("2001:db8::1/64")))
            let table = RouteTable(rawValue: 1000)
            let routes = [
                Route(destination: try prefix("10.1.0.0/24"), protocol: ours, outputInterface: device, metric: 10),
                Route(destination: try prefix("10.2.0.0/16"), table: table, protocol: ours, outputInterface: device,
                      gateway: address("10.0.0.254")),
                Route(destination: try prefix("10.3.0.0/24"), protocol: ours, outputInterface: device,
                      preferredSource: address("10.0.0.1"), mtu: 1400),
                Route(destination: try prefix("2001:db8:1::/48"), protocol: ours, outputInterface: device, metric: 1024),
            ]
            for route in routes { try socket.addRoute(route) }
            let v4Main = try socket.routes(RouteFilter(family: .ipv4, table: .main, protocol: ours))
            XCTAssertEqual(Set(v4Main.map(\.destination.description)), ["10.1.0.0/24", "10.3.0.0/24"])
            XCTAssertEqual(v4Main.first { $0.destination.description == "10.1.0.0/24" }?.metric, 10)
            XCTAssertEqual(v4Main.first { $0.destination.description == "10.3.0.0/24" }?.mtu, 1400)
            XCTAssertEqual(v4Main.first { $0.destination.description == "10.3.0.0/24" }?.preferredSource, address("10.0.0.1"))
            let inTable = try socket.routes(RouteFilter(family: .ipv4, table: table, protocol: ours))
            XCTAssertEqual(inTable.map(\.gateway), [address("10.0.0.254")])
            XCTAssertTrue(try ip("route", "show", "table", "1000").contains("10.2.0.0/16 via 10.0.0.254 dev vt-a proto 250"))
            let v6 = try socket.routes(RouteFilter(family: .ipv6, protocol: ours))
            XCTAssertEqual(v6.map(\.destination.description), ["2001:db8:1::/48"])
            // The kernel's own routes are not ours.
            XCTAssertFalse(try socket.routes(RouteFilter(family: .ipv4, protocol: ours)).contains { $0.protocol == .kernel })
            for route in routes { try socket.deleteRoute(route) }
            XCTAssertEqual(try socket.routes(RouteFilter(family: .ipv4, protocol: ours)), [])
            XCTAssertEqual(try socket.routes(RouteFilter(family: .ipv6, protocol: ours)), [])
        }
    }

    func testTenThousandHostRoutesInOneBatchAndADumpThatFindsExactlyThem() throws {
        try inFreshNetworkNamespace(self) {
            let socket = try NetlinkSocket(.route)
            let device = try upVeth(socket)
            // A foreign route on the same device must not show up in our dump.
            try ip("route", "add", "192.168.77.0/24", "dev", "vt-a", "proto", "static")
            let routes = (0..<10_000).map { index in
                Route(destination: InetPrefix(InetAddress(ipv4: 0x0a40_0000 + UInt32(index)), length: 32)!,
                      protocol: ours, outputInterface: device)
            }
            let added = socket.changeRoutes(.add, routes)
            XCTAssertEqual(added.compactMap { $0 }.count, 0, "every add succeeds: \(added.compactMap { $0 }.prefix(3))")
            let dumped = try socket.routes(RouteFilter(family: .ipv4, protocol: ours))
            XCTAssertEqual(dumped.count, 10_000)
            XCTAssertEqual(Set(dumped.map(\.destination)), Set(routes.map(\.destination)))
            let ipCount = try ip("route", "show", "proto", "250").split(separator: "\n").count
            XCTAssertEqual(ipCount, 10_000, "ip sees the same")

            // Per-request errors: adding them all again fails each one, and nothing else breaks.
            let again = socket.changeRoutes(.add, Array(routes.prefix(100)))
            XCTAssertEqual(again.compactMap { $0?.errno }, [Errno](repeating: .fileExists, count: 100))

            let deleted = socket.changeRoutes(.delete, routes)
            XCTAssertEqual(deleted.compactMap { $0 }.count, 0)
            XCTAssertEqual(try socket.routes(RouteFilter(family: .ipv4, protocol: ours)), [])
            XCTAssertTrue(try ip("route", "show").contains("192.168.77.0/24"), "the foreign route is untouched")
        }
    }

    func testOneFailingRequestInABatchDoesNotStopTheOthers() throws {
        try inFreshNetworkNamespace(self) {
            let socket = try NetlinkSocket(.route)
            let device = try upVeth(socket)
            let batch = [
                Route(destination: try prefix("10.5.0.1/32"), protocol: ours, outputInterface: device),
                Route(destination: try prefix("10.5.0.2/32"), protocol: ours, outputInterface: 4242),
                Route(destination: try prefix("10.5.0.3/32"), protocol: ours, outputInterface: device),
            ]
            let results = socket.changeRoutes(.add, batch)
            XCTAssertNil(results[0])
            XCTAssertEqual(results[1]?.errno, .operationNotSupportedByDevice)
            XCTAssertTrue(results[1]?.operation.contains("10.5.0.2/32") ?? false, "the error names the route")
            XCTAssertNil(results[2])
            XCTAssertEqual(Set(try socket.routes(RouteFilter(family: .ipv4, protocol: ours)).map(\.destination.description)),
                           ["10.5.0.1/32", "10.5.0.3/32"])
        }
    }

    func testRulesForSourceBasedRouting() throws {
        try inFreshNetworkNamespace(self) {
            let socket = try NetlinkSocket(.route)
            let fromPrefix = RoutingRule(family: .ipv4, priority: 1000, source: try prefix("203.0.113.0/24"),
                                         table: RouteTable(rawValue: 100), protocol: ours)
            let byMark = RoutingRule(family: .ipv4, priority: 1001, table: RouteTable(rawValue: 1000),
                                     firewallMark: 5, firewallMask: 0xff, protocol: ours)
            let v6 = RoutingRule(family: .ipv6, priority: 1002, source: try prefix("2001:db8:5::/48"),
                                 table: RouteTable(rawValue: 200), protocol: ours)
            try socket.addRule(fromPrefix)
            try socket.addRule(byMark)
            try socket.addRule(v6)
            XCTAssertThrowsError(try socket.addRule(fromPrefix)) { XCTAssertEqual(($0 as? NetlinkError)?.errno, .fileExists) }
            let rules = try socket.rules(family: .ipv4).filter { $0.protocol == ours }
            XCTAssertEqual(rules, [fromPrefix, byMark])
            XCTAssertEqual(try socket.rules(family: .ipv6).filter { $0.protocol == ours }, [v6])
            XCTAssertTrue(try ip("rule", "show").contains("1000:\tfrom 203.0.113.0/24 lookup 100 proto 250"))
            try socket.deleteRule(fromPrefix)
            try socket.deleteRule(byMark)
            try socket.deleteRule(v6)
            XCTAssertEqual(try socket.rules(family: .ipv4).filter { $0.protocol == ours }, [])
        }
    }

    /// Rules other programs install (wg-quick's `not fwmark`, Tailscale's unreachable) read back
    /// with their inversion and action, which `vtictl check` needs to judge them.
    func testInvertedRulesAndActionsAreDecoded() throws {
        try inFreshNetworkNamespace(self) {
            try ip("rule", "add", "not", "fwmark", "51820", "table", "51820", "pref", "32764")
            try ip("rule", "add", "fwmark", "0x80000/0xff0000", "unreachable", "pref", "5250")
            let rules = try NetlinkSocket(.route).rules(family: .ipv4)
            let wireguard = try XCTUnwrap(rules.first { $0.priority == 32764 })
            XCTAssertTrue(wireguard.isInverted)
            XCTAssertEqual(wireguard.action, .lookup)
            XCTAssertEqual(wireguard.firewallMark, 51820)
            let tailscale = try XCTUnwrap(rules.first { $0.priority == 5250 })
            XCTAssertFalse(tailscale.isInverted)
            XCTAssertEqual(tailscale.action, .unreachable)
            XCTAssertEqual(tailscale.firewallMask, 0xff0000)
            XCTAssertFalse(try XCTUnwrap(rules.first { $0.table == .local }).isInverted, "the local table's rule")
        }
    }

    func testProxyNeighbourEntries() throws {
        try inFreshNetworkNamespace(self) {
            let socket = try NetlinkSocket(.route)
            let device = try upVeth(socket)
            let entry = ProxyNeighbour(interfaceIndex: device, address: address("10.0.0.5"))
            try socket.replaceProxyNeighbour(entry)
            try socket.replaceProxyNeighbour(entry)
            XCTAssertEqual(try socket.proxyNeighbours(family: .ipv4), [entry])
            XCTAssertTrue(try ip("neigh", "show", "proxy").contains("10.0.0.5 dev vt-a proxy"))
            try socket.deleteProxyNeighbour(entry)
            XCTAssertEqual(try socket.proxyNeighbours(family: .ipv4), [])
        }
    }

    func testSysctlsPerInterfaceAndGlobal() throws {
        try inFreshNetworkNamespace(self) {
            let socket = try NetlinkSocket(.route)
            _ = try upVeth(socket)
            let rpFilter = try XCTUnwrap(SysctlKey.ipv4(.interface("vt-a"), .reversePathFilter))
            XCTAssertEqual(rpFilter.description, "net.ipv4.conf.vt-a.rp_filter")
            try Sysctl.write(rpFilter, 2)
            XCTAssertEqual(try Sysctl.read(rpFilter), 2)
            XCTAssertFalse(try Sysctl.ensure(rpFilter, 2), "already 2: nothing to change")
            XCTAssertTrue(try Sysctl.ensure(rpFilter, 0))
            let onDisk = try String(contentsOfFile: "/proc/sys/net/ipv4/conf/vt-a/rp_filter", encoding: .utf8)
            XCTAssertEqual(onDisk.trimmingCharacters(in: .whitespacesAndNewlines), "0")
            let disablePolicy = try XCTUnwrap(SysctlKey.ipv4(.interface("vt-a"), .disablePolicy))
            try Sysctl.write(disablePolicy, 1)
            XCTAssertEqual(try Sysctl.read(disablePolicy), 1)
            try Sysctl.write(.ipv4Forwarding, 1)
            XCTAssertEqual(try Sysctl.read(.ipv4Forwarding), 1)
            let v6Forwarding = try XCTUnwrap(SysctlKey.ipv6(.all, .forwarding))
            try Sysctl.write(v6Forwarding, 1)
            XCTAssertEqual(try Sysctl.read(v6Forwarding), 1)
            // Names that could leave the directory are refused before any file is opened.
            XCTAssertNil(SysctlKey.ipv4(.interface("../../kernel"), .forwarding))
            XCTAssertNil(SysctlKey.ipv4(.interface(".."), .forwarding))
            XCTAssertNil(SysctlKey.ipv4(.interface("way-too-long-name0"), .forwarding))
            // A missing interface is a clear error.
            let missing = try XCTUnwrap(SysctlKey.ipv4(.interface("nope0"), .forwarding))
            XCTAssertThrowsError(try Sysctl.write(missing, 1)) { error in
                XCTAssertEqual((error as? SysctlError)?.errno, .noSuchFileOrDirectory)
                XCTAssertTrue("\(error)".contains("cannot set net.ipv4.conf.nope0.forwarding to 1"), "\(error)")
            }
        }
    }

    func testLinkAndRouteNotifications() throws {
        try inFreshNetworkNamespace(self) {
            let monitor = try RouteMonitor([.links, .routes])
            let socket = try NetlinkSocket(.route)
            let device = try upVeth(socket)
            try socket.setLink(index: device, mtu: 1300)
            let route = Route(destination: try prefix("10.7.0.0/24"), protocol: ours, outputInterface: device)
            try socket.addRoute(route)
            try socket.deleteRoute(route)
            try socket.deleteLink(index: device)

            var seen: [RouteNotification] = []
            while let batch = try Optional(monitor.next(timeoutMilliseconds: 500)), !batch.isEmpty { seen += batch }
            XCTAssertTrue(seen.contains { if case .linkChanged(let link) = $0 { link.name == "vt-a" && link.mtu == 1300 } else { false } },
                          "saw the MTU change")
            XCTAssertTrue(seen.contains { if case .routeAdded(let r) = $0 { r.destination == route.destination && r.protocol == ours } else { false } })
            XCTAssertTrue(seen.contains { if case .routeRemoved(let r) = $0 { r.destination == route.destination } else { false } })
            XCTAssertTrue(seen.contains { if case .linkRemoved(let link) = $0 { link.name == "vt-a" } else { false } })
        }
    }

    func testNotificationOverrunIsReportedNotSilentlyLost() throws {
        try inFreshNetworkNamespace(self) {
            // A tiny queue that 5,000 route notifications must overflow.
            let monitor = try RouteMonitor([.routes], receiveBufferBytes: 4096)
            let socket = try NetlinkSocket(.route)
            let device = try upVeth(socket)
            let routes = (0..<5_000).map { Route(destination: InetPrefix(InetAddress(ipv4: 0x0a50_0000 + UInt32($0)), length: 32)!,
                                                 protocol: ours, outputInterface: device) }
            XCTAssertEqual(socket.changeRoutes(.add, routes).compactMap { $0 }.count, 0)
            var overrun: NetlinkError?
            do {
                for _ in 0..<10_000 where try monitor.next(timeoutMilliseconds: 100).isEmpty { break }
            } catch let error as NetlinkError {
                overrun = error
            }
            XCTAssertEqual(overrun?.isOverrun, true, "the monitor reports ENOBUFS so its owner resyncs")
        }
    }

    func testXfrmPoliciesDumpAndNotifications() throws {
        try inFreshNetworkNamespace(self) {
            // Policies need no ESP transform, so the host kernel takes them; SAs are tested in UML.
            let monitor = try XfrmMonitor()
            try ip("xfrm", "policy", "add", "src", "10.0.0.0/24", "dst", "10.1.0.0/24", "dir", "out",
                   "mark", "5", "mask", "0xffffffff",
                   "tmpl", "src", "192.0.2.1", "dst", "192.0.2.2", "proto", "esp", "reqid", "7", "mode", "tunnel")
            let xfrm = try NetlinkSocket(.xfrm)
            let policies = try xfrm.securityPolicies()
            XCTAssertEqual(policies.count, 1)
            let policy = try XCTUnwrap(policies.first)
            XCTAssertEqual(policy.direction, .output)
            XCTAssertEqual(policy.mark, XfrmMark(value: 5, mask: 0xffff_ffff))
            XCTAssertEqual(policy.templateReqids, [7])
            XCTAssertEqual(policy.selector.source.description, "10.0.0.0/24")
            XCTAssertEqual(policy.selector.destination.description, "10.1.0.0/24")
            try ip("xfrm", "policy", "delete", "src", "10.0.0.0/24", "dst", "10.1.0.0/24", "dir", "out", "mark", "5", "mask", "0xffffffff")
            XCTAssertEqual(try xfrm.securityPolicies(), [])

            var seen: [XfrmNotification] = []
            while let batch = try Optional(monitor.next(timeoutMilliseconds: 500)), !batch.isEmpty { seen += batch }
            XCTAssertTrue(seen.contains { if case .policyAdded(let p) = $0 { p.mark?.value == 5 } else { false } }, "\(seen)")
            XCTAssertTrue(seen.contains { if case .policyDeleted(let p) = $0 { p.templateReqids == [7] } else { false } }, "\(seen)")
            XCTAssertEqual(try xfrm.securityAssociations(), [], "no SAs on the host kernel")
        }
    }

    /// A veth pair "vt-a"/"vt-b", both up; returns vt-a's index.
    private func upVeth(_ socket: NetlinkSocket) throws -> Int32 {
        try socket.createVethPair(named: "vt-a", peer: "vt-b")
        let a = try XCTUnwrap(socket.link(named: "vt-a"))
        let b = try XCTUnwrap(socket.link(named: "vt-b"))
        try socket.setLink(index: a.index, up: true)
        try socket.setLink(index: b.index, up: true)
        return a.index
    }
}
