public import Netlink
import VTIModel

/// Makes the kernel hold one piece of desired state, idempotently: applying the same thing twice
/// changes nothing the second time, removing something already gone succeeds, and nothing this
/// project did not create (other route protocols, devices with other parameters) is touched.
///
/// Pure planning decides *what*; this type only does it, through the Netlink module.
public final class KernelApplier {
    let route: NetlinkSocket
    private var xfrmSocket: NetlinkSocket?

    public init() throws(NetlinkError) {
        route = try NetlinkSocket(.route)
    }

    /// What `ensureVTI` found.
    public enum DeviceOutcome: Equatable, Sendable {
        case created
        /// It was there with these parameters but down.
        case broughtUp
        /// A device with exactly these parameters was there already (an earlier run, the stock script).
        case adopted
    }

    /// Creates the VTI device if missing, adopts it if it has these parameters, and brings it up.
    /// A device of that name with other parameters is an error, never modified.
    @discardableResult
    public func ensureVTI(named name: String, _ wanted: VTIParameters) throws(ApplyError) -> (DeviceOutcome, Link) {
        var outcome = DeviceOutcome.adopted
        var link = try netlink("read device \(name)") { () throws(NetlinkError) in try route.link(named: name) }
        if link == nil {
            do {
                try route.createVTI(named: name, wanted)
                outcome = .created
            } catch where error.errno == .fileExists {
                // Another hook created it between our read and our create: judge what is there.
            } catch where error.errno == .notSupportedOnSocket {
                throw ApplyError("\(error); this kernel has no VTI support: load the ip_vti module (ip6_vti for IPv6)")
            } catch {
                throw ApplyError(error)
            }
            link = try netlink("read device \(name)") { () throws(NetlinkError) in try route.link(named: name) }
        }
        guard let link else { throw ApplyError("device \(name) vanished while it was being created") }
        guard link.kind == "vti" || link.kind == "vti6", let actual = link.vti else {
            throw ApplyError("device \(name) exists but is a \(link.kind ?? "non-tunnel") device, not a VTI; rename it or choose another vti-interface")
        }
        guard actual.sameTunnel(as: wanted) else {
            throw ApplyError("device \(name) exists with other parameters (\(actual.summary)); wanted \(wanted.summary); delete it or fix the conn's mark or addresses")
        }
        var final = link
        if !link.isUp {
            try netlink("bring \(name) up") { () throws(NetlinkError) in try route.setLink(index: link.index, up: true) }
            if outcome == .adopted { outcome = .broughtUp }
            final.isUp = true
        }
        return (outcome, final)
    }

    /// Creates the VTI device, up, and returns its index: what `converge` asks when the device was
    /// not there. Another hook may have created it since: then it is judged as `ensureVTI` does.
    public func createVTI(named name: String, _ wanted: VTIParameters) throws(ApplyError) -> (DeviceOutcome, Int32) {
        do {
            try route.createVTI(named: name, wanted, up: true)
        } catch where error.errno == .fileExists {
            let (outcome, link) = try ensureVTI(named: name, wanted)
            return (outcome, link.index)
        } catch where error.errno == .notSupportedOnSocket {
            throw ApplyError("\(error); this kernel has no VTI support: load the ip_vti module (ip6_vti for IPv6)")
        } catch {
            throw ApplyError(error)
        }
        return (.created, try interfaceIndex(of: name))
    }

    /// Creates an XFRM interface, up, on the underlying device if one is named. One made meanwhile
    /// with the same name (pluto, racing us) is fine when it has this if_id, and refused otherwise.
    public func createXfrmInterface(named name: String, interfaceID: UInt32, underlying: String?) throws(ApplyError) -> (DeviceOutcome, Int32) {
        let underlyingIndex = try underlying.map { name throws(ApplyError) in UInt32(bitPattern: try interfaceIndex(of: name)) } ?? 0
        do {
            try route.createXfrmInterface(named: name, XfrmInterfaceParameters(interfaceID: interfaceID, underlyingIndex: underlyingIndex), up: true)
        } catch where error.errno == .fileExists {
            guard let link = try netlink("read device \(name)", { () throws(NetlinkError) in try route.link(named: name) }) else {
                throw ApplyError(error)
            }
            guard let actual = link.xfrmInterface, actual.interfaceID == interfaceID else {
                throw ApplyError("device \(name) appeared meanwhile with other parameters (\(link.kind ?? "no kind")\(link.xfrmInterface.map { " if_id \($0.interfaceID)" } ?? "")); wanted an XFRM interface with if_id \(interfaceID)")
            }
            if !link.isUp { try bringUp(index: link.index, name: name) }
            return (link.isUp ? .adopted : .broughtUp, link.index)
        } catch where error.errno == .notSupportedOnSocket {
            throw ApplyError("\(error); this kernel has no XFRM interfaces: load the xfrm_interface module (kernel 4.19 or later)")
        } catch {
            throw ApplyError(error)
        }
        return (.created, try interfaceIndex(of: name))
    }

    /// Brings a device up.
    public func bringUp(index: Int32, name: String) throws(ApplyError) {
        try netlink("bring \(name) up") { () throws(NetlinkError) in try route.setLink(index: index, up: true) }
    }

    /// Sets a device's MTU.
    public func setMTU(index: Int32, name: String, _ mtu: UInt32) throws(ApplyError) {
        try netlink("set \(name) mtu \(mtu)") { () throws(NetlinkError) in try route.setLink(index: index, mtu: mtu) }
    }

    /// Deletes a device by index (read just before); one already gone is fine.
    public func deleteLink(index: Int32) throws(ApplyError) {
        do {
            try route.deleteLink(index: index)
        } catch where error.errno == .operationNotSupportedByDevice {
            return
        } catch {
            throw ApplyError(error)
        }
    }

    /// Deletes the VTI device only if it still has these parameters; a missing device is fine.
    /// Returns whether it deleted something.
    @discardableResult
    public func removeVTI(named name: String, _ expected: VTIParameters) throws(ApplyError) -> Bool {
        guard let link = try netlink("read device \(name)", { () throws(NetlinkError) in try route.link(named: name) }) else { return false }
        guard let actual = link.vti, actual.sameTunnel(as: expected) else { return false }
        do {
            try route.deleteLink(index: link.index)
        } catch where error.errno == .operationNotSupportedByDevice {
            return false
        } catch {
            throw ApplyError(error)
        }
        return true
    }

    /// Sets the device's MTU if it differs. Returns whether it changed.
    @discardableResult
    public func ensureMTU(device name: String, _ mtu: UInt32) throws(ApplyError) -> Bool {
        try ensureMTU(try existingLink(name), mtu)
    }

    /// Sets the MTU of a device read just before (`link`) if it differs. Returns whether it changed.
    @discardableResult
    public func ensureMTU(_ link: Link, _ mtu: UInt32) throws(ApplyError) -> Bool {
        guard link.mtu != mtu else { return false }
        try netlink("set \(link.name) mtu \(mtu)") { () throws(NetlinkError) in try route.setLink(index: link.index, mtu: mtu) }
        return true
    }

    /// Adds an address to a device unless it has it.
    public func ensureAddress(device name: String, _ prefix: InetPrefix) throws(ApplyError) {
        try ensureAddress(index: try interfaceIndex(of: name), prefix)
    }

    /// Adds an address to the device with this index unless it has it.
    public func ensureAddress(index: Int32, _ prefix: InetPrefix) throws(ApplyError) {
        do {
            try route.addAddressIfMissing(InterfaceAddress(interfaceIndex: index, prefix: prefix))
        } catch {
            throw ApplyError(error)
        }
    }

    /// Installs routes, or updates routes of their own protocol; one result per route. A route of
    /// another protocol at the same place (a LAN's connected route, one BIRD learned) is never
    /// replaced: its result is an error with `leftAlone` set, which says whose route it is.
    public func ensureRoutes(_ routes: [Route]) -> [ApplyError?] {
        var results = route.changeRoutes(.add, routes).map { $0.map(ApplyError.init) }
        let clashes = results.indices.filter { results[$0]?.netlink?.errno == .fileExists }
        guard !clashes.isEmpty else { return results }
        // Something is there: one look per family and table at what (only when a route already exists).
        var present: [String: [Route]] = [:]
        for index in clashes {
            let wanted = routes[index]
            let key = "\(wanted.family.rawValue) \(wanted.table.rawValue)"
            if present[key] == nil {
                do {
                    present[key] = try route.routes(RouteFilter(family: wanted.family, table: wanted.table))
                } catch {
                    results[index] = ApplyError(error)
                    continue
                }
            }
            switch RouteClash(wanted, among: present[key]!) {
            case .ours:
                results[index] = nil
            case .oursDiffering, .vanished:
                // Ours with another next hop or source; or gone between our add and our look (another hook).
                results[index] = route.changeRoutes(.replace, [wanted])[0].map(ApplyError.init)
            case .others(let other):
                var refusal = ApplyError("route \(wanted.destination) not added: a route of protocol \(other.protocol) is there\(other.outputInterface.map { " (interface \($0))" } ?? ""); left alone, vtid and vti-updown replace only routes of their own protocol (\(wanted.protocol))")
                refusal.leftAlone = true
                results[index] = refusal
            }
        }
        return results
    }

    /// Removes routes; one already gone is a success. The delete names the route protocol, so the
    /// kernel only removes a route of that protocol: another daemon's route to the same prefix stays.
    public func removeRoutes(_ routes: [Route]) -> [ApplyError?] {
        route.changeRoutes(.delete, routes).map { failure in
            guard let failure else { return nil }
            // ESRCH (IPv4) or ENOENT: not there, which is what we wanted.
            return [.noSuchProcess, .noSuchFileOrDirectory].contains(failure.errno) ? nil : ApplyError(failure)
        }
    }

    /// Routes of one protocol, to find our own.
    public func routes(_ filter: RouteFilter) throws(ApplyError) -> [Route] {
        try netlink("list routes") { () throws(NetlinkError) in try route.routes(filter) }
    }

    /// The index of a device that must exist.
    public func interfaceIndex(of name: String) throws(ApplyError) -> Int32 {
        // The loopback device is index 1 in every namespace (the kernel's LOOPBACK_IFINDEX): the
        // hook puts a road-warrior client's source address on it at every route-client.
        if name == "lo" { return 1 }
        guard let index = try netlink("read device \(name)", { () throws(NetlinkError) in try route.interfaceIndex(named: name) }) else {
            throw ApplyError("device \(name) does not exist")
        }
        return index
    }

    /// The device that holds `address`, e.g. the uplink a tunnel's local end lives on.
    public func link(holding address: InetAddress) throws(ApplyError) -> Link? {
        let addresses = try netlink("list addresses") { () throws(NetlinkError) in try route.addresses(family: address.family) }
        guard let owner = addresses.first(where: { $0.prefix.address == address }) else { return nil }
        return try netlink("read device \(owner.interfaceIndex)") { () throws(NetlinkError) in try route.link(index: owner.interfaceIndex) }
    }

    public func link(named name: String) throws(ApplyError) -> Link? {
        try netlink("read device \(name)") { () throws(NetlinkError) in try route.link(named: name) }
    }

    /// The SA with this SPI (host order), if the kernel has it.
    public func securityAssociation(spi: UInt32) throws(ApplyError) -> SecurityAssociation? {
        let xfrm = try xfrm()
        return try netlink("list XFRM SAs") { () throws(NetlinkError) in try xfrm.securityAssociations() }.first { $0.spi == spi }
    }

    /// Writes a sysctl if it differs. Returns whether it changed.
    @discardableResult
    public func ensureSysctl(_ key: SysctlKey, _ value: Int) throws(ApplyError) -> Bool {
        do {
            return try Sysctl.ensure(key, value)
        } catch {
            throw ApplyError(error.description)
        }
    }

    /// The proxy entries of one family (`ip neigh show proxy`).
    public func proxyNeighbours(family: AddressFamily) throws(ApplyError) -> [ProxyNeighbour] {
        try netlink("list proxy neighbours") { () throws(NetlinkError) in try route.proxyNeighbours(family: family) }
    }

    /// Answers ARP (or NDP) for `address` on `device`: a proxy entry, added if missing.
    public func ensureProxyNeighbour(device name: String, _ address: InetAddress) throws(ApplyError) {
        let entry = ProxyNeighbour(interfaceIndex: try existingLink(name).index, address: address)
        try netlink("add \(entry)") { () throws(NetlinkError) in try route.replaceProxyNeighbour(entry) }
    }

    /// Removes the proxy entry; one already gone (or a device already gone) is fine.
    public func removeProxyNeighbour(device name: String, _ address: InetAddress) throws(ApplyError) {
        guard let link = try link(named: name) else { return }
        do {
            try route.deleteProxyNeighbour(ProxyNeighbour(interfaceIndex: link.index, address: address))
        } catch where error.errno == .noSuchFileOrDirectory {
            return
        } catch {
            throw ApplyError(error)
        }
    }

    /// Adds the rule unless an identical one (same priority, selectors, table) exists. Returns
    /// whether it added it.
    @discardableResult
    public func ensureRule(_ rule: RoutingRule) throws(ApplyError) -> Bool {
        let existing = try netlink("list rules") { () throws(NetlinkError) in try route.rules(family: rule.family) }
        if existing.contains(where: { $0.priority == rule.priority && $0.source == rule.source && $0.destination == rule.destination && $0.table == rule.table }) {
            return false
        }
        try netlink("add rule \(rule)") { () throws(NetlinkError) in try route.addRule(rule) }
        return true
    }

    /// Every interface's addresses, both families (one dump each).
    public func interfaceAddresses() throws(ApplyError) -> [InterfaceAddress] {
        var result: [InterfaceAddress] = []
        for family in [AddressFamily.ipv4, .ipv6] {
            result += try netlink("list addresses") { () throws(NetlinkError) in try route.addresses(family: family) }
        }
        return result
    }

    /// This host's addresses, both families.
    public func localAddresses() throws(ApplyError) -> [InetAddress] {
        var result: [InetAddress] = []
        for family in [AddressFamily.ipv4, .ipv6] {
            result += try netlink("list addresses") { () throws(NetlinkError) in try route.addresses(family: family) }.map(\.prefix.address)
        }
        return result
    }

    /// Every link, for a reconcile pass.
    public func links() throws(ApplyError) -> [Link] {
        try netlink("list links") { () throws(NetlinkError) in try route.links() }
    }

    /// Every IPsec SA and policy, for a reconcile pass.
    public func xfrmState() throws(ApplyError) -> (associations: [SecurityAssociation], policies: [SecurityPolicy]) {
        let xfrm = try xfrm()
        let associations = try netlink("list XFRM SAs") { () throws(NetlinkError) in try xfrm.securityAssociations() }
        let policies = try netlink("list XFRM policies") { () throws(NetlinkError) in try xfrm.securityPolicies() }
        return (associations, policies)
    }

    /// The XFRM socket, opened on first use (the hook rarely needs it).
    func xfrm() throws(ApplyError) -> NetlinkSocket {
        if let xfrmSocket { return xfrmSocket }
        let socket = try netlink("open XFRM socket") { () throws(NetlinkError) in try NetlinkSocket(.xfrm) }
        xfrmSocket = socket
        return socket
    }

    private func existingLink(_ name: String) throws(ApplyError) -> Link {
        guard let link = try netlink("read device \(name)", { () throws(NetlinkError) in try route.link(named: name) }) else {
            throw ApplyError("device \(name) does not exist")
        }
        return link
    }

    func netlink<Value>(_ what: String, _ body: () throws(NetlinkError) -> Value) throws(ApplyError) -> Value {
        do {
            return try body()
        } catch {
            throw ApplyError(error)
        }
    }
}

/// What is at a route's place when adding it found one there (EEXIST): the tolerate-or-refuse
/// rule, apart from the kernel so that it is tested without one.
enum RouteClash: Equatable {
    /// Ours, exactly as wanted: nothing to do.
    case ours
    /// Ours, with another next hop, source or device: replaced.
    case oursDiffering
    /// Another protocol's (a connected route, one a routing daemon installed): left alone.
    case others(Route)
    /// Nothing there any more: added again.
    case vanished

    /// `present`: the routes of the wanted route's family and table.
    init(_ wanted: Route, among present: [Route]) {
        let there = present.filter { $0.destination == wanted.destination && ($0.metric ?? $0.defaultMetric) == (wanted.metric ?? wanted.defaultMetric) }
        if let ours = there.first(where: { $0.protocol == wanted.protocol }) {
            let same = ours.outputInterface == wanted.outputInterface && ours.gateway == wanted.gateway && ours.preferredSource == wanted.preferredSource
            self = same ? .ours : .oursDiffering
        } else if let other = there.first {
            self = .others(other)
        } else {
            self = .vanished
        }
    }
}

/// Why the kernel could not be made to hold what was wanted, in one sentence for pluto's log.
public struct ApplyError: Error, Hashable, Sendable, CustomStringConvertible {
    public var message: String
    /// The kernel's errno when the failure came from netlink.
    public var netlink: NetlinkError?
    /// Not a failure of the event: something that is not ours was in the way and was left alone
    /// (the hook says so and carries on).
    public var leftAlone = false

    public init(_ message: String) {
        self.message = message
    }

    public init(_ error: NetlinkError) {
        message = error.description
        netlink = error
    }

    public var description: String { message }
}

extension VTIParameters {
    /// Same end points and keys; the underlying device is not compared (the kernel fills it in).
    func sameTunnel(as other: VTIParameters) -> Bool {
        local == other.local && remote == other.remote && inputKey == other.inputKey && outputKey == other.outputKey
    }

    var summary: String { "local \(local) remote \(remote) ikey \(inputKey) okey \(outputKey)" }
}
