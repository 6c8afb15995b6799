import Netlink
import VTIKernel
import VTIModel

/// Proxy ARP/NDP entries for connected clients (`proxy_arp` in vtid.yaml, README "Configuration"),
/// kept by each reconcile pass as routes are. The event path adds a client's entry at up-client and
/// removes it at its down; one lost in between (a LAN device that goes down loses its proxy entries;
/// one deleted by hand) comes back at the next pass while the client's tunnel has a record, and
/// the entry of a tunnel whose SAs expired without a down goes with its routes. No other entry is
/// ever removed: an entry vtid has no record for may be someone else's.
extension Supervisor {
    /// Brings the proxy entries to the route records of conns with `proxy_arp`; `expired` are the
    /// clients this pass forgot (positive knowledge that their tunnels ended). A line per change.
    func syncProxyNeighboursOnQueue(expired: [OwnedRoute]) -> [String] {
        let interfaces = configuration.connections.compactMapValues(\.proxyARP)
        guard !interfaces.isEmpty else { return [] }
        var lines: [String] = []
        do {
            let kernel = try kernelApplier()
            let records = try store.routes().records
            let wanted = Set(records.compactMap { ProxyEntry($0, interfaces) })
            let ended = Set(expired.compactMap { ProxyEntry($0, interfaces) }).subtracting(wanted)
            guard !wanted.isEmpty || !ended.isEmpty else { return [] }
            var present = Set<ProxyEntry>()
            var names: [Int32: String] = [:]
            for interface in Set(interfaces.values) {
                if let link = try kernel.link(named: interface.rawValue) { names[link.index] = interface.rawValue }
            }
            for family in [AddressFamily.ipv4, .ipv6] {
                for entry in try kernel.proxyNeighbours(family: family) {
                    if let name = names[entry.interfaceIndex] { present.insert(ProxyEntry(interface: name, address: entry.address)) }
                }
            }
            for entry in wanted.subtracting(present).sorted(by: { "\($0)" < "\($1)" }) {
                do {
                    guard names.values.contains(entry.interface) else { throw ApplyError("LAN device \(entry.interface) is missing") }
                    if entry.address.family == .ipv6, let key = SysctlKey.ipv6(.interface(entry.interface), .proxyNDP), try kernel.ensureSysctl(key, 1) {
                        lines.append("set net.ipv6.conf.\(entry.interface).proxy_ndp=1")
                    }
                    try kernel.ensureProxyNeighbour(device: entry.interface, entry.address)
                    lines.append("proxy neighbour \(entry) restored")
                } catch {
                    lines.append("failed: proxy neighbour \(entry): \(error)")
                }
            }
            for entry in ended.intersection(present).sorted(by: { "\($0)" < "\($1)" }) {
                do {
                    try kernel.removeProxyNeighbour(device: entry.interface, entry.address)
                    lines.append("proxy neighbour \(entry) removed (its tunnel ended)")
                } catch {
                    lines.append("failed: proxy neighbour \(entry) not removed: \(error)")
                }
            }
        } catch {
            lines.append("failed: proxy neighbours: \(error)")
        }
        let failures = lines.filter { $0.hasPrefix("failed") }
        if failures.isEmpty {
            problems.clear("proxy-neighbours", logger: logger) { _ in "proxy ARP/NDP entries are right again" }
        } else {
            problems.report("proxy-neighbours", failures.joined(separator: "; "), degrading: false, logger: logger)
        }
        return lines
    }
}

/// One proxy entry vtid keeps: a client's address answered for on a LAN device.
struct ProxyEntry: Hashable, CustomStringConvertible {
    var interface: String
    var address: InetAddress

    /// The entry a client's route record asks for: its conn has `proxy_arp`, and the record is one
    /// client's (a host address).
    init?(_ owned: OwnedRoute, _ interfaces: [String: InterfaceName]) {
        guard let interface = interfaces[owned.connection], owned.peerClient.isHost else { return nil }
        self.init(interface: interface.rawValue, address: owned.peerClient.address.inet)
    }

    init(interface: String, address: InetAddress) {
        self.interface = interface
        self.address = address
    }

    var description: String { "\(address) on \(interface)" }
}
