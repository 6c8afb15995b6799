import ControlProtocol
import Netlink
import VTIModel

/// `vtictl status`'s ROUTES: which routes a routing daemon on this gateway can announce. BIRD's
/// kernel protocol (or FRR's `redistribute kernel`) learns the kernel's routes, and a filter on
/// vtid's route protocol exports them to BGP: a route is announced when the kernel holds it with
/// that protocol, and a route vtid keeps but the kernel lacks is not, for a reason this says.
struct RouteAnnouncements: Codable {
    struct Entry: Codable, Equatable {
        var destination: String
        var device: String
        var table: UInt32
        /// The conn and client whose tunnel the route serves; nil for a kernel route with vtid's
        /// protocol that vtid keeps no record of (it is announced all the same).
        var connection: String?
        var peerClient: String?
        var recorded: Bool
        var announced: Bool
        /// Why a recorded route is not announced.
        var why: String?
    }
    var routeProtocol: UInt8
    /// Whether vtid answered with its records; if not, `routes` are the kernel's alone.
    var vtidAnswered: Bool
    var routes: [Entry]
    /// How to see what BIRD itself exports.
    var birdCheck: String

    static func birdCheck(_ routeProtocol: UInt8) -> String {
        "birdc show route export PROTOCOL (PROTOCOL: the BGP session's name in bird.conf) lists what BIRD announces; it learns the kernel's routes with protocol \(routeProtocol)"
    }

    /// `recorded`: vtid's routes (nil when vtid does not answer: then the kernel's routes alone);
    /// `connection`: only that conn's routes.
    static func read(recorded: [RouteRecord]?, routeProtocol: UInt8, connection: String?) throws -> RouteAnnouncements {
        let socket = try NetlinkSocket(.route)
        let links = try socket.links()
        let names = Dictionary(links.map { ($0.index, $0.name) }, uniquingKeysWith: { first, _ in first })
        let byName = Dictionary(links.map { ($0.name, $0) }, uniquingKeysWith: { first, _ in first })
        let kernel = try [AddressFamily.ipv4, AddressFamily.ipv6].flatMap { family in
            try socket.routes(RouteFilter(family: family, protocol: RouteProtocol(rawValue: routeProtocol)))
        }.map { KernelRoute(destination: "\($0.destination)", device: $0.outputInterface.flatMap { names[$0] } ?? "-", table: $0.table.rawValue) }
        let installed = Set(kernel)
        var entries: [Entry] = []
        for route in recorded ?? [] where connection == nil || route.connection == connection {
            let key = KernelRoute(destination: route.destination, device: route.device, table: route.table)
            var entry = Entry(destination: route.destination, device: route.device, table: route.table, connection: route.connection,
                              peerClient: route.peerClient, recorded: true, announced: installed.contains(key), why: nil)
            if !entry.announced {
                entry.why = try whyAbsent(route, link: byName[route.device], socket: socket, routeProtocol: routeProtocol)
            }
            entries.append(entry)
        }
        if connection == nil {
            let known = Set((recorded ?? []).map { KernelRoute(destination: $0.destination, device: $0.device, table: $0.table) })
            entries += kernel.filter { !known.contains($0) }.map {
                Entry(destination: $0.destination, device: $0.device, table: $0.table, connection: nil, peerClient: nil,
                      recorded: false, announced: true, why: nil)
            }
        }
        return RouteAnnouncements(routeProtocol: routeProtocol, vtidAnswered: recorded != nil, routes: entries, birdCheck: birdCheck(routeProtocol))
    }

    /// What the kernel says about a recorded route it does not hold with vtid's protocol.
    private static func whyAbsent(_ route: RouteRecord, link: Link?, socket: NetlinkSocket, routeProtocol: UInt8) throws -> String {
        guard let link else { return "its device \(route.device) does not exist" }
        guard link.isUp else { return "its device \(route.device) is down (the kernel drops the routes of a device that is down)" }
        let family: AddressFamily = route.destination.contains(":") ? .ipv6 : .ipv4
        let onDevice = try socket.routes(RouteFilter(family: family, table: RouteTable(rawValue: route.table), outputInterface: link.index))
        if let other = onDevice.first(where: { "\($0.destination)" == route.destination }) {
            return "the kernel has it with protocol \(other.protocol.rawValue), not \(routeProtocol): a filter on protocol \(routeProtocol) does not export it"
        }
        return "not in the kernel; vtid's next reconcile puts it back (vtictl reconcile --dry-run shows it)"
    }

    func table() -> [String] {
        var lines = Table(
            header: ["ROUTE", "DEVICE", "TABLE", "CONN", "CLIENT", "ANNOUNCED"],
            rows: routes.map { entry in
                let announced = entry.announced ? (entry.recorded || !vtidAnswered ? "yes" : "yes (not recorded by vtid)") : colour("NO", .red) + ": " + (entry.why ?? "not in the kernel")
                return [entry.destination, entry.device, tableName(entry.table), entry.connection ?? "-", entry.peerClient ?? "-", announced]
            },
            empty: "no routes with protocol \(routeProtocol) in the kernel: nothing to announce").lines
        lines.append(birdCheck)
        return lines
    }
}
