import KernelTestSupport
import Netlink
import VTIKernel
import VTIModel
import XCTest

/// The hook's effects on the host kernel, in throwaway namespaces: what it supports (addresses,
/// routes, sysctls on a veth standing in); VTI devices themselves are tested in User-Mode Linux
/// (Scripts/testbed.d/scenarios/hook-*.sh, run by TestbedTests).
final class HookApplierHostTests: XCTestCase {
    /// A road-warrior client's environment (policy-based, no VTI): source address and two half
    /// routes via the next hop, as pluto 4.10 sent it in the test bed.
    private func roadClient(_ verb: String) throws -> PlutoEvent {
        try PlutoEvent(environment: [
            "PLUTO_VERB": verb, "PLUTO_CONNECTION": "rw", "PLUTO_CONN_KIND": "CK_INSTANCE", "PLUTO_CONN_ADDRFAMILY": "ipv4",
            "PLUTO_ME": "192.0.2.11", "PLUTO_PEER": "192.0.2.2", "PLUTO_MY_CLIENT": "10.0.1.10/32",
            "PLUTO_PEER_CLIENT": "0.0.0.0/0", "PLUTO_MY_SOURCEIP": "10.0.1.10", "PLUTO_NEXT_HOP": "192.0.2.2",
            "PLUTO_INTERFACE": "eth0", "PLUTO_PEER_ID": "@east", "VTI_IFACE": "", "VTI_ROUTING": "no", "VTI_SHARED": "no",
        ])
    }

    /// The road client's uplink, eth0 with its address (a veth: the host kernel has no dummy).
    private func addUplink() throws {
        try ip("link", "add", "eth0", "type", "veth", "peer", "name", "peer0")
        try ip("addr", "add", "192.0.2.11/24", "dev", "eth0")
        try ip("link", "set", "eth0", "up")
        try ip("link", "set", "peer0", "up")
    }

    func testPolicyBasedClientRoutesAreIdempotentAndOnlyOursAreRemoved() throws {
        try inFreshNetworkNamespace(self) {
            try addUplink()
            let applier = HookApplier(kernel: try KernelApplier())
            // As the stock script: the source address on lo at up-client, the routes at route-client.
            _ = try applier.apply(planHook(event: try roadClient("up-client"), settings: HookSettings()))
            let route = planHook(event: try roadClient("route-client"), settings: HookSettings())
            let log = try applier.apply(route)
            XCTAssertEqual(log, [
                "route 0.0.0.0/1 dev eth0 src 10.0.1.10 proto 157",
                "route 128.0.0.0/1 dev eth0 src 10.0.1.10 proto 157",
            ])
            _ = try applier.apply(route)
            XCTAssertEqual(try ip("-4", "-o", "addr", "show", "dev", "lo").components(separatedBy: "10.0.1.10/32").count, 2,
                           "the source address once, however often up-client and route-client come")
            let routes = try ip("route", "show", "proto", "157")
            XCTAssertEqual(routes.split(separator: "\n").sorted(), [
                "0.0.0.0/1 dev eth0 scope link src 10.0.1.10 ",
                "128.0.0.0/1 dev eth0 scope link src 10.0.1.10 ",
            ])
            // Someone else's route to the same prefix, in another table, and ours go away alone.
            try ip("route", "add", "0.0.0.0/1", "dev", "eth0", "proto", "static", "table", "100")
            _ = try applier.apply(planHook(event: try roadClient("unroute-client"), settings: HookSettings()))
            XCTAssertEqual(try ip("route", "show", "proto", "157"), "")
            XCTAssertTrue(try ip("route", "show", "table", "100").contains("0.0.0.0/1 dev eth0 proto static"))
            // Unrouting again is harmless.
            _ = try applier.apply(planHook(event: try roadClient("unroute-client"), settings: HookSettings()))
        }
    }

    /// The snapshot a converged repeat event reads (keyed lookups, no dumps) shows what the last
    /// one made, so `converge` needs no write; a route changed behind its back is written again.
    func testTheSnapshotOfAConvergedPlanNeedsNoWrite() throws {
        try inFreshNetworkNamespace(self) {
            try addUplink()
            let kernel = try KernelApplier()
            let applier = HookApplier(kernel: kernel)
            let plan = planHook(event: try roadClient("up-client"), settings: HookSettings())
                + planHook(event: try roadClient("route-client"), settings: HookSettings())
            _ = try applier.apply(plan)
            let (snapshot, _) = try kernel.snapshot(for: plan)
            XCTAssertEqual(snapshot.addresses, [DeviceAddress(device: .loopback, prefix: IPPrefix("10.0.1.10/32")!)])
            XCTAssertEqual(snapshot.routes.values.map(\.description).sorted(), [
                "0.0.0.0/1 dev eth0 src 10.0.1.10 proto 157", "128.0.0.0/1 dev eth0 src 10.0.1.10 proto 157",
            ])
            XCTAssertEqual(snapshot.devices[InterfaceName("eth0")!]?.isUp, true)
            XCTAssertEqual(converge(plan, snapshot), [])
            XCTAssertEqual(try applier.apply(plan), [], "a converged repeat writes nothing")
            // Our route through another device now: not what the plan says, so it is written again.
            try ip("route", "replace", "0.0.0.0/1", "dev", "peer0", "proto", "157")
            let changed = converge(plan, try kernel.snapshot(for: plan).0)
            XCTAssertEqual(changed.map(\.description), ["add route 0.0.0.0/1 dev eth0 src 10.0.1.10 proto 157"])
            XCTAssertEqual(try applier.apply(plan), ["route 0.0.0.0/1 dev eth0 src 10.0.1.10 proto 157"])
            XCTAssertTrue(try ip("route", "show", "0.0.0.0/1").contains("dev eth0"))
        }
    }

    func testRoutesAndSysctlsOnAStandInDevice() throws {
        try inFreshNetworkNamespace(self) {
            try ip("link", "add", "vti02", "type", "veth", "peer", "name", "peer0")
            try ip("link", "set", "vti02", "up")
            try ip("link", "set", "peer0", "up")
            let applier = HookApplier(kernel: try KernelApplier())
            let device = InterfaceName("vti02")!
            let route = PlannedRoute(destination: IPPrefix("10.0.1.10/32")!, device: device, table: 254, metric: nil, routeProtocol: 157)
            let other = PlannedRoute(destination: IPPrefix("10.0.1.11/32")!, device: device, table: 254, metric: nil, routeProtocol: 157)
            _ = try applier.apply([
                .setSysctl(SysctlSetting(family: .ipv4, scope: .interface(device), name: .reversePathFilter, value: 2)),
                .setSysctl(SysctlSetting(family: .ipv4, scope: .interface(device), name: .disablePolicy, value: 1)),
                .setSysctl(SysctlSetting(family: .ipv4, scope: .global, name: .ipForward, value: 1)),
                .addRoute(route), .addRoute(other),
            ])
            XCTAssertEqual(try String(contentsOfFile: "/proc/sys/net/ipv4/conf/vti02/rp_filter", encoding: .utf8), "2\n")
            XCTAssertEqual(try String(contentsOfFile: "/proc/sys/net/ipv4/conf/vti02/disable_policy", encoding: .utf8), "1\n")
            XCTAssertEqual(try String(contentsOfFile: "/proc/sys/net/ipv4/ip_forward", encoding: .utf8), "1\n")
            // Routes of one plan into two devices, alternating: each goes into its own device.
            try ip("link", "add", "vti03", "type", "veth", "peer", "name", "peer1")
            try ip("link", "set", "vti03", "up")
            try ip("link", "set", "peer1", "up")
            let third = PlannedRoute(destination: IPPrefix("10.0.2.10/32")!, device: InterfaceName("vti03")!, table: 254, metric: nil, routeProtocol: 157)
            let fourth = PlannedRoute(destination: IPPrefix("10.0.1.12/32")!, device: device, table: 254, metric: nil, routeProtocol: 157)
            _ = try applier.apply([.addRoute(third), .addRoute(fourth), .deleteRoute(third), .deleteRoute(fourth)])
            _ = try applier.apply([.addRoute(third), .addRoute(fourth)])
            XCTAssertEqual(try ip("route", "show", "proto", "157").split(separator: "\n").sorted(), [
                "10.0.1.10 dev vti02 scope link ", "10.0.1.11 dev vti02 scope link ",
                "10.0.1.12 dev vti02 scope link ", "10.0.2.10 dev vti03 scope link ",
            ])
            _ = try applier.apply([.deleteRoute(third), .deleteRoute(fourth)])
            // Routes that follow one another go in one batch: a route into a device that is not there
            // fails the plan by name after the routes before it; removing it is no error.
            let nowhere = PlannedRoute(destination: IPPrefix("10.0.3.10/32")!, device: InterfaceName("vti09")!, table: 254, metric: nil, routeProtocol: 157)
            XCTAssertThrowsError(try applier.apply([.addRoute(third), .addRoute(nowhere), .addRoute(fourth)])) { error in
                XCTAssertEqual("\(error)", "device vti09 does not exist")
            }
            XCTAssertTrue(try ip("route", "show", "proto", "157").contains("10.0.2.10 dev vti03"), "the route before it is in")
            XCTAssertEqual(try applier.apply([.deleteRoute(third), .deleteRoute(nowhere), .deleteRoute(fourth)]),
                           ["removed route 10.0.2.10/32 dev vti03 proto 157", "removed route 10.0.1.12/32 dev vti02 proto 157"])
            XCTAssertFalse(try ip("route", "show", "proto", "157").contains("vti03"))
            // One client leaves: its route only.
            let log = try applier.apply([.deleteRoute(route)])
            XCTAssertEqual(log, ["removed route 10.0.1.10/32 dev vti02 proto 157"])
            XCTAssertEqual(try ip("route", "show", "proto", "157"), "10.0.1.11 dev vti02 scope link \n")
            // A device that is not a VTI is refused by name, never modified.
            XCTAssertThrowsError(try applier.apply([.ensureVTI(VTIDeviceSpec(
                name: device, local: IPAddress("192.0.2.2")!, remote: IPAddress("0.0.0.0")!, inputKey: 12, outputKey: 12))])) { error in
                XCTAssertEqual("\(error)", "device vti02 exists but is a veth device, not a VTI; rename it or choose another vti-interface")
            }
        }
    }

    func testAKernelWithoutVTISaysWhichModuleIsMissing() throws {
        try inFreshNetworkNamespace(self) {
            // The project's host kernel is built without CONFIG_NET_IPVTI: exactly the case to explain.
            let applier = HookApplier(kernel: try KernelApplier())
            let vti = HookAction.ensureVTI(VTIDeviceSpec(
                name: InterfaceName("vti01")!, local: IPAddress("192.0.2.1")!, remote: IPAddress("192.0.2.2")!, inputKey: 5, outputKey: 5))
            let kernelHasVTI = FileManager.default.fileExists(atPath: "/sys/module/ip_vti")
            if kernelHasVTI {
                XCTAssertEqual(try applier.apply([vti]), ["created vti01 local 192.0.2.1 remote 192.0.2.2 ikey 5 okey 5"])
                return
            }
            XCTAssertThrowsError(try applier.apply([vti])) { error in
                XCTAssertTrue("\(error)".contains("Unknown device type"), "\(error)")
                XCTAssertTrue("\(error)".hasSuffix("this kernel has no VTI support: load the ip_vti module (ip6_vti for IPv6)"), "\(error)")
            }
        }
    }
}
