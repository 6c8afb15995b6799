import ControlProtocol
import Foundation
import Logging
import Synchronization
import Netlink
import VTIKernel
import VTIModel

/// vtid's single writer: every hook event is planned, applied, recorded and answered here, one at a
/// time, on one queue. All mutable state is confined to `queue` (hence `@unchecked Sendable`).
public final class Supervisor: @unchecked Sendable {
    public let queue = DispatchQueue(label: "vtid.supervisor")
    public private(set) var configuration: DaemonConfiguration
    private var ipsec: [String: RouteBasedConn]
    private let configurationFile: String
    private var reloadError: String?
    let store: StateStore
    /// When each route's tunnel was first seen without SAs.
    var missingSince: [RouteIdentity: Int64] = [:]
    var graceWaiting = false
    var hasReconciled = false
    var lastReconcile: ContinuousClock.Instant?
    let reconcileScheduled = Mutex(false)
    let lastPassEnded = Mutex<ContinuousClock.Instant?>(nil)
    /// Names of the devices vtid manages, for the kernel watcher's threads.
    private let watchedDeviceNames = Mutex<Set<String>>([])
    public var watchedDevices: Set<String> { watchedDeviceNames.withLock { $0 } }
    /// Last repair and last error per device or route, for `vtictl status`.
    var objectStatus: [String: ObjectStatus] = [:]
    private var history: [EventRecord] = []
    private var nextSequence = 1
    private var applied = 0
    private var failed = 0
    private let lock: ApplyLock
    private var kernel: KernelApplier?
    private let logger: Logger
    public let metrics: DaemonMetrics
    private let started = Int64(Date().timeIntervalSince1970)

    /// Loads everything or throws: vtid refuses to run half-configured.
    public init(configurationFile: String, requireFile: Bool, logger: Logger) throws {
        self.configurationFile = configurationFile
        self.logger = logger
        configuration = try loadDaemonConfiguration(configurationFile, requireFile: requireFile)
        ipsec = try Self.loadConns(configuration)
        try FileManager.default.createDirectory(atPath: configuration.runDirectory, withIntermediateDirectories: true,
                                                attributes: [.posixPermissions: 0o755])
        try FileManager.default.createDirectory(atPath: ControlProtocol.spoolPath(in: configuration.runDirectory),
                                                withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        try FileManager.default.createDirectory(atPath: configuration.stateDirectory, withIntermediateDirectories: true,
                                                attributes: [.posixPermissions: 0o700])
        store = try StateStore(path: configuration.stateDirectory + "/leases.sqlite")
        lock = try ApplyLock(path: ControlProtocol.lockPath(in: configuration.runDirectory))
        metrics = DaemonMetrics()
        try publishHookSettings()
    }

    /// Writes the planning settings where vti-updown reads them (run directory, hook.conf), so
    /// that its fallback plans as vtid does.
    private func publishHookSettings() throws {
        let path = configuration.runDirectory + "/hook.conf"
        let text = "# Written by vtid from \(configurationFile); vti-updown plans with these. Do not edit.\n" + planningSettings.rendered
        try Data(text.utf8).write(to: URL(fileURLWithPath: path), options: .atomic)
    }

    private static func loadConns(_ configuration: DaemonConfiguration) throws -> [String: RouteBasedConn] {
        guard FileManager.default.fileExists(atPath: configuration.ipsecConf) else { return [:] }
        let conns = try RouteBasedConn.all(in: try loadIPsecConfig(configuration.ipsecConf))
        return Dictionary(conns.map { ($0.name, $0) }, uniquingKeysWith: { first, _ in first })
    }

    // MARK: Configuration

    /// Reloads both files (SIGHUP); on any error keeps the running configuration and says why.
    public func reload() -> String? {
        queue.sync {
            do {
                let fresh = try loadDaemonConfiguration(configurationFile, requireFile: false)
                guard fresh.runDirectory == configuration.runDirectory, fresh.stateDirectory == configuration.stateDirectory else {
                    throw ConfigurationError(file: configurationFile, line: nil, problem: "run_directory and state_directory take effect only at restart")
                }
                let conns = try Self.loadConns(fresh)
                configuration = fresh
                ipsec = conns
                reloadError = nil
                try publishHookSettings()
                logger.info("reloaded \(configurationFile) and \(fresh.ipsecConf): \(conns.count) route-based conns")
                return nil
            } catch {
                reloadError = "\(error)"
                logger.error("reload failed, keeping the running configuration: \(error)")
                return reloadError
            }
        }
    }

    // MARK: Reconciliation

    /// Brings the kernel to the desired state (see `planReconcile`): at start, after a reload, on a
    /// kernel change that touches what vtid owns, and periodically. Returns what it did (or, with
    /// `dryRun`, would do), a line each.
    @discardableResult
    public func reconcile(reason: String, dryRun: Bool = false) -> [String] {
        queue.sync { reconcileOnQueue(reason: reason, dryRun: dryRun) }
    }

    func reconcileOnQueue(reason: String, dryRun: Bool) -> [String] {
        dispatchPrecondition(condition: .onQueue(queue))
        reconcileScheduled.withLock { $0 = false }
        let now = Int64(Date().timeIntervalSince1970)
        let conns = ipsec.values.filter { configuration.manages($0.name) }.sorted { $0.name < $1.name }
        var lines: [String] = []
        do {
            let kernel = try kernelApplier()
            var devices = try store.devices()
            // A device whose conn left the configuration goes with it (vtid owns it: it is recorded).
            let configured = Set(conns.map(\.name))
            let gone = devices.filter { !configured.contains($0.connection) }
            devices.removeAll { !configured.contains($0.connection) }
            // Conns in ipsec.conf whose device vtid has not seen yet: create it now, so firewall
            // rules can be attached before the first client (libreswan issue 468).
            let localAddresses = Set(try kernel.localAddresses().map(\.model))
            for conn in conns where configuration.hook.existingDevices[conn.name] == nil
                && !devices.contains(where: { $0.setup.device.name == conn.vtiInterface }) {
                if let setup = conn.plannedDevice(settings: configuration.hook, localAddresses: localAddresses) {
                    devices.append(OwnedDevice(connection: conn.name, setup: setup))
                } else {
                    lines.append("note: \(conn.name) (\(conn.location)): neither left= nor right= is one of this host's addresses, so \(conn.vtiInterface) is created by the first event, not in advance")
                }
            }
            let observed = observe(kernel, devices: devices)
            let names = Set(devices.map(\.setup.device.name.rawValue)).union(configuration.hook.existingDevices.values.map(\.rawValue))
            watchedDeviceNames.withLock { $0 = names }
            let input = ReconcileInput(
                devices: devices, routes: try store.routes(), conns: conns,
                existingDevices: configuration.hook.existingDevices, missingSince: missingSince, now: now,
                grace: Int64(configuration.saGraceSeconds), learnFromKernel: !hasReconciled)
            let plan = planReconcile(input, observed: observed, settings: configuration.hook)
            lines += plan.notes.map { "note: \($0)" }
            var actions = plan.actions
            if observed.complete {
                actions += gone.map { .deleteVTI($0.setup.device) }
            }
            if dryRun {
                lines += actions.map(\.description)
                lines += plan.learned.map { "learn \($0.connection) \($0.peerClient) from the kernel (reqid \($0.reqid ?? 0))" }
                lines += plan.expired.map { "forget \($0.connection) \($0.peerClient): its SAs are gone (reqid \($0.reqid ?? 0))" }
                return lines
            }
            missingSince = plan.missingSince
            graceWaiting = !plan.waiting.isEmpty
            lock.lock()
            let applier = HookApplier(kernel: kernel)
            var repairs = 0
            let stamp = clockTime()
            func note(_ action: HookAction, _ line: String?, _ failure: ApplyError?) {
                let object = action.objectName
                if let failure {
                    lines.append("failed: \(action): \(failure)")
                    objectStatus[object, default: ObjectStatus()].lastError = "\(stamp) \(action): \(failure)"
                } else if let line {
                    repairs += 1
                    lines.append(line)
                    objectStatus[object, default: ObjectStatus()].lastRepair = "\(stamp) \(line) (\(reason))"
                    objectStatus[object]?.lastError = nil
                }
            }
            // Devices and settings one by one, then the routes in two batches (thousands of
            // clients' routes after a device came back).
            var adds: [PlannedRoute] = []
            var deletes: [PlannedRoute] = []
            for action in actions {
                switch action {
                case .addRoute(let route): adds.append(route)
                case .deleteRoute(let route): deletes.append(route)
                default:
                    do {
                        note(action, try applier.apply(action), nil)
                    } catch {
                        note(action, nil, error)
                    }
                }
            }
            for (route, failure) in zip(adds, applier.applyRoutes(adds)) { note(.addRoute(route), "route \(route)", failure) }
            for (route, failure) in zip(deletes, applier.applyRoutes(deletes, removing: true)) {
                note(.deleteRoute(route), "removed route \(route)", failure)
            }
            lock.unlock()
            try store.batch { batch in
                for owned in devices { try batch.save(owned) }
                for owned in gone { try batch.removeDevice(named: owned.setup.device.name.rawValue) }
                for owned in plan.learned { try batch.save(owned) }
                for owned in plan.expired {
                    try batch.removeRoutes(connection: owned.connection, peerClient: "\(owned.peerClient)")
                    if owned.peerClient.isHost {
                        try batch.disconnected(address: "\(owned.peerClient.address)", connection: owned.connection, inBytes: nil, outBytes: nil, at: now)
                    }
                }
            }
            for owned in plan.learned { lines.append("learned \(owned.connection) \(owned.peerClient) from the kernel's policies and SAs") }
            for owned in plan.expired {
                lines.append("\(owned.connection) \(owned.peerClient): its SAs (reqid \(owned.reqid ?? 0)) vanished without a down-client; routes removed after \(configuration.saGraceSeconds) s")
            }
            hasReconciled = true
            metrics.recordReconcile(repairs: repairs, tunnelsUp: observed.liveReqids.count)
        } catch {
            lines.append("failed: \(error)")
            kernel = nil
        }
        lines += ensurePolicyRouting()
        for line in lines {
            if line.hasPrefix("failed") { logger.error("reconcile (\(reason)): \(line)") } else { logger.notice("reconcile (\(reason)): \(line)") }
        }
        lastReconcile = ContinuousClock.now
        lastPassEnded.withLock { $0 = ContinuousClock.now }
        return lines
    }

    /// The kernel's links, our routes on the devices we manage, SAs and marked policies.
    private func observe(_ kernel: KernelApplier, devices: [OwnedDevice]) -> ObservedKernel {
        var observed = ObservedKernel()
        var managed = Set(devices.map(\.setup.device.name.rawValue))
        managed.formUnion(configuration.hook.existingDevices.values.map(\.rawValue))
        do {
            let links = try kernel.links()
            let names = Dictionary(links.map { ($0.index, $0.name) }, uniquingKeysWith: { first, _ in first })
            for link in links { observed.devices[link.name] = ObservedDevice(isUp: link.isUp) }
            for family in [Netlink.AddressFamily.ipv4, Netlink.AddressFamily.ipv6] {
                for route in try kernel.routes(RouteFilter(family: family, protocol: RouteProtocol(rawValue: configuration.hook.routeProtocol))) {
                    guard let index = route.outputInterface, let name = names[index], managed.contains(name), let device = InterfaceName(name) else { continue }
                    observed.routes.append(PlannedRoute(
                        destination: route.destination.model, device: device, gateway: route.gateway?.model, preferredSource: route.preferredSource?.model,
                        table: route.table.rawValue, metric: route.metric, routeProtocol: route.protocol.rawValue))
                }
            }
            let xfrm = try kernel.xfrmState()
            observed.liveReqids = Set(xfrm.associations.map(\.reqid))
            for association in xfrm.associations { observed.spisByReqid[association.reqid, default: []].append(association.spi) }
            observed.markedPolicies = xfrm.policies.compactMap { policy in
                guard policy.direction == .output, let mark = policy.mark, let reqid = policy.templateReqids.first else { return nil }
                return MarkedPolicy(mark: mark.value, destination: policy.selector.destination.model, reqid: reqid)
            }
        } catch {
            observed.complete = false
            logger.error("reconcile: cannot read the kernel's state: \(error)")
        }
        return observed
    }

    /// Source-based routing for routed prefixes: the rule and its table's default route.
    private func ensurePolicyRouting() -> [String] {
        var lines: [String] = []
        for route in configuration.policyRoutes {
            do {
                let kernel = try kernelApplier()
                let rule = RoutingRule(family: route.from.family == .ipv4 ? .ipv4 : .ipv6, priority: route.priority,
                                       source: route.from.inet, table: RouteTable(rawValue: route.table),
                                       protocol: RouteProtocol(rawValue: configuration.hook.routeProtocol))
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
    public func scheduleReconcile(reason: String, after delay: Duration = .milliseconds(100)) {
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
        queue.asyncAfter(deadline: .now() + .nanoseconds(nanoseconds)) { _ = self.reconcileOnQueue(reason: reason, dryRun: false) }
    }

    /// Called every second: the periodic reconcile, and every second while a tunnel is in its
    /// grace period.
    public func tick() {
        queue.async {
            let interval = Duration.seconds(self.configuration.reconcileIntervalSeconds)
            if self.graceWaiting || self.lastReconcile.map({ ContinuousClock.now - $0 >= interval }) ?? true {
                _ = self.reconcileOnQueue(reason: self.graceWaiting ? "grace period" : "periodic", dryRun: false)
            }
        }
    }

    // MARK: Events

    /// One hook event waiting for its turn, with the way to answer it.
    public struct Submission: Sendable {
        public var request: HookEventRequest
        /// Sends a line to the hook; false if it has gone (given up waiting).
        public var send: @Sendable (String) -> Bool

        public init(request: HookEventRequest, send: @escaping @Sendable (String) -> Bool) {
            self.request = request
            self.send = send
        }
    }

    private let pending = Mutex<(queue: [Submission], draining: Bool)>(([], false))

    /// Queues a hook's event. Events that arrive while others are being applied are taken together:
    /// one apply-lock hold and one lease transaction for the lot, each still answered on its own.
    public func submit(_ submission: Submission) {
        let startDrain = pending.withLock { state in
            state.queue.append(submission)
            defer { state.draining = true }
            return !state.draining
        }
        if startDrain { queue.async { self.drain() } }
    }

    private func drain() {
        while true {
            let batch = pending.withLock { state in
                let taken = state.queue
                state.queue = []
                if taken.isEmpty { state.draining = false }
                return taken
            }
            if batch.isEmpty { return }
            process(batch.map { ($0.request, $0.send) }, source: .vtid)
        }
    }

    /// Events the hook applied itself while vtid was away: recorded, leases updated, not re-applied.
    public func ingestSpool() {
        queue.sync {
            let directory = ControlProtocol.spoolPath(in: configuration.runDirectory)
            guard let names = try? FileManager.default.contentsOfDirectory(atPath: directory) else { return }
            var records: [(HookEventRequest, HookEventReply)] = []
            for name in names.filter({ $0.hasSuffix(".event") }).sorted() {
                let path = directory + "/" + name
                defer { try? FileManager.default.removeItem(atPath: path) }
                guard let data = FileManager.default.contents(atPath: path) else { continue }
                let lines = data.split(separator: UInt8(ascii: "\n")).map(Array.init)
                guard lines.count == 2, let request = try? HookEventRequest(json: JSONValue(parsing: lines[0])),
                      let reply = try? HookEventReply(json: JSONValue(parsing: lines[1])) else {
                    logger.error("spool: \(name) is not a hook event record; removed")
                    continue
                }
                records.append((request, reply))
            }
            guard !records.isEmpty else { return }
            process(records.map { record in (record.0, { _ in true }) }, source: .hook, spooled: records.map(\.1))
        }
    }

    /// Plans and applies a batch of events in order under one hold of the apply lock, updates the
    /// leases in one transaction, then records and answers each. `spooled`: results the hook had
    /// already (nothing is applied again).
    private func process(_ batch: [(request: HookEventRequest, send: (String) -> Bool)], source: EventRecord.Source,
                         spooled: [HookEventReply]? = nil) {
        dispatchPrecondition(condition: .onQueue(queue))
        struct Outcome {
            var event: PlutoEvent
            var reply: HookEventReply
            var send: (String) -> Bool
            var start: ContinuousClock.Instant
        }
        var outcomes: [Outcome] = []
        var locked = false
        for (index, item) in batch.enumerated() {
            let start = ContinuousClock.now
            let event: PlutoEvent
            do {
                event = try PlutoEvent(environment: item.request.environment, verbArgument: item.request.verbArgument)
            } catch {
                let reply = reject(item.request, error, source: source, start: start)
                _ = item.send(reply.json.serialized)
                continue
            }
            if let spooled {
                outcomes.append(Outcome(event: event, reply: spooled[index], send: item.send, start: start))
                continue
            }
            let plan = supervisedPlan(event)
            if !locked {
                lock.lock()
                locked = true
            }
            guard item.send(acceptedReply.serialized) else {
                logger.notice("\(event.eventKey): the hook gave up waiting and applies it itself")
                continue
            }
            let reply: HookEventReply
            do {
                reply = HookEventReply(ok: true, lines: try HookApplier(kernel: try kernelApplier()).apply(plan), error: nil)
            } catch {
                kernel = nil  // a fresh socket for the next event
                reply = HookEventReply(ok: false, lines: [], error: "\(error)")
            }
            outcomes.append(Outcome(event: event, reply: reply, send: item.send, start: start))
        }
        if locked { lock.unlock() }
        var leaseLines: [[String]] = Array(repeating: [], count: outcomes.count)
        do {
            try store.batch { store in
                for (index, outcome) in outcomes.enumerated() where outcome.reply.ok {
                    try recordTunnel(outcome.event, store)
                    leaseLines[index] = updateLeases(outcome.event, store)
                }
            }
        } catch {
            logger.error("lease table: \(error)")
        }
        for (index, outcome) in outcomes.enumerated() {
            let reply = HookEventReply(ok: outcome.reply.ok, lines: outcome.reply.lines + leaseLines[index], error: outcome.reply.error)
            record(key: "\(outcome.event.eventKey)", verb: outcome.event.verb.description, connection: outcome.event.connection.escaped,
                   source: source, result: reply.ok ? .applied : .failed, lines: reply.lines, error: reply.error, start: outcome.start)
            _ = outcome.send(reply.json.serialized)
        }
    }

    /// The hook's plan, as vtid applies it: a managed conn's device lives as long as the conn is in
    /// the configuration, so a pluto restart or `whack --delete` does not take it away.
    private func supervisedPlan(_ event: PlutoEvent) -> HookPlan {
        planHook(event: event, settings: planningSettings)
    }

    /// The hook's settings from vtid.yaml, plus the conns whose devices vtid keeps.
    var planningSettings: HookSettings {
        var settings = configuration.hook
        settings.keptDevices = Set(ipsec.keys.filter { configuration.manages($0) })
        return settings
    }

    private func isSupervised(_ connection: String) -> Bool {
        configuration.manages(connection) && (ipsec[connection] != nil || configuration.hook.existingDevices[connection] != nil)
    }

    /// Remembers what an applied event set up: the conn's device, and the routes of the tunnel
    /// (or forgets them when it went down), for reconciliation.
    private func recordTunnel(_ event: PlutoEvent, _ store: StateStore.Batch) throws {
        let connection = event.connection.escaped
        guard isSupervised(connection) else { return }
        let plan = supervisedPlan(event)
        if configuration.hook.existingDevices[connection] == nil, plan.contains(where: { if case .ensureVTI = $0 { true } else { false } }),
           let setup = deviceSetup(for: event, settings: configuration.hook) {
            try store.save(OwnedDevice(connection: connection, setup: setup))
        }
        if plan.contains(where: { if case .deleteRoute = $0 { true } else { false } }) {
            try store.removeRoutes(connection: connection, peerClient: "\(event.peerClient)")
        }
        for case .addRoute(let route) in plan {
            try store.save(OwnedRoute(connection: connection, peerClient: event.peerClient, route: route, reqid: event.reqid))
        }
    }

    /// An event pluto's variables do not describe well enough to act on: recorded, answered, not applied.
    private func reject(_ request: HookEventRequest, _ error: PlutoEventError, source: EventRecord.Source, start: ContinuousClock.Instant) -> HookEventReply {
        let verb = UntrustedText(request.verbArgument ?? request.environment["PLUTO_VERB"] ?? "?")?.escaped ?? "?"
        let connection = request.environment["PLUTO_CONNECTION"].map { UntrustedText($0)?.escaped ?? "?" } ?? "?"
        record(key: "\(verb) \(connection)", verb: verb, connection: connection, source: source,
               result: error.isUnknownVerb ? .ignored : .rejected, lines: [], error: "\(error)", start: start)
        if error.isUnknownVerb { return HookEventReply(ok: true, lines: ["ignoring \(error)"], error: nil) }
        return HookEventReply(ok: false, lines: [], error: "\(error); nothing was changed")
    }

    /// The pool address this event is about, if the peer is a road-warrior client with a lease.
    private func leaseAddress(_ event: PlutoEvent) -> IPAddress? {
        guard event.scope == .client, event.peerClient.isHost, configuration.manages(event.connection.escaped) else { return nil }
        let pool = ipsec[event.connection.escaped]?.addressPool
        guard event.isModeConfigServer || pool?.contains(event.peerClient.address) == true else { return nil }
        return event.peerClient.address
    }

    private func updateLeases(_ event: PlutoEvent, _ store: StateStore.Batch) -> [String] {
        guard let address = leaseAddress(event) else { return [] }
        let now = Int64(Date().timeIntervalSince1970)
        let connection = event.connection.escaped
        let proxy = configuration.connections[connection]?.proxyARP
        var lines: [String] = []
        do {
            for step in event.verb.steps {
                switch step {
                case .up:
                    try store.connected(address: "\(address)", connection: connection, peerID: event.peerID.escaped,
                                        peerAddress: "\(event.peer)", spiIn: event.spiIn, spiOut: event.spiOut, at: now)
                    if let proxy {
                        try kernelApplier().ensureProxyNeighbour(device: proxy.rawValue, address.inet)
                        lines.append("proxy neighbour \(address) on \(proxy)")
                    }
                case .down, .unroute:
                    try store.disconnected(address: "\(address)", connection: connection, inBytes: event.inBytes, outBytes: event.outBytes, at: now)
                    if let proxy {
                        try kernelApplier().removeProxyNeighbour(device: proxy.rawValue, address.inet)
                    }
                case .prepare, .route:
                    continue
                }
            }
        } catch {
            logger.error("lease \(address) of \(connection): \(error)")
            lines.append("lease \(address): \(error)")
        }
        return lines
    }

    private func record(key: String, verb: String, connection: String, source: EventRecord.Source, result: EventRecord.Result,
                        lines: [String], error: String?, start: ContinuousClock.Instant) {
        let elapsed = ContinuousClock.now - start
        let microseconds = Int(elapsed.components.seconds * 1_000_000 + elapsed.components.attoseconds / 1_000_000_000_000)
        let entry = EventRecord(sequence: nextSequence, time: Int64(Date().timeIntervalSince1970 * 1000), key: key, verb: verb,
                                connection: connection, source: source, result: result, lines: lines, error: error, microseconds: microseconds)
        nextSequence += 1
        history.append(entry)
        if history.count > configuration.eventHistory { history.removeFirst(history.count - configuration.eventHistory) }
        if result == .applied { applied += 1 } else if result == .failed || result == .rejected { failed += 1 }
        metrics.recordEvent(verb: verb, result: result.rawValue, duration: elapsed)
        let via = source == .hook ? " (applied by vti-updown while vtid was away)" : ""
        if let error {
            logger.error("\(key): \(result.rawValue)\(via): \(error)")
        } else {
            logger.info("\(key): \(result.rawValue)\(via)\(lines.isEmpty ? "" : ": " + lines.joined(separator: "; "))")
        }
    }

    private func kernelApplier() throws -> KernelApplier {
        if let kernel { return kernel }
        let fresh = try KernelApplier()
        kernel = fresh
        return fresh
    }

    // MARK: Queries (run on `queue`)

    public func events() -> [EventRecord] { history }

    public func leaseRecords() throws -> [LeaseRecord] { try store.all() }

    public func routeRecords() throws -> RoutesReply {
        RoutesReply(routeProtocol: configuration.hook.routeProtocol, routes: try store.routes().map { owned in
            let route = owned.route
            return RouteRecord(destination: "\(route.destination)", device: route.device.rawValue, table: route.table,
                               gateway: route.gateway.map { "\($0)" }, source: route.preferredSource.map { "\($0)" }, metric: route.metric,
                               connection: owned.connection, peerClient: "\(owned.peerClient)", reqid: owned.reqid)
        })
    }

    public func status() throws -> StatusReply {
        let xfrm = try? kernelApplier().xfrmState()
        let locals = Set(((try? kernelApplier().localAddresses()) ?? []).map { "\($0)" })
        let connections = ipsec.values.sorted { $0.name < $1.name }.map { conn in
            let device = conn.device(existingDevices: configuration.hook.existingDevices).rawValue
            return ConnectionRecord(name: conn.name, location: "\(conn.location)", markIn: "\(conn.markIn)", markOut: "\(conn.markOut)",
                                    device: device, shared: conn.vtiShared, routing: conn.vtiRouting, managed: configuration.manages(conn.name),
                                    addressPool: conn.addressPool.map { "\($0.lowerBound)-\($0.upperBound)" },
                                    lastRepair: objectStatus[device]?.lastRepair, lastError: objectStatus[device]?.lastError,
                                    traffic: xfrm.map { traffic(of: conn, in: $0, localAddresses: locals) })
        }
        var records = try store.all()
        metrics.clients.set(Int64(records.filter(\.connected).count))
        if let associations = xfrm?.associations {
            records = records.withCounters(from: associations)
        }
        var problems = objectStatus.compactMap { object, status in status.lastError.map { "\(object): \($0)" } }.sorted()
        if let reloadError { problems.insert("reload failed, running the previous configuration: \(reloadError)", at: 0) }
        return StatusReply(daemon: DaemonRecord(version: vtidVersion, pid: getpid(), started: started, configurationFile: configurationFile,
                                                ipsecConf: configuration.ipsecConf, reloadError: reloadError, eventsApplied: applied,
                                                eventsFailed: failed),
                           connections: connections, leases: records, problems: problems)
    }
}

/// The SAs of a conn: those whose reqid a policy carrying the conn's mark names.
func traffic(of conn: RouteBasedConn, in xfrm: (associations: [SecurityAssociation], policies: [SecurityPolicy]),
             localAddresses: Set<String>) -> ConnectionTraffic {
    let marks = [conn.markIn.value, conn.markOut.value]
    let reqids = Set(xfrm.policies.filter { $0.mark.map { marks.contains($0.value) } ?? false }.flatMap(\.templateReqids))
    var traffic = ConnectionTraffic(peers: [], associations: 0, since: nil, inBytes: 0, outBytes: 0, inPackets: 0, outPackets: 0)
    var peers = Set<String>()
    for sa in xfrm.associations where reqids.contains(sa.reqid) {
        traffic.associations += 1
        if sa.addTime > 0 { traffic.since = min(traffic.since ?? Int64.max, Int64(sa.addTime)) }
        if localAddresses.contains("\(sa.destination)") {
            traffic.inBytes += sa.bytes
            traffic.inPackets += sa.packets
            peers.insert("\(sa.source)")
        } else {
            traffic.outBytes += sa.bytes
            traffic.outPackets += sa.packets
            peers.insert("\(sa.destination)")
        }
    }
    traffic.peers = peers.sorted()
    return traffic
}

public let vtidVersion = "0.2.0"

/// What vtid last did to, or failed to do to, one object.
public struct ObjectStatus: Sendable, Hashable {
    public var lastRepair: String?
    public var lastError: String?
}

extension HookAction {
    /// The kernel object a step is about: a device name or a route.
    var objectName: String {
        switch self {
        case .ensureVTI(let spec), .deleteVTI(let spec): spec.name.rawValue
        case .ensureMTU(let device, _, _), .ensureAddress(let device, _): device.rawValue
        case .setSysctl(let setting): if case .interface(let device) = setting.scope { device.rawValue } else { "host" }
        case .addRoute(let route), .deleteRoute(let route): "route \(RouteIdentity(route))"
        case .notice: "host"
        }
    }
}

func clockTime() -> String {
    let formatter = DateFormatter()
    formatter.dateFormat = "yyyy-MM-dd HH:mm:ss"
    return formatter.string(from: Date())
}

extension Array where Element == LeaseRecord {
    /// A connected client's bytes are its SAs' current counters (by SPI; the outbound SA's
    /// destination is the peer).
    func withCounters(from associations: [SecurityAssociation]) -> [LeaseRecord] {
        let bySPI = Dictionary(associations.map { ($0.spi, $0) }, uniquingKeysWith: { first, _ in first })
        return map { lease in
            guard lease.connected else { return lease }
            var lease = lease
            for spi in [lease.spiIn, lease.spiOut].compactMap({ $0 }) {
                guard let sa = bySPI[spi] else { continue }
                if "\(sa.destination)" == lease.peerAddress { lease.outBytes = sa.bytes } else { lease.inBytes = sa.bytes }
            }
            return lease
        }
    }
}
