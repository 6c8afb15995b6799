import ArgumentParser
import ControlProtocol
import Netlink
import VTIConfiguration
import VTIModel

extension VTICtl {
    /// `vtictl routes`: the routes vtid keeps for up tunnels, each checked against the kernel, and
    /// the kernel's routes with vtid's protocol that vtid has no record of.
    struct Routes: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Show the routes vtid keeps for up tunnels and whether the kernel has each one.",
            discussion: "With vtid down, shows the kernel's routes with the protocol vtid.yaml names (routes.protocol, default 157) and says so.")

        @Argument(help: "Show only this conn's routes.")
        var connection: String?

        @Option(help: "vtid's configuration, for its route protocol when vtid does not answer.")
        var config = "/etc/vtictl/vtid.yaml"

        @OptionGroup var daemon: DaemonOptions
        @OptionGroup var output: OutputOptions

        func run() throws {
            var report = RoutesReport(vtidRunning: false, vtidError: nil, routeProtocol: HookSettings.defaultRouteProtocol.rawValue, routes: [], unrecorded: [])
            var recorded: [RouteRecord] = []
            do {
                let reply = try daemon.client.fetch("routes", as: RoutesReply.self)
                report.vtidRunning = true
                report.routeProtocol = reply.routeProtocol
                recorded = reply.routes
            } catch {
                report.vtidError = "\(error)"
                if let configuration = try? loadDaemonConfiguration(config, requireFile: false) {
                    report.routeProtocol = configuration.hook.routeProtocol.rawValue
                }
            }
            let kernel: [KernelRoute]
            do {
                kernel = try KernelRoute.read(protocol: report.routeProtocol)
            } catch {
                throw failure("cannot read the kernel's routes: \(error)")
            }
            let installed = Set(kernel)
            report.routes = recorded.filter { connection == nil || $0.connection == connection }.map {
                .init(route: $0, inKernel: installed.contains(KernelRoute(destination: $0.destination, device: $0.device, table: $0.table)))
            }
            if connection == nil {
                let known = Set(recorded.map { KernelRoute(destination: $0.destination, device: $0.device, table: $0.table) })
                report.unrecorded = kernel.filter { !known.contains($0) }
            }
            if output.json {
                print(try encodeJSON(report))
            } else {
                print(report.table())
            }
        }
    }
}

/// A route as the kernel holds it, by what identifies it.
struct KernelRoute: Codable, Hashable {
    var destination: String
    var device: String
    var table: UInt32

    static func read(protocol number: UInt8) throws -> [KernelRoute] {
        let socket = try NetlinkSocket(.route)
        let names = Dictionary(try socket.links().map { ($0.index, $0.name) }, uniquingKeysWith: { first, _ in first })
        return try [AddressFamily.ipv4, AddressFamily.ipv6].flatMap { family in
            try socket.routes(RouteFilter(family: family, protocol: RouteProtocol(rawValue: number))).map { route in
                KernelRoute(destination: "\(route.destination)", device: route.outputInterface.flatMap { names[$0] } ?? "-", table: route.table.rawValue)
            }
        }
    }
}

/// `vtictl routes --json`: the documented schema (README, "vtictl").
struct RoutesReport: Codable {
    struct Entry: Codable {
        var route: RouteRecord
        /// Whether the kernel has a route to this destination on this device in this table now.
        var inKernel: Bool
    }
    var vtidRunning: Bool
    var vtidError: String?
    var routeProtocol: UInt8
    var routes: [Entry]
    /// Kernel routes with vtid's protocol that vtid keeps no record of (its reconcile prunes
    /// those on the devices it manages).
    var unrecorded: [KernelRoute]

    func table() -> String {
        var lines: [String] = []
        if !vtidRunning {
            lines.append(colour("vtid: NOT RUNNING", .red) + " (\(vtidError ?? "no answer")); showing the kernel's routes with protocol \(routeProtocol)")
            lines.append("")
        }
        if vtidRunning {
            lines += Table(
                header: ["DESTINATION", "DEVICE", "TABLE", "VIA", "SOURCE", "CONN", "CLIENT", "REQID", "KERNEL"],
                rows: routes.map { entry in
                    let route = entry.route
                    return [route.destination, route.device, tableName(route.table), route.gateway ?? "-", route.source ?? "-", route.connection,
                            route.peerClient, route.reqid.map { "\($0)" } ?? "-", entry.inKernel ? "installed" : colour("MISSING", .red)]
                },
                empty: "no routes: no tunnel with vti-routing is up").lines
        }
        if !unrecorded.isEmpty || !vtidRunning {
            if vtidRunning { lines.append("") }
            lines += Table(
                header: [vtidRunning ? "NOT RECORDED BY VTID" : "DESTINATION", "DEVICE", "TABLE"],
                rows: unrecorded.map { [$0.destination, $0.device, tableName($0.table)] },
                empty: "no routes with protocol \(routeProtocol) in the kernel").lines
        }
        return lines.joined(separator: "\n")
    }
}

/// A routing table as `ip` names it.
func tableName(_ table: UInt32) -> String { [253: "default", 254: "main", 255: "local"][table] ?? "\(table)" }
