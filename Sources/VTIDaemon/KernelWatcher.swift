import Foundation
import Logging
import Netlink
import VTIModel
import Synchronization

/// Listens to the kernel for changes to what vtid owns and asks the supervisor for a reconcile:
/// a managed device deleted or set down, a route of vtid's protocol removed, an SA or policy gone
/// (deleted, hard-expired, flushed). A notification overrun (ENOBUFS: the kernel dropped some) is
/// never a silent gap: it triggers a full reconcile too. Two threads, each waiting in poll for
/// half a second at a time, so that `stop` ends them.
public final class KernelWatcher: Sendable {
    private let supervisor: Supervisor
    private let logger: Logger
    private let routeProtocol: RouteProtocolNumber
    private let stopping = Mutex(false)
    private let stopped = DispatchSemaphore(value: 0)
    /// The last wait for notifications failed (its problem is shown until one works again).
    private let failing = Mutex(false)
    /// The ppp links seen (pppd's, for L2TP/IPsec clients): logged when they come and go, never
    /// touched, and no reason for a reconcile.
    private let pppLinks = Mutex(Set<String>())

    public init(supervisor: Supervisor, logger: Logger) {
        self.supervisor = supervisor
        self.logger = logger
        routeProtocol = supervisor.startConfiguration.hook.routeProtocol
    }

    public func start() throws {
        let routes = try RouteMonitor([.links, .routes])
        let xfrm = try XfrmMonitor()
        let links = SendableMonitor(routes)
        let associations = SendableMonitor(xfrm)
        spawn("vtid-watch-links") { [self] in
            while !stopping.withLock({ $0 }) { watch { () throws(NetlinkError) in try links.monitor.next(timeoutMilliseconds: 500).compactMap(reason) } }
            stopped.signal()
        }
        spawn("vtid-watch-xfrm") { [self] in
            while !stopping.withLock({ $0 }) { watch { () throws(NetlinkError) in try associations.monitor.next(timeoutMilliseconds: 500).compactMap(reason) } }
            stopped.signal()
        }
    }

    /// Ends both threads (within half a second) and returns when they have.
    public func stop() {
        stopping.withLock { $0 = true }
        stopped.wait()
        stopped.wait()
    }

    private func spawn(_ name: String, _ body: @escaping @Sendable () -> Void) {
        let thread = Thread(block: body)
        thread.name = name
        thread.start()
    }

    private func watch(_ next: () throws(NetlinkError) -> [String]) {
        do {
            let reasons = try next()
            if failing.withLock({ was in defer { was = false }; return was }) { supervisor.clearProblem("kernel-watch") }
            if let first = reasons.first { supervisor.scheduleReconcile(reason: first) }
        } catch where error.isOverrun {
            logger.warning("kernel notifications were lost (netlink buffer overrun): full resync")
            supervisor.scheduleReconcile(reason: "notification overrun", after: .zero)
        } catch {
            failing.withLock { $0 = true }
            supervisor.reportProblem("kernel-watch", "watching the kernel's notifications failed: \(error); periodic reconcile passes go on")
            Thread.sleep(forTimeInterval: 0.5)
        }
    }

    /// Why a notification matters to vtid, or nil. Devices are judged by kind (VTI, XFRM interface:
    /// the names vtid watches are only renewed at each pass, and a device of the last event may not
    /// be among them yet) or by being one of the conns' existing devices; the reconcile itself
    /// decides what is wanted.
    private func reason(_ notification: RouteNotification) -> String? {
        notePPP(notification)
        switch notification {
        case .linkRemoved(let link) where link.isTunnelDevice || supervisor.watchedDevices.contains(link.name):
            return "device \(link.name) deleted"
        case .linkChanged(let link) where !link.isUp && (link.isTunnelDevice || supervisor.watchedDevices.contains(link.name)):
            return "device \(link.name) down"
        case .routeRemoved(let route) where route.protocol.rawValue == routeProtocol.rawValue:
            return "route \(route.destination) removed"
        default:
            return nil
        }
    }

    /// One log line when a ppp link appears and one when it goes (`vtictl status` shows it with its SA).
    private func notePPP(_ notification: RouteNotification) {
        switch notification {
        case .linkChanged(let link) where link.isPPP:
            if pppLinks.withLock({ $0.insert(link.name).inserted }) {
                logger.notice("l2tp: ppp link \(link.name) appeared (pppd's; vtid only reads it)")
            }
        case .linkRemoved(let link) where link.isPPP:
            if pppLinks.withLock({ $0.remove(link.name) != nil }) {
                logger.notice("l2tp: ppp link \(link.name) removed")
            }
        default:
            break
        }
    }

    private func reason(_ notification: XfrmNotification) -> String? {
        switch notification {
        case .securityAssociationDeleted(let sa): "SA 0x\(String(sa.spi, radix: 16)) deleted"
        case .securityAssociationExpired(let sa, hard: true): "SA 0x\(String(sa.spi, radix: 16)) expired"
        case .securityAssociationsFlushed: "SAs flushed"
        case .policyDeleted: "policy deleted"
        case .policiesFlushed: "policies flushed"
        default: nil
        }
    }
}

/// A monitor made on one thread and then used by one other thread for its whole life (so one
/// thread at a time: why it may be `@unchecked Sendable`).
private struct SendableMonitor<Monitor>: @unchecked Sendable {
    let monitor: Monitor
    init(_ monitor: Monitor) { self.monitor = monitor }
}

extension Link {
    /// A VTI or an XFRM interface: a device kind vtid may manage.
    var isTunnelDevice: Bool { vti != nil || xfrmInterface != nil }
}
