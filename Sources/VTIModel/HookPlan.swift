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

/// An XFRM interface as a conn with `ipsec-interface=N` uses it: the kernel matches its SAs and
/// policies by if_id, not by marks, so any number of tunnels, with any remotes, can share one
/// local address. libreswan names it `ipsecN` and (in its default, managed mode) creates and
/// deletes it; see docs/xfrm-interfaces.md.
public struct XfrmInterfaceSpec: Sendable, Hashable, CustomStringConvertible {
    public var name: InterfaceName
    /// `IFLA_XFRM_IF_ID`.
    public var interfaceID: UInt32
    /// The device the ESP packets leave by (`dev` of `ip link add ... type xfrm`), used only when
    /// the device is created here; nil: none (the kernel then routes them by the SA's addresses).
    public var underlying: InterfaceName?
    /// The tunnel's local address: the path MTU is its device's, as for a VTI. Not a parameter of
    /// the device, which serves any address.
    public var local: IPAddress
    /// The peer of a device of one tunnel, unspecified for a shared one: where its SAs are found.
    public var remote: IPAddress

    public init(name: InterfaceName, interfaceID: UInt32, underlying: InterfaceName? = nil, local: IPAddress, remote: IPAddress) {
        self.name = name
        self.interfaceID = interfaceID
        self.underlying = underlying
        self.local = local
        self.remote = remote
    }

    /// libreswan's if_id for `ipsec-interface=N`: N, except 0, which the kernel cannot use as an
    /// if_id and pluto maps to 16384 (`map_if_id_zero`).
    public static func interfaceID(number: UInt32) -> UInt32 { number == 0 ? 16384 : number }

    public var description: String { "\(name) if_id \(interfaceID)" + (underlying.map { " dev \($0)" } ?? "") }
}

/// The device a route-based conn's traffic goes through: a VTI (keys from the conn's marks) or an
/// XFRM interface (an if_id).
public enum TunnelDeviceSpec: Sendable, Hashable, CustomStringConvertible {
    case vti(VTIDeviceSpec)
    case xfrmInterface(XfrmInterfaceSpec)

    public var name: InterfaceName {
        switch self {
        case .vti(let spec): spec.name
        case .xfrmInterface(let spec): spec.name
        }
    }

    /// The tunnel's local address (the path MTU's device holds it).
    public var local: IPAddress {
        switch self {
        case .vti(let spec): spec.local
        case .xfrmInterface(let spec): spec.local
        }
    }

    /// The peer; unspecified when several tunnels share the device.
    public var remote: IPAddress {
        switch self {
        case .vti(let spec): spec.remote
        case .xfrmInterface(let spec): spec.remote
        }
    }

    /// What the tunnel's SAs and policies carry that ties them to this device.
    public var tunnelKeys: [TunnelKey] {
        switch self {
        case .vti(let spec): [.mark(spec.outputKey), .mark(spec.inputKey)]
        case .xfrmInterface(let spec): [.interfaceID(spec.interfaceID)]
        }
    }

    /// The marks an SA of this tunnel is looked up with: a VTI's keys, or none (0) for an XFRM
    /// interface, whose SAs carry an if_id instead.
    public var saMarks: [UInt32] {
        switch self {
        case .vti(let spec): spec.inputKey == spec.outputKey ? [spec.inputKey] : [spec.inputKey, spec.outputKey]
        case .xfrmInterface: [0]
        }
    }

    public var description: String {
        switch self {
        case .vti(let spec): "VTI \(spec)"
        case .xfrmInterface(let spec): "XFRM interface \(spec)"
        }
    }
}

/// What ties an SA or policy to a route-based conn's device: a mark (VTI) or an if_id (XFRM
/// interface).
public enum TunnelKey: Sendable, Hashable, CustomStringConvertible {
    case mark(UInt32)
    case interfaceID(UInt32)

    public var description: String {
        switch self {
        case .mark(let value): "mark \(value)"
        case .interfaceID(let value): "if_id \(value)"
        }
    }
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
    /// Create if missing (as pluto would), adopt if it is an XFRM interface with this if_id, fail
    /// clearly otherwise; set it up.
    case ensureXfrmInterface(XfrmInterfaceSpec)
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
    /// Delete the XFRM interface, only while it still has this if_id.
    case deleteXfrmInterface(XfrmInterfaceSpec)
    /// Nothing to do, but worth a log line (a route deliberately not installed).
    case notice(String)

    /// One line for logs.
    public var description: String {
        switch self {
        case .ensureVTI(let spec): "ensure VTI \(spec)"
        case .ensureXfrmInterface(let spec): "ensure XFRM interface \(spec)"
        case .ensureMTU(let device, let policy, _): "ensure MTU of \(device) (\(policy))"
        case .ensureAddress(let device, let prefix): "ensure address \(prefix) on \(device)"
        case .setSysctl(let setting): "set \(setting)"
        case .addRoute(let route): "add route \(route)"
        case .deleteRoute(let route): "delete route \(route)"
        case .deleteVTI(let spec): "delete VTI \(spec)"
        case .deleteXfrmInterface(let spec): "delete XFRM interface \(spec)"
        case .notice(let text): "note: \(text)"
        }
    }
}

extension HookAction {
    /// The step that makes this device exist.
    public static func ensure(_ device: TunnelDeviceSpec) -> HookAction {
        switch device {
        case .vti(let spec): .ensureVTI(spec)
        case .xfrmInterface(let spec): .ensureXfrmInterface(spec)
        }
    }

    /// The step that deletes this device while it is still this one.
    public static func delete(_ device: TunnelDeviceSpec) -> HookAction {
        switch device {
        case .vti(let spec): .deleteVTI(spec)
        case .xfrmInterface(let spec): .deleteXfrmInterface(spec)
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
/// - XFRM-interface conns (`PLUTO_XFRMI_ROUTE=yes`, `ipsec-interface=N`): the same with the
///   device `ipsecN` (if_id N), which pluto usually makes: it is adopted, or made as pluto would
///   make it when missing; it always routes and gets no disable_policy.
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
        if let device = eventDevice(event) {
            plan += planRouteBased(step: step, event: event, device: device, settings: settings)
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
        case .ensureVTI, .ensureXfrmInterface, .ensureMTU, .ensureAddress, .deleteVTI, .deleteXfrmInterface: return nil
        case .setSysctl(let setting):
            if case .interface = setting.scope { return nil }
            return action
        case .addRoute(var route): route.device = device; return .addRoute(route)
        case .deleteRoute(var route): route.device = device; return .deleteRoute(route)
        case .notice: return action
        }
    }
}

/// What an event says of its conn's device and how the conn uses it.
private struct EventDevice {
    var spec: TunnelDeviceSpec
    /// Routes into it (vti-routing=yes; always for an XFRM interface: PLUTO_XFRMI_ROUTE=yes).
    var routing: Bool
    /// Several tunnels use it: remote any, MTU for the worst case.
    var shared: Bool
    /// `VTI_IP` (`leftvti=`).
    var address: IPPrefix?
}

/// The conn's device: a VTI (`VTI_IFACE`) or an XFRM interface (`PLUTO_XFRMI_ROUTE=yes`,
/// `PLUTO_VIRT_INTERFACE=ipsecN`); nil for a policy-based conn.
private func eventDevice(_ event: PlutoEvent) -> EventDevice? {
    if let vti = event.vti {
        // The stock script's device: remote "any" for instances and shared devices.
        let shared = vti.shared || event.kind.isInstance
        let spec = VTIDeviceSpec(name: vti.interface, local: event.me, remote: shared ? .unspecified(event.me.family) : event.peer,
                                 inputKey: event.markIn?.value ?? 0, outputKey: event.markOut?.value ?? 0)
        return EventDevice(spec: .vti(spec), routing: vti.routing, shared: shared, address: vti.address)
    }
    if let xfrm = event.xfrmInterface {
        // One device serves every instance of a road-warrior conn. Permanent conns that share one
        // ipsec-interface= are not told apart here: each sizes the MTU by its own SA.
        let shared = event.kind.isInstance
        let spec = XfrmInterfaceSpec(name: xfrm.name, interfaceID: xfrm.interfaceID, underlying: event.interface, local: event.me,
                                     remote: shared ? .unspecified(event.me.family) : event.peer)
        return EventDevice(spec: .xfrmInterface(spec), routing: true, shared: shared, address: nil)
    }
    return nil
}

private func planRouteBased(step: PlutoVerb.Step, event: PlutoEvent, device: EventDevice, settings: HookSettings) -> HookPlan {
    let routes = device.routing && event.scope == .client ? tunnelRoutes(event: event, device: device.spec.name, settings: settings) : []
    switch step {
    case .prepare:
        return planDeviceSetup(deviceSetup(event: event, device: device, settings: settings), settings: settings)
    case .route, .up:
        return planDeviceSetup(deviceSetup(event: event, device: device, settings: settings), settings: settings) + routes
    case .down:
        return routes.compactMap(undoing)
    case .unroute:
        // The device stays (see planHook): an unroute does not say whether the conn is gone.
        return routes.compactMap(undoing)
    }
}

private func deviceSetup(event: PlutoEvent, device: EventDevice, settings: HookSettings) -> DeviceSetup {
    var addresses: [DeviceSetup.Address] = []
    if let address = device.address { addresses.append(.init(device: device.spec.name, prefix: address)) }
    if let source = event.mySourceIP {
        // Where the stock script's addsource puts it: on the device when it routes, else on lo.
        addresses.append(.init(device: device.routing ? device.spec.name : .loopback, prefix: IPPrefix(host: source)))
    }
    return DeviceSetup(
        device: device.spec, routing: device.routing, shared: device.shared, clientFamily: event.myClient.family,
        addresses: addresses, mtu: event.mtu.map { .fixed($0) } ?? settings.mtu,
        spis: [event.spiIn, event.spiOut].compactMap { $0 }.filter { $0 != 0 })
}

/// The device an event's conn uses, as the hook sets it up (nil for a policy-based conn).
public func deviceSetup(for event: PlutoEvent, settings: HookSettings) -> DeviceSetup? {
    guard let device = eventDevice(event) else { return nil }
    var setup = deviceSetup(event: event, device: device, settings: settings)
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
        if let leftVTI, ends.local == leftAddress { addresses.append(.init(device: interfaceName, prefix: leftVTI)) }
        let device: TunnelDeviceSpec
        switch backend {
        case .vti(let markIn, let markOut):
            device = .vti(VTIDeviceSpec(name: interfaceName, local: ends.local, remote: remote, inputKey: markIn.value, outputKey: markOut.value))
        case .xfrmInterface(let number, let managedByPluto):
            // pluto makes its own devices (4.x at the first Child SA, 5.x when the conn is added):
            // made first here, it would be adopted and then never deleted by pluto.
            guard !managedByPluto else { return nil }
            device = .xfrmInterface(XfrmInterfaceSpec(name: interfaceName, interfaceID: XfrmInterfaceSpec.interfaceID(number: number),
                                                      local: ends.local, remote: remote))
        }
        return DeviceSetup(
            device: device, routing: routing, shared: anyRemote, clientFamily: (leftSubnets.first ?? rightSubnets.first)?.family ?? ends.local.family,
            addresses: addresses, mtu: settings.mtu)
    }
}

/// A VTI device and how it is used: what `planDeviceSetup` needs. vtid keeps one per device it
/// manages, to re-create a device that was deleted behind its back exactly as the hook made it.
public struct DeviceSetup: Sendable, Hashable {
    public var device: TunnelDeviceSpec
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

    public init(device: TunnelDeviceSpec, routing: Bool, shared: Bool, clientFamily: AddressFamily, addresses: [Address] = [],
                mtu: TunnelMTUPolicy, spis: [UInt32] = []) {
        self.device = device
        self.routing = routing
        self.shared = shared
        self.clientFamily = clientFamily
        self.addresses = addresses
        self.mtu = mtu
        self.spis = spis
    }

    /// A VTI's setup.
    public init(device: VTIDeviceSpec, routing: Bool, shared: Bool, clientFamily: AddressFamily, addresses: [Address] = [],
                mtu: TunnelMTUPolicy, spis: [UInt32] = []) {
        self.init(device: .vti(device), routing: routing, shared: shared, clientFamily: clientFamily, addresses: addresses, mtu: mtu, spis: spis)
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
    var plan: HookPlan = [.ensure(setup.device)]
    for address in setup.addresses { plan.append(.ensureAddress(address.device, address.prefix)) }
    var isVTI = false
    if case .vti = setup.device { isVTI = true }
    plan += deviceSysctls(device: setup.device.name, family: setup.clientFamily, routing: setup.routing, disablePolicy: isVTI, settings: settings)
    plan.append(.ensureMTU(setup.device.name, setup.mtu, MTUInputs(outerFamily: setup.device.local.family, innerFamily: setup.clientFamily, spis: setup.spis, shared: setup.shared)))
    return plan
}

/// The settings of the traffic inside the tunnel, so of the selectors' family. IPv4 gets no
/// rp_filter in IPv6 (there is none) and IPv6 no send_redirects (likewise); IPv6 also gets
/// accept_ra=0 and disable_ipv6=0 on the device. A VTI gets disable_policy=1 (its decrypted
/// packets would fail the inbound policy check); an XFRM interface needs none: the kernel checks
/// its packets against the policies with its if_id.
/// With vti-routing=yes the host must forward: `ip_forward=1`, or for IPv6 `conf.all.forwarding=1`,
/// which also makes the kernel ignore router advertisements on interfaces with accept_ra=1.
private func deviceSysctls(device name: InterfaceName, family: AddressFamily, routing: Bool, disablePolicy: Bool, settings: HookSettings) -> HookPlan {
    let device = SysctlSetting.Scope.interface(name)
    func set(_ scope: SysctlSetting.Scope, _ name: SysctlSetting.Name, _ value: Int) -> HookAction {
        .setSysctl(SysctlSetting(family: family, scope: scope, name: name, value: value))
    }
    var plan: HookPlan = disablePolicy ? [set(device, .disablePolicy, 1)] : []
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
private func tunnelRoutes(event: PlutoEvent, device: InterfaceName, settings: HookSettings) -> HookPlan {
    let client = event.peerClient.network
    func route(_ destination: IPPrefix) -> HookAction {
        .addRoute(PlannedRoute(destination: destination, device: device, preferredSource: event.mySourceIP,
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
