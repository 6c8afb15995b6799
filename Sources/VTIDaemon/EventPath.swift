import ControlProtocol
import Foundation
import LocalIPC
import Netlink
import VTIKernel
import VTIModel

/// A client connection handed from one thread to another: the control thread reads the request,
/// then gives the connection to the thread that answers it (the supervisor's queue, or a worker)
/// and never touches it again. Ownership moves, so one thread uses it at a time: that is why it may
/// be `@unchecked Sendable` (the one such hand-off type; the listening socket uses it too).
public struct ClientConnection: @unchecked Sendable {
    let socket: LocalSocket
    public init(_ socket: LocalSocket) { self.socket = socket }

    /// Sends a line; false if the client has gone.
    func send(_ line: JSONValue) -> Bool {
        (try? socket.send(line: line.serialized)) != nil
    }

    /// Encodes an answer here (on the supervisor's queue) and sends it from another thread, so a
    /// client that does not read cannot hold the queue.
    func reply(encoding make: () throws -> some Encodable) {
        let bytes: [UInt8]
        do {
            bytes = try JSONLineEncoder().encodeLine(try make())
        } catch {
            bytes = Array((errorReply("\(error)").serialized + "\n").utf8)
        }
        let client = self
        DispatchQueue.global().async { try? client.socket.send(bytes) }
    }

    func reply(_ value: JSONValue) {
        let client = self
        DispatchQueue.global().async { _ = client.send(value) }
    }
}

extension Supervisor {
    /// One hook event waiting for its turn.
    public struct Submission: Sendable {
        public var request: HookEventRequest
        public var connection: ClientConnection

        public init(request: HookEventRequest, connection: ClientConnection) {
            self.request = request
            self.connection = connection
        }
    }

    /// How long vtid waits for a hook's `go` after offering to apply its event. A waiting hook
    /// answers at once; one that has not answered by then is treated as gone (it applies its event).
    static let goWaitMilliseconds = 1000

    /// Queues a hook's event. Events that arrive while others are being applied are taken together:
    /// one apply-lock hold and one record transaction for the lot, each still answered on its own.
    public nonisolated func submit(_ submission: Submission) {
        let startDrain = pending.withLock { state in
            state.queue.append(submission)
            defer { state.draining = true }
            return !state.draining
        }
        if startDrain { onQueueAsync { $0.drain() } }
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
            process(batch)
        }
    }

    /// The handover (see `ControlProtocol`): offer every event of the batch, take those whose hook
    /// says `go`, apply them in arrival order under one hold of the apply lock, write their records
    /// in one transaction, answer each.
    private func process(_ batch: [Submission]) {
        var offered: [(event: PlutoEvent, connection: ClientConnection, start: ContinuousClock.Instant)] = []
        for item in batch {
            let start = ContinuousClock.now
            let event: PlutoEvent
            do {
                event = try PlutoEvent(environment: item.request.environment, verbArgument: item.request.verbArgument)
            } catch {
                _ = item.connection.send(reject(item.request, error, source: .vtid, start: start).json)
                continue
            }
            if item.connection.send(readyLine) {
                offered.append((event, item.connection, start))
            } else {
                withdrawn(event)
            }
        }
        let deadline = ContinuousClock.now + .milliseconds(Self.goWaitMilliseconds)
        var taken: [(event: PlutoEvent, connection: ClientConnection, start: ContinuousClock.Instant)] = []
        for item in offered {
            let left = max(0, Int32((deadline - ContinuousClock.now).components.seconds * 1000
                                    + (deadline - ContinuousClock.now).components.attoseconds / 1_000_000_000_000_000))
            let line = try? item.connection.socket.readLine(limit: 4096, timeoutMilliseconds: left)
            if let line, (try? JSONValue(parsing: line))?.isGo == true {
                taken.append(item)
            } else {
                // No `go`: the hook gave up (it applies the event itself); closing tells a late `go` so.
                withdrawn(item.event)
            }
        }
        guard !taken.isEmpty else { return }
        var outcomes: [(event: PlutoEvent, reply: HookEventReply, changes: [RecordChange])] = []
        lock.lock()
        // Events the hook applied itself before these came (pluto runs one hook after the other,
        // and a hook writes its spool record before it exits) are recorded first: otherwise a
        // fallback's up-client read after this batch's down-client of the same tunnel would
        // record as up a tunnel that is gone, and the next pass would put its route back.
        ingestSpoolOnQueue()
        for item in taken {
            let plan = planHook(event: item.event, settings: planningSettings)
            do {
                let kernel = try kernelApplier()
                var lines = item.event.unknownVariables.isEmpty ? [] : ["ignoring unknown variables \(item.event.unknownVariables.joined(separator: " "))"]
                lines += try HookApplier(kernel: kernel).apply(plan)
                lines += try proxyNeighbours(item.event, kernel)
                outcomes.append((item.event, HookEventReply(ok: true, lines: lines, error: nil), recordChanges(item.event, plan: plan)))
            } catch {
                kernel = nil  // a fresh socket for the next event
                outcomes.append((item.event, HookEventReply(ok: false, lines: [], error: "\(error)"), []))
            }
        }
        lock.unlock()
        // A device made or its MTU changed: its clamp follows (nothing to do while no conn clamps).
        for line in syncMSSClampsOnQueue() {
            if line.hasPrefix("failed") { logger.error("\(line)") } else { logger.notice("\(line)") }
        }
        // A route an event removed takes what vtid said about it along.
        for outcome in outcomes where outcome.reply.ok {
            for case .tunnelEnded(_, _, let routes, _) in outcome.changes {
                for route in routes { objectStatus[.route(RouteIdentity(route))] = nil }
            }
        }
        let recordFailure = writeRecords(outcomes.flatMap(\.changes), what: "\(outcomes.count) events")
        for (item, outcome) in zip(taken, outcomes) {
            var reply = outcome.reply
            var result: EventRecord.Result = reply.ok ? .applied : .failed
            if reply.ok, let recordFailure, !outcome.changes.isEmpty {
                reply.lines.append("applied, not recorded: \(recordFailure) (vtid keeps it in memory and writes it when it can; see vtictl status)")
                result = .unrecorded
            }
            record(key: "\(outcome.event.eventKey)", verb: outcome.event.verb.description, connection: outcome.event.connection.escaped,
                   source: .vtid, result: result, lines: reply.lines, error: reply.error, start: item.start)
            _ = item.connection.send(reply.json)
        }
    }

    /// A hook took its event back (it gave up waiting): vtid does not apply it, and records it
    /// when it reads the hook's spool record.
    private func withdrawn(_ event: PlutoEvent) {
        logger.notice("\(event.eventKey): the hook gave up waiting for vtid and applies the event itself; vtid records it from the spool")
    }

    /// Writes record changes; on failure shows the problem (once per cause) and returns its text.
    func writeRecords(_ changes: [RecordChange], what: String) -> String? {
        let hadUnwritten = !records.unwritten.isEmpty
        guard let error = records.write(changes) else {
            if hadUnwritten || problems.open["store"] != nil {
                problems.clear("store", logger: logger) { problem in
                    "state store writable again: the records of \(problem.count) writes that had failed are written now"
                }
            }
            return nil
        }
        let text = "\(error)"
        notRecorded += 1
        metrics.recordFailure()
        problems.report("store", "cannot write vtid's records to \(configuration.stateDirectory): \(text); vtid keeps applying events and keeps \(records.unwritten.count) unwritten changes in memory (\(what) this time)", logger: logger)
        if records.dropped > 0 {
            problems.report("store-dropped", "\(records.dropped) record changes were dropped from memory (over \(records.limit) unwritten): vtid relearns live tunnels from the kernel and removes no route for lack of a record", logger: logger)
        }
        return text
    }

    /// Events the hook applied itself while vtid was away (or had not taken them): recorded, leases
    /// updated, not applied again. Each spool file is removed only once its records are written.
    public nonisolated func ingestSpool() {
        onQueue { $0.ingestSpoolOnQueue() }
    }

    func ingestSpoolOnQueue() {
        let spool = Spool(runDirectory: configuration.runDirectory)
        let content = spool.read()
        for bad in content.unreadable {
            // Kept under another name for whoever wants to look; reported once each.
            let path = spool.directory + "/" + bad.name
            _ = rename(path, path + ".unreadable")
            problems.report("spool-unreadable", "spool: \(bad.name) \(bad.problem); kept as \(bad.name).unreadable", logger: logger)
        }
        if content.overflowed {
            problems.report("spool-overflow", """
                the hook's spool reached its bound (\(spool.maximumFiles) records) while vtid was not taking events: later events were \
                applied by the hook but not recorded; vtid learns their tunnels from the kernel and removes no route for lack of a record
                """, logger: logger)
        }
        guard !content.records.isEmpty || content.overflowed else { return }
        var changes: [RecordChange] = []
        for spooled in content.records {
            let start = ContinuousClock.now
            let event: PlutoEvent
            do {
                event = try PlutoEvent(environment: spooled.request.environment, verbArgument: spooled.request.verbArgument)
            } catch {
                if !ingestedSpoolFiles.contains(spooled.name) { _ = reject(spooled.request, error, source: .hook, start: start) }
                ingestedSpoolFiles.insert(spooled.name)
                continue
            }
            if spooled.reply.ok { changes += recordChanges(event, plan: planHook(event: event, settings: planningSettings)) }
            guard !ingestedSpoolFiles.contains(spooled.name) else { continue }
            ingestedSpoolFiles.insert(spooled.name)
            record(key: "\(event.eventKey)", verb: event.verb.description, connection: event.connection.escaped, source: .hook,
                   result: spooled.reply.ok ? .applied : .failed, lines: spooled.reply.lines, error: spooled.reply.error, start: start)
        }
        guard writeRecords(changes, what: "\(content.records.count) spooled events") == nil else { return }
        spool.remove(content.records.map(\.name), overflow: content.overflowed)
        ingestedSpoolFiles.subtract(content.records.map(\.name))
    }

    /// What an applied event means for vtid's records, from the operations its plan ran: the conn's
    /// device, the tunnel's routes (or their end), the client's lease.
    func recordChanges(_ event: PlutoEvent, plan: HookPlan) -> [RecordChange] {
        let connection = event.connection.escaped
        var changes: [RecordChange] = []
        let now = Int64(Date().timeIntervalSince1970)
        if isSupervised(connection) {
            if configuration.hook.existingDevices[connection] == nil, plan.contains(where: \.ensuresTunnelDevice),
               let setup = deviceSetup(for: event, settings: configuration.hook) {
                changes.append(.device(OwnedDevice(connection: connection, setup: setup)))
            }
            let removed = plan.compactMap { action -> PlannedRoute? in if case .deleteRoute(let route) = action { route } else { nil } }
            if !removed.isEmpty {
                changes.append(.tunnelEnded(connection: connection, peerClient: event.peerClient, routes: removed, at: now))
            }
            for case .addRoute(let route) in plan {
                changes.append(.route(OwnedRoute(connection: connection, peerClient: event.peerClient, route: route, reqid: event.reqid)))
            }
        }
        if let address = leaseAddress(event) {
            for step in event.verb.steps {
                switch step {
                case .up:
                    changes.append(.connected(address: "\(address)", connection: connection, peerID: event.peerID.escaped,
                                              peerAddress: "\(event.peer)", spiIn: event.spiIn, spiOut: event.spiOut, at: now))
                case .down, .unroute:
                    changes.append(.disconnected(address: "\(address)", connection: connection, inBytes: event.inBytes, outBytes: event.outBytes, at: now))
                case .prepare, .route:
                    continue
                }
            }
        }
        return changes
    }

    /// Proxy ARP (IPv4) or NDP (IPv6) entries for a pool address on the LAN (`proxy_arp` in
    /// vtid.yaml): part of applying.
    private func proxyNeighbours(_ event: PlutoEvent, _ kernel: KernelApplier) throws -> [String] {
        guard let address = leaseAddress(event), let proxy = configuration.connections[event.connection.escaped]?.proxyARP else { return [] }
        var lines: [String] = []
        for step in event.verb.steps {
            switch step {
            case .up:
                // IPv6 answers neighbour solicitations for a proxy entry only with proxy_ndp on
                // (IPv4 needs no proxy_arp for one): proxy NDP for IPv6 pools.
                if address.family == .ipv6, let key = SysctlKey.ipv6(.interface(proxy.rawValue), .proxyNDP), try kernel.ensureSysctl(key, 1) {
                    lines.append("set net.ipv6.conf.\(proxy).proxy_ndp=1")
                }
                try kernel.ensureProxyNeighbour(device: proxy.rawValue, address.inet)
                lines.append("proxy neighbour \(address) on \(proxy)")
            case .down, .unroute:
                try kernel.removeProxyNeighbour(device: proxy.rawValue, address.inet)
            case .prepare, .route:
                continue
            }
        }
        return lines
    }

    /// An event pluto's variables do not describe well enough to act on: recorded, answered, not applied.
    func reject(_ request: HookEventRequest, _ error: PlutoEventError, source: EventRecord.Source, start: ContinuousClock.Instant) -> HookEventReply {
        let verb = UntrustedText(request.verbArgument ?? request.environment["PLUTO_VERB"] ?? "?")?.escaped ?? "?"
        let connection = request.environment["PLUTO_CONNECTION"].map { UntrustedText($0)?.escaped ?? "?" } ?? "?"
        record(key: "\(verb) \(connection)", verb: verb, connection: connection, source: source,
               result: error.isUnknownVerb ? .ignored : .rejected, lines: [], error: "\(error)", start: start)
        if error.isUnknownVerb { return HookEventReply(ok: true, lines: ["ignoring \(error)"], error: nil) }
        return HookEventReply(ok: false, lines: [], error: "\(error); nothing was changed")
    }

    /// The pool address this event is about, if the peer is a road-warrior client with a lease.
    func leaseAddress(_ event: PlutoEvent) -> IPAddress? {
        guard event.scope == .client, event.peerClient.isHost, configuration.manages(event.connection.escaped) else { return nil }
        guard event.isModeConfigServer || ipsec[event.connection.escaped]?.poolContains(event.peerClient.address) == true else { return nil }
        return event.peerClient.address
    }

    /// Adds an event to the history, the counters, the metrics and the log (who applied it is
    /// `source`, and it is true: vtid, or the hook's spool record).
    func record(key: String, verb: String, connection: String, source: EventRecord.Source, result: EventRecord.Result,
                lines: [String], error: String?, start: ContinuousClock.Instant) {
        let elapsed = ContinuousClock.now - start
        let microseconds = Int(elapsed.components.seconds * 1_000_000 + elapsed.components.attoseconds / 1_000_000_000_000)
        let entry = EventRecord(sequence: nextSequence, time: Int64(Date().timeIntervalSince1970 * 1000), key: key, verb: verb,
                                connection: connection, source: source, result: result, lines: lines, error: error, microseconds: microseconds)
        nextSequence += 1
        history.append(entry)
        if history.count > configuration.eventHistory { history.removeFirst(history.count - configuration.eventHistory) }
        switch result {
        case .applied: applied += 1
        case .unrecorded: applied += 1
        case .failed, .rejected: failed += 1
        case .ignored: break
        }
        metrics.recordEvent(verb: verb, result: result.rawValue, duration: elapsed)
        let via = source == .hook ? " (applied by vti-updown itself; vtid read its spool record)" : ""
        if let error {
            logger.error("\(key): \(result.rawValue)\(via): \(error)")
        } else if result == .unrecorded {
            // The cause is logged once by the problem book; the event itself at the usual level.
            logger.info("\(key): applied, not recorded\(via)")
        } else {
            logger.info("\(key): \(result.rawValue)\(via)\(lines.isEmpty ? "" : ": " + lines.joined(separator: "; "))")
        }
    }
}

extension HookAction {
    /// The step that makes a conn's device (VTI or XFRM interface) exist.
    var ensuresTunnelDevice: Bool {
        switch self {
        case .ensureVTI, .ensureXfrmInterface: true
        default: false
        }
    }
}
