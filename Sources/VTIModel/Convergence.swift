// One convergence vocabulary for the hook, vtid's event path and vtid's reconcile: a plan says
// what the kernel should hold (`HookPlan`, the desired state of the objects it names), a
// `KernelSnapshot` says what the kernel holds of those objects, and `converge` (pure) gives the
// writes that make the one into the other. The executor (VTIKernel) only writes.

/// What the kernel holds of the objects a plan names, as one read saw it. What was not read is not
/// known, and `converge` then writes (every write is idempotent) rather than assume.
public struct KernelSnapshot: Sendable, Hashable {
    /// A device as read.
    public struct Device: Sendable, Hashable {
        public var isUp: Bool
        /// `IFLA_INFO_KIND`: "vti", "vti6", "veth", ...; nil for devices without one.
        public var kind: String?
        /// The tunnel's end points and keys, for a VTI device.
        public var vti: VTIDeviceSpec?
        /// `IFLA_XFRM_IF_ID`, for an XFRM interface.
        public var xfrmInterfaceID: UInt32?
        /// nil when not read: then it is set.
        public var mtu: Int?

        public init(isUp: Bool, kind: String?, vti: VTIDeviceSpec?, xfrmInterfaceID: UInt32? = nil, mtu: Int?) {
            self.isUp = isUp
            self.kind = kind
            self.vti = vti
            self.xfrmInterfaceID = xfrmInterfaceID
            self.mtu = mtu
        }
    }

    /// An SA's cost per packet, for a device's MTU.
    public struct TunnelSuite: Sendable, Hashable {
        public var suite: ESPSuite
        public var natTraversal: Bool
        public init(suite: ESPSuite, natTraversal: Bool) {
            self.suite = suite
            self.natTraversal = natTraversal
        }
    }

    /// The devices that exist, of those read; a name read and not here does not exist.
    public var devices: [InterfaceName: Device] = [:]
    /// Addresses known to be on their device (one not listed may be there too: adding is idempotent).
    public var addresses: Set<DeviceAddress> = []
    /// Current values of the sysctls read, under the setting with value 0 (`withValue(0)`).
    public var sysctls: [SysctlSetting: Int] = [:]
    /// Routes known to be in the kernel exactly as listed, by their place (a reconcile's
    /// thousands are looked up by it, and its view of what is present is this very table).
    public var routes: [RouteIdentity: PlannedRoute] = [:]
    /// Whether `routes` lists every route that could be removed (a reconcile's full view): only
    /// then is a route not listed known to be gone, so that its removal can be left out.
    public var routesComplete = false
    /// MTU of the device that holds each tunnel's local address (the path the ESP packets take).
    public var pathMTUs: [IPAddress: Int] = [:]
    /// The algorithms and encapsulation of the SAs read, by SPI (host order).
    public var suites: [UInt32: TunnelSuite] = [:]

    public init() {}

    /// Whether the kernel holds this route exactly.
    public func holds(_ route: PlannedRoute) -> Bool {
        routes[RouteIdentity(route)] == route
    }

    /// Notes that the kernel holds this route.
    public mutating func insert(_ route: PlannedRoute) {
        routes[RouteIdentity(route)] = route
    }
}

/// A route's identity in the kernel: one route per destination and table (our metric is fixed).
public struct RouteIdentity: Sendable, Hashable, CustomStringConvertible {
    public var destination: IPPrefix
    public var table: UInt32
    public init(_ route: PlannedRoute) {
        destination = route.destination
        table = route.table
    }
    public var description: String { table == 254 ? "\(destination)" : "\(destination) table \(table)" }
}

/// An address on a device.
public struct DeviceAddress: Sendable, Hashable {
    public var device: InterfaceName
    public var prefix: IPPrefix
    public init(device: InterfaceName, prefix: IPPrefix) {
        self.device = device
        self.prefix = prefix
    }
}

/// One write that brings the kernel closer to a plan. The executor does each as it says; a refusal
/// stops the plan there.
public enum KernelOperation: Sendable, Hashable, CustomStringConvertible {
    /// Create the device and bring it up.
    case createVTI(VTIDeviceSpec)
    /// Create the XFRM interface (on its underlying device, if it names one) and bring it up.
    case createXfrmInterface(XfrmInterfaceSpec)
    case bringUp(InterfaceName)
    /// Set the device's MTU to this value, chosen by this policy.
    case setMTU(InterfaceName, Int, TunnelMTUPolicy)
    /// Add the address (one there already is fine).
    case addAddress(DeviceAddress)
    /// Write the setting (the executor writes only if the value differs, and says so only then).
    case writeSysctl(SysctlSetting)
    /// Add the route; one of ours at the same place is replaced, another protocol's left alone.
    case addRoute(PlannedRoute)
    /// Remove the route (only a route of our protocol can match; one already gone is fine).
    case deleteRoute(PlannedRoute)
    case deleteVTI(VTIDeviceSpec)
    case deleteXfrmInterface(XfrmInterfaceSpec)
    /// Something not ours is in the way of this device: the plan stops here, with this sentence.
    case refuse(InterfaceName, String)
    /// Nothing to write, a line to log (a route deliberately not installed, a compound verb's step).
    case notice(String)

    public var description: String {
        switch self {
        case .createVTI(let spec): "create VTI \(spec)"
        case .createXfrmInterface(let spec): "create XFRM interface \(spec)"
        case .bringUp(let device): "bring \(device) up"
        case .setMTU(let device, let mtu, let policy): "set \(device) mtu \(mtu) (\(policy))"
        case .addAddress(let address): "add address \(address.prefix) to \(address.device)"
        case .writeSysctl(let setting): "set \(setting)"
        case .addRoute(let route): "add route \(route)"
        case .deleteRoute(let route): "delete route \(route)"
        case .deleteVTI(let spec): "delete VTI \(spec)"
        case .deleteXfrmInterface(let spec): "delete XFRM interface \(spec)"
        case .refuse(_, let text): "refuse: \(text)"
        case .notice(let text): "note: \(text)"
        }
    }
}

/// The writes that make the kernel, as `snapshot` shows it, hold what `plan` describes, in the
/// plan's order. Pure: the hook, vtid's event path and its reconcile all decide with this.
public func converge(_ plan: HookPlan, _ snapshot: KernelSnapshot) -> [KernelOperation] {
    var operations: [KernelOperation] = []
    // The devices this plan creates: their settings are not in the snapshot (read before them).
    var created: [TunnelDeviceSpec] = []
    for action in plan {
        switch action {
        case .ensureVTI(let spec):
            guard let present = snapshot.devices[spec.name] else {
                created.append(.vti(spec))
                operations.append(.createVTI(spec))
                continue
            }
            guard present.kind == "vti" || present.kind == "vti6", let actual = present.vti else {
                operations.append(.refuse(spec.name, "device \(spec.name) exists but is a \(present.kind ?? "non-tunnel") device, not a VTI; rename it or choose another vti-interface"))
                continue
            }
            guard actual.sameTunnel(as: spec) else {
                operations.append(.refuse(spec.name, "device \(spec.name) exists with other parameters (\(actual.tunnelSummary)); wanted \(spec.tunnelSummary); delete it or fix the conn's mark or addresses"))
                continue
            }
            if !present.isUp { operations.append(.bringUp(spec.name)) }
        case .ensureXfrmInterface(let spec):
            // Missing, it is made as pluto makes it (its name, if_id and uplink): a tunnel whose
            // device is gone carries nothing, and pluto (managed mode) adopts a device that
            // matches. Present, it is adopted whoever made it, if it is this if_id's.
            guard let present = snapshot.devices[spec.name] else {
                created.append(.xfrmInterface(spec))
                operations.append(.createXfrmInterface(spec))
                continue
            }
            guard present.kind == "xfrm", let interfaceID = present.xfrmInterfaceID else {
                operations.append(.refuse(spec.name, "device \(spec.name) exists but is a \(present.kind ?? "non-tunnel") device, not an XFRM interface; rename it or choose another ipsec-interface"))
                continue
            }
            guard interfaceID == spec.interfaceID else {
                operations.append(.refuse(spec.name, "device \(spec.name) exists with if_id \(interfaceID), wanted \(spec.interfaceID); delete it or fix the conn's ipsec-interface="))
                continue
            }
            if !present.isUp { operations.append(.bringUp(spec.name)) }
        case .ensureMTU(let device, let policy, let inputs):
            let local = created.first { $0.name == device }?.local ?? plannedLocal(of: device, in: plan) ?? snapshot.devices[device]?.vti?.local
            let mtu = tunnelMTU(policy: policy, inputs: inputs, local: local, snapshot)
            if snapshot.devices[device]?.mtu != mtu { operations.append(.setMTU(device, mtu, policy)) }
        case .ensureAddress(let device, let prefix):
            let address = DeviceAddress(device: device, prefix: prefix)
            if !snapshot.addresses.contains(address) { operations.append(.addAddress(address)) }
        case .setSysctl(let setting):
            if snapshot.sysctls[setting.withValue(0)] != setting.value { operations.append(.writeSysctl(setting)) }
        case .addRoute(let route):
            if !snapshot.holds(route) { operations.append(.addRoute(route)) }
        case .deleteRoute(let route):
            if !snapshot.routesComplete || snapshot.holds(route) { operations.append(.deleteRoute(route)) }
        case .deleteVTI(let spec):
            // Only while it still is this tunnel's device.
            if let present = snapshot.devices[spec.name]?.vti, present.sameTunnel(as: spec) { operations.append(.deleteVTI(spec)) }
        case .deleteXfrmInterface(let spec):
            if let present = snapshot.devices[spec.name], present.kind == "xfrm", present.xfrmInterfaceID == spec.interfaceID {
                operations.append(.deleteXfrmInterface(spec))
            }
        case .notice(let text):
            operations.append(.notice(text))
        }
    }
    return operations
}

/// The local address of the tunnel whose device the plan ensures under this name.
private func plannedLocal(of device: InterfaceName, in plan: HookPlan) -> IPAddress? {
    for action in plan {
        switch action {
        case .ensureVTI(let spec) where spec.name == device: return spec.local
        case .ensureXfrmInterface(let spec) where spec.name == device: return spec.local
        default: continue
        }
    }
    return nil
}

/// A VTI device's MTU: fixed, or from the path MTU of the device holding its local address (1500
/// when that is not known) and the SA's algorithms and encapsulation (the fallback suite with
/// NAT-T for a shared device or an SA not read).
public func tunnelMTU(policy: TunnelMTUPolicy, inputs: MTUInputs, local: IPAddress?, _ snapshot: KernelSnapshot) -> Int {
    let fallback: ESPSuite
    switch policy {
    case .fixed(let mtu): return mtu
    case .derived(let suite): fallback = suite
    }
    let pathMTU = local.flatMap { snapshot.pathMTUs[$0] } ?? 1500
    var tunnel = KernelSnapshot.TunnelSuite(suite: fallback, natTraversal: true)
    if !inputs.shared, let spi = inputs.spis.first(where: { snapshot.suites[$0] != nil }) { tunnel = snapshot.suites[spi]! }
    let mtu = tunnelMTU(pathMTU: pathMTU, outerFamily: inputs.outerFamily, natTraversal: tunnel.natTraversal, suite: tunnel.suite)
    // Below 1280 the kernel turns IPv6 off on the device: IPv6 inside gets 1280, and the ESP
    // packets are fragmented on the way rather than the tunnel losing IPv6.
    return inputs.innerFamily == .ipv6 ? max(mtu, 1280) : mtu
}

extension VTIDeviceSpec {
    /// Same end points and keys (the name is the device's, not the tunnel's).
    public func sameTunnel(as other: VTIDeviceSpec) -> Bool {
        local == other.local && remote == other.remote && inputKey == other.inputKey && outputKey == other.outputKey
    }

    var tunnelSummary: String { "local \(local) remote \(remote) ikey \(inputKey) okey \(outputKey)" }
}

extension SysctlSetting {
    /// The same setting with another value: the key under which a current value is observed.
    public func withValue(_ value: Int) -> SysctlSetting {
        var copy = self
        copy.value = value
        return copy
    }
}
