/// vtid's control socket protocol, version 1.
///
/// One request per connection: the client writes one line of JSON, an object with `"version": 1`
/// and `"request"` naming what it wants; vtid answers with lines of JSON. Every answer carries
/// `"version"` and `"ok"`; `"ok": false` comes with `"error"`, one sentence.
///
/// A `hook-event` is handed over in three steps, so that exactly one of vtid and the hook applies
/// it, and the hook alone decides which: when the event's turn comes, vtid offers to apply it
/// (`{"ready": true}`); the hook, if it is still waiting, answers `{"go": true}` and from then on
/// waits for vtid's result; vtid applies only an event whose `go` it has read. A hook that gave up
/// waiting closes the connection instead and applies the event itself; a hook that sees the
/// connection end after its `go` (vtid declined a late `go`, or died) applies it itself too.
///
/// Requests: `hook-event`, `reconcile`, `reload` (root only); `status`, `leases`, `routes`,
/// `events`, `metrics`, `reconcile` with `"dry_run": true` (root and `socket_group`).
public enum ControlProtocol {
    public static let version = 1
    /// Holds the socket, the apply lock and the spool of events the hook applied itself.
    public static let defaultRunDirectory = "/run/vtid"
    public static let socketName = "control.sock"
    public static let lockName = "apply.lock"
    public static let spoolName = "spool"
    /// A request is small (a hook's environment is a few KiB); a longer line is refused.
    public static let maximumRequestBytes = 256 * 1024
    /// An answer may list thousands of clients.
    public static let maximumReplyBytes = 256 * 1024 * 1024

    public static func socketPath(in runDirectory: String) -> String { runDirectory + "/" + socketName }
    public static func lockPath(in runDirectory: String) -> String { runDirectory + "/" + lockName }
    public static func spoolPath(in runDirectory: String) -> String { runDirectory + "/" + spoolName }
}

/// What the hook sends: pluto's variables as they came, and argv's verb if any. vtid parses them
/// itself, with the same parser as the hook, so nothing is lost or reinterpreted on the way.
public struct HookEventRequest: Sendable, Hashable {
    /// Only the variables pluto's hook contract uses (PLUTO_*, VTI_*, CONNMARK_*, SPI_*).
    public var environment: [String: String]
    public var verbArgument: String?

    public init(environment: [String: String], verbArgument: String?) {
        self.environment = environment.filter { Self.isPlutoVariable($0.key) }
        self.verbArgument = verbArgument
    }

    public static func isPlutoVariable(_ name: String) -> Bool {
        name.hasPrefix("PLUTO_") || name.hasPrefix("VTI_") || name.hasPrefix("CONNMARK_") || name.hasPrefix("SPI_")
    }

    public var json: JSONValue {
        var members: [String: JSONValue] = [
            "version": .number(Double(ControlProtocol.version)),
            "request": .string("hook-event"),
            "environment": .object(environment.mapValues { .string($0) }),
        ]
        if let verbArgument { members["verb"] = .string(verbArgument) }
        return .object(members)
    }

    public init(json: JSONValue) throws(ControlProtocolError) {
        guard case .object(let variables)? = json["environment"] else { throw ControlProtocolError("hook-event without an environment object") }
        var environment: [String: String] = [:]
        for (name, value) in variables {
            guard let text = value.stringValue else { throw ControlProtocolError("hook-event: \(name) is not a string") }
            environment[name] = text
        }
        self.init(environment: environment, verbArgument: json["verb"]?.stringValue)
    }
}

/// vtid's result for one hook event.
public struct HookEventReply: Sendable, Hashable {
    public var ok: Bool
    /// What changed, one line each, for pluto's log.
    public var lines: [String]
    public var error: String?

    public init(ok: Bool, lines: [String], error: String?) {
        self.ok = ok
        self.lines = lines
        self.error = error
    }

    public var json: JSONValue {
        var members: [String: JSONValue] = [
            "version": .number(Double(ControlProtocol.version)), "ok": .bool(ok), "lines": .array(lines.map { .string($0) }),
        ]
        if let error { members["error"] = .string(error) }
        return .object(members)
    }

    public init(json: JSONValue) throws(ControlProtocolError) {
        guard let ok = json["ok"]?.boolValue else { throw ControlProtocolError("reply without \"ok\"") }
        self.init(ok: ok, lines: json["lines"]?.arrayValue?.compactMap(\.stringValue) ?? [], error: json["error"]?.stringValue)
    }
}

/// A request or reply that does not follow the protocol.
public struct ControlProtocolError: Error, Sendable, Hashable, CustomStringConvertible {
    public var problem: String
    public init(_ problem: String) { self.problem = problem }
    public var description: String { problem }
}

/// A reply line everybody understands: `{"version":1,"ok":false,"error":...}`.
public func errorReply(_ message: String) -> JSONValue {
    .object(["version": .number(Double(ControlProtocol.version)), "ok": .bool(false), "error": .string(message)])
}

/// vtid's offer to apply a hook's event now.
public let readyLine: JSONValue = .object(["version": .number(Double(ControlProtocol.version)), "ready": .bool(true)])
/// The hook's answer to the offer: apply it; the hook now waits for the result.
public let goLine: JSONValue = .object(["version": .number(Double(ControlProtocol.version)), "go": .bool(true)])

extension JSONValue {
    /// Whether this line is vtid's offer (`ready`) or the hook's `go`.
    public var isReady: Bool { self["ready"]?.boolValue == true }
    public var isGo: Bool { self["go"]?.boolValue == true }
}
