import ArgumentParser
import ControlProtocol
import VTIClient

/// The operator's view of route-based IPsec on this host.
@main
struct VTICtl: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "vtictl",
        abstract: "Show and check route-based IPsec (VTI and XFRM interfaces) on this host; plan the move from VTI to XFRM interfaces.",
        version: VTICtlVersion.current,
        subcommands: [Status.self, Leases.self, Routes.self, Events.self, Reconcile.self, Check.self, Migrate.self, Reload.self, Metrics.self, Version.self],
        defaultSubcommand: Status.self)
}

enum VTICtlVersion {
    static let current = vtictlRelease
}

/// Where vtid listens.
struct DaemonOptions: ParsableArguments {
    @Option(help: "vtid's run directory (its control socket is there).")
    var runDirectory = ControlProtocol.defaultRunDirectory

    var client: ControlClient { ControlClient(runDirectory: runDirectory) }
}

/// Flags every subcommand shares.
struct OutputOptions: ParsableArguments {
    @Flag(help: "Print JSON for scripts instead of a table.")
    var json = false
}

extension VTICtl {
    struct Version: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Print the version.")
        func run() {
            print("vtictl \(VTICtlVersion.current)")
        }
    }
}
