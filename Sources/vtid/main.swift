// vtid, the supervisor: the single writer of VTI devices, routes, sysctls and leases. It takes
// vti-updown's events on its control socket, applies them one at a time, remembers leases in
// SQLite and answers vtictl. SIGHUP reloads (a broken file keeps the running configuration);
// SIGTERM stops serving and leaves every tunnel, device and route in place.
import Foundation
import Logging
import ServiceLifecycle
import UnixSignals
import VTIDaemon

let usage = """
    usage: vtid [--config FILE] [--check] [--version]
      --config FILE  vtid's YAML settings (default /etc/vtictl/vtid.yaml; absent means defaults)
      --check        load the configuration (vtid.yaml and ipsec.conf), report, and exit
    """

var configurationFile = "/etc/vtictl/vtid.yaml"
var requireFile = false
var checkOnly = false
var arguments = CommandLine.arguments.dropFirst()
while let argument = arguments.popFirst() {
    switch argument {
    case "--version": print("vtid \(vtidVersion)"); exit(0)
    case "--help", "-h": print(usage); exit(0)
    case "--check": checkOnly = true
    case "--config":
        guard let path = arguments.popFirst() else { FileHandle.standardError.write(Data("vtid: --config needs a file\n".utf8)); exit(2) }
        configurationFile = path
        requireFile = true
    default:
        FileHandle.standardError.write(Data("vtid: unknown argument \(argument)\n\(usage)\n".utf8))
        exit(2)
    }
}

LoggingSystem.bootstrap { _ in JournalLogHandler() }
let logger = Logger(label: "vtid")

let supervisor: Supervisor
do {
    supervisor = try Supervisor(configurationFile: configurationFile, requireFile: requireFile, logger: logger)
} catch {
    FileHandle.standardError.write(Data("vtid: \(error); not starting\n".utf8))
    exit(1)
}
if checkOnly {
    print("vtid: \(configurationFile) and \(supervisor.configuration.ipsecConf) are valid")
    exit(0)
}

/// Serves the control socket until SIGTERM; SIGHUP reloads; the spool is read every 2 s.
struct VTIDService: Service {
    let supervisor: Supervisor
    let server: ControlServer
    let logger: Logger

    func run() async throws {
        await withTaskGroup(of: Void.self) { group in
            group.addTask {
                for await _ in await UnixSignalsSequence(trapping: .sighup).cancelOnGracefulShutdown() {
                    if supervisor.reload() == nil { supervisor.reconcile(reason: "reload") }
                }
            }
            group.addTask {
                var seconds = 0
                while !Task.isCancelled && !Task.isShuttingDownGracefully {
                    try? await Task.sleep(for: .seconds(1))
                    seconds += 1
                    if seconds % 2 == 0 { supervisor.ingestSpool() }
                    supervisor.tick()
                }
            }
            try? await gracefulShutdown()
            group.cancelAll()
        }
        server.stop()
        logger.info("stopped; tunnels, devices and routes stay as they are")
    }
}

// Nothing is pruned before the desired state is loaded: configuration, records, and the events
// the hook applied while vtid was away.
supervisor.ingestSpool()
supervisor.reconcile(reason: "start")
let server: ControlServer
do {
    server = try ControlServer(supervisor: supervisor, logger: logger)
} catch {
    FileHandle.standardError.write(Data("vtid: \(error); not starting\n".utf8))
    exit(1)
}
server.start()
do {
    try KernelWatcher(supervisor: supervisor, logger: logger).start()
} catch {
    FileHandle.standardError.write(Data("vtid: cannot watch the kernel: \(error); not starting\n".utf8))
    exit(1)
}
logger.info("vtid \(vtidVersion) serving on \(server.path)")
let group = ServiceGroup(configuration: .init(
    services: [VTIDService(supervisor: supervisor, server: server, logger: logger)],
    gracefulShutdownSignals: [.sigterm, .sigint], logger: logger))
try await group.run()
