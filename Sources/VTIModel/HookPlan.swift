/// A VTI device as libreswan's conn describes it: its keys are the conn's marks.
public struct VTIDeviceSpec: Sendable, Hashable, CustomStringConvertible {
    public var name: InterfaceName
    public var local: IPAddress
    /// 0.0.0.0 (or ::) for a device that road-warrior instances share.
    public var remote: IPAddress
    public var inputKey: UInt32
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

/// A kernel setting the plan wants, by family, scope and name.
public struct SysctlSetting: Sendable, Hashable, CustomStringConvertible {
    public enum Scope: Sendable, Hashable {
        case interface(InterfaceName)
        /// `conf/all/NAME`
        case all
        /// `net/ipv4/ip_forward` and its kind: not under `conf/`.
        case global
    }

    public var family: IPFamily
    public var scope: Scope
    public var name: String
    public var value: Int

    public init(family: IPFamily, scope: Scope, name: String, value: Int) {
        self.family = family
        self.scope = scope
        self.name = name
        self.value = value
    }

    public var description: String {
        let base = family == .ipv4 ? "net.ipv4" : "net.ipv6"
        switch scope {
        case .interface(let device): return "\(base).conf.\(device).\(name)=\(value)"
        case .all: return "\(base).conf.all.\(name)=\(value)"
        case .global: return "\(base).\(name)=\(value)"
        }
    }
}

/// A route the hook owns: it carries the hook's route protocol number.
public struct PlannedRoute: Sendable, Hashable, CustomStringConvertible {
    public var destination: IPPrefix
    public var device: InterfaceName
    public var gateway: IPAddress?
    public var preferredSource: IPAddress?
    public var table: UInt32
    public var metric: UInt32?
    public var routeProtocol: UInt8

    public init(destination: IPPrefix, device: InterfaceName, gateway: IPAddress? = nil, preferredSource: IPAddress? = nil,
                table: UInt32 = 254, metric: UInt32? = nil, routeProtocol: UInt8) {
        self.destination = destination
        self.device = device
        self.gateway = gateway
        self.preferredSource = preferredSource
        self.table = table
        self.metric = metric
        self.routeProtocol = routeProtocol
    }

    public var description: String {
        var text = "\(destination)"
        if let gateway { text += " via \(gateway)" }
        text += " dev \(device)"
        if let preferredSource { text += " src \(preferredSource)" }
        if table != 254 { text += " table \(table)" }
        if let metric { text += " metric \(metric)" }
        return text + " proto \(routeProtocol)"
    }
}

/// What the MTU of a VTI device should be derived from.
public struct MTUInputs: Sendable, Hashable {
    /// Outer (tunnel end point) family.
    public var outerFamily: IPFamily
    /// The SA to read algorithms and NAT-T encapsulation from (inbound first).
    public var spis: [UInt32]
    /// A shared device serves clients with possibly different proposals: use the fallback suite
    /// and assume NAT-T, the smallest MTU any of them may need.
    public var shared: Bool
}

/// One step of a hook plan. The applier does each idempotently.
public enum HookAction: Sendable, Hashable, CustomStringConvertible {
    /// Create if missing, adopt if it has these parameters, fail if it has others; set it up.
    case ensureVTI(VTIDeviceSpec)
    case ensureMTU(InterfaceName, TunnelMTUPolicy, MTUInputs)
    case ensureAddress(InterfaceName, IPPrefix)
    case setSysctl(SysctlSetting)
    /// Install or update (replace semantics).
    case addRoute(PlannedRoute)
    /// Remove; a route already gone is fine, and only a route of our protocol can match.
    case deleteRoute(PlannedRoute)
    /// Delete the device, only while it still has these parameters.
    case deleteVTI(VTIDeviceSpec)
    /// Nothing to do, but worth a log line (a skipped route, an ignored verb).
    case notice(String)

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

/// What the kernel should look like after one pluto event, as ordered steps: the pure half of the
/// hook, tested without root. Every step is safe to apply twice, so a repeated or reordered event
/// (libreswan 4.10 sends up-client before prepare-client) converges on the same state.
public func planHook(event: PlutoEvent, settings: HookSettings) -> [HookAction] {
    var plan: [HookAction] = []
    for step in event.verb.steps {
        if let vti = event.vti {
            plan += planVTI(step: step, event: event, vti: vti, settings: settings)
        } else {
            plan += planPolicyBased(step: step, event: event, settings: settings)
        }
    }
    return plan
}

private func planVTI(step: PlutoVerb.Step, event: PlutoEvent, vti: PlutoEvent.VTI, settings: HookSettings) -> [HookAction] {
    let device = deviceSpec(event: event, vti: vti)
    let routes = vti.routing ? peerRoutes(event: event, device: vti.interface, gateway: nil, settings: settings) : []
    switch step {
    case .prepare, .up, .route:
        var plan: [HookAction] = [.ensureVTI(device)]
        if let address = vti.address { plan.append(.ensureAddress(vti.interface, address)) }
        plan += deviceSysctls(event: event, vti: vti, settings: settings)
        let mtu: TunnelMTUPolicy = event.mtu.map { .fixed(Int($0)) } ?? settings.mtu
        plan.append(.ensureMTU(vti.interface, mtu, MTUInputs(
            outerFamily: event.me.family, spis: [event.spiIn, event.spiOut].compactMap { $0 }.filter { $0 != 0 },
            shared: vti.shared)))
        if step != .prepare { plan += routes }
        return plan
    case .down:
        return routes.compactMap(removal)
    case .unroute:
        var plan = routes.compactMap(removal)
        // The conn is being removed (unroute only follows a delete or an explicit unroute): a
        // device of its own goes with it; a shared one stays for the other instances.
        if !vti.shared && event.kind != .instance && event.kind != .goingAway {
            plan.append(.deleteVTI(device))
        }
        return plan
    }
}

private func removal(_ action: HookAction) -> HookAction? {
    if case .addRoute(let route) = action { return .deleteRoute(route) }
    return action
}

private func deviceSpec(event: PlutoEvent, vti: PlutoEvent.VTI) -> VTIDeviceSpec {
    let anyRemote = vti.shared || event.kind == .instance || event.kind == .goingAway
    let keyIn = event.markIn?.value ?? event.markOut?.value ?? 0
    let keyOut = event.markOut?.value ?? keyIn
    return VTIDeviceSpec(name: vti.interface, local: event.me,
                         remote: anyRemote ? .unspecified(event.me.family) : event.peer,
                         inputKey: keyIn, outputKey: keyOut)
}

private func deviceSysctls(event: PlutoEvent, vti: PlutoEvent.VTI, settings: HookSettings) -> [HookAction] {
    let device = SysctlSetting.Scope.interface(vti.interface)
    if event.me.family == .ipv6 {
        var plan: [HookAction] = [
            .setSysctl(SysctlSetting(family: .ipv6, scope: device, name: "disable_policy", value: 1)),
            .setSysctl(SysctlSetting(family: .ipv6, scope: device, name: "forwarding", value: 1)),
            .setSysctl(SysctlSetting(family: .ipv6, scope: device, name: "accept_redirects", value: 0)),
        ]
        if vti.routing { plan.append(.setSysctl(SysctlSetting(family: .ipv6, scope: .all, name: "forwarding", value: 1))) }
        return plan
    }
    var plan: [HookAction] = [
        .setSysctl(SysctlSetting(family: .ipv4, scope: device, name: "disable_policy", value: 1)),
        .setSysctl(SysctlSetting(family: .ipv4, scope: device, name: "rp_filter", value: settings.reversePathFilter.rawValue)),
        .setSysctl(SysctlSetting(family: .ipv4, scope: device, name: "forwarding", value: 1)),
        .setSysctl(SysctlSetting(family: .ipv4, scope: device, name: "accept_redirects", value: 0)),
        .setSysctl(SysctlSetting(family: .ipv4, scope: device, name: "send_redirects", value: 0)),
    ]
    // The kernel uses max(all, device): "off" only works with all at 0 as well.
    if settings.reversePathFilter == .off {
        plan.append(.setSysctl(SysctlSetting(family: .ipv4, scope: .all, name: "rp_filter", value: 0)))
    }
    if vti.routing { plan.append(.setSysctl(SysctlSetting(family: .ipv4, scope: .global, name: "ip_forward", value: 1))) }
    return plan
}

/// The routes for the peer's client subnet (on a road-warrior server: the client's pool /32).
private func peerRoutes(event: PlutoEvent, device: InterfaceName, gateway: IPAddress?, settings: HookSettings) -> [HookAction] {
    var destinations = [event.peerClient.network]
    if event.peerClient.isDefault {
        guard settings.routeDefaultThroughTunnel else {
            return [.notice("peer client \(event.peerClient) gets no route (route_default = no)")]
        }
        destinations = halves(of: event.peerClient.family)
    } else if event.peerClient.contains(event.peer) {
        // The tunnel's own packets to the peer would be routed into the tunnel.
        return [.notice("peer client \(event.peerClient) contains the peer \(event.peer): no route, it would loop the tunnel into itself")]
    }
    return destinations.map { destination in
        .addRoute(PlannedRoute(destination: destination, device: device, gateway: gateway,
                               preferredSource: event.mySourceIP, table: settings.routeTable,
                               metric: settings.routeMetric ?? event.metric, routeProtocol: settings.routeProtocol))
    }
}

private func halves(of family: IPFamily) -> [IPPrefix] {
    if family == .ipv4 {
        return [IPPrefix("0.0.0.0/1")!, IPPrefix("128.0.0.0/1")!]
    }
    return [IPPrefix("::/1")!, IPPrefix("8000::/1")!]
}

/// Conns without a VTI (a `leftupdown=` in `conn %default` reaches them too): what the stock
/// script does, so they keep working. With a source IP (mode config) the address goes on the
/// interface and the peer's networks are routed via the next hop with that source.
private func planPolicyBased(step: PlutoVerb.Step, event: PlutoEvent, settings: HookSettings) -> [HookAction] {
    guard let source = event.mySourceIP, let device = event.interface else {
        return step == .prepare ? [] : [.notice("policy-based conn without a source IP: the kernel's IPsec policies route it; nothing to do")]
    }
    var routes = peerRoutes(event: event, device: device, gateway: event.nextHop, settings: HookSettings.policyBased(from: settings))
    // The peer's own address must keep its normal route, or IKE and ESP would follow these routes.
    routes = routes.filter { if case .notice = $0 { return false } else { return true } }
    switch step {
    case .prepare:
        return []
    case .route, .up:
        let host = IPPrefix(source, length: source.family.bitCount)!
        return [.ensureAddress(device, host)] + routes
    case .down:
        return []
    case .unroute:
        return routes.compactMap(removal)
    }
}

extension HookSettings {
    /// A policy-based road-warrior client with a 0.0.0.0/0 peer sends everything through IPsec:
    /// the stock script routes that as two halves via the next hop, and so do we.
    static func policyBased(from settings: HookSettings) -> HookSettings {
        var copy = settings
        copy.routeDefaultThroughTunnel = true
        return copy
    }
}
