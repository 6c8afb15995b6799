/// `vtictl check`'s judgement of libreswan's route-based conns, without touching anything: the
/// mistakes that break VTI tunnels in ways pluto does not report clearly.

/// One thing `check` found, with where to fix it.
public struct ConfigFinding: Sendable, Hashable, CustomStringConvertible {
    public enum Severity: String, Sendable, Hashable {
        case error, warning
    }

    public var severity: Severity
    public var location: ConfigLocation?
    public var message: String

    public init(severity: Severity, location: ConfigLocation?, message: String) {
        self.severity = severity
        self.location = location
        self.message = message
    }

    public var description: String {
        (location.map { "\($0): " } ?? "") + "\(severity.rawValue): \(message)"
    }
}

/// Where the Debian package installs the hook; `Scripts/install` puts it under its PREFIX
/// (`/usr/local/libexec/vtictl/vti-updown` by default).
public let packagedHookPath = "/usr/libexec/vtictl/vti-updown"

/// Checks route-based conns against each other. Pure: kernel checks are the caller's.
/// `managed`: the conns vtid manages (vtid.yaml's `manage:`; nil: all, vtid's default);
/// `proxyARP`: the managed conns vtid answers ARP for on a LAN (`conns.NAME.proxy_arp`);
/// `hookPath`: the hook a finding tells the operator to set (where this host has it installed).
public func checkRouteBasedConns(_ conns: [RouteBasedConn], managed: Set<String>? = nil, proxyARP: Set<String> = [],
                                 hookPath: String = packagedHookPath) -> [ConfigFinding] {
    var findings: [ConfigFinding] = []
    func error(_ conn: RouteBasedConn, _ message: String) {
        findings.append(ConfigFinding(severity: .error, location: conn.location, message: message))
    }
    func warning(_ conn: RouteBasedConn, _ message: String) {
        findings.append(ConfigFinding(severity: .warning, location: conn.location, message: message))
    }
    for (index, conn) in conns.enumerated() {
        for other in conns[..<index] {
            for pool in conn.addressPools {
                for otherPool in other.addressPools where overlaps(pool, otherPool) {
                    error(conn, "address pool \(pool.lowerBound)-\(pool.upperBound) overlaps conn \(other.name)'s \(otherPool.lowerBound)-\(otherPool.upperBound) (\(other.location))")
                }
            }
            // XFRM interfaces: one if_id is one device. ipsec-interface=0 is if_id 16384, so it and
            // ipsec-interface=16384 are two names for one if_id (libreswan: "cannot both be in use").
            if let id = conn.interfaceID, id == other.interfaceID, conn.interfaceName != other.interfaceName {
                error(conn, "conn \(conn.name)'s \(conn.interfaceName) has if_id \(id) like conn \(other.name)'s \(other.interfaceName) (\(other.location)): ipsec-interface=0 is if_id 16384, so the two cannot both exist; use one number for both conns or another for one")
            }
            // One name, two kinds of device.
            if conn.interfaceName == other.interfaceName, (conn.interfaceID == nil) != (other.interfaceID == nil) {
                let (vti, xfrm) = conn.interfaceID == nil ? (conn, other) : (other, conn)
                error(conn, "\(conn.interfaceName) is conn \(vti.name)'s VTI (vti-interface=, \(vti.location)) and conn \(xfrm.name)'s XFRM interface (ipsec-interface=, \(xfrm.location)): one name, one device; rename the VTI or renumber the XFRM interface")
            }
            // The rules of VTI devices (keys, peers, local addresses) between two VTI conns.
            guard let keys = conn.vtiKeys, let otherKeys = other.vtiKeys else { continue }
            let sameDevice = conn.interfaceName == other.interfaceName
            if keys.markIn.value == otherKeys.markIn.value && !sameDevice {
                error(conn, "conn \(conn.name) uses mark \(keys.markIn.value) like conn \(other.name) (\(other.location)) but another device (\(conn.interfaceName), not \(other.interfaceName)): each VTI device needs its own mark")
            }
            let unshared = sameDevice && !(conn.vtiShared && other.vtiShared)
            if sameDevice && keys.markIn.value != otherKeys.markIn.value {
                error(conn, "conn \(conn.name) puts \(conn.interfaceName) on mark \(keys.markIn.value), conn \(other.name) (\(other.location)) on mark \(otherKeys.markIn.value): one device has one key")
            } else if unshared, let right = conn.rightAddress, let otherRight = other.rightAddress, right != otherRight {
                error(conn, "conn \(conn.name) puts \(conn.interfaceName) towards peer \(right), conn \(other.name) (\(other.location)) towards \(otherRight): an unshared VTI device has one peer (use one device per peer)")
            } else if unshared {
                error(conn, "conns \(other.name) (\(other.location)) and \(conn.name) share \(conn.interfaceName) without vti-shared=yes on both")
            }
            if sameDevice, let left = conn.leftAddress, let otherLeft = other.leftAddress, left != otherLeft {
                error(conn, "conn \(conn.name) puts \(conn.interfaceName) on local address \(left), conn \(other.name) (\(other.location)) on \(otherLeft): a VTI device has one local address")
            }
        }
        findings += checkUpdown(conn, managed: managed?.contains(conn.name) ?? true, hookPath: hookPath)
        for pool in conn.addressPools where !proxyARP.contains(conn.name) {
            for local in conn.leftSubnets where !local.isDefault && (local.contains(pool.lowerBound) || local.contains(pool.upperBound)) {
                error(conn, "address pool \(pool.lowerBound)-\(pool.upperBound) lies in the local subnet \(local): hosts on that LAN would ARP for the clients and get no answer (set conns.\(conn.name).proxy_arp: LAN-INTERFACE in vtid.yaml, or use a range outside the LAN)")
            }
        }
        if conn.routing {
            for remote in conn.rightSubnets {
                if remote.isDefault {
                    warning(conn, "conn \(conn.name): \(conn.routingSetting) with rightsubnet=\(remote) installs no route (route_default = no)")
                    continue
                }
                for local in conn.leftSubnets where !local.isDefault && remote.overlaps(local) {
                    error(conn, "conn \(conn.name): \(conn.routingSetting) would route the local network \(local) into \(conn.interfaceName) (rightsubnet=\(remote))")
                }
            }
        }
    }
    return findings
}

/// An end of a conn that may be this host, and the updown pluto runs there.
public struct UpdownSide: Sendable, Hashable {
    /// `leftupdown` or `rightupdown`.
    public var key: String
    /// `left=` or `right=` as written.
    public var end: String?
    public var updown: String?
    public var location: ConfigLocation?
    /// The program: the first word (arguments may follow).
    public var program: String? { updown?.split(separator: " ").first.map(String.init) }
}

extension RouteBasedConn {
    /// What makes the conn route into its device, as written.
    var routingSetting: String { interfaceID == nil ? "vti-routing=yes" : "ipsec-interface=" }

    /// The sides of the conn that may be this host: pluto runs the updown of the side that is.
    /// `left=` is taken to be this host (libreswan's convention) unless it is `%any` or `right=`
    /// is `%defaultroute`; `right=` too when it is an address or a host name, since the same
    /// file may serve both gateways.
    public var updownSides: [UpdownSide] {
        func isWildcard(_ end: String?) -> Bool { end.map { $0.hasPrefix("%") && !$0.hasPrefix("%defaultroute") } ?? false }
        func isDefaultRoute(_ end: String?) -> Bool { end?.hasPrefix("%defaultroute") ?? false }
        let left = UpdownSide(key: "leftupdown", end: leftEnd, updown: leftUpdown, location: leftUpdownLocation)
        let right = UpdownSide(key: "rightupdown", end: rightEnd, updown: rightUpdown, location: rightUpdownLocation)
        var sides: [UpdownSide] = []
        if !isWildcard(left.end) && !isDefaultRoute(right.end) { sides.append(left) }
        if right.end != nil && !isWildcard(right.end) && !isDefaultRoute(left.end) { sides.append(right) }
        return sides.isEmpty ? [isDefaultRoute(right.end) ? right : left] : sides
    }
}

/// vtid hears of a conn's tunnels only through vti-updown, run by pluto as the updown of the
/// side that is this host (`updownSides`).
func checkUpdown(_ conn: RouteBasedConn, managed: Bool, hookPath: String) -> [ConfigFinding] {
    let candidates = conn.updownSides
    let wrong = candidates.filter { !isVTIUpdown($0.updown) }
    guard let first = wrong.first else { return [] }
    func why(_ side: UpdownSide) -> String {
        guard let updown = side.updown else { return "has no \(side.key)=, so pluto runs libreswan's stock updown script" }
        if updown.hasPrefix("%disabled") { return "has \(side.key)=\(updown), so pluto runs no updown program" }
        if isStockUpdown(updown) { return "runs \(side.key)=\(updown), libreswan's stock updown script" }
        return "runs \(side.key)=\(updown), not vti-updown"
    }
    let fix = "set \(first.key)=\(hookPath)"
    let location = first.location ?? conn.location
    if wrong.count < candidates.count {
        // The other side has vti-updown: only where this host is this side is it left without.
        return [ConfigFinding(severity: .warning, location: location,
                              message: "conn \(conn.name) \(why(first)) where this host is \(first.key == "leftupdown" ? "left" : "right")=\(first.end ?? ""); \(fix)")]
    }
    guard managed else {
        return [ConfigFinding(severity: .warning, location: location,
                              message: "conn \(conn.name) \(why(first)): devices, routes and MTU are left to it (vtid does not manage it)")]
    }
    if wrong.allSatisfy({ $0.updown.map(isStockUpdown) ?? true }) {
        return [ConfigFinding(severity: .error, location: location,
                              message: "conn \(conn.name) is managed by vtid but \(why(first)): vtid gets no events from it, so it installs no routes and records no leases; \(fix)")]
    }
    return [ConfigFinding(severity: .warning, location: location,
                          message: "conn \(conn.name) is managed by vtid but \(why(first)): unless that program runs vti-updown with pluto's environment, vtid gets no events from it")]
}

/// `vti-updown`, by path or name, with or without arguments.
func isVTIUpdown(_ updown: String?) -> Bool {
    guard let program = updown?.split(separator: " ").first else { return false }
    return program == "vti-updown" || program.hasSuffix("/vti-updown")
}

/// libreswan's own script: `ipsec _updown`, `/usr/libexec/ipsec/_updown`, `_updown.xfrm`, or
/// `%disabled` (no updown at all: the same for vtid).
func isStockUpdown(_ updown: String) -> Bool {
    let words = updown.split(separator: " ")
    guard let program = words.first else { return true }
    if program == "%disabled" { return true }
    let script = program.split(separator: "/").last.map(String.init) ?? ""
    let name = script == "ipsec" && words.count > 1 ? String(words[1]) : script
    return name == "_updown" || name.hasPrefix("_updown.")
}

private func overlaps(_ a: ClosedRange<IPAddress>, _ b: ClosedRange<IPAddress>) -> Bool {
    a.lowerBound.family == b.lowerBound.family && a.overlaps(b)
}
