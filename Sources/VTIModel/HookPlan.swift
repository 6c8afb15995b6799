/// A VTI device as libreswan's conn describes it: its keys are the conn's marks.
public struct VTIDeviceSpec: Sendable, Hashable, CustomStringConvertible {
    public var name: InterfaceName
    public var local: IPAddress
    /// 0.0.0.0 (or ::) for a device that road-warrior instances or several conns share.
    public var remote: IPAddress
    /// `CONNMARK_IN`'s value.
    public var inputKey: UInt32
    /// `CONNMARK_OUT`'s value.
    public var outputKey: UInt32

    public init(name: InterfaceName, local: IPAddress, remote: IPAddress, inputKey: UInt32, outputKey: UInt32) {
        self.name = name
        self.local = local
        self.remote = remote
        self.inputKey = inputKey
        self.outputKey = outputKey
    }

    public var description: String { "\(name) local \(local) remote \(remote) ikey \(inputKey) okey \(outputKey)" }
}

/// A kernel setting the plan wants, by family, scope and name: `net.ipv4.conf.vti01.rp_filter`.
public struct SysctlSetting: Sendable, Hashable, CustomStringConvertible {
    public enum Scope: Sendable, Hashable {
        /// `conf/DEVICE/NAME`
        case interface(InterfaceName)
        /// `conf/all/NAME`
        case all
        /// Directly under the family, not under `conf/`: `net/ipv4/ip_forward`.
        case global
    }

    /// The settings the plans use; `rawValue` is the kernel's name.
    public enum Name: String, Sendable, Hashable {
        case disablePolicy = "disable_policy"
        case reversePathFilter = "rp_filter"
        case forwarding
        case acceptRedirects = "accept_redirects"
        case sendRedirects = "send_redirects"
        /// `net.ipv4.ip_forward`, under the family directly.
        case ipForward = "ip_forward"
        /// IPv6 only: router advertisements are not taken from a tunnel.
        case acceptRouterAdvertisements = "accept_ra"
        /// IPv6 only: 0, so that a host whose new devices start with IPv6 off still carries it.
        case disableIPv6 = "disable_ipv6"
    }

    public var family: AddressFamily
    public var scope: Scope
    public var name: Name
    public var value: Int

    public init(family: AddressFamily, scope: Scope, name: Name, value: Int) {
        self.family = family
        self.scope = scope
        self.name = name
        self.value = value
    }

    public var description: String {
        let base = family == .ipv4 ? "net.ipv4" : "net.ipv6"
        switch scope {
        case .interface(let device): return "\(base).conf.\(device).\(name.rawValue)=\(value)"
        case .all: return "\(base).conf.all.\(name.rawValue)=\(value)"
        case .global: return "\(base).\(name.rawValue)=\(value)"
        }
    }
}

/// The `rtm_protocol` number that marks a route as the hook's and vtid's own: only a route carrying
/// it is ever replaced or removed, and routing daemons can redistribute exactly these
/// (`HookSettings.routeProtocol`, 157 unless configured).
public struct RouteProtocolNumber: RawRepresentable, Hashable, Sendable, CustomStringConvertible, ExpressibleByIntegerLiteral {
    public let rawValue: UInt8
    public init(rawValue: UInt8) { self.rawValue = rawValue }
    public init(integerLiteral value: UInt8) { rawValue = value }
    public var description: String { decimal(rawValue) }
}

/// A route the hook owns: it carries the hook's route protocol number, and only a route with that
/// number is ever deleted.
public struct PlannedRoute: Sendable, Hashable, CustomStringConvertible {
    /// Always a network (host bits cleared).
    public var destination: IPPrefix
    public var device: InterfaceName
    public var gateway: IPAddress?
    public var preferredSource: IPAddress?
    public var table: UInt32
    public var metric: UInt32?
    /// `rtm_protocol`; `HookSettings.routeProtocol`.
    public var routeProtocol: RouteProtocolNumber

    public init(destination: IPPrefix, device: InterfaceName, gateway: IPAddress? = nil, preferredSource: IPAddress? = nil,
                table: UInt32 = 254, metric: UInt32? = nil, routeProtocol: RouteProtocolNumber) {
        self.destination = destination.network
        self.device = device
        self.gateway = gateway
        self.preferredSource = preferredSource
        self.table = table
        self.metric = metric
        self.routeProtocol = routeProtocol
    }

    /// `ip route` syntax, for logs.
    public var description: String {
        var text = destination.description
        if let gateway { text += " via " + gateway.description }
        text += " dev " + device.rawValue
        if let preferredSource { text += " src " + preferredSource.description }
        if table != 254 { text += " table " + decimal(table) }
        if let metric { text += " metric " + decimal(metric) }
        return text + " proto " + decimal(routeProtocol.rawValue)
    }
}

/// What the applier needs to derive a VTI device's MTU (`TunnelMTUPolicy.derived`).
public struct MTUInputs: Sendable, Hashable {
    /// Outer (tunnel end point) family: 20 or 40 bytes of header.
    public var outerFamily: AddressFamily
    /// The family inside the tunnel: IPv6 needs an MTU of at least 1280 (RFC 8200), or the kernel
    /// turns IPv6 off on the device.
    public var innerFamily: AddressFamily
    /// SPIs of the Child SA to read algorithms and NAT-T encapsulation from, SPI_IN (the outbound
    /// SA) first; empty when pluto sent none (prepare, route).
    public var spis: [UInt32]
    /// Several peers use the device (vti-shared=yes, or road-warrior instances): they may differ in
    /// suites and NAT, so use the fallback suite with NAT-T, the smallest MTU any of them needs.
    public var shared: Bool

    public init(outerFamily: AddressFamily, innerFamily: AddressFamily = .ipv4, spis: [UInt32], shared: Bool) {
        self.outerFamily = outerFamily
        self.innerFamily = innerFamily
        self.spis = spis
        self.shared = shared
    }

    public var spiIn: UInt32? { spis.first }
}

/// One step of a hook plan. The applier does each idempotently, so a repeated or reordered event
/// converges on the same state.
public enum HookAction: Sendable, Hashable, CustomStringConvertible {
    /// Create if missing, adopt if it has these parameters, fail clearly if it has others; set it up.
    case ensureVTI(VTIDeviceSpec)
    /// Set the device's MTU: fixed, or derived from the SA (by SPI) and the underlying device.
    case ensureMTU(InterfaceName, TunnelMTUPolicy, MTUInputs)
    /// Add the address if the device lacks it.
    case ensureAddress(InterfaceName, IPPrefix)
    case setSysctl(SysctlSetting)
    /// Install or update (replace semantics).
    case addRoute(PlannedRoute)
    /// Remove; a route already gone is fine, and only a route of our protocol can match.
    case deleteRoute(PlannedRoute)
    /// Delete the device, only while it still has these parameters.
    case deleteVTI(VTIDeviceSpec)
    /// Nothing to do, but worth a log line (a route deliberately not installed).
    case notice(String)

    /// One line for logs.
    public var description: String {
        switch self {
        case .ensureVTI(let spec): "ensure VTI \(spec)"
        case .ensureMTU(let device, let policy, _): "ensure MTU of \(device) (\(policy))"
        case .ensureAddress(let device, let prefix): "ensure address \(prefix) on \(device)"
        case .setSysctl(let setting): "set \(setting)"
        case .addRoute(let route): "add route \(route)"
        case .deleteRoute(let route): "delete route \(route)"
        case .deleteVTI(let spec): "delete VTI \(spec)"
        case .notice(let text): "note: \(text)"
        }
    }
}

/// The ordered steps for one pluto event.
public typealias HookPlan = [HookAction]

extension HookAction {
    /// Where a step of a compound verb (libreswan 5.4's async `prepare-route-up`) begins in a plan:
    /// a notice, "step route of prepare-route-up", which the applier prints and names in a failure.
    public static func compoundStep(_ step: PlutoVerb.Step, of verb: PlutoVerb) -> HookAction {
        .notice(compoundStepPrefix + step.rawValue + " of " + verb.description)
    }

    /// The step this marks ("route of prepare-route-up"), if it is a compound verb's step marker.
    public var compoundStep: Substring? {
        // Not `text.contains(" of ")`: String's substring search lives in _StringProcessing, which
        // would link about 1 MB of regular expression code into the hook (start-up time).
        guard case .notice(let text) = self, text.hasPrefix(HookAction.compoundStepPrefix), containsOf(text) else { return nil }
        return text.dropFirst(HookAction.compoundStepPrefix.count)
    }

    private static let compoundStepPrefix = "step "
}

/// Whether the text has " of " in it, by bytes.
private func containsOf(_ text: String) -> Bool {
    let bytes = Array(text.utf8)
    let of: [UInt8] = [0x20, 0x6f, 0x66, 0x20]
    guard bytes.count >= of.count else { return false }
    for start in 0...(bytes.count - of.count) where bytes[start] == 0x20 && Array(bytes[start..<(start + 4)]) == of { return true }
    return false
}

/// What the kernel should look like after one pluto event, as ordered steps: the pure half of the
/// hook, tested without root. Every step is safe to apply twice, so a repeated or reordered event
/// (libreswan 4.10 sends up-client before prepare-client; prepare and up may race, libreswan
/// #1307) converges on the same state.
///
/// - VTI conns (`VTI_IFACE` set): `prepare`, `route` and `up` ensure the device, its addresses,
///   sysctls and MTU; `route` and `up` with vti-routing=yes also route the peer's client into it
///   (on a road-warrior server: that client's /32). `down` removes exactly that client's routes;
///   `unroute` removes them too. `-host` verbs route nothing.
/// - The hook never deletes a device. An `unroute` does not tell a deleted conn from a mere
///   disconnect: libreswan 4.10 sends it only at `whack --delete`, but 5.x (seen with 5.2) sends
///   `down` then `unroute` on a responder whose peer merely went away, with an environment that
///   differs from the deleting one only in `PLUTO_ADDTIME`. Deleting there would take the device
///   and its firewall rules from under the reconnect. So the device lives until someone removes
///   it: vtid, when the conn leaves ipsec.conf, or the operator (`ip link del`). A device with
///   other parameters left behind is refused at the next `prepare`/`up`, with both named.
/// - Other conns (a `leftupdown=` in `conn %default` reaches them too): what the stock script
///   does for routing and the source IP, so they keep working.
/// - An unknown verb plans nothing.
public func planHook(event: PlutoEvent, settings: HookSettings) -> HookPlan {
    var plan: HookPlan = []
    let steps = event.verb.steps
    for step in steps {
        // libreswan 5.4's async mode sends one compound verb (prepare-route-up) and logs only the
        // exit status: each step is marked, so that a failure says which step it was.
        if steps.count > 1 { plan.append(.compoundStep(step, of: event.verb)) }
        if let vti = event.vti {
            plan += planVTI(step: step, event: event, vti: vti, settings: settings)
        } else {
            plan += planPolicyBased(step: step, event: event, settings: settings)
        }
    }
    // The conn's name is escaped only when there is something to look it up in: escaping is a
    // part of the standard library a hook call would otherwise not touch.
    if !settings.existingDevices.isEmpty, let device = settings.existingDevices[event.connection.escaped] {
        plan = routingIntoExistingDevice(plan, device)
    }
    // A compound verb (prepare-route-up) repeats the set-up; once is enough.
    // (A plan is a dozen steps: a linear search is cheaper here than a Set's hashing and metadata.)
    var unique: [HookAction] = []
    for action in plan where !unique.contains(action) { unique.append(action) }
    return unique
}

/// For a conn whose routes go into a device someone else manages (`existing_device`): only the
/// routes and global settings remain, aimed at that device.
private func routingIntoExistingDevice(_ plan: HookPlan, _ device: InterfaceName) -> HookPlan {
    plan.compactMap { action in
        switch action {
        case .ensureVTI, .ensureMTU, .ensureAddress, .deleteVTI: return nil
        case .setSysctl(let setting):
            if case .interface = setting.scope { return nil }
            return action
        case .addRoute(var route): route.device = device; return .addRoute(route)
        case .deleteRoute(var route): route.device = device; return .deleteRoute(route)
        case .notice: return action
        }
    }
}

private func planVTI(step: PlutoVerb.Step, event: PlutoEvent, vti: PlutoEvent.VTI, settings: HookSettings) -> HookPlan {
    let device = deviceSpec(event: event, vti: vti)
    let routes = vti.routing && event.scope == .client ? vtiRoutes(event: event, vti: vti, settings: settings) : []
    switch step {
    case .prepare:
        return planDeviceSetup(deviceSetup(event: event, vti: vti, device: device, settings: settings), settings: settings)
    case .route, .up:
        return planDeviceSetup(deviceSetup(event: event, vti: vti, device: device, settings: settings), settings: settings) + routes
    case .down:
        return routes.compactMap(undoing)
    case .unroute:
        // The device stays (see planHook): an unroute does not say whether the conn is gone.
        return routes.compactMap(undoing)
    }
}

/// The device as the stock script creates it: remote "any" for instances and shared devices.
private func deviceSpec(event: PlutoEvent, vti: PlutoEvent.VTI) -> VTIDeviceSpec {
    let anyRemote = vti.shared || event.kind.isInstance
    return VTIDeviceSpec(name: vti.interface, local: event.me,
                         remote: anyRemote ? .unspecified(event.me.family) : event.peer,
                         inputKey: event.markIn?.value ?? 0, outputKey: event.markOut?.value ?? 0)
}

private func deviceSetup(event: PlutoEvent, vti: PlutoEvent.VTI, device: VTIDeviceSpec, settings: HookSettings) -> DeviceSetup {
    var addresses: [DeviceSetup.Address] = []
    if let address = vti.address { addresses.append(.init(device: vti.interface, prefix: address)) }
    if let source = event.mySourceIP {
        // Where the stock script's addsource puts it: on the device when it routes, else on lo.
        addresses.append(.init(device: vti.routing ? vti.interface : .loopback, prefix: IPPrefix(host: source)))
    }
    return DeviceSetup(
        device: device, routing: vti.routing, shared: vti.shared || event.kind.isInstance, clientFamily: event.myClient.family,
        addresses: addresses, mtu: event.mtu.map { .fixed($0) } ?? settings.mtu,
        spis: [event.spiIn, event.spiOut].compactMap { $0 }.filter { $0 != 0 })
}

/// The device an event's conn uses, as the hook sets it up (nil for a conn without a VTI).
public func deviceSetup(for event: PlutoEvent, settings: HookSettings) -> DeviceSetup? {
    guard let vti = event.vti else { return nil }
    var setup = deviceSetup(event: event, vti: vti, device: deviceSpec(event: event, vti: vti), settings: settings)
    setup.spis = []
    return setup
}

extension RouteBasedConn {
    /// The conn's device as it will be once a tunnel is up, when ipsec.conf says enough (left= or
    /// right= one of this host's addresses): so that vtid can create it before the first client,
    /// for firewall rules to attach.
    public func plannedDevice(settings: HookSettings, localAddresses: Set<IPAddress>) -> DeviceSetup? {
        // Like pluto, take whichever end is this host's: the same file often serves both gateways.
        let ends: (local: IPAddress, remote: IPAddress?)
        if let left = leftAddress, localAddresses.contains(left) {
            ends = (left, rightAddress)
        } else if let right = rightAddress, localAddresses.contains(right) {
            ends = (right, leftAddress)
        } else {
            return nil
        }
        let anyRemote = vtiShared || ends.remote == nil
        let remote = anyRemote ? IPAddress.unspecified(ends.local.family) : ends.remote!
        guard remote.family == ends.local.family else { return nil }
        var addresses: [DeviceSetup.Address] = []
        if let leftVTI, ends.local == leftAddress { addresses.append(.init(device: vtiInterface, prefix: leftVTI)) }
        return DeviceSetup(
            device: VTIDeviceSpec(name: vtiInterface, local: ends.local, remote: remote, inputKey: markIn.value, outputKey: markOut.value),
            routing: vtiRouting, shared: anyRemote, clientFamily: (leftSubnets.first ?? rightSubnets.first)?.family ?? ends.local.family,
            addresses: addresses, mtu: settings.mtu)
    }
}

/// A VTI device and how it is used: what `planDeviceSetup` needs. vtid keeps one per device it
/// manages, to re-create a device that was deleted behind its back exactly as the hook made it.
public struct DeviceSetup: Sendable, Hashable {
    public var device: VTIDeviceSpec
    /// `vti-routing=yes`: the host forwards into it.
    public var routing: Bool
    /// Several peers (vti-shared=yes, road-warrior instances): MTU for the worst case.
    public var shared: Bool
    /// The family of the traffic inside the tunnel (selectors), which the sysctls follow.
    public var clientFamily: AddressFamily
    /// Addresses to put on devices (`leftvti=`, the source IP).
    public var addresses: [Address]
    public var mtu: TunnelMTUPolicy
    /// The Child SA's SPIs to derive the MTU from, when there is one.
    public var spis: [UInt32]

    public init(device: VTIDeviceSpec, routing: Bool, shared: Bool, clientFamily: AddressFamily, addresses: [Address] = [],
                mtu: TunnelMTUPolicy, spis: [UInt32] = []) {
        self.device = device
        self.routing = routing
        self.shared = shared
        self.clientFamily = clientFamily
        self.addresses = addresses
        self.mtu = mtu
        self.spis = spis
    }

    public struct Address: Sendable, Hashable {
        public var device: InterfaceName
        public var prefix: IPPrefix
        public init(device: InterfaceName, prefix: IPPrefix) {
            self.device = device
            self.prefix = prefix
        }
    }
}

/// The device, its addresses, sysctls and MTU: every step idempotent.
public func planDeviceSetup(_ setup: DeviceSetup, settings: HookSettings) -> HookPlan {
    var plan: HookPlan = [.ensureVTI(setup.device)]
    for address in setup.addresses { plan.append(.ensureAddress(address.device, address.prefix)) }
    plan += deviceSysctls(device: setup.device.name, family: setup.clientFamily, routing: setup.routing, settings: settings)
    plan.append(.ensureMTU(setup.device.name, setup.mtu, MTUInputs(outerFamily: setup.device.local.family, innerFamily: setup.clientFamily, spis: setup.spis, shared: setup.shared)))
    return plan
}

/// The settings of the traffic inside the tunnel, so of the selectors' family. IPv4 gets no
/// rp_filter in IPv6 (there is none) and IPv6 no send_redirects (likewise); IPv6 also gets
/// accept_ra=0 and disable_ipv6=0 on the device.
/// With vti-routing=yes the host must forward: `ip_forward=1`, or for IPv6 `conf.all.forwarding=1`,
/// which also makes the kernel ignore router advertisements on interfaces with accept_ra=1.
private func deviceSysctls(device name: InterfaceName, family: AddressFamily, routing: Bool, settings: HookSettings) -> HookPlan {
    let device = SysctlSetting.Scope.interface(name)
    func set(_ scope: SysctlSetting.Scope, _ name: SysctlSetting.Name, _ value: Int) -> HookAction {
        .setSysctl(SysctlSetting(family: family, scope: scope, name: name, value: value))
    }
    var plan: HookPlan = [set(device, .disablePolicy, 1)]
    if family == .ipv4 {
        plan.append(set(device, .reversePathFilter, settings.reversePathFilter.rawValue))
        // The kernel uses max(all, device): "off" only works with all at 0 as well.
        if settings.reversePathFilter == .off { plan.append(set(.all, .reversePathFilter, 0)) }
    }
    plan += [set(device, .forwarding, 1), set(device, .acceptRedirects, 0)]
    if family == .ipv4 { plan.append(set(device, .sendRedirects, 0)) }
    if family == .ipv6 { plan += [set(device, .acceptRouterAdvertisements, 0), set(device, .disableIPv6, 0)] }
    if routing {
        plan.append(family == .ipv4 ? set(.global, .ipForward, 1) : set(.all, .forwarding, 1))
    }
    return plan
}

/// The routes into the device for the peer's client (on a road-warrior server: the client's pool
/// /32), or a notice saying why there are none.
private func vtiRoutes(event: PlutoEvent, vti: PlutoEvent.VTI, settings: HookSettings) -> HookPlan {
    let client = event.peerClient.network
    func route(_ destination: IPPrefix) -> HookAction {
        .addRoute(PlannedRoute(destination: destination, device: vti.interface, preferredSource: event.mySourceIP,
                               table: settings.routeTable, metric: settings.routeMetric ?? event.metric,
                               routeProtocol: settings.routeProtocol))
    }
    guard client.isDefault else {
        if client.contains(event.peer) {
            return [.notice("peer client \(client) contains the peer \(event.peer): no route, it would loop the tunnel into itself")]
        }
        return [route(client)]
    }
    guard settings.routeDefaultThroughTunnel else {
        return [.notice("peer client \(client) gets no route (route_default = no)")]
    }
    var plan = halves(of: client.family).map(route)
    if event.peer.family == client.family {
        // The halves would take the tunnel's own packets too: pin the peer to the uplink.
        guard let uplink = event.interface else {
            return [.notice("peer client \(client) gets no route: PLUTO_INTERFACE is unknown, so the peer \(event.peer) cannot be kept out of the tunnel")]
        }
        let pin = PlannedRoute(destination: IPPrefix(host: event.peer), device: uplink,
                               gateway: event.nextHop.flatMap { $0 == event.peer ? nil : $0 },
                               table: settings.routeTable, metric: settings.routeMetric ?? event.metric,
                               routeProtocol: settings.routeProtocol)
        plan.insert(.addRoute(pin), at: 0)
    }
    return plan
}

/// 0.0.0.0/1 and 128.0.0.0/1, or ::/1 and 8000::/1: more specific than the default route, which
/// stays in place for when the tunnel is down.
private func halves(of family: AddressFamily) -> [IPPrefix] {
    let zero = IPAddress.unspecified(family)
    var upper = zero.bytes
    upper[0] = 0x80
    return [zero, IPAddress(bytes: upper) ?? zero].compactMap { IPPrefix($0, length: 1) }
}

/// The step that undoes an `addRoute`; nothing else is undone (a notice about a route not
/// installed says nothing about its removal).
private func undoing(_ action: HookAction) -> HookAction? {
    if case .addRoute(let route) = action { return .deleteRoute(route) }
    return nil
}

/// Conns without a VTI, as the stock `_updown.xfrm` treats them: the peer's client is routed via
/// PLUTO_NEXT_HOP (left out when the peer is the next hop) on PLUTO_INTERFACE with
/// PLUTO_MY_SOURCEIP as source, only when a source IP or `mtu=` is set (otherwise the kernel's
/// IPsec policies do all the work); 0.0.0.0/0 as two halves, ::/0 as 2000::/3. The source IP goes
/// on `lo` at `up-client` and `route`. `unroute` removes the routes. Not carried over: the route's
/// `mtu` attribute (PlannedRoute has none) and the removal of the source IP on `unroute`.
private func planPolicyBased(step: PlutoVerb.Step, event: PlutoEvent, settings: HookSettings) -> HookPlan {
    let sourceAddress: HookPlan = event.mySourceIP.map { [.ensureAddress(.loopback, IPPrefix(host: $0))] } ?? []
    switch step {
    case .prepare, .down:
        return []
    case .up:
        return event.scope == .client ? sourceAddress : []
    case .route:
        return sourceAddress + policyRoutes(event: event, settings: settings)
    case .unroute:
        return policyRoutes(event: event, settings: settings).compactMap(undoing)
    }
}

private func policyRoutes(event: PlutoEvent, settings: HookSettings) -> HookPlan {
    guard event.mySourceIP != nil || event.mtu != nil else { return [] }
    guard let device = event.interface else {
        return [.notice("no route for \(event.peerClient): PLUTO_INTERFACE is unknown")]
    }
    let client = event.peerClient.network
    var destinations = [client]
    if client.isDefault {
        destinations = client.family == .ipv4 ? halves(of: .ipv4) : [IPPrefix(IPAddress.v6(IPv6Address(high: 0x2000 << 48, low: 0)), length: 3)].compactMap { $0 }
    }
    // The next hop only makes sense in the end points' family (IPv6 in IPv4 has none to use).
    let gateway = event.nextHop.flatMap { $0 == event.peer || $0.family != client.family ? nil : $0 }
    return destinations.map { destination in
        .addRoute(PlannedRoute(destination: destination, device: device, gateway: gateway, preferredSource: event.mySourceIP,
                               table: settings.routeTable, metric: settings.routeMetric ?? event.metric,
                               routeProtocol: settings.routeProtocol))
    }
}
