import Foundation
import Logging
import ServiceLifecycle
import UnixSignals

// vtid's long-running parts as services of one ServiceGroup (swift-service-lifecycle): each runs
// until graceful shutdown (SIGTERM, SIGINT) and then stops its own threads, so vtid exits promptly
// however many clients are connected.

/// The control socket: serves until shutdown, then stops accepting and reading.
public struct ControlService: Service {
    let server: ControlServer
    public init(server: ControlServer) { self.server = server }

    public func run() async throws {
        try? await gracefulShutdown()
        server.stop()
    }
}

/// The kernel watcher: asks for reconciles on changes until shutdown.
public struct KernelWatchService: Service {
    let watcher: KernelWatcher
    public init(watcher: KernelWatcher) { self.watcher = watcher }

    public func run() async throws {
        try? await gracefulShutdown()
        watcher.stop()
    }
}

/// The periodic part: a tick a second (reconcile when due, the hook's spool every other second).
public struct ReconcileService: Service {
    let supervisor: Supervisor
    public init(supervisor: Supervisor) { self.supervisor = supervisor }

    public func run() async throws {
        var second = 0
        while !Task.isShuttingDownGracefully && !Task.isCancelled {
            try? await Task.sleep(for: .seconds(1))
            second += 1
            supervisor.tick(second: second)
        }
    }
}

/// SIGHUP: reload both files (a broken one keeps the running configuration), then reconcile.
public struct ReloadService: Service {
    let supervisor: Supervisor
    let hangups: UnixSignalsSequence
    public init(supervisor: Supervisor, hangups: UnixSignalsSequence) {
        self.supervisor = supervisor
        self.hangups = hangups
    }

    public func run() async throws {
        for await _ in hangups.cancelOnGracefulShutdown() {
            let supervisor = supervisor
            await withCheckedContinuation { (done: CheckedContinuation<Void, Never>) in
                // reload and reconcile wait for the supervisor's queue: not on the async executor.
                Thread.detachNewThread {
                    if supervisor.reload() == nil { supervisor.reconcile(reason: "reload") }
                    done.resume()
                }
            }
        }
    }
}

/// SIGTERM or SIGINT: returns, which shuts the group down gracefully (configured with
/// `.gracefullyShutdownGroup`). The sequence is made at the start of main, before anything is
/// served, so a stop during start-up is a stop, never a kill by the default action.
public struct StopSignalService: Service {
    let signals: UnixSignalsSequence
    public init(signals: UnixSignalsSequence) { self.signals = signals }

    public func run() async throws {
        for await _ in signals.cancelOnGracefulShutdown() { return }
    }
}
