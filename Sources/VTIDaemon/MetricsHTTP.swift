import Logging
import NIOCore
import NIOHTTP1
import NIOPosix
import ServiceLifecycle
import Synchronization
import VTIConfiguration

/// `metrics_listen`: `GET /metrics` over HTTP, the text `vtictl metrics` prints, for a Prometheus
/// server to scrape. swift-nio's HTTP/1.1 server (NIOHTTP1: parsing, keep-alive, pipelining, 400
/// on malformed requests) on one event-loop thread of its own. A scrape reaches the supervisor
/// only to compute the text, one computation at a time; sending it to a slow or stalled scraper
/// happens after that, off the supervisor's queue. So no scraper can hold up hook events or
/// reconciles for longer than one computation.
/// (Hummingbird 2 was tried first: it cost a clean debug build 2.5 times the CPU time of bare
/// swift-nio, for one route; README "Logs and metrics".)
public struct MetricsHTTPService: Service {
    let supervisor: Supervisor
    let address: ListenAddress
    let logger: Logger
    /// Connections served at once; more are closed when they arrive.
    static let connectionLimit = 32
    /// A connection that sends nothing for this long is closed.
    static let idleTimeout = TimeAmount.seconds(60)

    public init(supervisor: Supervisor, address: ListenAddress, logger: Logger) {
        self.supervisor = supervisor
        self.address = address
        self.logger = logger
    }

    public func run() async throws {
        // One thread: a handful of scrapers a minute need no more, and vtid's own threads keep the CPU.
        let loops = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        do {
            try await cancelWhenGracefulShutdown { try await serve(on: loops) }
        } catch is CancellationError {
            // vtid is stopping.
        } catch {
            // Metrics are not worth stopping the supervisor for: say so in status and keep going.
            // EAFNOSUPPORT (97) here is a sandbox without IP sockets (an older vtid.service).
            let hint = "\(error)".contains("errno: 97") ? "; vtid.service's RestrictAddressFamilies= must allow AF_INET and AF_INET6" : ""
            supervisor.reportProblem("metrics-listen", "cannot serve metrics on \(address) (metrics_listen): \(error)\(hint)")
            try? await gracefulShutdown()
        }
        try? await loops.shutdownGracefully()
    }

    private func serve(on loops: MultiThreadedEventLoopGroup) async throws {
        let server = try await ServerBootstrap(group: loops)
            .serverChannelOption(.backlog, value: 64)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .bind(host: "\(address.address)", port: Int(address.port)) { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(IdleStateHandler(readTimeout: Self.idleTimeout))
                    try channel.pipeline.syncOperations.addHandler(CloseWhenIdle())
                    try channel.pipeline.syncOperations.configureHTTPServerPipeline()
                    return try NIOAsyncChannel<HTTPServerRequestPart, HTTPServerResponsePart>(wrappingChannelSynchronously: channel)
                }
            }
        logger.info("serving metrics on http://\(address)/metrics")
        let texts = MetricsTexts(supervisor: supervisor)
        let open = OpenConnections()
        try await withThrowingDiscardingTaskGroup { group in
            try await server.executeThenClose { connections in
                for try await connection in connections {
                    let admitted = open.count.withLock { count in
                        guard count < Self.connectionLimit else { return false }
                        count += 1
                        return true
                    }
                    group.addTask {
                        if admitted {
                            await Self.answer(connection, texts: texts)
                            open.count.withLock { $0 -= 1 }
                        } else {
                            try? await connection.executeThenClose { _, _ in }
                        }
                    }
                }
            }
        }
    }

    /// Answers the requests of one connection until the client closes it or asks to.
    private static func answer(_ connection: NIOAsyncChannel<HTTPServerRequestPart, HTTPServerResponsePart>, texts: MetricsTexts) async {
        try? await connection.executeThenClose { requests, responses in
            var head: HTTPRequestHead?
            for try await part in requests {
                switch part {
                case .head(let request): head = request
                case .body: continue
                case .end:
                    guard let request = head else { return }
                    head = nil
                    let path = request.uri.split(separator: "?", maxSplits: 1, omittingEmptySubsequences: false).first ?? ""
                    let status: HTTPResponseStatus
                    let text: String
                    if path != "/metrics" {
                        (status, text) = (.notFound, "not found: vtid serves GET /metrics only\n")
                    } else if request.method != .GET && request.method != .HEAD {
                        (status, text) = (.methodNotAllowed, "vtid serves GET /metrics only\n")
                    } else {
                        (status, text) = (.ok, await texts.current())
                    }
                    var headers = HTTPHeaders()
                    headers.add(name: "Content-Type", value: status == .ok ? "text/plain; version=0.0.4; charset=utf-8" : "text/plain; charset=utf-8")
                    headers.add(name: "Content-Length", value: "\(text.utf8.count)")
                    if !request.isKeepAlive { headers.add(name: "Connection", value: "close") }
                    try await responses.write(.head(HTTPResponseHead(version: request.version, status: status, headers: headers)))
                    if request.method != .HEAD { try await responses.write(.body(.byteBuffer(ByteBuffer(string: text)))) }
                    try await responses.write(.end(nil))
                    if !request.isKeepAlive { return }
                }
            }
        }
    }
}

/// How many connections are being answered, for the limit.
private final class OpenConnections: Sendable {
    let count = Mutex(0)
}

/// Closes a connection on IdleStateHandler's event: a scraper that stops sending holds nothing
/// for long.
private final class CloseWhenIdle: ChannelInboundHandler, Sendable {
    typealias InboundIn = NIOAny

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if event is IdleStateHandler.IdleStateEvent {
            context.close(promise: nil)
        } else {
            context.fireUserInboundEventTriggered(event)
        }
    }
}

/// The metrics text, computed by the supervisor for one scrape at a time: scrapes that arrive
/// while a computation runs share its result, so a flood of scrapes queues at most one job on the
/// supervisor's queue.
actor MetricsTexts {
    let supervisor: Supervisor
    private var running: Task<String, Never>?

    init(supervisor: Supervisor) { self.supervisor = supervisor }

    func current() async -> String {
        if let running { return await running.value }
        let task = Task { [supervisor] in await supervisor.metricsText() }
        running = task
        let text = await task.value
        running = nil
        return text
    }
}
