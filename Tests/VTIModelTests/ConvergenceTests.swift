import XCTest
@testable import VTIModel

/// `converge`, the one diff the hook, vtid's event path and its reconcile share, on the recorded
/// pluto calls and on the cases where something is in the way.
final class ConvergenceTests: XCTestCase {
    private let settings = HookSettings()

    private var allEvents: [(name: String, event: PlutoEvent)] {
        get throws {
            var events: [(String, PlutoEvent)] = []
            for version in [Libreswan.v4_10, .v5_2, .v5_4] {
                for name in allFixtureNames(version) {
                    guard let parsed = try? event(name, version) else { continue }
                    events.append(("\(version.rawValue)/\(name)", parsed))
                }
            }
            return events
        }
    }

    /// On an empty kernel every object of the plan is written, in the plan's order.
    func testAnEmptyKernelGetsEveryObjectOfEveryRecordedPlan() throws {
        let events = try allEvents
        XCTAssertGreaterThan(events.count, 60, "the recorded fixtures are missing")
        for (name, event) in events {
            let plan = planHook(event: event, settings: settings)
            let writes = converge(plan, KernelSnapshot())
            XCTAssertEqual(writes.count, plan.count, name)
            for (action, write) in zip(plan, writes) {
                switch (action, write) {
                case (.ensureVTI(let a), .createVTI(let b)): XCTAssertEqual(a, b, name)
                case (.ensureMTU(let a, _, _), .setMTU(let b, _, _)): XCTAssertEqual(a, b, name)
                case (.ensureAddress(let device, let prefix), .addAddress(let b)): XCTAssertEqual(DeviceAddress(device: device, prefix: prefix), b, name)
                case (.setSysctl(let a), .writeSysctl(let b)): XCTAssertEqual(a, b, name)
                case (.addRoute(let a), .addRoute(let b)), (.deleteRoute(let a), .deleteRoute(let b)): XCTAssertEqual(a, b, name)
                case (.notice(let a), .notice(let b)): XCTAssertEqual(a, b, name)
                default: XCTFail("\(name): \(action) became \(write)")
                }
            }
        }
    }

    /// Once the kernel holds what the writes made, the same plan needs no write: a converged
    /// repeat event changes nothing, for every recorded call.
    func testTheWritesOfEveryRecordedPlanConverge() throws {
        for (name, event) in try allEvents {
            let plan = planHook(event: event, settings: settings)
            var kernel = KernelSnapshot()
            kernel.routesComplete = true
            kernel.apply(converge(plan, kernel))
            let again = converge(plan, kernel).filter { if case .notice = $0 { false } else { true } }
            XCTAssertEqual(again, [], name)
        }
    }

    /// A road client's up-client on a gateway that already serves other clients: only the client's route.
    func testASecondClientOnAConvergedDeviceAddsOnlyItsRoute() throws {
        var kernel = KernelSnapshot()
        kernel.apply(converge(planHook(event: try event("rw-server-01-up-client"), settings: settings), kernel))
        let second = planHook(event: try event("rw-server-04-up-client"), settings: settings)
        XCTAssertEqual(converge(second, kernel).map(\.description), ["add route 10.0.1.11/32 dev vti02 proto 157"])
    }

    private let spec = VTIDeviceSpec(name: InterfaceName("vti01")!, local: IPAddress("192.0.2.1")!, remote: IPAddress("192.0.2.2")!, inputKey: 5, outputKey: 5)

    private func kernel(with device: KernelSnapshot.Device) -> KernelSnapshot {
        var kernel = KernelSnapshot()
        kernel.devices[spec.name] = device
        return kernel
    }

    func testADeviceOfAnotherKindIsRefusedNotChanged() {
        let writes = converge([.ensureVTI(spec)], kernel(with: .init(isUp: true, kind: "veth", vti: nil, mtu: 1500)))
        XCTAssertEqual(writes, [.refuse(spec.name, "device vti01 exists but is a veth device, not a VTI; rename it or choose another vti-interface")])
    }

    func testADeviceWithOtherKeysIsRefusedWithBothNamed() {
        var other = spec
        other.inputKey = 6
        let writes = converge([.ensureVTI(spec)], kernel(with: .init(isUp: true, kind: "vti", vti: other, mtu: 1500)))
        XCTAssertEqual(writes.map(\.description), ["refuse: device vti01 exists with other parameters (local 192.0.2.1 remote 192.0.2.2 ikey 6 okey 5); wanted local 192.0.2.1 remote 192.0.2.2 ikey 5 okey 5; delete it or fix the conn's mark or addresses"])
    }

    func testADownDeviceIsAdoptedAndBroughtUp() {
        XCTAssertEqual(converge([.ensureVTI(spec)], kernel(with: .init(isUp: false, kind: "vti", vti: spec, mtu: 1500))), [.bringUp(spec.name)])
        XCTAssertEqual(converge([.ensureVTI(spec)], kernel(with: .init(isUp: true, kind: "vti", vti: spec, mtu: 1500))), [])
    }

    /// The MTU follows the path and, for a device of one tunnel, its SA; a shared device assumes the fallback suite with NAT-T.
    func testTheMTUFollowsThePathAndTheSA() {
        let policy = TunnelMTUPolicy.derived(fallbackSuite: .conservative)
        var kernel = kernel(with: .init(isUp: true, kind: "vti", vti: spec, mtu: 1400))
        kernel.pathMTUs[spec.local] = 9000
        kernel.suites[0x1234] = .init(suite: .aesGCM16, natTraversal: false)
        let own = MTUInputs(outerFamily: .ipv4, spis: [0x9999, 0x1234], shared: false)
        let gcm = tunnelMTU(pathMTU: 9000, outerFamily: .ipv4, natTraversal: false, suite: .aesGCM16)
        XCTAssertEqual(converge([.ensureVTI(spec), .ensureMTU(spec.name, policy, own)], kernel), [.setMTU(spec.name, gcm, policy)])
        let shared = MTUInputs(outerFamily: .ipv4, spis: [0x1234], shared: true)
        let fallback = tunnelMTU(pathMTU: 9000, outerFamily: .ipv4, natTraversal: true, suite: .conservative)
        XCTAssertEqual(converge([.ensureMTU(spec.name, policy, shared)], kernel), [.setMTU(spec.name, fallback, policy)])
        kernel.devices[spec.name]?.mtu = fallback
        XCTAssertEqual(converge([.ensureMTU(spec.name, policy, shared)], kernel), [], "already right")
        XCTAssertEqual(converge([.ensureMTU(spec.name, .fixed(1300), shared)], kernel), [.setMTU(spec.name, 1300, .fixed(1300))])
    }

    /// IPv6 inside needs at least 1280 (below it the kernel turns IPv6 off on the device): a small
    /// path gets 1280 and fragments outside, IPv4 inside keeps the computed value.
    func testIPv6InsideNeverGetsLessThan1280() {
        let policy = TunnelMTUPolicy.derived(fallbackSuite: .conservative)
        var kernel = KernelSnapshot()
        kernel.pathMTUs[spec.local] = 1300
        let ipv6 = MTUInputs(outerFamily: .ipv4, innerFamily: .ipv6, spis: [], shared: true)
        let ipv4 = MTUInputs(outerFamily: .ipv4, innerFamily: .ipv4, spis: [], shared: true)
        let computed = tunnelMTU(pathMTU: 1300, outerFamily: .ipv4, natTraversal: true, suite: .conservative)
        XCTAssertLessThan(computed, 1280)
        XCTAssertEqual(converge([.ensureVTI(spec), .ensureMTU(spec.name, policy, ipv6)], kernel).last, .setMTU(spec.name, 1280, policy))
        XCTAssertEqual(converge([.ensureVTI(spec), .ensureMTU(spec.name, policy, ipv4)], kernel).last, .setMTU(spec.name, computed, policy))
    }

    /// A removal is left out only when the view is complete (vtid's reconcile); the hook's lookups
    /// cannot prove a route absent, so it removes (which is idempotent).
    func testARouteIsKnownGoneOnlyFromACompleteView() {
        let route = PlannedRoute(destination: IPPrefix("10.0.1.10/32")!, device: spec.name, routeProtocol: 157)
        var kernel = KernelSnapshot()
        XCTAssertEqual(converge([.deleteRoute(route)], kernel), [.deleteRoute(route)])
        kernel.routesComplete = true
        XCTAssertEqual(converge([.deleteRoute(route)], kernel), [])
        kernel.insert(route)
        XCTAssertEqual(converge([.deleteRoute(route)], kernel), [.deleteRoute(route)])
        XCTAssertEqual(converge([.addRoute(route)], kernel), [])
    }

    /// A device is deleted only while it still is that tunnel's.
    func testADeviceIsDeletedOnlyWithItsOwnParameters() {
        var other = spec
        other.remote = IPAddress("192.0.2.9")!
        XCTAssertEqual(converge([.deleteVTI(spec)], kernel(with: .init(isUp: true, kind: "vti", vti: spec, mtu: 1400))), [.deleteVTI(spec)])
        XCTAssertEqual(converge([.deleteVTI(spec)], kernel(with: .init(isUp: true, kind: "vti", vti: other, mtu: 1400))), [])
        XCTAssertEqual(converge([.deleteVTI(spec)], KernelSnapshot()), [])
    }
}

extension KernelSnapshot {
    /// The kernel after these writes, as a model: what a converged repeat event then finds.
    mutating func apply(_ operations: [KernelOperation]) {
        for operation in operations {
            switch operation {
            case .createVTI(let spec): devices[spec.name] = Device(isUp: true, kind: "vti", vti: spec, mtu: nil)
            case .bringUp(let device): devices[device]?.isUp = true
            case .setMTU(let device, let mtu, _): devices[device]?.mtu = mtu
            case .addAddress(let address): addresses.insert(address)
            case .writeSysctl(let setting): sysctls[setting.withValue(0)] = setting.value
            case .addRoute(let route): insert(route)
            case .deleteRoute(let route): routes[RouteIdentity(route)] = nil
            case .deleteVTI(let spec): devices[spec.name] = nil
            case .createXfrmInterface(let spec): devices[spec.name] = Device(isUp: true, kind: "xfrm", vti: nil, xfrmInterfaceID: spec.interfaceID, mtu: nil)
            case .deleteXfrmInterface(let spec): devices[spec.name] = nil
            case .refuse, .notice: break
            }
        }
    }
}
