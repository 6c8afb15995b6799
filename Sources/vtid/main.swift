// vtid, the supervisor: the single writer of VTI devices, routes, sysctls and leases. It takes
// vti-updown's events on its control socket, applies them one at a time, remembers leases in
// SQLite and answers vtictl. SIGHUP reloads (a broken file keeps the running configuration);
// SIGTERM stops serving and leaves every tunnel, device and route in place.
import Foundation
import LocalIPC
import Logging
import ServiceLifecycle
import UnixSignals
import VTIConfiguration
import VTIDaemon

// Before anything else: a SIGHUP (systemctl reload) during start-up must not kill vtid (its
// default action), and the reload service must receive those that come later; a SIGTERM or SIGINT
// during start-up stops vtid gracefully once it is up, rather than killing it half-way.
signal(SIGHUP, SIG_IGN)
let hangups = await UnixSignalsSequence(trapping: .sighup)
let stops = await UnixSignalsSequence(trapping: .sigterm, .sigint)

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

func fail(_ text: String) -> Never {
    FileHandle.standardError.write(Data("vtid: \(text); not starting\n".utf8))
    exit(1)
}

if checkOnly {
    do {
        let configuration = try Supervisor.check(configurationFile: configurationFile, requireFile: requireFile)
        print("vtid: \(configurationFile) and \(configuration.ipsecConf) are valid")
        exit(0)
    } catch {
        FileHandle.standardError.write(Data("vtid: \(error)\n".utf8))
        exit(1)
    }
}

LoggingSystem.bootstrap { _ in JournalLogHandler() }
let logger = Logger(label: "vtid")

let supervisor: Supervisor
do {
    supervisor = try Supervisor(configurationFile: configurationFile, requireFile: requireFile, logger: logger)
} catch {
    fail("\(error)")
}

// Nothing is pruned before the desired state is loaded: configuration, records, and the events
// the hook applied while vtid was away (the first pass reads the spool before it judges).
supervisor.reconcile(reason: "start")
let server: ControlServer
let watcher: KernelWatcher
let dhcp: DHCPResponder
do {
    server = try ControlServer(supervisor: supervisor, logger: logger)
    watcher = KernelWatcher(supervisor: supervisor, logger: logger)
    try watcher.start()
    // DHCPINFORM answers on the devices of conns with dhcp_inform (none: an idle thread).
    dhcp = try DHCPResponder(supervisor: supervisor, logger: logger)
    dhcp.start()
} catch {
    fail("\(error)")
}
server.start()
logger.info("vtid \(vtidVersion) serving on \(server.path)")
// Type=notify: systemd starts ipsec.service (After=vtid.service) only once vtid answers.
notifySystemd("READY=1")
var services: [ServiceGroupConfiguration.ServiceConfiguration] = [
    .init(service: ControlService(server: server)), .init(service: KernelWatchService(watcher: watcher)),
    .init(service: ReconcileService(supervisor: supervisor)), .init(service: ReloadService(supervisor: supervisor, hangups: hangups)),
    .init(service: DHCPResponderService(responder: dhcp)),
    .init(service: StopSignalService(signals: stops), successTerminationBehavior: .gracefullyShutdownGroup),
]
// GET /metrics over HTTP only with metrics_listen: without it vtid opens no IP socket for it.
if let address = supervisor.startConfiguration.metricsListen {
    services.append(.init(service: MetricsHTTPService(supervisor: supervisor, address: address, logger: logger)))
}
let group = ServiceGroup(configuration: .init(services: services, logger: logger))
do {
    try await group.run()
} catch {
    logger.error("stopping after an error: \(error)")
}
notifySystemd("STOPPING=1")
logger.info("stopped; tunnels, devices and routes stay as they are")
exit(0)
