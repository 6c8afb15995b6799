import Hummingbird
import HummingbirdCore
import Logging
import NIOCore
import NIOPosix
import ServiceLifecycle
import VTIConfiguration

/// `metrics_listen`: `GET /metrics` over HTTP, the text `vtictl metrics` prints, for a Prometheus
/// server to scrape. Hummingbird serves it on its own event loop thread; a scrape reaches the
/// supervisor only to compute the text, one computation at a time, and the slow part (sending it
/// to a slow or stalled scraper) happens after that, off the supervisor's queue. So no scraper can
/// hold up hook events or reconciles for longer than one computation.
public struct MetricsHTTPService: Service {
    let supervisor: Supervisor
    let address: ListenAddress
    let logger: Logger

    public init(supervisor: Supervisor, address: ListenAddress, logger: Logger) {
        self.supervisor = supervisor
        self.address = address
        self.logger = logger
    }

    public func run() async throws {
        let texts = MetricsTexts(supervisor: supervisor)
        let router = Router()
        router.get("/metrics") { _, _ -> Response in
            let text = await texts.current()
            return Response(status: .ok, headers: [.contentType: "text/plain; version=0.0.4; charset=utf-8"],
                            body: .init(byteBuffer: ByteBuffer(string: text)))
        }
        // One thread: a handful of scrapers a minute need no more, and vtid's own threads keep the CPU.
        let loops = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        var quiet = logger
        quiet.logLevel = .warning
        let application = Application(
            router: router,
            // A connection idle for 60 s is closed: a scraper that stops reading holds nothing for long.
            server: .http1(configuration: .init(idleTimeout: .seconds(60))),
            // At most 32 connections at once; more wait in the backlog.
            configuration: .init(address: .hostname("\(address.address)", port: Int(address.port)), serverName: nil, reuseAddress: true,
                                 availableConnectionsDelegate: MaximumAvailableConnections(32)),
            onServerRunning: { [logger, address] _ in logger.info("serving metrics on http://\(address)/metrics") },
            eventLoopGroupProvider: .shared(loops),
            logger: quiet)
        do {
            try await application.run()
        } catch {
            // Metrics are not worth stopping the supervisor for: say so in status and keep going.
            // EAFNOSUPPORT (97) here is a sandbox without IP sockets (an older vtid.service).
            let hint = "\(error)".contains("errno: 97") ? "; vtid.service's RestrictAddressFamilies= must allow AF_INET and AF_INET6" : ""
            supervisor.reportProblem("metrics-listen", "cannot serve metrics on \(address) (metrics_listen): \(error)\(hint)")
            try? await gracefulShutdown()
        }
        try? await loops.shutdownGracefully()
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
