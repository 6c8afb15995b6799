import VTIModel

// The pure half of vtid's self-healing: given what vtid wants (its device and route records) and
// what the kernel holds, the steps that make the kernel hold it. No I/O; Supervisor observes the
// kernel and applies the steps.

/// The kernel as one reconcile pass saw it.
public struct ObservedKernel: Sendable {
    /// Links by name.
    public var devices: [String: ObservedDevice] = [:]
    /// Routes of vtid's protocol, every table, on devices vtid manages.
    public var routes: [PlannedRoute] = []
    /// reqids of the IPsec SAs present: a tunnel is up while one of its SAs is.
    public var liveReqids: Set<UInt32> = []
    /// The SPIs of those SAs, to size a re-created device's MTU from its tunnel's algorithms.
    public var spisByReqid: [UInt32: [UInt32]] = [:]
    /// The SPIs of the SAs carrying each mark or if_id: a device of one tunnel has its keys on its
    /// SAs, whether or not vtid recorded a route of that tunnel (vti-routing=no records none).
    public var spisByKey: [TunnelKey: [UInt32]] = [:]
    /// Outbound policies carrying a mark or an if_id (a route-based conn's): which tunnels pluto has
    /// set up, by key and selector.
    public var markedPolicies: [MarkedPolicy] = []
    /// Current values of the sysctls the devices' setup names (by `SysctlSetting.key`, value 0).
    public var sysctls: [SysctlSetting: Int] = [:]
    /// MTU of the device holding each managed device's local address.
    public var pathMTUs: [IPAddress: Int] = [:]
    /// The SAs' algorithms and encapsulation, by SPI: a device of one tunnel follows its SA.
    public var suites: [UInt32: KernelSnapshot.TunnelSuite] = [:]
    /// Every dump succeeded. Only then may anything be removed: a partial view must never look
    /// like "the route is not wanted".
    public var complete = true

    public init() {}
}

public struct ObservedDevice: Sendable, Hashable {
    public var isUp: Bool
    /// `IFLA_INFO_KIND`.
    public var kind: String?
    /// The tunnel's end points and keys, for a VTI device.
    public var vti: VTIDeviceSpec?
    /// The if_id of an XFRM interface.
    public var xfrmInterfaceID: UInt32?
    public var addresses: Set<IPPrefix>
    public var mtu: Int?
    /// `kind` defaults to what `vti` says (vti or vti6), or xfrm with an if_id.
    public init(isUp: Bool, kind: String? = nil, vti: VTIDeviceSpec? = nil, xfrmInterfaceID: UInt32? = nil, addresses: Set<IPPrefix> = [], mtu: Int? = nil) {
        self.isUp = isUp
        self.kind = kind ?? vti.map { $0.local.family == .ipv4 ? "vti" : "vti6" } ?? xfrmInterfaceID.map { _ in "xfrm" }
        self.vti = vti
        self.xfrmInterfaceID = xfrmInterfaceID
        self.addresses = addresses
        self.mtu = mtu
    }
}

extension ObservedKernel {
    /// The same view in the vocabulary `converge` reads: a full view, so a route not listed is gone.
    public var snapshot: KernelSnapshot {
        var snapshot = KernelSnapshot()
        for (name, device) in devices {
            guard let interface = InterfaceName(name) else { continue }
            snapshot.devices[interface] = KernelSnapshot.Device(isUp: device.isUp, kind: device.kind, vti: device.vti,
                                                                xfrmInterfaceID: device.xfrmInterfaceID, mtu: device.mtu)
            for prefix in device.addresses { snapshot.addresses.insert(DeviceAddress(device: interface, prefix: prefix)) }
        }
        snapshot.sysctls = sysctls
        snapshot.routes = Dictionary(routes.map { (RouteIdentity($0), $0) }, uniquingKeysWith: { first, _ in first })
        snapshot.routesComplete = complete
        snapshot.pathMTUs = pathMTUs
        snapshot.suites = suites
        return snapshot
    }
}

/// An outbound policy of a route-based conn: it carries the conn's mark (VTI) or if_id (XFRM
/// interface).
public struct MarkedPolicy: Sendable, Hashable {
    public var key: TunnelKey
    public var destination: IPPrefix
    public var reqid: UInt32
    public init(key: TunnelKey, destination: IPPrefix, reqid: UInt32) {
        self.key = key
        self.destination = destination
        self.reqid = reqid
    }
    public init(mark: UInt32, destination: IPPrefix, reqid: UInt32) {
        self.init(key: .mark(mark), destination: destination, reqid: reqid)
    }
}

/// What vtid wants, and the bookkeeping a pass carries to the next.
public struct ReconcileInput: Sendable {
    /// Devices of managed conns: from events (as the hook set them up) and from ipsec.conf.
    public var devices: [OwnedDevice]
    /// Routes of the tunnels vtid knows to be up.
    public var routes: [OwnedRoute]
    /// Managed route-based conns: learning a tunnel from the kernel needs its mark and device.
    public var conns: [RouteBasedConn]
    /// Conns routed into a device vtid does not manage: no SAs to watch, the hook's events rule.
    public var existingDevices: [String: InterfaceName]
    /// When each route's tunnel was first seen without SAs (Unix seconds).
    public var missingSince: [RouteIdentity: Int64]
    public var now: Int64
    /// How long a tunnel may be without SAs before its routes go (rekeying replaces SAs; pluto
    /// may be restarting).
    public var grace: Int64
    /// Routes whose tunnel vtid knows to have ended (a recorded down): removable if still there.
    public var ended: [RouteIdentity: PlannedRoute]

    public init(devices: [OwnedDevice], routes: [OwnedRoute], ended: [RouteIdentity: PlannedRoute] = [:], conns: [RouteBasedConn],
                existingDevices: [String: InterfaceName], missingSince: [RouteIdentity: Int64], now: Int64, grace: Int64) {
        self.devices = devices
        self.routes = routes
        self.ended = ended
        self.conns = conns
        self.existingDevices = existingDevices
        self.missingSince = missingSince
        self.now = now
        self.grace = grace
    }
}

public struct ReconcilePlan: Sendable {
    /// The writes (`converge`'s, as for an event): device repairs first (a route needs its
    /// device), then routes to add, then to remove.
    public var operations: [KernelOperation] = []
    /// Tunnels found up in the kernel that vtid had no record of: to remember.
    public var learned: [OwnedRoute] = []
    /// Tunnels whose SAs stayed gone past the grace period: to forget (their routes are removed).
    public var expired: [OwnedRoute] = []
    public var missingSince: [RouteIdentity: Int64] = [:]
    /// Routes kept only because their tunnel is within the grace period.
    public var waiting: [RouteIdentity] = []
    /// Routes of vtid's protocol in the kernel that vtid has no record of and no knowledge that
    /// their tunnel ended: left in place (vtid removes a route only on positive knowledge).
    public var unowned: [PlannedRoute] = []
    /// Ended routes no longer in the kernel: their end need not be remembered any more.
    public var settledEnds: [RouteIdentity] = []
    /// Why something was not done, for the log.
    public var notes: [String] = []
}

/// The difference between what vtid wants and what the kernel holds, as idempotent steps. Only
/// routes of vtid's protocol on devices it manages are ever removed, and only from a complete view.
public func planReconcile(_ input: ReconcileInput, observed: ObservedKernel, settings: HookSettings) -> ReconcilePlan {
    var plan = ReconcilePlan()
    let snapshot = observed.snapshot
    var devices: HookPlan = []
    for owned in input.devices {
        var device = owned.setup
        if !device.shared {
            // A device of one tunnel: its MTU follows that tunnel's SA, as at up-client.
            let reqids = Set(input.routes.filter { $0.connection == owned.connection }.compactMap(\.reqid))
            device.spis = reqids.sorted().flatMap { reqid in (0...2).flatMap { observed.spisByReqid[reqid &+ $0] ?? [] } }
            // Without a recorded route the tunnel is still known by its keys: otherwise the MTU
            // would fall back to the worst suite and undo the hook's, pass after pass.
            device.spis += device.device.tunnelKeys.flatMap { observed.spisByKey[$0] ?? [] }
        }
        devices += planDeviceSetup(device, settings: settings)
    }
    plan.operations = converge(devices, snapshot)

    // Up tunnels vtid has no record of (its records were lost, or could not be written) are learned
    // from the kernel at every pass.
    plan.learned = learnedRoutes(input, observed: observed, settings: settings)
    let records = input.routes + plan.learned

    var wanted: [RouteIdentity: PlannedRoute] = [:]
    for owned in records {
        let identity = RouteIdentity(owned.route)
        let watched = input.existingDevices[owned.connection] == nil && owned.reqid != nil
        if !watched || isUp(reqid: owned.reqid!, observed) {
            wanted[identity] = owned.route
            continue
        }
        let since = input.missingSince[identity] ?? input.now
        if isAlive(owned.route.destination, observed) {
            // Its reqid changed but a live tunnel of the conn carries this destination: keep it.
            wanted[identity] = owned.route
        } else if input.now - since >= input.grace {
            plan.expired.append(owned)
        } else {
            wanted[identity] = owned.route
            plan.missingSince[identity] = since
            plan.waiting.append(identity)
        }
    }

    let present = snapshot.routes
    // Only the differences are ordered (for stable logs): a converged pass sorts nothing.
    let toAdd = converge(wanted.values.map { .addRoute($0) }, snapshot)
    plan.operations += toAdd.sorted { "\($0)" < "\($1)" }
    if observed.complete {
        // Removed only on positive knowledge that the tunnel is gone: its SAs expired past the grace,
        // or vtid recorded its down. Never for lack of a record, never while a live tunnel has it.
        let expired = Set(plan.expired.map { RouteIdentity($0.route) })
        var toDelete: [PlannedRoute] = []
        for (identity, route) in present where wanted[identity] == nil {
            if (expired.contains(identity) || input.ended[identity] != nil) && !isAlive(route.destination, observed) {
                toDelete.append(route)
            } else {
                plan.unowned.append(route)
            }
        }
        plan.operations += converge(toDelete.sorted { "\($0.destination)" < "\($1.destination)" }.map { .deleteRoute($0) }, snapshot)
        plan.unowned.sort { "\($0.destination)" < "\($1.destination)" }
        plan.settledEnds = input.ended.keys.filter { present[$0] == nil || wanted[$0] != nil }
    } else {
        plan.notes.append("the kernel's state could not be read in full: nothing is removed this time")
    }
    return plan
}

/// Whether a live tunnel carries this destination: an outbound policy with a mark or if_id (a
/// route-based conn's) for exactly it, whose SA is in the kernel.
func isAlive(_ destination: IPPrefix, _ observed: ObservedKernel) -> Bool {
    observed.markedPolicies.contains { $0.destination == destination && isUp(reqid: $0.reqid, observed) }
}

/// Whether a tunnel has an SA. pluto's `PLUTO_SA_REQID` is the base of three: AH's; ESP's SAs carry
/// base + 1 and IPComp's base + 2 (libreswan's reqid_esp, reqid_ipcomp).
func isUp(reqid: UInt32, _ observed: ObservedKernel) -> Bool {
    (0...2).contains { observed.liveReqids.contains(reqid &+ $0) }
}

/// Up tunnels (a marked outbound policy whose SA is there) of managed conns with vti-routing that
/// vtid has no route record for: vtid was not told (its state was lost, or could not be written)
/// but pluto has them.
private func learnedRoutes(_ input: ReconcileInput, observed: ObservedKernel, settings: HookSettings) -> [OwnedRoute] {
    // Every pass asks: nothing is built unless a live tunnel of a route-based conn is there (the
    // records of 10,000 clients as text took milliseconds a pass).
    let live = observed.markedPolicies.filter { isUp(reqid: $0.reqid, observed) }
    guard !live.isEmpty else { return [] }
    struct Tunnel: Hashable { var connection: String; var peerClient: IPPrefix }
    let known = Set(input.routes.map { Tunnel(connection: $0.connection, peerClient: $0.peerClient) })
    var learned: [OwnedRoute] = []
    for policy in live {
        guard let conn = input.conns.first(where: { $0.tunnelKey == policy.key && $0.routing }),
              !known.contains(Tunnel(connection: conn.name, peerClient: policy.destination)), !policy.destination.network.isDefault else { continue }
        let device = conn.device(existingDevices: input.existingDevices)
        let route = PlannedRoute(destination: policy.destination, device: device, table: settings.routeTable, metric: settings.routeMetric,
                                 routeProtocol: settings.routeProtocol)
        // A tunnel whose down vtid recorded keeps its SAs a moment longer: not a new tunnel.
        guard input.ended[RouteIdentity(route)] == nil else { continue }
        learned.append(OwnedRoute(connection: conn.name, peerClient: policy.destination, route: route, reqid: policy.reqid))
    }
    return learned
}

/// The recorded devices vtid no longer wants: those whose conn left the configuration
/// (`orphaned`), and those whose conn now uses another device (`replaced`: another name, or moved
/// from a VTI to an XFRM interface or back). Conns routed into an existing device are not judged.
public func unwantedDevices(_ devices: [OwnedDevice], conns: [RouteBasedConn], existingDevices: [String: InterfaceName])
    -> (orphaned: [OwnedDevice], replaced: [OwnedDevice]) {
    let byName = Dictionary(conns.map { ($0.name, $0) }, uniquingKeysWith: { first, _ in first })
    var orphaned: [OwnedDevice] = []
    var replaced: [OwnedDevice] = []
    for owned in devices {
        guard let conn = byName[owned.connection] else {
            orphaned.append(owned)
            continue
        }
        guard existingDevices[conn.name] == nil else { continue }
        var isXfrm = false
        if case .xfrmInterface = owned.setup.device { isXfrm = true }
        if conn.interfaceName != owned.setup.device.name || (conn.interfaceID != nil) != isXfrm { replaced.append(owned) }
    }
    return (orphaned, replaced)
}
