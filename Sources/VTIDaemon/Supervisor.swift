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
    private let leases: LeaseStore
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
        leases = try LeaseStore(path: configuration.stateDirectory + "/leases.sqlite")
        lock = try ApplyLock(path: ControlProtocol.lockPath(in: configuration.runDirectory))
        metrics = DaemonMetrics()
        try publishHookSettings()
    }

    /// Writes the planning settings where vti-updown reads them (run directory, hook.conf), so
    /// that its fallback plans as vtid does.
    private func publishHookSettings() throws {
        let path = configuration.runDirectory + "/hook.conf"
        let text = "# Written by vtid from \(configurationFile); vti-updown plans with these. Do not edit.\n" + configuration.hook.rendered
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

    /// Makes the kernel hold what the configuration asks for beyond single events: policy rules.
    public func reconcile() {
        queue.sync {
            for route in configuration.policyRoutes {
                do {
                    let kernel = try kernelApplier()
                    let rule = RoutingRule(family: route.from.family == .ipv4 ? .ipv4 : .ipv6, priority: route.priority,
                                           source: route.from.inet, table: RouteTable(rawValue: route.table),
                                           protocol: RouteProtocol(rawValue: configuration.hook.routeProtocol))
                    if try kernel.ensureRule(rule) { logger.info("added rule \(rule): source routing for \(route.from)") }
                    if let device = route.device {
                        let planned = PlannedRoute(destination: IPPrefix(.unspecified(route.from.family), length: 0)!, device: device,
                                                   gateway: route.via, table: route.table, routeProtocol: configuration.hook.routeProtocol)
                        for line in try HookApplier(kernel: kernel).apply([.addRoute(planned)]) {
                            logger.info("\(line) (default route of table \(route.table) for \(route.from))")
                        }
                    }
                } catch {
                    logger.error("policy routing for \(route.from): \(error)")
                }
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
            let plan = planHook(event: event, settings: configuration.hook)
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
            try leases.batch { store in
                for (index, outcome) in outcomes.enumerated() where outcome.reply.ok {
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

    private func updateLeases(_ event: PlutoEvent, _ store: LeaseStore.Batch) -> [String] {
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

    public func leaseRecords() throws -> [LeaseRecord] { try leases.all() }

    public func status() throws -> StatusReply {
        let connections = ipsec.values.sorted { $0.name < $1.name }.map { conn in
            ConnectionRecord(name: conn.name, location: "\(conn.location)", markIn: "\(conn.markIn)", markOut: "\(conn.markOut)",
                             device: configuration.connections[conn.name]?.existingDevice?.rawValue ?? conn.vtiInterface.rawValue,
                             shared: conn.vtiShared, routing: conn.vtiRouting, managed: configuration.manages(conn.name),
                             addressPool: conn.addressPool.map { "\($0.lowerBound)-\($0.upperBound)" })
        }
        let records = try leases.all()
        metrics.clients.set(Int64(records.filter(\.connected).count))
        return StatusReply(daemon: DaemonRecord(version: vtidVersion, pid: getpid(), started: started, configurationFile: configurationFile,
                                                ipsecConf: configuration.ipsecConf, reloadError: reloadError, eventsApplied: applied,
                                                eventsFailed: failed),
                           connections: connections, leases: records)
    }
}

public let vtidVersion = "0.2.0"
