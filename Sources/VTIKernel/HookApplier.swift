public import Netlink
public import VTIModel

/// Carries out a plan: reads a snapshot of the objects it names (`KernelApplier.snapshot`), asks
/// `converge` (pure, shared with vtid's reconcile) for the writes, and does them. It only writes:
/// what to write was decided from the snapshot.
///
/// It stops at the first write that fails (or a refusal): every write is idempotent, so the next
/// event (or pluto's retry) picks up from there. Routes that follow one another go to the kernel in
/// one batch: all of them are tried, and the first failure stops the plan.
public struct HookApplier {
    /// What it applies through.
    public let kernel: KernelApplier

    public init(kernel: KernelApplier) {
        self.kernel = kernel
    }

    /// Applies the plan; returns one line per write that changed something (and per notice). In a
    /// compound verb's plan (libreswan 5.4's async `prepare-route-up`, whose output pluto may not
    /// show) a failure names its step and the steps applied before it.
    public func apply(_ plan: HookPlan) throws(ApplyError) -> [String] {
        let (snapshot, indexes) = try kernel.snapshot(for: plan)
        return try run(converge(plan, snapshot), indexes: indexes)
    }

    /// The writes `apply` would do, from a snapshot read now (`--plan`).
    public func operations(for plan: HookPlan) throws(ApplyError) -> [KernelOperation] {
        converge(plan, try kernel.snapshot(for: plan).0)
    }

    /// Does the writes in order, stopping at the first failure.
    public func run(_ operations: [KernelOperation], indexes known: DeviceIndexes) throws(ApplyError) -> [String] {
        var log: [String] = []
        var indexes = known
        var position = 0
        var steps: [Substring] = []
        do throws(ApplyError) {
            while position < operations.count {
                let run = routeRun(operations, from: position)
                if !run.routes.isEmpty {
                    log += try applyRouteRun(run.routes, removing: run.removing, indexes: &indexes)
                    position += run.routes.count
                } else {
                    if case .notice(let text) = operations[position], let step = HookAction.notice(text).compoundStep { steps.append(step) }
                    if let line = try write(operations[position], indexes: &indexes) { log.append(line) }
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

    /// Does one write, independently of others (a reconcile's repairs: one result each); returns
    /// the line saying what changed, if anything did.
    public func write(_ operation: KernelOperation, indexes: inout DeviceIndexes) throws(ApplyError) -> String? {
        switch operation {
        case .createVTI(let spec):
            let (outcome, index) = try kernel.createVTI(named: spec.name.rawValue, spec.parameters)
            indexes.set(spec.name.rawValue, index)
            switch outcome {
            case .created: return "created \(spec)"
            case .broughtUp: return "brought \(spec.name) up"
            case .adopted: return nil
            }
        case .createXfrmInterface(let spec):
            let (outcome, index) = try kernel.createXfrmInterface(named: spec.name.rawValue, interfaceID: spec.interfaceID, underlying: spec.underlying?.rawValue)
            indexes.set(spec.name.rawValue, index)
            switch outcome {
            case .created: return "created XFRM interface \(spec)"
            case .broughtUp: return "brought \(spec.name) up"
            case .adopted: return nil
            }
        case .bringUp(let device):
            try kernel.bringUp(index: try index(of: device, &indexes), name: device.rawValue)
            return "brought \(device) up"
        case .setMTU(let device, let mtu, let policy):
            try kernel.setMTU(index: try index(of: device, &indexes), name: device.rawValue, UInt32(mtu))
            return "set \(device) mtu \(mtu) (\(policy))"
        case .addAddress(let address):
            try kernel.ensureAddress(index: try index(of: address.device, &indexes), address.prefix.inet)
            return nil
        case .writeSysctl(let setting):
            guard let key = setting.key else { throw ApplyError("no such sysctl: \(setting)") }
            return try kernel.ensureSysctl(key, setting.value) ? "set \(setting)" : nil
        case .addRoute(let planned):
            return try applyRouteRun([planned], removing: false, indexes: &indexes).first
        case .deleteRoute(let planned):
            return try applyRouteRun([planned], removing: true, indexes: &indexes).first
        case .deleteVTI(let spec):
            try kernel.deleteLink(index: try index(of: spec.name, &indexes))
            indexes.forget(spec.name.rawValue)
            return "deleted \(spec)"
        case .deleteXfrmInterface(let spec):
            try kernel.deleteLink(index: try index(of: spec.name, &indexes))
            indexes.forget(spec.name.rawValue)
            return "deleted XFRM interface \(spec)"
        case .refuse(_, let text):
            throw ApplyError(text)
        case .notice(let text):
            return text
        }
    }

    /// The routes to add (or to remove) one after another from `position` on.
    private func routeRun(_ operations: [KernelOperation], from position: Int) -> (routes: [PlannedRoute], removing: Bool) {
        var routes: [PlannedRoute] = []
        var removing = false
        for operation in operations[position...] {
            switch operation {
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

    /// Adds (or removes) routes in one netlink batch; one line per route. Unlike `applyRoutes` (a
    /// reconcile's thousands, one result each) it throws the first failure, and a route into a
    /// missing device stops it (adding) or is skipped (removing: gone with it).
    private func applyRouteRun(_ planned: [PlannedRoute], removing: Bool, indexes: inout DeviceIndexes) throws(ApplyError) -> [String] {
        var routes: [Route] = []
        var lines: [String] = []
        var missingDevice: ApplyError?
        for route in planned {
            do {
                routes.append(route.kernelRoute(index: try index(of: route.device, &indexes)))
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

    /// A device's index: as the snapshot (or a creation) found it, or read now.
    private func index(of device: InterfaceName, _ indexes: inout DeviceIndexes) throws(ApplyError) -> Int32 {
        if let index = indexes[device.rawValue] { return index }
        let index = try kernel.interfaceIndex(of: device.rawValue)
        indexes.set(device.rawValue, index)
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
                kernelRoutes.append(planned.kernelRoute(index: index))
                positions.append(position)
            }
        }
        let results = removing ? kernel.removeRoutes(kernelRoutes) : kernel.ensureRoutes(kernelRoutes)
        for (position, result) in zip(positions, results) { failures[position] = result }
        return routes.indices.map { failures[$0] ?? nil }
    }
}

extension PlannedRoute {
    func kernelRoute(index: Int32) -> Route {
        Route(destination: destination.inet, table: RouteTable(rawValue: table), protocol: RouteProtocol(rawValue: routeProtocol.rawValue),
              outputInterface: index, gateway: gateway?.inet, preferredSource: preferredSource?.inet, metric: metric)
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
    public var inet: InetAddress { InetAddress(family: family, bytes: bytes)! }
}

extension IPPrefix {
    public var inet: InetPrefix { InetPrefix(address.inet, length: UInt8(length))! }
}

extension VTIDeviceSpec {
    var parameters: VTIParameters {
        VTIParameters(local: local.inet, remote: remote.inet, inputKey: inputKey, outputKey: outputKey)
    }
}

extension SecurityAssociation {
    /// What this SA costs each packet, for a tunnel's MTU; nil for algorithms the table does not know.
    public var tunnelSuite: KernelSnapshot.TunnelSuite? {
        ESPSuite(aead: algorithms.aead?.name, aeadICVBits: algorithms.aead?.icvBits ?? 0, encryption: algorithms.encryption,
                 authenticationTruncationBits: algorithms.authentication?.truncationBits)
            .map { KernelSnapshot.TunnelSuite(suite: $0, natTraversal: encapsulation != nil) }
    }
}

extension SysctlSetting {
    /// The kernel's value of this setting now (the setting's own value is ignored), nil if it cannot be read.
    public var currentValue: Int? {
        guard let key else { return nil }
        return try? Sysctl.read(key)
    }

    /// The kernel's key; nil only for a setting the family does not have (IPv6 has nothing
    /// directly under it: its forwarding is `conf/all/forwarding`).
    var key: SysctlKey? {
        switch (family, scope) {
        case (.ipv4, .global): return name == .ipForward ? .ipv4Forwarding : nil
        case (.ipv6, .global): return nil
        case (.ipv4, .all): return .ipv4(.all, .init(rawValue: name.rawValue))
        case (.ipv6, .all): return .ipv6(.all, .init(rawValue: name.rawValue))
        case (.ipv4, .interface(let device)): return .ipv4(.interface(device.rawValue), .init(rawValue: name.rawValue))
        case (.ipv6, .interface(let device)): return .ipv6(.interface(device.rawValue), .init(rawValue: name.rawValue))
        }
    }
}
