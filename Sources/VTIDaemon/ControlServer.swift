import ControlProtocol
import Foundation
import Logging
import LocalIPC
import Synchronization

/// The control socket. One thread accepts connections and reads their request lines in one poll
/// loop: a connection that is slow or silent costs a slot in that loop, never a thread, and each
/// request must be complete within `requestDeadline` of its connection, whatever it sends (a
/// byte every second does not keep it alive). Complete requests go to the supervisor's queue.
///
/// Who may ask what (the kernel vouches for the peer: SO_PEERCRED, SO_PEERGROUPS): root and vtid's
/// own user may send anything; members of `socket_group` (primary or supplementary) may read
/// (status, leases, routes, events, metrics, a dry-run reconcile); everyone else is refused, after
/// vtid has read the request, with an answer that says so.
public final class ControlServer: Sendable {
    public let path: String
    private let supervisor: Supervisor
    private let logger: Logger
    private let allowedGroup: UInt32?
    private let listener: ClientConnection
    private let wake: WakePipe
    private let stopping = Mutex(false)
    private let stopped = DispatchSemaphore(value: 0)

    /// How long a connection may take to send its request line.
    static let requestDeadline: Duration = .seconds(2)
    /// Connections still sending their request, at most; past it the oldest is dropped.
    static let maximumPending = 512
    /// How long a send of an answer may wait for a client that does not read it.
    static let sendTimeoutMilliseconds = 2000

    public init(supervisor: Supervisor, logger: Logger) throws {
        self.supervisor = supervisor
        self.logger = logger
        let configuration = supervisor.startConfiguration
        allowedGroup = configuration.socketGroup
        path = ControlProtocol.socketPath(in: configuration.runDirectory)
        // The backlog is what lets a burst of hooks (pluto runs them concurrently) wait for their turn.
        let socket = try LocalSocket.listen(path: path, mode: allowedGroup == nil ? 0o600 : 0o660, backlog: 4096)
        if let allowedGroup { chown(path, geteuid(), allowedGroup) }
        socket.setBlocking(false)
        listener = ClientConnection(socket)  // handed to the control thread at `start`
        wake = try WakePipe()
    }

    public func start() {
        let thread = Thread { [self] in
            serve()
            stopped.signal()
        }
        thread.name = "vtid-control"
        thread.start()
    }

    /// Stops accepting and reading; returns once the loop has ended. Requests already handed to
    /// the supervisor are finished by its queue.
    public func stop() {
        stopping.withLock { $0 = true }
        wake.wake()
        stopped.wait()
        unlink(path)
    }

    private struct Pending {
        var socket: LocalSocket
        var deadline: ContinuousClock.Instant
        var access: Access
        var peer: PeerCredentials?
    }

    /// The poll loop; all its state is local to this thread.
    private func serve() {
        var pending: [Int32: Pending] = [:]
        while !stopping.withLock({ $0 }) {
            let now = ContinuousClock.now
            let nearest = pending.values.map(\.deadline).min()
            let timeout: Int32 = nearest.map { deadline in
                let left = deadline - now
                return Int32(max(0, left.components.seconds * 1000 + left.components.attoseconds / 1_000_000_000_000_000) + 1)
            } ?? -1
            let ready = waitForReadable([listener.socket.descriptor, wake.readDescriptor] + Array(pending.keys), timeoutMilliseconds: timeout)
            if ready.contains(listener.socket.descriptor) {
                acceptAll(into: &pending)
            }
            for descriptor in ready where pending[descriptor] != nil {
                read(descriptor, in: &pending)
            }
            let late = ContinuousClock.now
            for (descriptor, item) in pending where item.deadline <= late {
                pending[descriptor] = nil
                send(errorReply("no complete request within \(Self.requestDeadline); closing"), to: item.socket)
            }
        }
    }

    private func acceptAll(into pending: inout [Int32: Pending]) {
        while true {
            let connection: LocalSocket?
            do {
                connection = try listener.socket.accept()
            } catch {
                supervisor.reportProblem("control-accept", "the control socket cannot accept connections: \(error)")
                return
            }
            guard let connection else { return }
            connection.setBlocking(false)
            connection.setSendTimeout(milliseconds: Self.sendTimeoutMilliseconds)
            let peer = connection.peerCredentials()
            if pending.count >= Self.maximumPending, let oldest = pending.min(by: { $0.value.deadline < $1.value.deadline }) {
                pending[oldest.key] = nil
                send(errorReply("too many connections waiting to send their request; closing the oldest"), to: oldest.value.socket)
            }
            pending[connection.descriptor] = Pending(socket: connection, deadline: ContinuousClock.now + Self.requestDeadline,
                                                     access: access(of: connection, peer), peer: peer)
        }
    }

    private func read(_ descriptor: Int32, in pending: inout [Int32: Pending]) {
        guard let item = pending[descriptor] else { return }
        let open: Bool
        do {
            open = try item.socket.receiveAvailable(limit: ControlProtocol.maximumRequestBytes)
        } catch {
            pending[descriptor] = nil
            send(errorReply("bad request: \(error)"), to: item.socket)
            return
        }
        if let line = item.socket.takeLine() {
            pending[descriptor] = nil
            item.socket.setBlocking(true)
            handle(line, from: item)
        } else if !open {
            pending[descriptor] = nil
        }
    }

    private enum Access {
        /// Root or vtid's own user.
        case full
        /// A member of socket_group.
        case read
        case none(String)
    }

    private func access(of connection: LocalSocket, _ peer: PeerCredentials?) -> Access {
        guard let peer else { return .none("vtid cannot tell who is asking (no peer credentials)") }
        if peer.uid == 0 || peer.uid == geteuid() { return .full }
        if let allowedGroup, peer.gid == allowedGroup || (connection.peerGroups() ?? []).contains(allowedGroup) { return .read }
        return .none(allowedGroup == nil
            ? "uid \(peer.uid) is not root; vtid has no socket_group"
            : "uid \(peer.uid) is neither root nor a member of socket_group \(allowedGroup!)")
    }

    private func handle(_ line: [UInt8], from item: Pending) {
        let request: JSONValue
        do {
            request = try JSONValue(parsing: line)
        } catch {
            send(errorReply("bad request: \(error)"), to: item.socket)
            return
        }
        guard request["version"]?.numberValue == Double(ControlProtocol.version) else {
            send(errorReply("unsupported protocol version; this vtid speaks \(ControlProtocol.version)"), to: item.socket)
            return
        }
        let kind = request["request"]?.stringValue
        let dryRun = request["dry_run"]?.boolValue ?? false
        let reads = ["status", "leases", "routes", "events", "metrics"].contains(kind) || (kind == "reconcile" && dryRun)
        switch item.access {
        case .full: break
        case .read where reads: break
        case .read:
            send(errorReply("vtid refused \(kind.map { UntrustedQuote($0) } ?? "the request"): socket_group members may only read (status, leases, routes, events, metrics, reconcile --dry-run); this needs root"), to: item.socket)
            return
        case .none(let why):
            send(errorReply("vtid refused the request: \(why)"), to: item.socket)
            return
        }
        let supervisor = supervisor
        let client = ClientConnection(item.socket)
        switch kind {
        case "hook-event":
            do {
                let event = try HookEventRequest(json: request)
                supervisor.submit(Supervisor.Submission(request: event, connection: client))
            } catch {
                send(errorReply("bad hook-event: \(error)"), to: item.socket)
            }
        case "status":
            supervisor.onQueueAsync { supervisor in client.reply(encoding: { try supervisor.status() }) }
        case "leases":
            supervisor.onQueueAsync { supervisor in client.reply(encoding: { LeasesReply(leases: try supervisor.leaseRecords(), l2tpClients: supervisor.l2tpClientRecords()) }) }
        case "routes":
            supervisor.onQueueAsync { supervisor in client.reply(encoding: { try supervisor.routeRecords() }) }
        case "events":
            supervisor.onQueueAsync { supervisor in client.reply(encoding: { EventsReply(events: supervisor.events()) }) }
        case "metrics":
            supervisor.onQueueAsync { supervisor in
                let text = supervisor.metricsText()
                client.reply(JSONValue.object(["version": .number(1), "ok": .bool(true), "metrics": .string(text)]))
            }
        case "reconcile":
            DispatchQueue.global().async {
                let lines = supervisor.reconcile(reason: "vtictl reconcile", dryRun: dryRun)
                client.reply(JSONValue.object([
                    "version": .number(1), "ok": .bool(true), "dry_run": .bool(dryRun), "lines": .array(lines.map { .string($0) }),
                ]))
            }
        case "reload":
            let allowRemove = request["allow_remove"]?.boolValue ?? false
            DispatchQueue.global().async {
                let failure = supervisor.reload(allowRemove: allowRemove)
                if failure == nil { supervisor.reconcile(reason: "reload") }
                client.reply(failure.map { errorReply("reload failed, the running configuration stays: \($0)") }
                    ?? .object(["version": .number(1), "ok": .bool(true)]))
            }
        case let other:
            send(errorReply("unknown request \(other.map { UntrustedQuote($0) } ?? "(none)")"), to: item.socket)
        }
    }

    private func send(_ reply: JSONValue, to socket: LocalSocket) {
        socket.setBlocking(true)
        try? socket.send(line: reply.serialized)
    }
}

/// Text from a client, quoted and cut short for an error message.
private func UntrustedQuote(_ text: String) -> String {
    "\"" + String(text.unicodeScalars.prefix(40).map { $0.isASCII && $0.value >= 0x20 ? Character($0) : "?" }) + "\""
}
