public import Netlink
public import VTIModel

/// Carries out a hook plan step by step through `KernelApplier`, and says what it did.
///
/// It stops at the first step that fails: every step is idempotent, so the next event (or pluto's
/// retry) picks up from there and nothing is applied twice. Routes that follow one another in a
/// plan go to the kernel in one batch: all of them are tried, and the first failure stops the plan.
public struct HookApplier {
    /// What it applies through.
    public let kernel: KernelApplier

    public init(kernel: KernelApplier) {
        self.kernel = kernel
    }

    /// What this plan has already read of its devices: each device is read from the kernel once per
    /// plan, not once per step (a converged repeat event then costs a few round trips, not one per
    /// "ensure"). Forgotten when the plan deletes the device.
    ///
    /// Two slots rather than dictionaries: a plan names one tunnel device (read in full) and at most
    /// one other (an index for routes), and the hook's start-up pays for every generic type it
    /// instantiates.
    private struct KnownDevices {
        var link: Link?
        var index: (name: String, value: Int32)?

        mutating func remember(_ link: Link) {
            self.link = link
        }

        func link(named name: String) -> Link? {
            link?.name == name ? link : nil
        }

        func index(named name: String) -> Int32? {
            if let link, link.name == name { return link.index }
            if let index, index.name == name { return index.value }
            return nil
        }

        mutating func forget(_ name: String) {
            if link?.name == name { link = nil }
            if index?.name == name { index = nil }
        }
    }

    /// Applies the plan; returns one line per step that changed or decided something. In a
    /// compound verb's plan (libreswan 5.4's async `prepare-route-up`, whose output pluto may not
    /// show) a failure names its step and the steps applied before it.
    public func apply(_ plan: [HookAction]) throws(ApplyError) -> [String] {
        var log: [String] = []
        var known = KnownDevices()
        var position = 0
        var steps: [Substring] = []
        do throws(ApplyError) {
            while position < plan.count {
                let run = routeRun(plan, from: position)
                if !run.routes.isEmpty {
                    log += try applyRouteRun(run.routes, removing: run.removing, known: &known)
                    position += run.routes.count
                } else {
                    if let step = plan[position].compoundStep { steps.append(step) }
                    if let line = try apply(plan[position], known: &known) { log.append(line) }
                    position += 1
                }
            }
        } catch {
            guard let failed = steps.last else { throw error }
            var named = error
            let before = steps.dropLast().map { $0.prefix { $0 != " " } }
            named.message = "step \(failed) failed (\(before.isEmpty ? "no step before it" : "applied before it: " + before.joined(separator: ", "))): \(error.message)"
            throw named
        }
        return log
    }

    /// The routes to add (or to remove) one after another in the plan from `position` on.
    private func routeRun(_ plan: [HookAction], from position: Int) -> (routes: [PlannedRoute], removing: Bool) {
        var routes: [PlannedRoute] = []
        var removing = false
        for action in plan[position...] {
            switch action {
            case .addRoute(let route) where routes.isEmpty || !removing:
                routes.append(route)
            case .deleteRoute(let route) where routes.isEmpty || removing:
                removing = true
                routes.append(route)
            default:
                return (routes, removing)
            }
        }
        return (routes, removing)
    }

    /// Adds (or removes) a plan's routes in one netlink batch; one line per route. Unlike the
    /// public `applyRoutes` (a reconcile's thousands, one result each) it throws the first failure,
    /// and a route into a missing device stops it (adding) or is skipped (removing: gone with it).
    private func applyRouteRun(_ planned: [PlannedRoute], removing: Bool, known: inout KnownDevices) throws(ApplyError) -> [String] {
        var routes: [Route] = []
        var lines: [String] = []
        var missingDevice: ApplyError?
        for route in planned {
            do {
                routes.append(try kernelRoute(route, known: &known))
                lines.append(removing ? "removed route \(route)" : "route \(route)")
            } catch {
                // A route into a device that is gone: nothing to remove, and nothing can be added.
                if !removing {
                    missingDevice = error
                    break
                }
            }
        }
        let results = removing ? kernel.removeRoutes(routes) : kernel.ensureRoutes(routes)
        for case let failure? in results where !failure.leftAlone { throw failure }
        if let missingDevice { throw missingDevice }
        // Someone else's route in the way is said, not fought: the tunnel itself works on.
        return zip(lines, results).map { line, result in result.map(\.message) ?? line }
    }

    /// Applies one step; returns the line saying what changed, if anything did.
    public func apply(_ action: HookAction) throws(ApplyError) -> String? {
        var known = KnownDevices()
        return try apply(action, known: &known)
    }

    private func apply(_ action: HookAction, known: inout KnownDevices) throws(ApplyError) -> String? {
        switch action {
        case .ensureVTI(let spec):
            let (outcome, link) = try kernel.ensureVTI(named: spec.name.rawValue, spec.parameters)
            known.remember(link)
            switch outcome {
            case .created: return "created \(spec)"
            case .broughtUp: return "brought \(spec.name) up"
            case .adopted: return nil
            }
        case .ensureMTU(let device, let policy, let inputs):
            guard let link = try knownLink(device.rawValue, &known) else { throw ApplyError("device \(device) does not exist") }
            let mtu = try tunnelMTU(for: link, policy: policy, inputs: inputs)
            guard try kernel.ensureMTU(link, UInt32(mtu)) else { return nil }
            var changed = link
            changed.mtu = UInt32(mtu)
            known.remember(changed)
            return "set \(device) mtu \(mtu) (\(policy))"
        case .ensureAddress(let device, let prefix):
            try kernel.ensureAddress(index: try index(of: device.rawValue, &known), prefix.inet)
            return nil
        case .setSysctl(let setting):
            guard let key = setting.key else { throw ApplyError("no such sysctl: \(setting)") }
            return try kernel.ensureSysctl(key, setting.value) ? "set \(setting)" : nil
        case .addRoute(let planned):
            return try applyRouteRun([planned], removing: false, known: &known).first
        case .deleteRoute(let planned):
            return try applyRouteRun([planned], removing: true, known: &known).first
        case .deleteVTI(let spec):
            known.forget(spec.name.rawValue)
            return try kernel.removeVTI(named: spec.name.rawValue, spec.parameters) ? "deleted \(spec)" : nil
        case .notice(let text):
            return text
        }
    }

    /// The device as this plan last read it, or read now.
    private func knownLink(_ name: String, _ known: inout KnownDevices) throws(ApplyError) -> Link? {
        if let link = known.link(named: name) { return link }
        guard let link = try kernel.link(named: name) else { return nil }
        known.remember(link)
        return link
    }

    private func index(of name: String, _ known: inout KnownDevices) throws(ApplyError) -> Int32 {
        if let index = known.index(named: name) { return index }
        let index = try kernel.interfaceIndex(of: name)
        known.index = (name, index)
        return index
    }

    /// Installs (or, with `removing`, deletes) many routes in one netlink batch: a reconcile that
    /// restores the routes of thousands of clients. One result per route, in order.
    public func applyRoutes(_ routes: [PlannedRoute], removing: Bool = false) -> [ApplyError?] {
        var indexes: [InterfaceName: Result<Int32, ApplyError>] = [:]
        var kernelRoutes: [Route] = []
        var failures: [Int: ApplyError] = [:]
        var positions: [Int] = []
        for (position, planned) in routes.enumerated() {
            if indexes[planned.device] == nil {
                indexes[planned.device] = Result { () throws(ApplyError) in try kernel.interfaceIndex(of: planned.device.rawValue) }
            }
            switch indexes[planned.device]! {
            case .failure(let error):
                // With the device gone its routes are gone too: nothing to remove.
                if !removing { failures[position] = error }
            case .success(let index):
                kernelRoutes.append(Route(destination: planned.destination.inet, table: RouteTable(rawValue: planned.table),
                                          protocol: RouteProtocol(rawValue: planned.routeProtocol), outputInterface: index,
                                          gateway: planned.gateway?.inet, preferredSource: planned.preferredSource?.inet, metric: planned.metric))
                positions.append(position)
            }
        }
        let results = removing ? kernel.removeRoutes(kernelRoutes) : kernel.ensureRoutes(kernelRoutes)
        for (position, result) in zip(positions, results) { failures[position] = result }
        return routes.indices.map { failures[$0] ?? nil }
    }

    /// The MTU for a VTI device: fixed, or from the path MTU of the device that holds the local
    /// address and the SA's algorithms and encapsulation.
    func tunnelMTU(for link: Link, policy: TunnelMTUPolicy, inputs: MTUInputs) throws(ApplyError) -> Int {
        let fallback: ESPSuite
        switch policy {
        case .fixed(let mtu): return mtu
        case .derived(let suite): fallback = suite
        }
        var pathMTU = 1500
        if let vti = link.vti, !vti.local.isUnspecified,
           let uplink = try kernel.link(holding: vti.local) {
            pathMTU = Int(uplink.mtu)
        }
        var suite = fallback
        var natTraversal = true
        if !inputs.shared {
            for spi in inputs.spis {
                guard let sa = try kernel.securityAssociation(spi: spi) else { continue }
                if let known = ESPSuite(aead: sa.algorithms.aead?.name, aeadICVBits: sa.algorithms.aead?.icvBits ?? 0,
                                        encryption: sa.algorithms.encryption,
                                        authenticationTruncationBits: sa.algorithms.authentication?.truncationBits) {
                    suite = known
                    natTraversal = sa.encapsulation != nil
                }
                break
            }
        }
        return VTIModel.tunnelMTU(pathMTU: pathMTU, outerFamily: inputs.outerFamily, natTraversal: natTraversal, suite: suite)
    }

    private func kernelRoute(_ planned: PlannedRoute, known: inout KnownDevices) throws(ApplyError) -> Route {
        let index = try index(of: planned.device.rawValue, &known)
        return Route(destination: planned.destination.inet, table: RouteTable(rawValue: planned.table),
                     protocol: RouteProtocol(rawValue: planned.routeProtocol), outputInterface: index,
                     gateway: planned.gateway?.inet, preferredSource: planned.preferredSource?.inet, metric: planned.metric)
    }
}

extension InetAddress {
    /// The model's address type, for comparing kernel state with plans.
    public var model: IPAddress { IPAddress(bytes: bytes)! }
}

extension InetPrefix {
    public var model: IPPrefix { IPPrefix(address.model, length: Int(length))! }
}

extension IPAddress {
    public var inet: InetAddress { InetAddress(family: family == .ipv4 ? .ipv4 : .ipv6, bytes: bytes)! }
}

extension IPPrefix {
    public var inet: InetPrefix { InetPrefix(address.inet, length: UInt8(length))! }
}

extension VTIDeviceSpec {
    var parameters: VTIParameters {
        VTIParameters(local: local.inet, remote: remote.inet, inputKey: inputKey, outputKey: outputKey)
    }
}

extension SysctlSetting {
    /// The kernel's value of this setting now (the setting's own value is ignored), nil if it cannot be read.
    public var currentValue: Int? {
        guard let key else { return nil }
        return try? Sysctl.read(key)
    }

    var key: SysctlKey? {
        switch (family, scope) {
        case (.ipv4, .global): return name == "ip_forward" ? .ipv4Forwarding : nil
        case (.ipv6, .global): return nil
        case (.ipv4, .all): return .ipv4(.all, .init(rawValue: name))
        case (.ipv6, .all): return .ipv6(.all, .init(rawValue: name))
        case (.ipv4, .interface(let device)): return .ipv4(.interface(device.rawValue), .init(rawValue: name))
        case (.ipv6, .interface(let device)): return .ipv6(.interface(device.rawValue), .init(rawValue: name))
        }
    }
}
