import ControlProtocol
import Foundation
import Netlink
import VTIKernel
import VTIModel

/// The effectful half of self-healing: observe the kernel, ask `planReconcile` (pure) for the
/// difference, apply it under the apply lock, write what it learned. Runs at start, after a
/// reload, on kernel changes to what vtid owns, and periodically.
extension Supervisor {
    /// Brings the kernel to the desired state. Returns what it did (or, with `dryRun`, the
    /// difference it would repair, and nothing else), a line each.
    @discardableResult
    public nonisolated func reconcile(reason: String, dryRun: Bool = false) -> [String] {
        onQueue { $0.reconcileOnQueue(reason: reason, dryRun: dryRun) }
    }

    func reconcileOnQueue(reason: String, dryRun: Bool) -> [String] {
        if !dryRun { reconcileScheduled.withLock { $0 = false } }
        let now = Int64(Date().timeIntervalSince1970)
        let conns = ipsec.values.filter { configuration.manages($0.name) }.sorted { $0.name < $1.name }
        var lines: [String] = []
        // The hook's records first (under the lock, so that no fallback is half written): what the
        // hook did while vtid was slow is known before anything is judged.
        if !dryRun {
            lock.lock()
            ingestSpoolOnQueue()
        }
        defer { if !dryRun { lock.unlock() } }
        // The tunnels this pass forgot: their clients' proxy entries go with their routes.
        var expired: [OwnedRoute] = []
        do {
            let kernel = try kernelApplier()
            let stored = try store.devices()
            let storedRoutes = try store.routes()
            reportUnreadableRows(stored.unreadable + storedRoutes.unreadable)
            var devices = stored.records
            // A device whose conn left the configuration goes with it (vtid owns it: it is recorded),
            // unless its tunnel is still up, or it would be every device without the operator's word;
            // so does one its conn no longer uses (moved to an XFRM interface: `vtictl migrate`).
            let unwanted = unwantedDevices(devices, conns: conns, existingDevices: configuration.hook.existingDevices)
            var gone = unwanted.orphaned + unwanted.replaced
            devices.removeAll { gone.contains($0) }
            // Conns in ipsec.conf whose device vtid has not seen yet: create it now, so firewall
            // rules can be attached before the first client (libreswan issue 468).
            let localAddresses = Set(try kernel.localAddresses().map(\.model))
            for conn in conns where configuration.hook.existingDevices[conn.name] == nil
                && !devices.contains(where: { $0.setup.device.name == conn.interfaceName }) {
                if case .xfrmInterface(_, managedByPluto: true) = conn.backend {
                    // pluto's to create (4.x at the first Child SA, 5.x when the conn is added);
                    // vtid takes it over at the first event.
                    continue
                }
                if let setup = conn.plannedDevice(settings: configuration.hook, localAddresses: localAddresses) {
                    devices.append(OwnedDevice(connection: conn.name, setup: setup))
                } else {
                    lines.append("note: \(conn.name) (\(conn.location)): neither left= nor right= is one of this host's addresses, so \(conn.interfaceName) is created by the first event, not in advance")
                }
            }
            let observed = observe(kernel, devices: devices + gone)
            let names = Set(devices.map(\.setup.device.name.rawValue)).union(configuration.hook.existingDevices.values.map(\.rawValue))
            if !dryRun { watchedDeviceNames.withLock { $0 = names } }
            let input = ReconcileInput(
                devices: devices, routes: storedRoutes.records, ended: try store.endedRoutes(), conns: conns,
                existingDevices: configuration.hook.existingDevices, missingSince: missingSince, now: now,
                grace: Int64(configuration.saGraceSeconds))
            let plan = planReconcile(input, observed: observed, settings: configuration.hook)
            lines += plan.notes.map { "note: \($0)" }
            gone = keptGoneDevices(gone, everyDeviceOrphaned: unwanted.orphaned.count == stored.records.count, observed: observed, lines: &lines)
            var operations = plan.operations
            if observed.complete && !gone.isEmpty {
                operations += converge(gone.map { .delete($0.setup.device) }, observed.snapshot)
                // Gone with the device: what vtid said about it.
                for owned in gone { objectStatus[.device(owned.setup.device.name.rawValue)] = nil }
            }
            if dryRun {
                lines += operations.map(\.description)
                lines += plan.learned.map { "learn \($0.connection) \($0.peerClient) from the kernel (reqid \($0.reqid ?? 0))" }
                lines += plan.expired.map { "forget \($0.connection) \($0.peerClient): its SAs are gone (reqid \($0.reqid ?? 0))" }
                return lines
            }
            if plan.unowned.isEmpty {
                problems.clear("unowned-routes", logger: logger) { _ in "every route of vtid's protocol on its devices has a record again" }
            } else if observed.complete {
                let sample = plan.unowned.prefix(3).map { "\($0.destination) dev \($0.device)" }.joined(separator: ", ")
                problems.report("unowned-routes", """
                    \(plan.unowned.count) routes of protocol \(configuration.hook.routeProtocol) on vtid's devices have no record and no recorded end \
                    (\(sample)\(plan.unowned.count > 3 ? ", ..." : "")): left in place; vtid removes a route only when it knows its tunnel ended
                    """, degrading: false, logger: logger)
            }
            missingSince = plan.missingSince
            graceWaiting = !plan.waiting.isEmpty
            let repairs = apply(operations, reason: reason, lines: &lines)
            expired = plan.expired
            var changes: [RecordChange] = devices.map { .device($0) } + gone.map { .removeDevice(name: $0.setup.device.name.rawValue) }
            changes += plan.learned.map { .route($0) }
            changes += plan.settledEnds.map { .forgetEnded($0) }
            for owned in plan.expired {
                changes.append(.tunnelEnded(connection: owned.connection, peerClient: owned.peerClient, routes: [owned.route], at: now))
                if owned.peerClient.isHost {
                    changes.append(.disconnected(address: "\(owned.peerClient.address)", connection: owned.connection, inBytes: nil, outBytes: nil, at: now))
                }
            }
            if let failure = writeRecords(changes, what: "a reconcile pass") { lines.append("failed: records not written: \(failure)") }
            for owned in plan.learned { lines.append("learned \(owned.connection) \(owned.peerClient) from the kernel's policies and SAs") }
            for owned in plan.expired {
                lines.append("\(owned.connection) \(owned.peerClient): its SAs (reqid \(owned.reqid ?? 0)) vanished without a down-client; routes removed after \(configuration.saGraceSeconds) s")
            }
            removingEveryDeviceAllowed = false
            metrics.recordReconcile(repairs: repairs)
            problems.clear("reconcile", logger: logger) { problem in "reconcile passes work again (\(problem.count) failed)" }
        } catch {
            lines.append("failed: \(error)")
            problems.report("reconcile", "a reconcile pass failed: \(error); nothing was removed by it", logger: logger)
            kernel = nil
        }
        if !dryRun {
            lines += ensurePolicyRouting()
            lines += syncMSSClampsOnQueue()
            lines += syncProxyNeighboursOnQueue(expired: expired)
            for line in lines {
                if line.hasPrefix("failed") { logger.error("reconcile (\(reason)): \(line)") } else { logger.notice("reconcile (\(reason)): \(line)") }
            }
            lastReconcile = ContinuousClock.now
            lastPassEnded.withLock { $0 = ContinuousClock.now }
        }
        return lines
    }

    /// Does a pass's writes: devices and settings one by one (each failure its own), then the
    /// routes in two batches (thousands of clients' routes after a device came back). Returns how
    /// many changed something.
    private func apply(_ operations: [KernelOperation], reason: String, lines: inout [String]) -> Int {
        let applier: HookApplier
        do {
            applier = HookApplier(kernel: try kernelApplier())
        } catch {
            lines.append("failed: \(error)")
            return 0
        }
        var repairs = 0
        let stamp = clockTime()
        func note(_ operation: KernelOperation, _ line: String?, _ failure: ApplyError?) {
            let object = operation.object
            if let failure {
                lines.append("failed: \(operation): \(failure)")
                objectStatus[object, default: ObjectStatus()].lastError = "\(stamp) \(operation): \(failure)"
            } else if let line {
                repairs += 1
                lines.append(line)
                objectStatus[object, default: ObjectStatus()].lastRepair = "\(stamp) \(line) (\(reason))"
                objectStatus[object]?.lastError = nil
            }
        }
        var adds: [PlannedRoute] = []
        var deletes: [PlannedRoute] = []
        var indexes = DeviceIndexes()
        for operation in operations {
            switch operation {
            case .addRoute(let route): adds.append(route)
            case .deleteRoute(let route): deletes.append(route)
            default:
                do {
                    note(operation, try applier.write(operation, indexes: &indexes), nil)
                } catch {
                    note(operation, nil, error)
                }
            }
        }
        for (route, failure) in zip(adds, applier.applyRoutes(adds)) { note(.addRoute(route), "route \(route)", failure) }
        for (route, failure) in zip(deletes, applier.applyRoutes(deletes, removing: true)) {
            note(.deleteRoute(route), "removed route \(route)", failure)
            // The route is gone: what vtid said about it no longer applies.
            if failure == nil { objectStatus[.route(RouteIdentity(route))] = nil }
        }
        return repairs
    }

    /// Of the devices whose conn left the configuration or moved to another device, those that may
    /// go: not while a tunnel with their keys is up, and not every device at once because the
    /// configuration names none of their conns (a broken ipsec.conf) unless a reload allowed it.
    private func keptGoneDevices(_ gone: [OwnedDevice], everyDeviceOrphaned: Bool, observed: ObservedKernel, lines: inout [String]) -> [OwnedDevice] {
        guard !gone.isEmpty else { return [] }
        if everyDeviceOrphaned && !removingEveryDeviceAllowed {
            problems.report("remove-all", """
                the configuration names none of the conns of the devices vtid manages (\(gone.map(\.setup.device.name.rawValue).sorted().joined(separator: ", "))): \
                vtid keeps them; fix ipsec_conf, or run `vtictl reload --allow-remove` to delete them
                """, logger: logger)
            return []
        }
        problems.clear("remove-all", logger: logger) { _ in "the configuration names the managed devices' conns again" }
        return gone.filter { owned in
            let keys = owned.setup.device.tunnelKeys
            let live = observed.markedPolicies.contains { keys.contains($0.key) && isUp(reqid: $0.reqid, observed) }
            if live { lines.append("note: \(owned.setup.device.name)'s conn \(owned.connection) no longer uses it but a tunnel with its keys is up: kept") }
            return !live
        }
    }

    private func reportUnreadableRows(_ rows: [String]) {
        guard !rows.isEmpty else {
            problems.clear("store-rows", logger: logger) { _ in "every record row is readable again" }
            return
        }
        problems.report("store-rows", "\(rows.count) rows of vtid's records cannot be read (\(rows.prefix(2).joined(separator: "; "))): their objects are left alone", logger: logger)
    }

    /// The kernel's links, our routes on the devices we manage, SAs and marked policies, and the
    /// sysctls the devices' setup names.
    private func observe(_ kernel: KernelApplier, devices: [OwnedDevice]) -> ObservedKernel {
        var observed = ObservedKernel()
        var managed = Set(devices.map(\.setup.device.name.rawValue))
        managed.formUnion(configuration.hook.existingDevices.values.map(\.rawValue))
        do {
            let links = try kernel.links()
            let names = Dictionary(links.map { ($0.index, $0.name) }, uniquingKeysWith: { first, _ in first })
            // Addresses only matter for the devices vtid sets up (existing devices are someone else's).
            var addresses: [Int32: Set<IPPrefix>] = [:]
            if !devices.isEmpty {
                for address in try kernel.interfaceAddresses() { addresses[address.interfaceIndex, default: []].insert(address.prefix.model) }
            }
            for link in links {
                let vti = link.vti.flatMap { parameters in
                    InterfaceName(link.name).map { VTIDeviceSpec(name: $0, local: parameters.local.model, remote: parameters.remote.model,
                                                                 inputKey: parameters.inputKey, outputKey: parameters.outputKey) }
                }
                observed.devices[link.name] = ObservedDevice(isUp: link.isUp, kind: link.kind, vti: vti, xfrmInterfaceID: link.xfrmInterface?.interfaceID,
                                                             addresses: addresses[link.index] ?? [], mtu: Int(link.mtu))
            }
            // The path MTU of each device's tunnel: the MTU of the device holding its local address.
            let mtus = Dictionary(links.map { ($0.index, Int($0.mtu)) }, uniquingKeysWith: { first, _ in first })
            for owned in devices where !owned.setup.device.local.isUnspecified {
                let local = owned.setup.device.local
                if let holder = addresses.first(where: { $0.value.contains { $0.address == local } })?.key, let mtu = mtus[holder] {
                    observed.pathMTUs[local] = mtu
                }
            }
            for family in [AddressFamily.ipv4, AddressFamily.ipv6] {
                for route in try kernel.routes(RouteFilter(family: family, protocol: RouteProtocol(rawValue: configuration.hook.routeProtocol.rawValue))) {
                    guard let index = route.outputInterface, let name = names[index], managed.contains(name), let device = InterfaceName(name) else { continue }
                    observed.routes.append(PlannedRoute(
                        destination: route.destination.model, device: device, gateway: route.gateway?.model, preferredSource: route.preferredSource?.model,
                        table: route.table.rawValue, metric: route.metric, routeProtocol: RouteProtocolNumber(rawValue: route.protocol.rawValue)))
                }
            }
            let xfrm = try kernel.xfrmState()
            observed.liveReqids = Set(xfrm.associations.map(\.reqid))
            for association in xfrm.associations {
                observed.spisByReqid[association.reqid, default: []].append(association.spi)
                if let key = tunnelKey(mark: association.mark, interfaceID: association.interfaceID) { observed.spisByKey[key, default: []].append(association.spi) }
                observed.suites[association.spi] = association.tunnelSuite
            }
            observed.markedPolicies = xfrm.policies.compactMap { policy in
                guard policy.direction == .output, let key = tunnelKey(mark: policy.mark, interfaceID: policy.interfaceID),
                      let reqid = policy.templateReqids.first else { return nil }
                return MarkedPolicy(key: key, destination: policy.selector.destination.model, reqid: reqid)
            }
            problems.clear("kernel-read", logger: logger) { _ in "the kernel's state can be read in full again" }
        } catch {
            observed.complete = false
            problems.report("kernel-read", "cannot read the kernel's state in full (\(error)): reconcile passes remove nothing until it can", logger: logger)
        }
        // The sysctls the devices' setup would set: only those that differ are repaired.
        for owned in devices {
            for case .setSysctl(let setting) in planDeviceSetup(owned.setup, settings: configuration.hook) {
                let key = setting.withValue(0)
                if observed.sysctls[key] == nil, let value = key.currentValue { observed.sysctls[key] = value }
            }
        }
        return observed
    }

    /// Source-based routing for routed prefixes: the rule and its table's default route.
    private func ensurePolicyRouting() -> [String] {
        var lines: [String] = []
        for route in configuration.policyRoutes {
            do {
                let kernel = try kernelApplier()
                let rule = RoutingRule(family: route.from.family, priority: route.priority,
                                       source: route.from.inet, table: RouteTable(rawValue: route.table),
                                       protocol: RouteProtocol(rawValue: configuration.hook.routeProtocol.rawValue))
                if try kernel.ensureRule(rule) { lines.append("added rule \(rule): source routing for \(route.from)") }
                if let device = route.device {
                    let planned = PlannedRoute(destination: IPPrefix(.unspecified(route.from.family), length: 0)!, device: device,
                                               gateway: route.via, table: route.table, routeProtocol: configuration.hook.routeProtocol)
                    for line in try HookApplier(kernel: kernel).apply([.addRoute(planned)]) {
                        lines.append("\(line) (default route of table \(route.table) for \(route.from))")
                    }
                }
            } catch {
                lines.append("failed: policy routing for \(route.from): \(error)")
            }
        }
        return lines
    }

    /// Asks for a reconcile soon (the kernel changed something vtid owns); bursts fold into one.
    public nonisolated func scheduleReconcile(reason: String, after delay: Duration = .milliseconds(100)) {
        let first = reconcileScheduled.withLock { scheduled in
            defer { scheduled = true }
            return !scheduled
        }
        guard first else { return }
        // At most two notification-driven passes a second: a gateway with thousands of clients
        // rekeys all the time, and each pass reads every route and SA.
        let sinceLast = lastPassEnded.withLock { $0.map { ContinuousClock.now - $0 } } ?? .seconds(3600)
        let wait = max(delay, .milliseconds(500) - sinceLast)
        let nanoseconds = Int(wait.components.seconds) * 1_000_000_000 + Int(wait.components.attoseconds / 1_000_000_000)
        queue.asyncAfter(deadline: .now() + .nanoseconds(nanoseconds)) {
            self.assumeIsolated { _ = $0.reconcileOnQueue(reason: reason, dryRun: false) }
        }
    }

    /// Called every second: the periodic reconcile, every second while a tunnel is in its grace
    /// period, and the spool every other second.
    public nonisolated func tick(second: Int) {
        onQueueAsync { supervisor in
            let interval = Duration.seconds(supervisor.configuration.reconcileIntervalSeconds)
            if supervisor.graceWaiting || supervisor.lastReconcile.map({ ContinuousClock.now - $0 >= interval }) ?? true {
                _ = supervisor.reconcileOnQueue(reason: supervisor.graceWaiting ? "grace period" : "periodic", dryRun: false)
            } else if second % 2 == 0 {
                supervisor.ingestSpoolOnQueue()
            }
        }
    }
}

/// What ties an SA or policy to a route-based conn's device: its if_id (an XFRM interface's; a
/// mark beside it is then only the conn's `mark=`), else its mark (a VTI's key).
func tunnelKey(mark: XfrmMark?, interfaceID: UInt32?) -> TunnelKey? {
    if let interfaceID, interfaceID != 0 { return .interfaceID(interfaceID) }
    return mark.map { .mark($0.value) }
}
