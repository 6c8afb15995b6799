/// What the hook needs that libreswan does not say, with the defaults a gateway wants.
/// Read from a small `key = value` file (default /etc/vtictl/hook.conf; optional).
public struct HookSettings: Sendable, Hashable {
    /// Reverse-path filtering on VTI devices. The kernel applies max(conf/all, conf/DEV).
    public enum ReversePathFilter: Int, Sendable, Hashable {
        /// 0: no check. Needs conf/all/rp_filter at 0 too, which the hook then sets.
        case off = 0
        /// 2: the source must be routable somewhere. The default: it allows asymmetric routing
        /// (replies leaving by another path) yet drops sources with no route at all, and max(all,
        /// 2) is 2 whatever conf/all says, so no global setting has to change.
        case loose = 2
    }

    /// `rtm_protocol` of every route the hook installs, so that it (and vtid) can tell its routes
    /// from others and routing daemons can redistribute them. 157 is in no common registry:
    /// not the kernel's (0-4), BIRD's (12), Babel's (42), OpenR's (99) or FRR's (186-196).
    public var routeProtocol: UInt8 = 157
    public var reversePathFilter: ReversePathFilter = .loose
    public var mtu: TunnelMTUPolicy = .derived(fallback: .conservative)
    /// A peer client of 0.0.0.0/0 (or ::/0) installs no route unless this is on; then it is two
    /// half routes (0.0.0.0/1 and 128.0.0.0/1) that win over the default route without replacing it.
    public var routeDefaultThroughTunnel = false
    public var routeTable: UInt32 = 254
    public var routeMetric: UInt32?

    public init() {}
}

/// A settings file line that could not be used.
public struct SettingsError: Error, Sendable, Hashable, CustomStringConvertible {
    public var file: String
    public var line: Int
    public var problem: String
    public var description: String { "\(file):\(line): \(problem)" }
}

extension HookSettings {
    /// Parses `key = value` lines; `#` starts a comment. Unknown keys are errors, so typos show.
    public init(parsing text: String, file: String) throws(SettingsError) {
        self.init()
        for (index, rawLine) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
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
            switch key {
            case "route_protocol":
                guard let number = UInt8(value), number > 4 else { throw bad("a route protocol number 5-255 (0-4 belong to the kernel)") }
                routeProtocol = number
            case "rp_filter":
                switch value {
                case "loose", "2": reversePathFilter = .loose
                case "off", "0": reversePathFilter = .off
                default: throw bad("loose or off (strict breaks asymmetric routing through tunnels)")
                }
            case "mtu":
                if value == "auto" {
                    mtu = .derived(fallback: .conservative)
                } else {
                    guard let number = Int(value), (576...9000).contains(number) else { throw bad("auto or a number from 576 to 9000") }
                    mtu = .fixed(number)
                }
            case "route_default":
                guard let flag = ["yes": true, "no": false][value] else { throw bad("yes or no") }
                routeDefaultThroughTunnel = flag
            case "route_table":
                if value == "main" { routeTable = 254 } else {
                    guard let number = UInt32(value), number > 0 else { throw bad("main or a table number") }
                    routeTable = number
                }
            case "route_metric":
                guard let number = UInt32(value) else { throw bad("a metric (0-4294967295)") }
                routeMetric = number
            default:
                throw SettingsError(file: file, line: line, problem: "unknown setting \(quoted(key)) (known: route_protocol, rp_filter, mtu, route_default, route_table, route_metric)")
            }
        }
    }
}

extension Substring {
    var trimmingSpaces: String {
        String(drop { $0 == " " || $0 == "\t" || $0 == "\r" }.reversed().drop { $0 == " " || $0 == "\t" || $0 == "\r" }.reversed())
    }
}
