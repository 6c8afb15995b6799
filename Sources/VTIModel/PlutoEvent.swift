/// One call of the updown hook, parsed from the environment pluto gives it, every value typed and
/// checked. libreswan 4.10 (Debian 12) runs the hook through `sh -c` with the variables as quoted
/// assignments, 5.x executes it with a real environment: either way they arrive in our environment.
public struct PlutoEvent: Sendable, Hashable {
    /// `PLUTO_CONN_KIND`: road-warrior instances are `CK_INSTANCE`, a deleted instance's last call
    /// says `CK_GOING_AWAY`.
    public enum ConnectionKind: Sendable, Hashable {
        case permanent, instance, template, goingAway
        case other(String)

        init(_ text: String) {
            switch text {
            case "CK_PERMANENT": self = .permanent
            case "CK_INSTANCE": self = .instance
            case "CK_TEMPLATE": self = .template
            case "CK_GOING_AWAY": self = .goingAway
            default: self = .other(text)
            }
        }
    }

    /// The VTI settings of a route-based conn (`vti-interface=`, `vti-routing=`, `vti-shared=`, `leftvti=`).
    public struct VTI: Sendable, Hashable {
        public var interface: InterfaceName
        public var routing: Bool
        public var shared: Bool
        /// `VTI_IP`: the address `leftvti=` puts on the device.
        public var address: IPPrefix?
    }

    public var verb: PlutoVerb
    /// `PLUTO_CONNECTION`: the base name, shared by all instances of a road-warrior conn.
    public var connection: UntrustedText
    public var kind: ConnectionKind
    public var family: IPFamily
    public var me: IPAddress
    public var peer: IPAddress
    public var myClient: IPPrefix
    public var peerClient: IPPrefix
    public var myID: UntrustedText
    /// Chosen by the remote side: data only.
    public var peerID: UntrustedText
    public var mySourceIP: IPAddress?
    public var nextHop: IPAddress?
    public var interface: InterfaceName?
    public var metric: UInt32?
    public var mtu: UInt32?
    public var markIn: FirewallMark?
    public var markOut: FirewallMark?
    public var vti: VTI?
    public var reqid: UInt32?
    public var spiIn: UInt32?
    public var spiOut: UInt32?
    public var inBytes: UInt64?
    public var outBytes: UInt64?
    /// `PLUTO_CONN_POLICY` split at `+`, e.g. `IKEv2`, `PSK`, `TUNNEL`.
    public var policy: Set<String>
    /// `PLUTO_*`-style names this parser does not know, for one log line.
    public var unknownVariables: [String]

    /// What makes two calls the same event: applying it twice must not change anything more.
    public var eventKey: String {
        "\(verb.text) \(connection.escaped) \(peer) \(peerClient) \(String(spiIn ?? 0, radix: 16))/\(String(spiOut ?? 0, radix: 16))"
    }
}

/// A variable pluto passed that the hook cannot accept: one line naming the variable.
public struct PlutoEventError: Error, Sendable, Hashable, CustomStringConvertible {
    public var variable: String
    public var problem: String

    public var description: String { "\(variable): \(problem)" }
}

extension PlutoEvent {
    /// Variables this parser reads or deliberately ignores; anything else with these prefixes is
    /// reported as unknown.
    static let known: Set<String> = [
        "PLUTO_VERB", "PLUTO_CONNECTION", "PLUTO_CONN_KIND", "PLUTO_CONN_ADDRFAMILY", "PLUTO_ME", "PLUTO_PEER",
        "PLUTO_MY_CLIENT", "PLUTO_PEER_CLIENT", "PLUTO_MY_ID", "PLUTO_PEER_ID", "PLUTO_MY_SOURCEIP", "PLUTO_NEXT_HOP",
        "PLUTO_INTERFACE", "PLUTO_METRIC", "PLUTO_MTU", "CONNMARK_IN", "CONNMARK_OUT", "VTI_IFACE", "VTI_ROUTING",
        "VTI_SHARED", "VTI_IP", "PLUTO_SA_REQID", "SPI_IN", "SPI_OUT", "PLUTO_INBYTES", "PLUTO_OUTBYTES",
        "PLUTO_CONN_POLICY", "PLUTO_ADDTIME",
        // Read by nothing here, known to be sent (libreswan 4.10 and 5.x).
        "PLUTO_VERSION", "PLUTO_CFG_CLIENT", "PLUTO_CFG_SERVER", "PLUTO_CONNECTION_TYPE", "PLUTO_IS_PEER_CISCO",
        "PLUTO_MY_CLIENT_MASK", "PLUTO_MY_CLIENT_NET", "PLUTO_PEER_CLIENT_MASK", "PLUTO_PEER_CLIENT_NET",
        "PLUTO_MY_PORT", "PLUTO_MY_PROTOCOL", "PLUTO_PEER_PORT", "PLUTO_PEER_PROTOCOL", "PLUTO_NM_CONFIGURED",
        "PLUTO_PEER_BANNER", "PLUTO_PEER_CA", "PLUTO_PEER_DNS_INFO", "PLUTO_PEER_DOMAIN_INFO", "PLUTO_SA_TYPE",
        "PLUTO_STACK", "PLUTO_VIRT_INTERFACE", "PLUTO_XFRMI_ROUTE", "PLUTO_XFRMI_FWMARK", "PLUTO_MY_SOURCEIP4",
        "PLUTO_MY_SOURCEIP6", "PLUTO_USERNAME", "PLUTO_PEER_USERNAME", "PLUTO_ME_ID", "PLUTO_MY_CA",
        "PLUTO_PROTO_STACK", "PLUTO_CONN_POLICY_SHUNT", "PLUTO_NM_", "PLUTO_SA_TYPE", "XAUTH_FAILED",
    ]

    /// Parses the hook's environment; `verbArgument` is argv[1] when pluto passes the verb there.
    public init(environment: [String: String], verbArgument: String? = nil) throws(PlutoEventError) {
        var reader = EnvironmentReader(environment)
        let verbText = environment["PLUTO_VERB"] ?? verbArgument
        guard let verbText else { throw PlutoEventError(variable: "PLUTO_VERB", problem: "missing: is this program run by pluto as leftupdown=?") }
        guard let verb = PlutoVerb(verbText) else {
            throw PlutoEventError(variable: "PLUTO_VERB", problem: "unknown verb \(quoted(verbText))")
        }
        self.verb = verb
        connection = try reader.text("PLUTO_CONNECTION", required: true) ?? UntrustedText("")!
        kind = ConnectionKind(environment["PLUTO_CONN_KIND"] ?? "")
        me = try reader.address("PLUTO_ME")
        peer = try reader.address("PLUTO_PEER")
        myClient = try reader.prefix("PLUTO_MY_CLIENT")
        peerClient = try reader.prefix("PLUTO_PEER_CLIENT")
        switch environment["PLUTO_CONN_ADDRFAMILY"] {
        case "ipv4": family = .ipv4
        case "ipv6": family = .ipv6
        case nil, "": family = verb.isIPv6 ? .ipv6 : me.family
        case let other?: throw PlutoEventError(variable: "PLUTO_CONN_ADDRFAMILY", problem: "\(quoted(other)) is neither ipv4 nor ipv6")
        }
        guard me.family == peer.family else {
            throw PlutoEventError(variable: "PLUTO_PEER", problem: "\(peer) is not of the same family as PLUTO_ME \(me)")
        }
        guard myClient.family == peerClient.family else {
            throw PlutoEventError(variable: "PLUTO_PEER_CLIENT", problem: "\(peerClient) is not of the same family as PLUTO_MY_CLIENT \(myClient)")
        }
        myID = try reader.text("PLUTO_MY_ID") ?? UntrustedText("")!
        peerID = try reader.text("PLUTO_PEER_ID") ?? UntrustedText("")!
        mySourceIP = try reader.optionalAddress("PLUTO_MY_SOURCEIP")
        nextHop = try reader.optionalAddress("PLUTO_NEXT_HOP")
        interface = try reader.interface("PLUTO_INTERFACE")
        metric = try reader.number("PLUTO_METRIC")
        mtu = try reader.number("PLUTO_MTU")
        markIn = try reader.mark("CONNMARK_IN")
        markOut = try reader.mark("CONNMARK_OUT")
        reqid = try reader.number("PLUTO_SA_REQID")
        spiIn = try reader.number("SPI_IN")
        spiOut = try reader.number("SPI_OUT")
        inBytes = try reader.counter("PLUTO_INBYTES")
        outBytes = try reader.counter("PLUTO_OUTBYTES")
        policy = Set((environment["PLUTO_CONN_POLICY"] ?? "").split(separator: "+").map(String.init))
        if let device = try reader.interface("VTI_IFACE") {
            vti = VTI(interface: device,
                      routing: try reader.flag("VTI_ROUTING"),
                      shared: try reader.flag("VTI_SHARED"),
                      address: try reader.optionalPrefix("VTI_IP"))
            guard markIn != nil || markOut != nil else {
                throw PlutoEventError(variable: "CONNMARK_IN", problem: "missing: a VTI conn (vti-interface=\(device)) needs mark=")
            }
        }
        unknownVariables = environment.keys.filter { name in
            (name.hasPrefix("PLUTO_") || name.hasPrefix("VTI_") || name.hasPrefix("CONNMARK_")) && !Self.known.contains(name)
        }.sorted()
    }
}

/// Reads one variable at a time and names it in every error.
private struct EnvironmentReader {
    let environment: [String: String]
    init(_ environment: [String: String]) { self.environment = environment }

    private func value(_ name: String) -> String? {
        guard let value = environment[name], !value.isEmpty else { return nil }
        return value
    }

    mutating func text(_ name: String, required: Bool = false) throws(PlutoEventError) -> UntrustedText? {
        guard let raw = environment[name] else {
            if required { throw PlutoEventError(variable: name, problem: "missing") }
            return nil
        }
        guard let text = UntrustedText(raw) else {
            throw PlutoEventError(variable: name, problem: "\(raw.utf8.count) bytes, longer than \(UntrustedText.maximumLength)")
        }
        return text
    }

    func address(_ name: String) throws(PlutoEventError) -> IPAddress {
        guard let address = try optionalAddress(name) else { throw PlutoEventError(variable: name, problem: "missing") }
        return address
    }

    func optionalAddress(_ name: String) throws(PlutoEventError) -> IPAddress? {
        guard let raw = value(name) else { return nil }
        guard let address = IPAddress(raw) else { throw PlutoEventError(variable: name, problem: "\(quoted(raw)) is not an IPv4 or IPv6 address") }
        return address
    }

    func prefix(_ name: String) throws(PlutoEventError) -> IPPrefix {
        guard let prefix = try optionalPrefix(name) else { throw PlutoEventError(variable: name, problem: "missing") }
        return prefix
    }

    func optionalPrefix(_ name: String) throws(PlutoEventError) -> IPPrefix? {
        guard let raw = value(name) else { return nil }
        guard let prefix = IPPrefix(raw) else { throw PlutoEventError(variable: name, problem: "\(quoted(raw)) is not an IPv4 or IPv6 prefix") }
        return prefix
    }

    func interface(_ name: String) throws(PlutoEventError) -> InterfaceName? {
        guard let raw = value(name), raw != "NULL" else { return nil }
        guard let interface = InterfaceName(raw) else {
            throw PlutoEventError(variable: name, problem: "\(quoted(raw)) is not a valid interface name (1-15 letters, digits, '.', '-' or '_')")
        }
        return interface
    }

    func number(_ name: String) throws(PlutoEventError) -> UInt32? {
        guard let raw = value(name) else { return nil }
        guard let number = parseUInt32(raw) else { throw PlutoEventError(variable: name, problem: "\(quoted(raw)) is not a 32-bit number") }
        return number
    }

    func counter(_ name: String) throws(PlutoEventError) -> UInt64? {
        guard let raw = value(name) else { return nil }
        guard raw.utf8.count <= 20, raw.utf8.allSatisfy({ $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9") }), let number = UInt64(raw) else {
            throw PlutoEventError(variable: name, problem: "\(quoted(raw)) is not a byte count")
        }
        return number
    }

    func mark(_ name: String) throws(PlutoEventError) -> FirewallMark? {
        guard let raw = value(name) else { return nil }
        guard let mark = FirewallMark(raw) else {
            throw PlutoEventError(variable: name, problem: "\(quoted(raw)) is not a mark (VALUE or VALUE/MASK, 32-bit decimal or 0x hex)")
        }
        return mark
    }

    func flag(_ name: String) throws(PlutoEventError) -> Bool {
        switch value(name) {
        case nil, "no": return false
        case "yes": return true
        case let other?: throw PlutoEventError(variable: name, problem: "\(quoted(other)) is neither yes nor no")
        }
    }
}

/// A value for an error message: escaped and cut short, because it may come from the peer.
func quoted(_ raw: String) -> String {
    let cut = raw.utf8.count > 64 ? String(decoding: raw.utf8.prefix(64), as: UTF8.self) : raw
    let escaped = UntrustedText(cut)?.escaped ?? "?"
    return "\"\(escaped)\"" + (raw.utf8.count > 64 ? "..." : "")
}
