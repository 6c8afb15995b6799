import DHCP
import VTIModel

extension DaemonConfiguration {
    /// vtid.yaml against libreswan's conns, for `vtictl check`: names that match nothing are
    /// typos that leave a conn unmanaged or a setting unused, and YAML cannot know that alone.
    public func findings(against conns: [RouteBasedConn], file: String) -> [ConfigFinding] {
        var findings: [ConfigFinding] = []
        func add(_ severity: ConfigFinding.Severity, _ key: String, _ message: String) {
            findings.append(ConfigFinding(severity: severity, location: lines[key].map { ConfigLocation(file: file, line: $0) }, message: message))
        }
        let byName = Dictionary(conns.map { ($0.name, $0) }, uniquingKeysWith: { first, _ in first })
        for name in (managedConnections ?? []).sorted() where byName[name] == nil {
            add(.warning, "manage.\(name)", "manage: lists \(name), which is not a route-based conn (mark= and vti-interface=) in \(ipsecConf)")
        }
        for name in Set(connections.keys).union(hook.existingDevices.keys).sorted() where byName[name] == nil {
            add(.warning, "conns.\(name)", "conns.\(name): no route-based conn of that name in \(ipsecConf); these settings apply to nothing")
        }
        for (name, settings) in connections.sorted(by: { $0.key < $1.key }) {
            if settings.proxyARP != nil, let conn = byName[name], conn.addressPools.isEmpty {
                add(.warning, "conns.\(name)", "conns.\(name).proxy_arp: conn \(name) has no rightaddresspool=, so there are no client addresses to answer ARP for")
            }
            if let inform = settings.dhcpInform, let conn = byName[name] {
                let key = "conns.\(name).dhcp_inform"
                if inform.routes == nil && dhcpInformRoutes(inform, leftSubnets: conn.leftSubnets).isEmpty {
                    add(.warning, key, "\(key): no routes to send: conn \(name)'s leftsubnet is 0.0.0.0/0 or not IPv4, and routes: is not set; the answers carry only DNS settings")
                }
                if conn.addressPools.isEmpty {
                    add(.warning, key, "\(key): conn \(name) has no rightaddresspool=; clients send DHCPINFORM from the address the gateway gave them")
                }
            }
        }
        let pools = conns.flatMap(\.addressPools)
        for (index, route) in policyRoutes.enumerated() {
            let covered = pools.contains { route.from.contains($0.lowerBound) || route.from.contains($0.upperBound) || ($0.contains(route.from.address)) }
            if !covered {
                add(.warning, "policy_routing.\(index)", "policy_routing from \(route.from): no conn's rightaddresspool= hands out addresses in it, so the rule matches no client")
            }
            if route.table == hook.routeTable {
                add(.error, "policy_routing.\(index)", "policy_routing table \(route.table) is also routes.table, where the clients' routes go: its default route would capture every client's replies; use a table of its own")
            }
        }
        return findings.enumerated().sorted { ($0.element.location?.line ?? 0, $0.offset) < ($1.element.location?.line ?? 0, $1.offset) }.map(\.element)
    }
}

/// The routes a conn's DHCPINFORM answers carry: `routes:` as configured, else its IPv4
/// leftsubnets but 0.0.0.0/0 (a client routing everything into the tunnel needs no routes).
public func dhcpInformRoutes(_ settings: DaemonConfiguration.DHCPInformSettings, leftSubnets: [IPPrefix]) -> [IPv4Network] {
    if let routes = settings.routes { return routes }
    return leftSubnets.compactMap { prefix in
        guard case .v4(let address) = prefix.network.address, !prefix.isDefault else { return nil }
        return IPv4Network(address: address, length: prefix.length)
    }
}
