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

/// Checks route-based conns against each other. Pure: kernel checks are the caller's.
public func checkRouteBasedConns(_ conns: [RouteBasedConn]) -> [ConfigFinding] {
    var findings: [ConfigFinding] = []
    func error(_ conn: RouteBasedConn, _ message: String) {
        findings.append(ConfigFinding(severity: .error, location: conn.location, message: message))
    }
    func warning(_ conn: RouteBasedConn, _ message: String) {
        findings.append(ConfigFinding(severity: .warning, location: conn.location, message: message))
    }
    for (index, conn) in conns.enumerated() {
        for other in conns[..<index] {
            let sameDevice = conn.vtiInterface == other.vtiInterface
            if conn.markIn.value == other.markIn.value && !sameDevice {
                error(conn, "conn \(conn.name) uses mark \(conn.markIn.value) like conn \(other.name) (\(other.location)) but another device (\(conn.vtiInterface), not \(other.vtiInterface)): each VTI device needs its own mark")
            }
            let unshared = sameDevice && !(conn.vtiShared && other.vtiShared)
            if sameDevice && conn.markIn.value != other.markIn.value {
                error(conn, "conn \(conn.name) puts \(conn.vtiInterface) on mark \(conn.markIn.value), conn \(other.name) (\(other.location)) on mark \(other.markIn.value): one device has one key")
            } else if unshared, let right = conn.rightAddress, let otherRight = other.rightAddress, right != otherRight {
                error(conn, "conn \(conn.name) puts \(conn.vtiInterface) towards peer \(right), conn \(other.name) (\(other.location)) towards \(otherRight): an unshared VTI device has one peer (use one device per peer)")
            } else if unshared {
                error(conn, "conns \(other.name) (\(other.location)) and \(conn.name) share \(conn.vtiInterface) without vti-shared=yes on both")
            }
            if sameDevice, let left = conn.leftAddress, let otherLeft = other.leftAddress, left != otherLeft {
                error(conn, "conn \(conn.name) puts \(conn.vtiInterface) on local address \(left), conn \(other.name) (\(other.location)) on \(otherLeft): a VTI device has one local address")
            }
            if let pool = conn.addressPool, let otherPool = other.addressPool, overlaps(pool, otherPool) {
                error(conn, "address pool \(pool.lowerBound)-\(pool.upperBound) overlaps conn \(other.name)'s \(otherPool.lowerBound)-\(otherPool.upperBound) (\(other.location))")
            }
        }
        if let updown = conn.updownProgram, !updown.hasSuffix("/vti-updown") && updown != "vti-updown" {
            warning(conn, "conn \(conn.name) runs leftupdown=\(updown), not vti-updown: devices, routes and MTU are left to it")
        } else if conn.leftUpdown == nil {
            warning(conn, "conn \(conn.name) has no leftupdown=: libreswan's stock script handles its VTI")
        }
        if let pool = conn.addressPool {
            for local in conn.leftSubnets where !local.isDefault && (local.contains(pool.lowerBound) || local.contains(pool.upperBound)) {
                error(conn, "address pool \(pool.lowerBound)-\(pool.upperBound) lies in the local subnet \(local): clients' routes would shadow it (use a separate range, or proxy ARP)")
            }
        }
        if conn.vtiRouting {
            for remote in conn.rightSubnets {
                if remote.isDefault {
                    warning(conn, "conn \(conn.name): vti-routing=yes with rightsubnet=\(remote) installs no route (route_default = no)")
                    continue
                }
                for local in conn.leftSubnets where !local.isDefault && remote.overlaps(local) {
                    error(conn, "conn \(conn.name): vti-routing=yes would route the local network \(local) into \(conn.vtiInterface) (rightsubnet=\(remote))")
                }
            }
        }
    }
    return findings
}

private func overlaps(_ a: ClosedRange<IPAddress>, _ b: ClosedRange<IPAddress>) -> Bool {
    a.lowerBound.family == b.lowerBound.family && a.overlaps(b)
}
