/// What the hook needs that libreswan does not say, with the defaults a gateway wants.
/// Read from a small `key = value` file (default /etc/vtictl/hook.conf; optional).
public struct HookSettings: Sendable, Hashable {
    /// Reverse-path filtering on VTI devices (`rp_filter`). The kernel applies max(conf/all,
    /// conf/DEV), so the device's value alone can loosen nothing that `all` makes stricter.
    /// Strict (1) is not offered: it drops tunnel traffic whenever the route back is not the
    /// tunnel (asymmetric paths, a route being changed).
    public enum ReversePathFilter: Int, Sendable, Hashable {
        /// 0: no check, as the stock script sets. Only works with conf/all/rp_filter at 0 as well,
        /// so the plan also sets that: a host-wide change, which is why this is not the default.
        case off = 0
        /// 2: the source must be routable somewhere. The default: it allows asymmetric routing
        /// (replies leaving by another path) yet drops sources with no route at all, and max(all,
        /// 2) is 2 whatever conf/all says, so no global setting has to change.
        case loose = 2
    }

    /// `rtm_protocol` of every route the hook installs, so that it (and vtid) can tell its routes
    /// from others and routing daemons can redistribute them: a route of another protocol is never
    /// deleted. 157 is in no registry we know: not the kernel's (0-4), not in iproute2's
    /// rt_protos (gated 8 ... keepalived 18, babel 42, openr 99, bgp 186 ... eigrp 192), not
    /// BIRD's (12) or FRR's (186-196).
    public static let defaultRouteProtocol: RouteProtocolNumber = 157

    /// `route_protocol`; see `defaultRouteProtocol`.
    public var routeProtocol: RouteProtocolNumber = Self.defaultRouteProtocol
    public var reversePathFilter: ReversePathFilter = .loose
    /// `mtu`: derived from the uplink and the SA unless the operator fixes it; pluto's own
    /// `mtu=` (PLUTO_MTU) wins over both, for that conn.
    public var mtu: TunnelMTUPolicy = .derived(fallbackSuite: .conservative)
    /// `route_default`: a peer client of 0.0.0.0/0 (or ::/0) installs no route unless this is on,
    /// since a site-to-site VTI with 0/0 selectors usually routes chosen prefixes by hand and a
    /// default route into the tunnel would also swallow the tunnel's own packets. When on, two half
    /// routes (0.0.0.0/1 and 128.0.0.0/1; ::/1 and 8000::/1) win over the default route without
    /// replacing it.
    public var routeDefaultThroughTunnel = false
    /// `route_table`: main (254) by default; a number for policy routing (`ip rule ... table N`).
    public var routeTable: UInt32 = 254
    /// `route_metric`: unset uses pluto's `metric=` (PLUTO_METRIC), else the kernel's default 0.
    public var routeMetric: UInt32?
    /// `vtid`: vtid's run directory (socket, lock, spool), or nil (`vtid = no`) for a hook that
    /// always works alone. When the directory does not exist the hook works alone too.
    public var vtidRunDirectory: String? = "/run/vtid"
    /// The limits of the settings vtid and the hook both read (vtid.yaml and hook.conf): one rule each.
    public static let deadlineRange = 50...9000
    public static let routeTableRule = "main or a table number other than 0, 253 (default) and 255 (local)"
    public static func isUsableRouteTable(_ table: UInt32) -> Bool { table != 0 && table != 253 && table != 255 }

    /// `vtid_deadline_ms`: how long the hook waits for vtid to take its event before applying it
    /// itself; pluto waits for the hook, so this is short.
    public var vtidDeadlineMilliseconds: Int32 = 3000
    /// `existing_device.CONN = DEVICE`: the conn's routes go into DEVICE, which something else
    /// creates and configures (an xfrm interface from systemd-networkd, a test's veth); the hook
    /// then changes nothing on the device itself.
    public var existingDevices: [String: InterfaceName] = [:]
    /// `keep_device.CONN = yes`: the conn's device stays when the conn is deleted. vtid sets it for
    /// the conns it supervises: their devices live as long as the conn is in ipsec.conf. (The hook
    /// itself no longer deletes devices, see `planHook`; the setting is still read and written.)
    public var keptDevices: Set<String> = []

    public init() {}

    /// The settings as a file this parser reads back: vtid writes its own into its run directory,
    /// so that a hook applying an event in vtid's absence plans exactly as vtid would.
    public var rendered: String {
        var lines = [
            "route_protocol = \(routeProtocol)",
            "rp_filter = \(reversePathFilter == .loose ? "loose" : "off")",
            "route_default = \(routeDefaultThroughTunnel ? "yes" : "no")",
            "route_table = \(routeTable == 254 ? "main" : String(routeTable))",
            "vtid_deadline_ms = \(vtidDeadlineMilliseconds)",
        ]
        switch mtu {
        case .fixed(let value): lines.append("mtu = \(value)")
        case .derived: lines.append("mtu = auto")
        }
        if let routeMetric { lines.append("route_metric = \(routeMetric)") }
        for (connection, device) in existingDevices.sorted(by: { $0.key < $1.key }) {
            lines.append("existing_device.\(connection) = \(device)")
        }
        for connection in keptDevices.sorted() { lines.append("keep_device.\(connection) = yes") }
        return lines.joined(separator: "\n") + "\n"
    }
}

/// A settings file line that could not be used.
public struct SettingsError: Error, Sendable, Hashable, CustomStringConvertible {
    public var file: String
    public var line: Int
    public var problem: String
    public var description: String { "\(file):\(line): \(problem)" }
}

extension HookSettings {
    /// Parses `key = value` lines; `#` starts a comment. Unknown and repeated keys are errors, so
    /// typos and copy-paste leftovers show, with the file and line.
    ///
    ///     route_protocol = 157   # rtm_protocol of our routes, 5-255
    ///     rp_filter = loose      # loose | off
    ///     mtu = auto             # auto | 576-9000
    ///     route_default = no     # yes: 0.0.0.0/0 peers get two half routes
    ///     route_table = main     # main | 1-4294967295 except 255 (local)
    ///     route_metric = 20      # unset: pluto's metric=
    ///     vtid = /run/vtid       # vtid's run directory, or no
    ///     vtid_deadline_ms = 3000
    public init(parsing text: String, file: String) throws(SettingsError) {
        self.init()
        var seen: [String: Int] = [:]
        for (index, rawLine) in text.split(omittingEmptySubsequences: false, whereSeparator: \.isNewline).enumerated() {
            let line = index + 1
            let content = rawLine.split(separator: "#", maxSplits: 1, omittingEmptySubsequences: false)[0]
            let trimmed = content.trimmingSpaces
            if trimmed.isEmpty { continue }
            let parts = trimmed.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            guard parts.count == 2 else { throw SettingsError(file: file, line: line, problem: "expected key = value, got \(quoted(String(trimmed)))") }
            let key = parts[0].trimmingSpaces
            let value = parts[1].trimmingSpaces
            func bad(_ expected: String) -> SettingsError {
                SettingsError(file: file, line: line, problem: "\(key): \(quoted(value)) is not \(expected)")
            }
            if let first = seen[key] {
                throw SettingsError(file: file, line: line, problem: "\(quoted(key)) is already set on line \(first)")
            }
            seen[key] = line
            switch key {
            case "route_protocol":
                guard let number = UInt8(value), number > 4 else { throw bad("a route protocol number 5-255 (0-4 belong to the kernel)") }
                routeProtocol = RouteProtocolNumber(rawValue: number)
            case "rp_filter":
                switch value {
                case "loose", "2": reversePathFilter = .loose
                case "off", "0": reversePathFilter = .off
                default: throw bad("loose or off (strict breaks asymmetric routing through tunnels)")
                }
            case "mtu":
                if value == "auto" {
                    mtu = .derived(fallbackSuite: .conservative)
                } else {
                    guard let number = Int(value), (576...9000).contains(number) else { throw bad("auto or a number from 576 to 9000") }
                    mtu = .fixed(number)
                }
            case "route_default":
                guard let flag = ["yes": true, "no": false][value] else { throw bad("yes or no") }
                routeDefaultThroughTunnel = flag
            case "route_table":
                if value == "main" { routeTable = 254 } else {
                    guard let number = UInt32(value), Self.isUsableRouteTable(number) else { throw bad(Self.routeTableRule) }
                    routeTable = number
                }
            case "route_metric":
                guard let number = UInt32(value) else { throw bad("a metric (0-4294967295)") }
                routeMetric = number
            case "vtid":
                if value == "no" { vtidRunDirectory = nil } else {
                    guard value.hasPrefix("/") else { throw bad("no or vtid's run directory (an absolute path, default /run/vtid)") }
                    vtidRunDirectory = value
                }
            case "vtid_deadline_ms":
                guard let number = Int32(value), Self.deadlineRange.contains(Int(number)) else { throw bad("a number of milliseconds from 50 to 9000") }
                vtidDeadlineMilliseconds = number
            case _ where key.hasPrefix("existing_device.") && key.count > "existing_device.".count:
                guard let device = InterfaceName(value) else { throw bad("an interface name (1-15 of A-Z a-z 0-9 . - _)") }
                existingDevices[String(key.dropFirst("existing_device.".count))] = device
            case _ where key.hasPrefix("keep_device.") && key.count > "keep_device.".count:
                guard value == "yes" else { throw bad("yes") }
                keptDevices.insert(String(key.dropFirst("keep_device.".count)))
            default:
                throw SettingsError(file: file, line: line, problem: "unknown setting \(quoted(key)) (known: route_protocol, rp_filter, mtu, route_default, route_table, route_metric, vtid, vtid_deadline_ms, existing_device.CONN, keep_device.CONN)")
            }
        }
    }
}

extension Substring {
    var trimmingSpaces: String {
        String(drop { $0 == " " || $0 == "\t" || $0 == "\r" }.reversed().drop { $0 == " " || $0 == "\t" || $0 == "\r" }.reversed())
    }
}
