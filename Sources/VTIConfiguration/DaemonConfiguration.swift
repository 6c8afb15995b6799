import ControlProtocol
import DHCP
import VTIModel
import Yams

/// vtid's own settings (YAML), for what libreswan's ipsec.conf does not say. Every key is
/// optional; unknown keys are errors, so that a typo does not silently keep a default.
public struct DaemonConfiguration: Sendable, Hashable {
    public var ipsecConf = "/etc/ipsec.conf"
    public var runDirectory = ControlProtocol.defaultRunDirectory
    public var stateDirectory = "/var/lib/vtid"
    /// Group allowed to use the control socket besides root (the socket becomes 0660).
    public var socketGroup: UInt32?
    /// How routes, sysctls and MTU are planned: the hook's settings.
    public var hook = HookSettings()
    /// nil: every route-based conn in ipsec.conf.
    public var managedConnections: Set<String>?
    public var connections: [String: ConnectionSettings] = [:]
    public var policyRoutes: [PolicyRoute] = []
    /// `l2tp.dhcp_inform`: answer DHCPINFORM on every ppp link (L2TP/IPsec clients' links, which
    /// belong to no route-based conn); nil: off.
    public var l2tpDHCPInform: DHCPInformSettings?
    /// How many recent events `vtictl events` can show.
    public var eventHistory = 1000
    /// Seconds between periodic reconciles (kernel notifications trigger them in between).
    public var reconcileIntervalSeconds = 30
    /// Seconds a tunnel may be without SAs before its routes go.
    public var saGraceSeconds = 10
    /// Where vtid serves `GET /metrics` over HTTP (`metrics_listen`); nil: nowhere, no IP socket.
    public var metricsListen: ListenAddress?
    /// Where things were set, for `vtictl check`: `manage.CONN`, `conns.CONN`,
    /// `policy_routing.INDEX` and top-level keys, to line numbers.
    public var lines: [String: Int] = [:]

    public init() {}

    /// Per-conn settings under `conns:`. `existing_device` lives in `hook.existingDevices`, where
    /// the planner (vtid's and the hook's fallback) reads it.
    public struct ConnectionSettings: Sendable, Hashable {
        /// Answer ARP for each client's pool address on this LAN interface (a proxy neighbour
        /// entry), for a pool carved out of the LAN's own subnet.
        public var proxyARP: InterfaceName?
        /// Answer DHCPINFORM on the conn's tunnel device (`dhcp_inform`); nil: off.
        public var dhcpInform: DHCPInformSettings?
        /// TCP MSS clamping on the conn's device (`mss_clamp`: off, auto or a number; default off).
        public var mssClamp: MSSClampSetting = .off
        public init() {}
    }

    /// `conns.NAME.dhcp_inform`: what vtid answers a client's DHCPINFORM with on the conn's device
    /// (`DHCPResponder.swift`).
    public struct DHCPInformSettings: Sendable, Hashable {
        /// Destinations for options 121 and 249; nil: the conn's leftsubnet(s), unless 0.0.0.0/0.
        public var routes: [IPv4Network]?
        /// The router field of each route: `server` (the server identifier, the default), `on-link`
        /// (0.0.0.0) or an address.
        public var router: InformParameters.Router = .server
        public var dnsServers: [IPv4Address] = []
        public var domainName: String?
        public var searchDomains: [String] = []
        /// The server identifier and the answers' source address; nil: chosen per INFORM
        /// (`DHCPResponder.swift`).
        public var serverIdentifier: IPv4Address?
        public init() {}
    }

    /// Source-based policy routing for a routed prefix (`ip rule add from PREFIX table N pref P`),
    /// with that table's default route, so that traffic from clients holding public addresses
    /// leaves by its own path.
    public struct PolicyRoute: Sendable, Hashable {
        public var from: IPPrefix
        public var table: UInt32
        public var priority: UInt32
        public var via: IPAddress?
        public var device: InterfaceName?
    }

    public func manages(_ connection: String) -> Bool { managedConnections?.contains(connection) ?? true }
}

/// An IP address and TCP port to listen on: `127.0.0.1:9719`, `[::1]:9719` (IPv6 in brackets,
/// as in a URL); port 1-65535. Literal addresses only: vtid resolves no names.
public struct ListenAddress: Sendable, Hashable, CustomStringConvertible {
    public var address: IPAddress
    public var port: UInt16

    public init(address: IPAddress, port: UInt16) {
        self.address = address
        self.port = port
    }

    public init?(_ text: String) {
        let host: Substring
        let portText: Substring
        if text.hasPrefix("[") {
            guard let close = text.firstIndex(of: "]"), text[text.index(after: close)...].hasPrefix(":") else { return nil }
            host = text[text.index(after: text.startIndex)..<close]
            portText = text[text.index(close, offsetBy: 2)...]
        } else {
            guard let colon = text.lastIndex(of: ":") else { return nil }
            host = text[..<colon]
            portText = text[text.index(after: colon)...]
        }
        guard let address = IPAddress(host), (address.family == .ipv6) == text.hasPrefix("["),
              portText.allSatisfy(\.isASCII), let port = UInt16(portText), port > 0 else { return nil }
        self.init(address: address, port: port)
    }

    public var description: String { address.family == .ipv6 ? "[\(address)]:\(port)" : "\(address):\(port)" }
}

/// A configuration file that cannot be used: file, line and what is wrong.
public struct ConfigurationError: Error, Sendable, Hashable, CustomStringConvertible {
    public var file: String
    public var line: Int?
    public var problem: String
    public init(file: String, line: Int?, problem: String) {
        self.file = file
        self.line = line
        self.problem = problem
    }
    public var description: String { line.map { "\(file):\($0): \(problem)" } ?? "\(file): \(problem)" }
}

extension DaemonConfiguration {
    static let topKeys = ["ipsec_conf", "run_directory", "state_directory", "socket_group", "routes", "rp_filter", "mtu",
                          "manage", "conns", "policy_routing", "event_history", "hook_deadline_ms",
                          "reconcile_interval_s", "sa_grace_s", "l2tp", "metrics_listen"]

    /// Parses vtid.yaml. Errors name the file and line.
    public init(yaml text: String, file: String) throws(ConfigurationError) {
        self.init()
        if let refusal = YAMLShapeGuard.check(text) {
            throw ConfigurationError(file: file, line: refusal.line, problem: refusal.problem)
        }
        let root: Node?
        do {
            root = try Yams.compose(yaml: text)
        } catch let error as YamlError {
            throw ConfigurationError(file: file, line: Self.line(of: error), problem: "not valid YAML: \(Self.summary(of: error))")
        } catch {
            throw ConfigurationError(file: file, line: nil, problem: "not valid YAML: \(error)")
        }
        guard let root else { return }
        let reader = YAMLReader(file: file)
        let top = try reader.mapping(root, "the top level", keys: Self.topKeys)
        for (key, node) in top { lines[key] = node.mark?.line }
        if let node = top["ipsec_conf"] { ipsecConf = try reader.path(node, "ipsec_conf") }
        if let node = top["run_directory"] { runDirectory = try reader.path(node, "run_directory") }
        if let node = top["state_directory"] { stateDirectory = try reader.path(node, "state_directory") }
        if let node = top["socket_group"] { socketGroup = UInt32(try reader.integer(node, "socket_group", in: 0...65_534)) }
        if let node = top["reconcile_interval_s"] { reconcileIntervalSeconds = try reader.integer(node, "reconcile_interval_s", in: 1...86400) }
        if let node = top["sa_grace_s"] { saGraceSeconds = try reader.integer(node, "sa_grace_s", in: 0...3600) }
        if let node = top["event_history"] { eventHistory = try reader.integer(node, "event_history", in: 10...1_000_000) }
        if let node = top["hook_deadline_ms"] { hook.vtidDeadlineMilliseconds = Int32(try reader.integer(node, "hook_deadline_ms", in: HookSettings.deadlineRange)) }
        if let node = top["metrics_listen"] {
            let text = try reader.scalar(node, "metrics_listen")
            guard let address = ListenAddress(text) else {
                throw reader.error(node, "metrics_listen must be an IP address and port, such as 127.0.0.1:9719 or [::1]:9719, not \(text)")
            }
            metricsListen = address
        }
        if let node = top["rp_filter"] {
            switch try reader.scalar(node, "rp_filter") {
            case "loose", "2": hook.reversePathFilter = .loose
            case "off", "0": hook.reversePathFilter = .off
            default: throw reader.error(node, "rp_filter must be loose or off (strict breaks asymmetric routing through tunnels)")
            }
        }
        if let node = top["mtu"] {
            let value = try reader.scalar(node, "mtu")
            if value == "auto" {
                hook.mtu = .derived(fallbackSuite: .conservative)
            } else if let number = Int(value), (576...9000).contains(number) {
                hook.mtu = .fixed(number)
            } else {
                throw reader.error(node, "mtu must be auto or a number from 576 to 9000")
            }
        }
        if let node = top["routes"] {
            let routes = try reader.mapping(node, "routes", keys: ["protocol", "table", "metric", "default"])
            if let node = routes["protocol"] { hook.routeProtocol = RouteProtocolNumber(rawValue: UInt8(try reader.integer(node, "routes.protocol", in: 5...255))) }
            if let node = routes["table"] { hook.routeTable = try reader.table(node, "routes.table") }
            if let node = routes["metric"] { hook.routeMetric = UInt32(try reader.integer(node, "routes.metric", in: 0...Int(UInt32.max))) }
            if let node = routes["default"] { hook.routeDefaultThroughTunnel = try reader.flag(node, "routes.default") }
        }
        if let node = top["manage"] {
            if case .scalar(let scalar) = node, scalar.string == "all" {
                managedConnections = nil
            } else if case .sequence(let sequence) = node {
                managedConnections = Set(try sequence.map { (item: Node) throws(ConfigurationError) in
                    let name = try reader.scalar(item, "manage")
                    lines["manage.\(name)"] = item.mark?.line
                    return name
                })
            } else {
                throw reader.error(node, "manage must be all or a list of conn names")
            }
        }
        if let node = top["conns"] {
            guard case .mapping(let mapping) = node else { throw reader.error(node, "conns must map conn names to settings") }
            for (key, value) in mapping {
                let name = try reader.scalar(key, "a conn name")
                lines["conns.\(name)"] = key.mark?.line
                let settings = try reader.mapping(value, "conns.\(name)", keys: ["existing_device", "proxy_arp", "dhcp_inform", "mss_clamp"])
                var connection = ConnectionSettings()
                if let node = settings["existing_device"] {
                    hook.existingDevices[name] = try reader.interface(node, "existing_device")
                }
                if let node = settings["proxy_arp"] { connection.proxyARP = try reader.interface(node, "proxy_arp") }
                if let node = settings["dhcp_inform"] {
                    lines["conns.\(name).dhcp_inform"] = node.mark?.line
                    connection.dhcpInform = try reader.dhcpInform(node, "conns.\(name).dhcp_inform")
                }
                if let node = settings["mss_clamp"] {
                    let text = try reader.scalar(node, "mss_clamp")
                    guard let setting = MSSClampSetting(text) else {
                        throw reader.error(node, "mss_clamp must be off, auto or a number from \(MSSClampSetting.fixedRange.lowerBound) to \(MSSClampSetting.fixedRange.upperBound)")
                    }
                    connection.mssClamp = setting
                }
                connections[name] = connection
            }
        }
        if let node = top["l2tp"] {
            let settings = try reader.mapping(node, "l2tp", keys: ["dhcp_inform"])
            if let node = settings["dhcp_inform"] {
                lines["l2tp.dhcp_inform"] = node.mark?.line
                l2tpDHCPInform = try reader.dhcpInform(node, "l2tp.dhcp_inform")
                // A ppp link has no conn whose leftsubnet could stand in for the routes.
                if let inform = l2tpDHCPInform, inform.routes == nil {
                    throw reader.error(node, "l2tp.dhcp_inform needs routes: (the networks behind the gateway): L2TP clients' ppp links belong to no conn with a leftsubnet to send")
                }
            }
        }
        if let node = top["policy_routing"] {
            guard case .sequence(let sequence) = node else { throw reader.error(node, "policy_routing must be a list") }
            for item in sequence {
                lines["policy_routing.\(policyRoutes.count)"] = item.mark?.line
                let entry = try reader.mapping(item, "policy_routing entry", keys: ["from", "table", "priority", "via", "device"])
                guard let from = entry["from"], let table = entry["table"] else {
                    throw reader.error(item, "a policy_routing entry needs from: PREFIX and table: N")
                }
                let prefixText = try reader.scalar(from, "from")
                guard let prefix = IPPrefix(prefixText) else { throw reader.error(from, "from: \(prefixText) is not a prefix such as 203.0.113.0/28") }
                var route = PolicyRoute(from: prefix, table: try reader.table(table, "table"), priority: 1000)
                if let node = entry["priority"] { route.priority = UInt32(try reader.integer(node, "priority", in: 1...32765)) }
                if let node = entry["via"] {
                    let text = try reader.scalar(node, "via")
                    guard let address = IPAddress(text), address.family == prefix.family else {
                        throw reader.error(node, "via: \(text) is not an address of the prefix's family")
                    }
                    route.via = address
                }
                if let node = entry["device"] { route.device = try reader.interface(node, "device") }
                guard route.table != 254 else { throw reader.error(table, "policy_routing needs its own table, not main") }
                policyRoutes.append(route)
            }
        }
        for (name, connection) in connections where managedConnections.map({ !$0.contains(name) }) ?? false {
            _ = connection
            throw ConfigurationError(file: file, line: lines["conns.\(name)"] ?? root.mark?.line, problem: "conns.\(name) has settings but manage: does not list it")
        }
    }

    private static func line(of error: YamlError) -> Int? {
        switch error {
        case .scanner(_, _, let mark, _), .parser(_, _, let mark, _), .composer(_, _, let mark, _): return mark.line
        case .duplicatedKeysInMapping(_, let context): return context.mark.line
        default: return nil
        }
    }

    private static func summary(of error: YamlError) -> String {
        switch error {
        case .scanner(let context, let problem, _, _), .parser(let context, let problem, _, _), .composer(let context, let problem, _, _):
            return [context?.text, problem].compactMap { $0 }.filter { !$0.isEmpty }.joined(separator: ", ")
        case .duplicatedKeysInMapping(let duplicates, _):
            return "a key is set twice: \(duplicates.joined(separator: ", "))"
        default: return "\(error)"
        }
    }
}

/// Reads typed values out of YAML nodes, with the node's line in every error.
private struct YAMLReader {
    let file: String

    func error(_ node: Node, _ problem: String) -> ConfigurationError {
        ConfigurationError(file: file, line: node.mark?.line, problem: problem)
    }

    func mapping(_ node: Node, _ what: String, keys: [String]) throws(ConfigurationError) -> [String: Node] {
        guard case .mapping(let mapping) = node else { throw error(node, "\(what) must be a mapping of settings") }
        var result: [String: Node] = [:]
        for (key, value) in mapping {
            let name = try scalar(key, "a key")
            guard keys.contains(name) else { throw error(key, "unknown setting \(name) in \(what) (known: \(keys.joined(separator: ", ")))") }
            guard result.updateValue(value, forKey: name) == nil else { throw error(key, "\(name) is set twice in \(what)") }
        }
        return result
    }

    func scalar(_ node: Node, _ what: String) throws(ConfigurationError) -> String {
        guard case .scalar(let scalar) = node else { throw error(node, "\(what) must be a single value") }
        return scalar.string
    }

    func path(_ node: Node, _ what: String) throws(ConfigurationError) -> String {
        let text = try scalar(node, what)
        guard text.hasPrefix("/"), !text.contains("\0") else { throw error(node, "\(what) must be an absolute path") }
        return text
    }

    func integer(_ node: Node, _ what: String, in range: ClosedRange<Int>) throws(ConfigurationError) -> Int {
        let text = try scalar(node, what)
        guard let number = Int(text), range.contains(number) else { throw error(node, "\(what) must be a number from \(range.lowerBound) to \(range.upperBound), not \(text)") }
        return number
    }

    func flag(_ node: Node, _ what: String) throws(ConfigurationError) -> Bool {
        switch try scalar(node, what) {
        case "yes", "true", "on": return true
        case "no", "false", "off": return false
        case let text: throw error(node, "\(what) must be yes or no, not \(text)")
        }
    }

    func table(_ node: Node, _ what: String) throws(ConfigurationError) -> UInt32 {
        let text = try scalar(node, what)
        if text == "main" { return 254 }
        guard let number = UInt32(text), HookSettings.isUsableRouteTable(number) else { throw error(node, "\(what) must be \(HookSettings.routeTableRule)") }
        return number
    }

    /// A list of scalars, or one scalar as a list of one.
    func list(_ node: Node, _ what: String) throws(ConfigurationError) -> [(text: String, node: Node)] {
        if case .sequence(let sequence) = node {
            return try sequence.map { (item: Node) throws(ConfigurationError) in (try scalar(item, "an item of \(what)"), item) }
        }
        return [(try scalar(node, what), node)]
    }

    func ipv4(_ node: Node, _ text: String, _ what: String) throws(ConfigurationError) -> IPv4Address {
        guard let address = IPv4Address(text) else { throw error(node, "\(what): \(text) is not an IPv4 address") }
        return address
    }

    /// `dhcp_inform: yes`, or a mapping of its settings.
    func dhcpInform(_ node: Node, _ what: String) throws(ConfigurationError) -> DaemonConfiguration.DHCPInformSettings? {
        if case .scalar = node { return try flag(node, what) ? DaemonConfiguration.DHCPInformSettings() : nil }
        let keys = try mapping(node, what, keys: ["routes", "router", "dns", "domain", "search", "server_identifier"])
        var settings = DaemonConfiguration.DHCPInformSettings()
        if let node = keys["routes"] {
            settings.routes = try list(node, "\(what).routes").map { (text, item) throws(ConfigurationError) in
                guard let prefix = IPPrefix(text), case .v4(let address) = prefix.address else {
                    throw error(item, "\(what).routes: \(text) is not an IPv4 prefix such as 10.3.0.0/24 (options 121 and 249 carry IPv4 routes only)")
                }
                guard let network = IPv4Network(address: address, length: prefix.length) else {
                    throw error(item, "\(what).routes: \(text) has host bits set; the network is \(prefix.network)")
                }
                return network
            }
        }
        if let node = keys["router"] {
            switch try scalar(node, "\(what).router") {
            case "server": settings.router = .server
            case "on-link": settings.router = .onLink
            case let text: settings.router = .address(try ipv4(node, text, "\(what).router (server, on-link or an address)"))
            }
        }
        if let node = keys["dns"] {
            settings.dnsServers = try list(node, "\(what).dns").map { (text, item) throws(ConfigurationError) in try ipv4(item, text, "\(what).dns") }
        }
        if let node = keys["domain"] {
            let name = try scalar(node, "\(what).domain")
            do { _ = try domainLabels(name) } catch { throw self.error(node, "\(what).domain: \(error)") }
            settings.domainName = name
        }
        if let node = keys["search"] {
            settings.searchDomains = try list(node, "\(what).search").map { (text, item) throws(ConfigurationError) in
                do { _ = try domainLabels(text) } catch { throw self.error(item, "\(what).search: \(error)") }
                return text
            }
        }
        if let node = keys["server_identifier"] {
            settings.serverIdentifier = try ipv4(node, try scalar(node, "\(what).server_identifier"), "\(what).server_identifier")
        }
        // The answer must fit a client that says nothing of its size (576-byte datagrams).
        if let routes = settings.routes {
            let parameters = InformParameters(routes: routes, router: settings.router, dnsServers: settings.dnsServers,
                                              domainName: settings.domainName, searchDomains: settings.searchDomains)
            if let size = informAnswerSize(parameters), size > 548 {
                throw error(node, "\(what): the answer would be \(size) bytes, over the 548 a DHCP client takes unless it says more; list fewer routes, or shorter names")
            }
        }
        return settings
    }

    func interface(_ node: Node, _ what: String) throws(ConfigurationError) -> InterfaceName {
        let text = try scalar(node, what)
        guard let name = InterfaceName(text) else {
            throw error(node, "\(what): \(text) is not an interface name (1-15 of A-Z a-z 0-9 . - _)")
        }
        return name
    }
}
