import ControlProtocol
import Foundation
import Netlink
import VTIKernel
import VTIModel

/// What vtid answers about itself (`vtictl status`, `leases`, `routes`, `events`, `metrics`):
/// read on the queue, from the records and the kernel as they are when asked.
extension Supervisor {
    public func events() -> [EventRecord] { history }

    public func leaseRecords() throws -> [LeaseRecord] { try store.all() }

    public func routeRecords() throws -> RoutesReply {
        RoutesReply(routeProtocol: configuration.hook.routeProtocol.rawValue, routes: try store.routes().records.map { owned in
            let route = owned.route
            return RouteRecord(destination: "\(route.destination)", device: route.device.rawValue, table: route.table,
                               gateway: route.gateway.map { "\($0)" }, source: route.preferredSource.map { "\($0)" }, metric: route.metric,
                               connection: owned.connection, peerClient: "\(owned.peerClient)", reqid: owned.reqid)
        })
    }

    /// The Prometheus text, with the gauges computed now: clients from the lease table, tunnels
    /// from the kernel's SAs, degraded from the open problems (a scrape never sees a stale value).
    public func metricsText() -> String {
        let leases = try? store.all().filter(\.connected)
        let xfrm = try? kernelApplier().xfrmState()
        metrics.refresh(clientsConnected: leases?.count, tunnelsUp: xfrm.map { Set($0.associations.map(\.reqid)).count },
                        degraded: problems.isDegraded, unwrittenChanges: records.unwritten.count)
        // Per conn, what `vtictl status` shows in its traffic columns.
        let locals = Set(((try? kernelApplier().localAddresses()) ?? []).map { "\($0)" })
        metrics.refreshTunnels(xfrm.map { xfrm in
            ipsec.values.sorted { $0.name < $1.name }.map { conn in
                let traffic = traffic(of: conn, in: xfrm, localAddresses: locals)
                return DaemonMetrics.TunnelSample(
                    connection: conn.name, up: traffic.associations > 0, associations: traffic.associations,
                    inBytes: traffic.inBytes, outBytes: traffic.outBytes, inPackets: traffic.inPackets, outPackets: traffic.outPackets,
                    clientsConnected: leases?.filter { $0.connection == conn.name }.count ?? 0)
            }
        })
        return metrics.exposition()
    }

    public func status() throws -> StatusReply {
        let xfrm = try? kernelApplier().xfrmState()
        let locals = Set(((try? kernelApplier().localAddresses()) ?? []).map { "\($0)" })
        let connections = ipsec.values.sorted { $0.name < $1.name }.map { conn -> ConnectionRecord in
            let device = conn.device(existingDevices: configuration.hook.existingDevices).rawValue
            // An XFRM interface has an if_id where a VTI has its keys.
            let keys = conn.vtiKeys.map { ("\($0.markIn)", "\($0.markOut)") } ?? conn.interfaceID.map { ("if_id \($0)", "if_id \($0)") } ?? ("-", "-")
            var record = ConnectionRecord(name: conn.name, location: "\(conn.location)", markIn: keys.0, markOut: keys.1,
                                    device: device, shared: conn.vtiShared, routing: conn.routing, managed: configuration.manages(conn.name),
                                    addressPool: conn.addressPools.isEmpty ? nil : conn.addressPools.map { "\($0.lowerBound)-\($0.upperBound)" }.joined(separator: ","),
                                    lastRepair: objectStatus[.device(device)]?.lastRepair, lastError: objectStatus[.device(device)]?.lastError,
                                    traffic: xfrm.map { traffic(of: conn, in: $0, localAddresses: locals) })
            record.mssClamp = mssClampStatus(connection: conn.name, device: device)
            return record
        }
        var records = try store.all()
        if let associations = xfrm?.associations {
            records = records.withCounters(from: associations)
        }
        var problems = problems.lines
        problems += objectStatus.compactMap { object, status in status.lastError.map { "\(object): \($0)" } }.sorted()
        if let reloadError { problems.insert("reload failed, running the previous configuration: \(reloadError)", at: 0) }
        var daemon = DaemonRecord(version: vtidVersion, pid: getpid(), started: started, configurationFile: configurationFile,
                                  ipsecConf: configuration.ipsecConf, reloadError: reloadError, eventsApplied: applied, eventsFailed: failed)
        daemon.eventsNotRecorded = notRecorded
        daemon.degraded = self.problems.isDegraded
        return StatusReply(daemon: daemon, connections: connections, leases: records, problems: problems,
                           l2tpClients: l2tpClientRecords(associations: xfrm?.associations))
    }

    /// The L2TP/IPsec clients now: ppp links and their addresses read from the kernel (read only),
    /// matched to transport-mode SAs by what each link's pppd says (`L2TPClients.swift`); nil when
    /// the kernel could not be read.
    func l2tpClientRecords(associations: [SecurityAssociation]? = nil) -> [L2TPClientRecord]? {
        guard let socket = try? NetlinkSocket(.route), let links = try? socket.links(), let addresses = try? socket.addresses() else { return nil }
        let ppp = pppLinks(links, addresses: addresses)
        guard !ppp.isEmpty else { return [] }
        guard let associations = associations ?? (try? kernelApplier().xfrmState().associations) else { return nil }
        let files = readPPPDFiles(links: ppp.map(\.name))
        let tunnels: Result<[L2TPTunnel], PairingProblem>
        do {
            let generic = try NetlinkSocket(.generic)
            tunnels = try generic.l2tpTunnels().map(Result.success)
                ?? .failure(PairingProblem("the kernel has no L2TP netlink family (module l2tp_netlink)"))
        } catch {
            tunnels = .failure(PairingProblem("the kernel's L2TP tunnels could not be read: \(error)"))
        }
        return l2tpClients(links: ppp, associations: associations, localAddresses: Set(addresses.map(\.prefix.address)),
                           peers: pppPeers(links: ppp.map(\.name), pidFiles: files.pidFiles, cmdlines: files.cmdlines,
                                           foreign: files.foreign, tunnels: tunnels))
    }
}

/// The SAs of a conn: those whose reqid a policy carrying the conn's mark (or if_id) names.
func traffic(of conn: RouteBasedConn, in xfrm: (associations: [SecurityAssociation], policies: [SecurityPolicy]),
             localAddresses: Set<String>) -> ConnectionTraffic {
    let keys: [TunnelKey] = conn.vtiKeys.map { [.mark($0.markIn.value), .mark($0.markOut.value)] } ?? [conn.tunnelKey]
    let reqids = Set(xfrm.policies.filter { tunnelKey(mark: $0.mark, interfaceID: $0.interfaceID).map(keys.contains) ?? false }.flatMap(\.templateReqids))
    var traffic = ConnectionTraffic(peers: [], associations: 0, since: nil, inBytes: 0, outBytes: 0, inPackets: 0, outPackets: 0)
    var peers = Set<String>()
    for sa in xfrm.associations where reqids.contains(sa.reqid) {
        traffic.associations += 1
        if sa.addTime > 0 { traffic.since = min(traffic.since ?? Int64.max, Int64(sa.addTime)) }
        if localAddresses.contains("\(sa.destination)") {
            traffic.inBytes += sa.bytes
            traffic.inPackets += sa.packets
            peers.insert("\(sa.source)")
        } else {
            traffic.outBytes += sa.bytes
            traffic.outPackets += sa.packets
            peers.insert("\(sa.destination)")
        }
    }
    traffic.peers = peers.sorted()
    return traffic
}

extension Array where Element == LeaseRecord {
    /// A connected client's bytes are its SAs' current counters (by SPI; the outbound SA's
    /// destination is the peer).
    func withCounters(from associations: [SecurityAssociation]) -> [LeaseRecord] {
        let bySPI = Dictionary(associations.map { ($0.spi, $0) }, uniquingKeysWith: { first, _ in first })
        return map { lease in
            guard lease.connected else { return lease }
            var lease = lease
            for spi in [lease.spiIn, lease.spiOut].compactMap({ $0 }) {
                guard let sa = bySPI[spi] else { continue }
                if "\(sa.destination)" == lease.peerAddress { lease.outBytes = sa.bytes } else { lease.inBytes = sa.bytes }
            }
            return lease
        }
    }
}
