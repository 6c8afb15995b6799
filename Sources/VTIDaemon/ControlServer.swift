import ControlProtocol
import Foundation
import Logging
import Netlink

/// The control socket: accepts connections on its own thread, reads one request line each (with a
/// deadline, so a silent client cannot hold anything), and hands the work to the supervisor's
/// queue. Only root, vtid's own user and `socket_group` may connect (SO_PEERCRED).
public final class ControlServer: @unchecked Sendable {
    private let listener: LocalSocket
    private let supervisor: Supervisor
    private let logger: Logger
    private let allowedGroup: UInt32?
    public let path: String

    public init(supervisor: Supervisor, logger: Logger) throws {
        self.supervisor = supervisor
        self.logger = logger
        let configuration = supervisor.configuration
        allowedGroup = configuration.socketGroup
        path = ControlProtocol.socketPath(in: configuration.runDirectory)
        // The backlog is what lets a burst of hooks (pluto runs them concurrently) wait for their turn.
        listener = try LocalSocket.listen(path: path, mode: allowedGroup == nil ? 0o600 : 0o660, backlog: 4096)
        if let allowedGroup { chown(path, geteuid(), allowedGroup) }
    }

    public func start() {
        let thread = Thread { [self] in
            while true {
                do {
                    guard let connection = try listener.accept() else { return }
                    let client = SendableSocket(connection)
                    DispatchQueue.global().async { self.serve(client) }
                } catch {
                    logger.error("control socket: \(error)")
                    Thread.sleep(forTimeInterval: 0.1)
                }
            }
        }
        thread.name = "vtid-accept"
        thread.start()
    }

    /// Stops accepting; requests already taken are finished by the supervisor's queue.
    public func stop() {
        listener.shutdown()
        unlink(path)
    }

    private func serve(_ client: SendableSocket) {
        let connection = client.socket
        guard let peer = connection.peerCredentials(), peer.uid == 0 || peer.uid == geteuid() || (allowedGroup != nil && peer.gid == allowedGroup) else {
            try? connection.send(line: errorReply("permission denied: the control socket is for root and the socket_group").serialized)
            return
        }
        let request: JSONValue
        do {
            guard let line = try connection.readLine(limit: ControlProtocol.maximumRequestBytes, timeoutMilliseconds: 2000) else { return }
            request = try JSONValue(parsing: line)
        } catch {
            try? connection.send(line: errorReply("bad request: \(error)").serialized)
            return
        }
        guard request["version"]?.numberValue == Double(ControlProtocol.version) else {
            try? connection.send(line: errorReply("unsupported protocol version; this vtid speaks \(ControlProtocol.version)").serialized)
            return
        }
        let supervisor = supervisor
        switch request["request"]?.stringValue {
        case "hook-event":
            let event: HookEventRequest
            do {
                event = try HookEventRequest(json: request)
            } catch {
                try? connection.send(line: errorReply("bad hook-event: \(error)").serialized)
                return
            }
            supervisor.submit(Supervisor.Submission(request: event) { line in (try? client.socket.send(line: line)) != nil })
        case "status":
            supervisor.queue.async { client.reply { try supervisor.status() } }
        case "leases":
            supervisor.queue.async { client.reply { LeasesReply(leases: try supervisor.leaseRecords()) } }
        case "routes":
            supervisor.queue.async { client.reply { try supervisor.routeRecords() } }
        case "events":
            supervisor.queue.async { client.reply { EventsReply(events: supervisor.events()) } }
        case "metrics":
            let text = supervisor.metrics.exposition()
            try? connection.send(line: JSONValue.object(["version": .number(1), "ok": .bool(true), "metrics": .string(text)]).serialized)
        case "reconcile":
            let dryRun = request["dry_run"]?.boolValue ?? false
            let lines = supervisor.reconcile(reason: "vtictl reconcile", dryRun: dryRun)
            try? connection.send(line: JSONValue.object([
                "version": .number(1), "ok": .bool(true), "dry_run": .bool(dryRun), "lines": .array(lines.map { .string($0) }),
            ]).serialized)
        case "reload":
            let failure = supervisor.reload()
            if failure == nil {
                supervisor.reconcile(reason: "reload")
                supervisor.ingestSpool()
            }
            let reply = failure.map { errorReply("reload failed, the running configuration stays: \($0)") }
                ?? .object(["version": .number(1), "ok": .bool(true)])
            try? connection.send(line: reply.serialized)
        case let other:
            try? connection.send(line: errorReply("unknown request \(other.map { UntrustedQuote($0) } ?? "(none)")").serialized)
        }
    }
}

/// A connection handed from the accept thread to a worker and then to the supervisor's queue:
/// one user at a time.
struct SendableSocket: @unchecked Sendable {
    let socket: LocalSocket
    init(_ socket: LocalSocket) { self.socket = socket }

    func reply(_ make: () throws -> some Encodable) {
        do {
            try socket.send(try JSONLineEncoder().encodeLine(try make()))
        } catch {
            try? socket.send(line: errorReply("\(error)").serialized)
        }
    }
}

/// Text from a client, quoted and cut short for an error message.
private func UntrustedQuote(_ text: String) -> String {
    "\"" + String(text.unicodeScalars.prefix(40).map { $0.isASCII && $0.value >= 0x20 ? Character($0) : "?" }) + "\""
}
