import DHCP
import Foundation
import Glibc
import LocalIPC
import Logging
import Netlink
import Prometheus
import ServiceLifecycle
import Synchronization
import VTIConfiguration
import VTIModel

// vtid answers DHCPINFORM on the tunnel devices of the conns whose vtid.yaml says
// `dhcp_inform` (issue 21): Windows' VPN client (IKEv2, L2TP) learns the networks behind the
// gateway only so, from options 121 and 249. One thread, one UDP socket on port 67 per device,
// bound to it (SO_BINDTODEVICE: a datagram on any other device never reaches it); what to answer
// is DHCP's `InformResponder`, a pure function of the bytes. vtid never leases an address (pluto's
// pool does): everything but a client's INFORM is counted and dropped.
//
// Sockets follow the devices: every second the thread asks the supervisor for the conns and their
// devices (without waiting on its queue) and compares with what the kernel has (device index by
// name); a device that appears gets a socket, one that goes (or comes back with a new index) loses
// it. A VTI's or an XFRM interface's packets arrive on it after decryption, so the socket hears a
// client's INFORM and nothing from outside the tunnel.
//
// The server identifier, which is also the answer's source address: `server_identifier` if set;
// else the address the INFORM was sent to, when it was sent to one of this host's addresses; else
// the first of this host's addresses inside the routes the answer carries (the gateway's LAN
// address in leftsubnet: the client's traffic selectors cover it, so the answer passes the
// client's IPsec policy); else the device's own address. With none of those there is no answer.

/// Where to answer whom: one conn's device and what its answers say.
struct DHCPInformTarget: Sendable, Hashable {
    var connection: String
    var device: String
    var parameters: InformParameters
    var serverIdentifier: IPv4Address?
}

extension Supervisor {
    /// The managed conns with `dhcp_inform`, each on its device (its VTI or XFRM interface, or its
    /// `existing_device`). Read on the queue. Two conns on one device: the first by name answers.
    var dhcpInformTargets: [DHCPInformTarget] {
        configuration.connections.compactMap { name, settings -> DHCPInformTarget? in
            guard let inform = settings.dhcpInform, isSupervised(name) else { return nil }
            let device = configuration.hook.existingDevices[name]?.rawValue ?? ipsec[name]?.interfaceName.rawValue
            guard let device else { return nil }
            let routes = dhcpInformRoutes(inform, leftSubnets: ipsec[name]?.leftSubnets ?? [])
            let parameters = InformParameters(routes: routes, router: inform.router, dnsServers: inform.dnsServers,
                                              domainName: inform.domainName, searchDomains: inform.searchDomains)
            return DHCPInformTarget(connection: name, device: device, parameters: parameters, serverIdentifier: inform.serverIdentifier)
        }.sorted { ($0.device, $0.connection) < ($1.device, $1.connection) } + l2tpInformTargets
    }

    /// `l2tp.dhcp_inform`: one target for every ppp link (`ppp*`, expanded by the responder's
    /// thread to the links that exist), answering as the pseudo-conn `l2tp`.
    var l2tpInformTargets: [DHCPInformTarget] {
        guard let inform = configuration.l2tpDHCPInform else { return [] }
        let parameters = InformParameters(routes: inform.routes ?? [], router: inform.router, dnsServers: inform.dnsServers,
                                          domainName: inform.domainName, searchDomains: inform.searchDomains)
        return [DHCPInformTarget(connection: DHCPInformTarget.l2tpConnection, device: DHCPInformTarget.pppDevices,
                                 parameters: parameters, serverIdentifier: inform.serverIdentifier)]
    }
}

extension DHCPInformTarget {
    /// The device name of the L2TP target: every link pppd named (`ppp` and its unit number).
    static let pppDevices = "ppp*"
    static let l2tpConnection = "l2tp"

    /// The targets with `ppp*` replaced by one target per link in `names` (the host's links now)
    /// named `pppN`, as pppd names them (a PPPoE uplink renamed `pppoe-wan`, say, is left out).
    static func expanded(_ targets: [DHCPInformTarget], linkNames names: [String]) -> [DHCPInformTarget] {
        targets.flatMap { target -> [DHCPInformTarget] in
            guard target.device == pppDevices else { return [target] }
            let ppp = names.filter { $0.hasPrefix("ppp") && $0.count > 3 && $0.dropFirst(3).allSatisfy(\.isASCII) && $0.dropFirst(3).allSatisfy(\.isNumber) }
            return ppp.sorted { ($0.count, $0) < ($1.count, $1) }.map { name in
                var one = target
                one.device = name
                return one
            }
        }
    }
}

/// The names of this host's links (if_nameindex: no netlink round trip each second).
func linkNames() -> [String] {
    guard let list = if_nameindex() else { return [] }
    defer { if_freenameindex(list) }
    var names: [String] = []
    var entry = list
    while entry.pointee.if_index != 0 {
        if let name = entry.pointee.if_name { names.append(String(cString: name)) }
        entry += 1
    }
    return names
}

extension DaemonMetrics {
    /// `vtid_dhcp_inform_total{outcome}`: what became of each datagram on a DHCP socket.
    func recordDHCP(outcome: String) {
        registry.makeCounter(
            descriptor: MetricNameDescriptor(namespace: "vtid", metricName: "dhcp_inform", unitName: "total",
                                             helpText: "Datagrams on vtid's DHCP sockets by outcome (answered, malformed, ignored, rate-limited, ...)"),
            labels: [("outcome", outcome)]).increment()
    }
}

/// The DHCPINFORM responder's thread. Sendable: its state lives in the thread (`ResponderLoop`);
/// the object holds only what other threads may touch, behind Mutexes.
public final class DHCPResponder: Sendable {
    private let supervisor: Supervisor
    private let logger: Logger
    private let targets: Mutex<[DHCPInformTarget]>
    private let stopping = Mutex(false)
    private let finished = DispatchSemaphore(value: 0)
    private let running = Mutex(false)
    private let wake: WakePipe

    public init(supervisor: Supervisor, logger: Logger) throws {
        self.supervisor = supervisor
        self.logger = logger
        wake = try WakePipe()
        targets = Mutex(supervisor.onQueue { $0.dhcpInformTargets })
    }

    public func start() {
        running.withLock { $0 = true }
        let thread = Thread { [self] in
            var loop = ResponderLoop(supervisor: supervisor, logger: logger)
            var lastRefresh: ContinuousClock.Instant?
            while !stopping.withLock({ $0 }) {
                if lastRefresh.map({ $0.duration(to: .now) >= .seconds(1) }) ?? true {
                    lastRefresh = .now
                    loop.refresh(targets.withLock { $0 })
                    // For the next second: the supervisor's queue answers when it is free.
                    supervisor.onQueueAsync { [self] supervisor in
                        let fresh = supervisor.dhcpInformTargets
                        targets.withLock { $0 = fresh }
                    }
                }
                let ready = waitForReadable(loop.descriptors + [wake.readDescriptor], timeoutMilliseconds: 500)
                if ready.contains(wake.readDescriptor) {
                    var byte: UInt8 = 0
                    while Glibc.read(wake.readDescriptor, &byte, 1) > 0 {}
                }
                loop.serve(ready)
            }
            loop.closeAll()
            finished.signal()
        }
        thread.name = "vtid-dhcp"
        thread.start()
    }

    /// Ends the thread (closing its sockets) and returns when it has.
    public func stop() {
        guard running.withLock({ was in defer { was = false }; return was }) else { return }
        stopping.withLock { $0 = true }
        wake.wake()
        finished.wait()
    }
}

/// The responder until graceful shutdown, as a service of vtid's group.
public struct DHCPResponderService: Service {
    let responder: DHCPResponder
    public init(responder: DHCPResponder) { self.responder = responder }

    public func run() async throws {
        try? await gracefulShutdown()
        responder.stop()
    }
}

/// The thread's state: sockets by device, each conn's responder (and so its clients' rate
/// limits), this host's IPv4 addresses, and when each log cause last spoke.
private struct ResponderLoop {
    struct Bound {
        var socket: DHCPSocket
        var index: Int32
        var target: DHCPInformTarget
    }

    let supervisor: Supervisor
    let logger: Logger
    var bound: [String: Bound] = [:]
    var responders: [String: InformResponder] = [:]
    var addresses: [InterfaceAddress] = []
    var netlink: NetlinkSocket?
    var throttle = LogThrottle()
    /// Devices whose socket could not be opened, with why (said once, until it works).
    var failing: [String: String] = [:]

    init(supervisor: Supervisor, logger: Logger) {
        self.supervisor = supervisor
        self.logger = logger
    }

    var descriptors: [Int32] { bound.values.map(\.socket.descriptor) }

    /// Sockets for the devices that exist now, none for the others; the addresses again.
    mutating func refresh(_ targets: [DHCPInformTarget]) {
        let targets = targets.contains { $0.device == DHCPInformTarget.pppDevices } ? DHCPInformTarget.expanded(targets, linkNames: linkNames()) : targets
        let wanted = Dictionary(targets.map { ($0.device, $0) }, uniquingKeysWith: { first, _ in first })
        for (device, entry) in bound {
            let index = Int32(bitPattern: if_nametoindex(device))
            if wanted[device] == nil || index != entry.index {
                bound[device] = nil
                logger.notice("dhcp: stopped answering DHCPINFORM on \(device) (\(index == 0 ? "device gone" : wanted[device] == nil ? "no conn with dhcp_inform uses it" : "device replaced"))")
            } else if let target = wanted[device], target != entry.target {
                bound[device]?.target = target
            }
        }
        for (device, target) in wanted where bound[device] == nil {
            let index = Int32(bitPattern: if_nametoindex(device))
            guard index > 0 else { continue }
            do {
                bound[device] = Bound(socket: try DHCPSocket(device: device), index: index, target: target)
                let routes = target.parameters.routes.map(\.description).joined(separator: ", ")
                logger.notice("dhcp: answering DHCPINFORM on \(device) for conn \(target.connection): routes \(routes.isEmpty ? "none" : routes)")
                if failing.removeValue(forKey: device) != nil {
                    supervisor.onQueueAsync { $0.problems.clear("dhcp-\(device)", logger: $0.logger) { _ in "dhcp: the socket on \(device) is open again" } }
                }
            } catch {
                if failing[device] != "\(error)" {
                    failing[device] = "\(error)"
                    let text = "dhcp: cannot answer DHCPINFORM on \(device) for conn \(target.connection): \(error); trying again every second"
                    supervisor.onQueueAsync { $0.problems.report("dhcp-\(device)", text, degrading: false, logger: $0.logger) }
                }
            }
        }
        responders = responders.filter { entry in targets.contains { $0.connection == entry.key } }
        for target in targets where responders[target.connection]?.parameters != target.parameters {
            if responders[target.connection] == nil {
                responders[target.connection] = InformResponder(parameters: target.parameters)
            } else {
                responders[target.connection]?.parameters = target.parameters
            }
        }
        if !bound.isEmpty {
            do {
                let socket = try netlink ?? NetlinkSocket(.route)
                netlink = socket
                addresses = try socket.addresses(family: .ipv4)
            } catch {
                netlink = nil
                throttle.log(logger, "addresses", "dhcp: cannot list this host's addresses: \(error)")
            }
        }
    }

    mutating func serve(_ ready: Set<Int32>) {
        for device in bound.keys.sorted() {
            guard let entry = bound[device], ready.contains(entry.socket.descriptor) else { continue }
            // A bounded batch per device and wake-up: a flood on one device cannot starve another.
            for _ in 0..<64 {
                let datagram: DHCPSocket.Datagram?
                do {
                    datagram = try entry.socket.receive()
                } catch {
                    throttle.log(logger, "receive-\(device)", "dhcp: \(error)")
                    break
                }
                guard let datagram else { break }
                answer(datagram, on: entry)
            }
        }
    }

    mutating func answer(_ datagram: DHCPSocket.Datagram, on entry: Bound) {
        let target = entry.target
        let device = target.device
        guard let server = serverIdentifier(for: datagram, target: target, deviceIndex: entry.index) else {
            supervisor.metrics.recordDHCP(outcome: "no-server-address")
            throttle.log(logger, "no-server-address-\(device)", """
                dhcp: no answer on \(device) to \(datagram.source): no server address (this host has no address inside the routes, \
                \(device) has none, and server_identifier is not set)
                """)
            return
        }
        guard var responder = responders[target.connection] else { return }
        let (outcome, reply) = responder.handle(datagram.bytes, from: datagram.source, serverIdentifier: server, now: .now)
        responders[target.connection] = responder
        let client = "\(datagram.source):\(datagram.sourcePort)"
        switch outcome {
        case .answered:
            guard let reply else { return }
            do {
                try entry.socket.send(reply, to: datagram.source, from: server)
                supervisor.metrics.recordDHCP(outcome: "answered")
                throttle.log(logger, "answered-\(datagram.source)", """
                    dhcp: answered DHCPINFORM from \(datagram.source) on \(device) (conn \(target.connection)) as \(server): \
                    \(target.parameters.routes.count) routes
                    """)
            } catch {
                supervisor.metrics.recordDHCP(outcome: "send-failed")
                throttle.log(logger, "send-failed-\(device)", "dhcp: the answer to \(datagram.source) on \(device) was not sent: \(error)")
            }
        case .malformed(let error):
            supervisor.metrics.recordDHCP(outcome: outcome.label)
            throttle.log(logger, "malformed-\(error.cause)", "dhcp: malformed datagram from \(client) on \(device), no answer: \(error)")
        case .ignored(let type):
            supervisor.metrics.recordDHCP(outcome: outcome.label)
            throttle.log(logger, "ignored-\(type.rawValue)", "dhcp: ignored \(type) from \(client) on \(device): vtid answers DHCPINFORM only")
        case .noClientAddress, .addressMismatch, .rateLimited:
            supervisor.metrics.recordDHCP(outcome: outcome.label)
            let why = switch outcome {
            case .noClientAddress: "it has no ciaddr"
            case .addressMismatch: "its ciaddr is not the address it came from"
            default: "that client asks too often"
            }
            throttle.log(logger, "\(outcome.label)-\(device)", "dhcp: no answer to the DHCPINFORM from \(client) on \(device): \(why)")
        case .replyFailed(let error):
            supervisor.metrics.recordDHCP(outcome: outcome.label)
            throttle.log(logger, "reply-failed-\(device)", "dhcp: no answer to \(client) on \(device): \(error)")
        }
    }

    /// See the file's header: configured, else the INFORM's own destination if it is ours, else
    /// ours inside the routes, else the device's.
    func serverIdentifier(for datagram: DHCPSocket.Datagram, target: DHCPInformTarget, deviceIndex: Int32) -> IPv4Address? {
        if let configured = target.serverIdentifier { return configured }
        let ours: [(index: Int32, address: IPv4Address)] = addresses.compactMap { entry in
            guard entry.prefix.address.bytes.count == 4 else { return nil }
            return (entry.interfaceIndex, IPv4Address(rawValue: entry.prefix.address.bytes.reduce(0) { $0 << 8 | UInt32($1) }))
        }
        if ours.contains(where: { $0.address == datagram.destination }) { return datagram.destination }
        for route in target.parameters.routes {
            let mask: UInt32 = route.length == 0 ? 0 : UInt32.max << (32 - route.length)
            if let inside = ours.map(\.address).filter({ $0.rawValue & mask == route.address.rawValue && $0.rawValue >> 24 != 127 }).min() {
                return inside
            }
        }
        return ours.first { $0.index == deviceIndex }?.address
    }

    mutating func closeAll() {
        bound.removeAll()
    }
}

/// One log line per cause at most every 10 seconds; the next one says how many were held back.
private struct LogThrottle {
    var last: [String: (at: ContinuousClock.Instant, held: Int)] = [:]

    mutating func log(_ logger: Logger, _ cause: String, _ text: String) {
        let now = ContinuousClock.now
        if let entry = last[cause], entry.at.duration(to: now) < .seconds(10) {
            last[cause]?.held += 1
            return
        }
        let held = last[cause]?.held ?? 0
        if last.count > 4096 { last = last.filter { $0.value.at.duration(to: now) < .seconds(10) } }
        last[cause] = (now, 0)
        logger.notice("\(text)\(held > 0 ? " (\(held) more like it in the last seconds, not logged)" : "")")
    }
}
