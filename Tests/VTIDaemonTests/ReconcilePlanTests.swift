import VTIDaemon
import VTIModel
import XCTest

/// planReconcile without a kernel: what it repairs, what it leaves, and when it removes.
final class ReconcilePlanTests: XCTestCase {
    let settings = HookSettings()
    let vti02 = InterfaceName("vti02")!

    func device(_ name: String = "vti02") -> OwnedDevice {
        OwnedDevice(connection: "rw", setup: DeviceSetup(
            device: VTIDeviceSpec(name: InterfaceName(name)!, local: IPAddress("192.0.2.2")!, remote: IPAddress("0.0.0.0")!, inputKey: 12, outputKey: 12),
            routing: true, shared: true, clientFamily: .ipv4, mtu: .derived(fallbackSuite: .conservative)))
    }

    func route(_ client: String, reqid: UInt32? = 16400, device: String = "vti02") -> OwnedRoute {
        let prefix = IPPrefix(client)!
        return OwnedRoute(connection: "rw", peerClient: prefix,
                          route: PlannedRoute(destination: prefix, device: InterfaceName(device)!, routeProtocol: 157), reqid: reqid)
    }

    func input(devices: [OwnedDevice] = [], routes: [OwnedRoute] = [], ended: [OwnedRoute] = [], missingSince: [RouteIdentity: Int64] = [:],
               now: Int64 = 1000, existing: [String: InterfaceName] = [:]) -> ReconcileInput {
        ReconcileInput(devices: devices, routes: routes, ended: Dictionary(ended.map { (RouteIdentity($0.route), $0.route) }, uniquingKeysWith: { a, _ in a }),
                       conns: [], existingDevices: existing, missingSince: missingSince, now: now, grace: 10)
    }

    /// The MTU `device()` gets on a 1500-byte path: shared, so the fallback suite with NAT-T.
    let rightMTU = tunnelMTU(pathMTU: 1500, outerFamily: .ipv4, natTraversal: true, suite: .conservative)

    /// `reqids` are the SAs' (ESP: pluto's PLUTO_SA_REQID + 1). Devices are as `device()` sets them up.
    func kernel(devices: [String: Bool] = ["vti02": true], routes: [OwnedRoute] = [], reqids: Set<UInt32> = [16401]) -> ObservedKernel {
        var observed = ObservedKernel()
        observed.devices = Dictionary(uniqueKeysWithValues: devices.map { name, up in
            (name, ObservedDevice(isUp: up, vti: name == "vti02" ? device().setup.vti : nil, mtu: rightMTU))
        })
        observed.routes = routes.map(\.route)
        observed.liveReqids = reqids
        return observed
    }

    /// The sysctls `device()` needs, as the kernel holds them when they are right.
    func rightSysctls() -> [SysctlSetting: Int] {
        var values: [SysctlSetting: Int] = [:]
        for case .setSysctl(let setting) in planDeviceSetup(device().setup, settings: settings) { values[setting.withValue(0)] = setting.value }
        return values
    }

    /// A converged gateway: the plan is empty, so `--dry-run` prints nothing (issue 16, item 1).
    func testAConvergedKernelNeedsNothing() {
        let wanted = [route("10.0.1.10/32"), route("10.0.1.11/32")]
        var observed = kernel(routes: wanted)
        observed.sysctls = rightSysctls()
        let plan = planReconcile(input(devices: [device()], routes: wanted), observed: observed, settings: settings)
        XCTAssertEqual(plan.operations, [])
        XCTAssertEqual(plan.expired, [])
    }

    func testOnlyTheDeviceSettingsThatDifferAreRepaired() {
        var observed = kernel(devices: ["vti02": false])
        observed.sysctls = rightSysctls()
        observed.sysctls[SysctlSetting(family: .ipv4, scope: .interface(vti02), name: .disablePolicy, value: 0)] = 0
        let plan = planReconcile(input(devices: [device()]), observed: observed, settings: settings)
        XCTAssertEqual(plan.operations.map(\.description), ["bring vti02 up", "set net.ipv4.conf.vti02.disable_policy=1"])
    }

    /// A device of one tunnel whose conn routes nothing (vti-routing=no: no route records) keeps
    /// the MTU its SA gives (found by the device's keys), not the fallback suite's: the reconcile
    /// must not undo what the hook set, pass after pass.
    func testADeviceOfOneTunnelKeepsItsSAsMTUWithoutRouteRecords() {
        var owned = device("vti01")
        if case .vti(var spec) = owned.setup.device {
            spec.remote = IPAddress("192.0.2.9")!
            owned.setup.device = .vti(spec)
        }
        owned.setup.shared = false
        let gcm = tunnelMTU(pathMTU: 1500, outerFamily: .ipv4, natTraversal: false, suite: .aesGCM16)
        var observed = kernel(devices: [:])
        observed.devices["vti01"] = ObservedDevice(isUp: true, vti: owned.setup.vti, mtu: gcm)
        observed.sysctls = [:]
        for case .setSysctl(let setting) in planDeviceSetup(owned.setup, settings: settings) { observed.sysctls[setting.withValue(0)] = setting.value }
        observed.spisByKey[.mark(12)] = [0x1000]
        observed.suites[0x1000] = .init(suite: .aesGCM16, natTraversal: false)
        let plan = planReconcile(input(devices: [owned]), observed: observed, settings: settings)
        XCTAssertEqual(plan.operations, [], "the SA's MTU (\(gcm)) stays")
    }

    func testAMissingDeviceIsRecreatedWithItsSettingsAndRoutes() {
        let wanted = [route("10.0.1.10/32")]
        let plan = planReconcile(input(devices: [device()], routes: wanted), observed: kernel(devices: [:]), settings: settings)
        let lines = plan.operations.map(\.description)
        XCTAssertEqual(lines.first, "create VTI vti02 local 192.0.2.2 remote 0.0.0.0 ikey 12 okey 12")
        XCTAssertTrue(lines.contains("set net.ipv4.conf.vti02.disable_policy=1"))
        XCTAssertTrue(lines.contains("set vti02 mtu \(rightMTU) (derived (fallback AES-CBC+HMAC-SHA2-512-256))"), "\(lines)")
        XCTAssertEqual(lines.last, "add route 10.0.1.10/32 dev vti02 proto 157", "routes after the device")
    }

    func deletes(_ plan: ReconcilePlan) -> [KernelOperation] { plan.operations.filter { if case .deleteRoute = $0 { true } else { false } } }

    /// A route with no record is never removed for that reason (a record vtid failed to write, a
    /// fallback it has not read yet): it is left in place and reported.
    func testARouteWithoutARecordIsLeftInPlace() {
        let stray = route("10.0.8.8/32")
        let plan = planReconcile(input(devices: [device()], routes: [route("10.0.1.10/32")]),
                                 observed: kernel(routes: [route("10.0.1.10/32"), stray]), settings: settings)
        XCTAssertEqual(deletes(plan), [])
        XCTAssertEqual(plan.unowned, [stray.route])
    }

    /// A recorded down is positive knowledge: the route goes, unless a live tunnel carries it.
    func testARouteWhoseDownWasRecordedGoesOnlyFromACompleteViewAndNotWhileATunnelCarriesIt() {
        let stray = route("10.0.8.8/32")
        var observed = kernel(routes: [route("10.0.1.10/32"), stray])
        XCTAssertEqual(deletes(planReconcile(input(devices: [device()], routes: [route("10.0.1.10/32")], ended: [stray]), observed: observed, settings: settings)),
                       [.deleteRoute(stray.route)])
        var alive = observed
        alive.markedPolicies = [MarkedPolicy(mark: 12, destination: IPPrefix("10.0.8.8/32")!, reqid: 16401)]
        let kept = planReconcile(input(devices: [device()], routes: [route("10.0.1.10/32")], ended: [stray]), observed: alive, settings: settings)
        XCTAssertEqual(deletes(kept), [], "its client came back (an up vtid has not recorded): the tunnel is alive")
        observed.complete = false
        let partial = planReconcile(input(devices: [device()], routes: [route("10.0.1.10/32")], ended: [stray]), observed: observed, settings: settings)
        XCTAssertFalse(partial.operations.contains { if case .deleteRoute = $0 { true } else { false } })
        XCTAssertEqual(partial.notes, ["the kernel's state could not be read in full: nothing is removed this time"])
    }

    func testATunnelWithoutSAsKeepsItsRoutesForTheGracePeriodThenLosesThem() {
        let gone = route("10.0.1.10/32", reqid: 16404)
        let kept = route("10.0.1.11/32", reqid: 16400)
        let observed = kernel(routes: [gone, kept], reqids: [16401])
        let first = planReconcile(input(devices: [device()], routes: [gone, kept], now: 1000), observed: observed, settings: settings)
        XCTAssertEqual(first.waiting, [RouteIdentity(gone.route)])
        XCTAssertEqual(first.missingSince[RouteIdentity(gone.route)], 1000)
        XCTAssertFalse(first.operations.contains { if case .deleteRoute = $0 { true } else { false } })
        let during = planReconcile(input(devices: [device()], routes: [gone, kept], missingSince: first.missingSince, now: 1009),
                                   observed: observed, settings: settings)
        XCTAssertEqual(during.expired, [])
        let after = planReconcile(input(devices: [device()], routes: [gone, kept], missingSince: first.missingSince, now: 1010),
                                  observed: observed, settings: settings)
        XCTAssertEqual(after.expired, [gone])
        XCTAssertEqual(after.operations.filter { if case .deleteRoute = $0 { true } else { false } }, [.deleteRoute(gone.route)],
                       "only the tunnel without SAs")
        // Its SA back in time (a rekey): nothing lost, the clock starts over.
        let back = planReconcile(input(devices: [device()], routes: [gone, kept], missingSince: first.missingSince, now: 1005),
                                 observed: kernel(routes: [gone, kept], reqids: [16401, 16405]), settings: settings)
        XCTAssertEqual(back.missingSince, [:])
    }

    func testAPreCreatedDeviceTakesWhicheverEndIsLocal() throws {
        let ipsec = try IPsecConfig(main: .init(file: "ipsec.conf", text: """
            conn s2s
                left=192.0.2.1
                right=192.0.2.2
                leftsubnet=10.1.0.0/24
                rightsubnet=10.2.0.0/24
                mark=5/0xffffffff
                vti-interface=vti01
            """), resolveInclude: { _, _ in [] })
        let conn = try XCTUnwrap(try RouteBasedConn.all(in: ipsec).first)
        XCTAssertEqual(conn.plannedDevice(settings: settings, localAddresses: [IPAddress("192.0.2.1")!])?.device.description,
                       "VTI vti01 local 192.0.2.1 remote 192.0.2.2 ikey 5 okey 5")
        XCTAssertEqual(conn.plannedDevice(settings: settings, localAddresses: [IPAddress("192.0.2.2")!])?.device.description,
                       "VTI vti01 local 192.0.2.2 remote 192.0.2.1 ikey 5 okey 5")
    }

    func testPlutosReqidIsTheBaseOfTheESPSAs() {
        let tunnel = route("10.0.1.10/32", reqid: 16400)
        for (reqids, up) in [([UInt32(16400)], true), ([16401], true), ([16402], true), ([16403], false), ([16399], false)] {
            let plan = planReconcile(input(routes: [tunnel]), observed: kernel(routes: [tunnel], reqids: Set(reqids)), settings: settings)
            XCTAssertEqual(plan.waiting.isEmpty, up, "SA reqid \(reqids) for PLUTO_SA_REQID 16400")
        }
    }

    func testExistingDeviceConnsAreNotJudgedBySAs() {
        let onVeth = route("10.0.1.10/32", device: "rwdev")
        let plan = planReconcile(input(routes: [onVeth], now: 5000, existing: ["rw": InterfaceName("rwdev")!]),
                                 observed: kernel(devices: ["rwdev": true], routes: [], reqids: []), settings: settings)
        XCTAssertEqual(plan.operations, [.addRoute(onVeth.route)])
        XCTAssertEqual(plan.expired, [])
    }

    func testUpTunnelsVTIDHasNoRecordOfAreLearned() throws {
        let ipsec = try IPsecConfig(main: .init(file: "ipsec.conf", text: """
            conn rw
                left=192.0.2.2
                right=%any
                mark=12/0xffffffff
                vti-interface=vti02
                vti-routing=yes
                vti-shared=yes
            """), resolveInclude: { _, _ in [] })
        var observed = kernel(reqids: [16401])
        observed.markedPolicies = [MarkedPolicy(mark: 12, destination: IPPrefix("10.0.1.10/32")!, reqid: 16401),
                                   MarkedPolicy(mark: 12, destination: IPPrefix("10.0.1.11/32")!, reqid: 16499),
                                   MarkedPolicy(mark: 99, destination: IPPrefix("10.9.0.0/24")!, reqid: 16401)]
        var start = input(devices: [device()])
        start.conns = try RouteBasedConn.all(in: ipsec)
        let plan = planReconcile(start, observed: observed, settings: settings)
        XCTAssertEqual(plan.learned.map(\.peerClient), [IPPrefix("10.0.1.10/32")!], "only the one with an SA, of a conn vtid manages")
        XCTAssertTrue(plan.operations.contains(.addRoute(PlannedRoute(destination: IPPrefix("10.0.1.10/32")!, device: vti02, routeProtocol: 157))))
        let conn = try XCTUnwrap(start.conns.first)
        XCTAssertEqual(conn.plannedDevice(settings: settings, localAddresses: [IPAddress("192.0.2.2")!])?.device, device().setup.device,
                       "the device ipsec.conf describes is the one the hook makes")
        XCTAssertNil(conn.plannedDevice(settings: settings, localAddresses: [IPAddress("192.0.2.9")!]), "not this host's conn")
        // A client whose down vtid recorded keeps its SA a moment longer: not learned back.
        start.ended = [RouteIdentity(plan.learned[0].route): plan.learned[0].route]
        XCTAssertEqual(planReconcile(start, observed: observed, settings: settings).learned, [])
    }

    // MARK: XFRM interfaces

    let ipsec2 = InterfaceName("ipsec2")!

    /// The road-warrior gateway's XFRM interface as the hook records it from 5.2's events.
    func xfrmDevice() -> OwnedDevice {
        OwnedDevice(connection: "rw", setup: DeviceSetup(
            device: .xfrmInterface(XfrmInterfaceSpec(name: ipsec2, interfaceID: 2, underlying: InterfaceName("eth0"),
                                                     local: IPAddress("192.0.2.2")!, remote: IPAddress("0.0.0.0")!)),
            routing: true, shared: true, clientFamily: .ipv4, mtu: .derived(fallbackSuite: .conservative)))
    }

    func xfrmConns() throws -> [RouteBasedConn] {
        try RouteBasedConn.all(in: try IPsecConfig(main: .init(file: "ipsec.conf", text: """
            conn rw
                left=192.0.2.2
                right=%any
                rightaddresspool=10.0.1.10-10.0.1.50
                ipsec-interface=2
            """)))
    }

    /// Deleted behind pluto's back, the device is made again as pluto made it (name, if_id, uplink),
    /// up, with its settings and its clients' routes.
    func testADeletedXfrmInterfaceIsRecreatedAsPlutoMadeIt() {
        let wanted = [route("10.0.1.10/32", device: "ipsec2")]
        let plan = planReconcile(input(devices: [xfrmDevice()], routes: wanted), observed: kernel(devices: [:]), settings: settings)
        let lines = plan.operations.map(\.description)
        XCTAssertEqual(lines.first, "create XFRM interface ipsec2 if_id 2 dev eth0")
        XCTAssertFalse(lines.contains { $0.contains("disable_policy") }, "\(lines)")
        XCTAssertEqual(lines.last, "add route 10.0.1.10/32 dev ipsec2 proto 157")
        // Present with its if_id (pluto's, or ours), nothing is made.
        var observed = kernel(devices: [:], routes: wanted)
        observed.devices["ipsec2"] = ObservedDevice(isUp: true, xfrmInterfaceID: 2, mtu: rightMTU)
        for case .setSysctl(let setting) in planDeviceSetup(xfrmDevice().setup, settings: settings) { observed.sysctls[setting.withValue(0)] = setting.value }
        XCTAssertEqual(planReconcile(input(devices: [xfrmDevice()], routes: wanted), observed: observed, settings: settings).operations, [])
    }

    /// Up tunnels of an XFRM-interface conn are known by the if_id on their policies (no marks):
    /// learned when vtid has no record, kept alive for their routes.
    func testXfrmTunnelsAreLearnedByIfIDNotByMark() throws {
        var observed = kernel(devices: [:], reqids: [16401])
        observed.devices["ipsec2"] = ObservedDevice(isUp: true, xfrmInterfaceID: 2, mtu: rightMTU)
        observed.markedPolicies = [MarkedPolicy(key: .interfaceID(2), destination: IPPrefix("10.0.1.10/32")!, reqid: 16401),
                                   MarkedPolicy(key: .mark(2), destination: IPPrefix("10.0.1.12/32")!, reqid: 16401),
                                   MarkedPolicy(key: .interfaceID(3), destination: IPPrefix("10.0.1.13/32")!, reqid: 16401)]
        var start = input(devices: [xfrmDevice()])
        start.conns = try xfrmConns()
        let plan = planReconcile(start, observed: observed, settings: settings)
        XCTAssertEqual(plan.learned.map(\.peerClient), [IPPrefix("10.0.1.10/32")!], "if_id 2 only: not mark 2, not if_id 3")
        XCTAssertEqual(plan.learned.first?.route.device, ipsec2)
        // A recorded end of that client is not removed while the if_id policy's SA is up.
        let ended = route("10.0.1.10/32", reqid: 16400, device: "ipsec2")
        var later = input(devices: [xfrmDevice()], ended: [ended])
        later.conns = start.conns
        observed.routes = [ended.route]
        XCTAssertEqual(deletes(planReconcile(later, observed: observed, settings: settings)), [])
        observed.liveReqids = []
        XCTAssertEqual(deletes(planReconcile(later, observed: observed, settings: settings)), [.deleteRoute(ended.route)])
    }

    /// A device of one tunnel over an XFRM interface keeps the MTU of its SA, found by if_id.
    func testAnXfrmDeviceOfOneTunnelFindsItsSAsByIfID() {
        var owned = xfrmDevice()
        owned.setup.device = .xfrmInterface(XfrmInterfaceSpec(name: ipsec2, interfaceID: 2, underlying: InterfaceName("eth0"),
                                                              local: IPAddress("192.0.2.2")!, remote: IPAddress("192.0.2.9")!))
        owned.setup.shared = false
        let gcm = tunnelMTU(pathMTU: 1500, outerFamily: .ipv4, natTraversal: false, suite: .aesGCM16)
        var observed = kernel(devices: [:])
        observed.devices["ipsec2"] = ObservedDevice(isUp: true, xfrmInterfaceID: 2, mtu: gcm)
        observed.sysctls = [:]
        for case .setSysctl(let setting) in planDeviceSetup(owned.setup, settings: settings) { observed.sysctls[setting.withValue(0)] = setting.value }
        observed.spisByKey[.interfaceID(2)] = [0x2000]
        observed.suites[0x2000] = .init(suite: .aesGCM16, natTraversal: false)
        XCTAssertEqual(planReconcile(input(devices: [owned]), observed: observed, settings: settings).operations, [], "the SA's MTU (\(gcm)) stays")
        observed.spisByKey = [.mark(2): [0x2000]]
        XCTAssertNotEqual(planReconcile(input(devices: [owned]), observed: observed, settings: settings).operations, [], "a mark is not an if_id")
    }

    /// A conn moved from its VTI to an XFRM interface (`vtictl migrate`) no longer wants the VTI:
    /// it is unwanted as replaced, not as orphaned (the conn is still configured), so the guard
    /// against a configuration that names no conn at all does not hold it back.
    func testAConnMovedToAnXfrmInterfaceNoLongerWantsItsVTI() throws {
        let conns = try RouteBasedConn.all(in: try IPsecConfig(main: .init(file: "ipsec.conf", text: """
            conn rw
                left=192.0.2.2
                right=%any
                ipsec-interface=2
            """)))
        let vti = device()
        let unwanted = unwantedDevices([vti, xfrmDevice()], conns: conns, existingDevices: [:])
        XCTAssertEqual(unwanted.orphaned, [])
        XCTAssertEqual(unwanted.replaced, [vti], "the VTI goes, the XFRM interface of the same conn stays")
        XCTAssertEqual(unwantedDevices([vti], conns: conns, existingDevices: ["rw": InterfaceName("eth9")!]).replaced, [],
                       "a conn routed into an existing device is not judged")
        XCTAssertEqual(unwantedDevices([vti], conns: [], existingDevices: [:]).orphaned, [vti])
        // Back from the XFRM interface to a VTI named like it: the backend differs, so it is replaced too.
        var same = xfrmDevice()
        same.setup.device = .vti(VTIDeviceSpec(name: ipsec2, local: IPAddress("192.0.2.2")!, remote: IPAddress("0.0.0.0")!, inputKey: 9, outputKey: 9))
        XCTAssertEqual(unwantedDevices([same], conns: conns, existingDevices: [:]).replaced, [same])
    }
}

extension DeviceSetup {
    /// The VTI of a VTI device's setup.
    var vti: VTIDeviceSpec? {
        if case .vti(let spec) = device { return spec }
        return nil
    }
}
