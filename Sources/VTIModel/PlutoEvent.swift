/// One call of the updown hook, parsed from the environment pluto gives it, every value typed and
/// checked.
///
/// How the variables arrive differs by version, and both are handled:
/// - libreswan 4.x (Debian 12's 4.10) builds one command line, `PLUTO_VERB='up-client' ...
///   /path/to/hook`, and runs it with `sh -c`; the shell turns the quoted assignments into our
///   environment. So that the line stays quoted, pluto writes IDs and CA names with `' \ " `` ` `` $`
///   and unprintable bytes as `\NNN` octal escapes, which the single quotes keep: we decode them
///   (`UntrustedText.pluto(escaped:)`). Values that arrive still wrapped in single quotes (a
///   command line from pluto's debug log replayed by hand) are unwrapped before typed parsing.
/// - libreswan 5.x passes a real environment to `execve` (directly with `updown-config=exec`,
///   otherwise through `/bin/sh -c HOOK`), escaping only unprintable bytes in IDs.
/// Neither passes arguments; a verb given as an argument (by hand, or a wrapper) wins over
/// `PLUTO_VERB`.
public struct PlutoEvent: Sendable, Hashable {
    /// `PLUTO_CONN_KIND`. Road-warrior instances are `CK_INSTANCE`; in 4.x the last call for a
    /// deleted instance says `CK_GOING_AWAY` (5.x dropped that kind).
    public enum ConnectionKind: Sendable, Hashable {
        case permanent, instance, template, group, goingAway
        /// A kind this parser does not know (e.g. 5.x's `CK_LABELED_CHILD`), as sent.
        case other(String)

        init(_ text: String) {
            // Compared as UTF-8, without characters: the hook parses this at every call.
            let name = text.utf8.starts(with: "CK_".utf8) ? text.utf8.dropFirst(3) : text.utf8[...]
            if name.elementsEqual("INSTANCE".utf8) {
                self = .instance
            } else if name.elementsEqual("PERMANENT".utf8) {
                self = .permanent
            } else if name.elementsEqual("TEMPLATE".utf8) {
                self = .template
            } else if name.elementsEqual("GROUP".utf8) {
                self = .group
            } else if name.elementsEqual("GOING_AWAY".utf8) {
                self = .goingAway
            } else {
                self = .other(String(decoding: text.utf8.prefix(64), as: UTF8.self))
            }
        }

        /// One of several connections cut from one template: its remote end is not fixed, so a
        /// VTI device serving it must accept any remote.
        public var isInstance: Bool { self == .instance || self == .goingAway }
    }

    /// The VTI settings of a route-based conn (`vti-interface=`, `vti-routing=`, `vti-shared=`,
    /// `leftvti=`), with the marks that become the device's keys.
    public struct VTI: Sendable, Hashable {
        public var interface: InterfaceName
        public var routing: Bool
        public var shared: Bool
        /// `VTI_IP`: the address `leftvti=` puts on the device.
        public var address: IPPrefix?

        public init(interface: InterfaceName, routing: Bool, shared: Bool, address: IPPrefix? = nil) {
            self.interface = interface
            self.routing = routing
            self.shared = shared
            self.address = address
        }
    }

    /// The XFRM interface of an `ipsec-interface=N` conn: pluto says `PLUTO_XFRMI_ROUTE=yes` and
    /// names the device `PLUTO_VIRT_INTERFACE=ipsecN`; the if_id is only implied by the name
    /// (docs/xfrm-interfaces.md).
    public struct XfrmInterface: Sendable, Hashable {
        public var name: InterfaceName
        public var interfaceID: UInt32

        public init(name: InterfaceName, interfaceID: UInt32) {
            self.name = name
            self.interfaceID = interfaceID
        }
    }

    public var verb: PlutoVerb
    /// `PLUTO_CONNECTION`: the base name, shared by all instances of a road-warrior conn.
    public var connection: UntrustedText
    public var kind: ConnectionKind
    /// The family of the IKE/ESP end points (`PLUTO_CONN_ADDRFAMILY`, `PLUTO_ME`).
    public var family: AddressFamily
    public var me: IPAddress
    public var peer: IPAddress
    /// The traffic selectors; their family may differ from the end points' (IPv6 in IPv4).
    public var myClient: IPPrefix
    public var peerClient: IPPrefix
    public var myID: UntrustedText
    /// Chosen by the remote side: data only.
    public var peerID: PeerID
    /// `PLUTO_MY_SOURCEIP`: the address mode config gave us (a road-warrior client); the server
    /// gets none.
    public var mySourceIP: IPAddress?
    public var nextHop: IPAddress?
    /// `PLUTO_INTERFACE`, without an alias label (`eth0:1` is `eth0`); nil when pluto says `NULL`.
    public var interface: InterfaceName?
    public var metric: UInt32?
    /// `PLUTO_MTU` (`mtu=`): the operator's MTU for this conn.
    public var mtu: Int?
    public var markIn: FirewallMark?
    public var markOut: FirewallMark?
    public var vti: VTI?
    public var xfrmInterface: XfrmInterface?
    public var reqid: UInt32?
    /// `SPI_IN`/`SPI_OUT` as pluto names them (SPI_IN is the SPI of the outbound SA, the one the
    /// peer chose); 0 (`0x0`) when there is no SA, as in `unroute`.
    public var spiIn: UInt32?
    public var spiOut: UInt32?
    public var inBytes: UInt64?
    public var outBytes: UInt64?
    /// `PLUTO_ADDTIME`: when the SA was added (seconds since the epoch), 0 without an SA.
    public var addTime: UInt64?
    /// `PLUTO_CONN_POLICY` as sent (cut to 1 KB).
    public var policyText: String
    /// `PLUTO_CONN_POLICY` split at `+`, e.g. `IKEv2`, `PSK`, `TUNNEL` (split when asked: no
    /// decision of the hook depends on it).
    public var policy: [String] {
        policyText.split(separator: "+").prefix(64).map { String(decoding: $0.utf8.prefix(64), as: UTF8.self) }
    }
    /// `PLUTO_CFG_SERVER`/`PLUTO_CFG_CLIENT`: this end hands out (or receives) mode config.
    public var isModeConfigServer: Bool
    public var isModeConfigClient: Bool
    /// `PLUTO_*`, `VTI_*` and `CONNMARK_*` names this parser does not know, for one log line.
    public var unknownVariables: [String]

    /// Whether the local selector is the host address: the verb's suffix, or for 5.x's compound
    /// verbs (no suffix) the same test pluto makes.
    public var scope: PlutoVerb.Scope {
        if case .known(_, let scope?, _) = verb { return scope }
        return myClient.isHost && myClient.address == me ? .host : .client
    }

    /// What makes two calls the same event, for deduplication: applying it twice must not change
    /// anything more.
    public var eventKey: PlutoEventKey {
        PlutoEventKey(verb: verb.description, connection: connection, peer: peer, peerClient: peerClient,
                      spiIn: spiIn ?? 0, spiOut: spiOut ?? 0)
    }
}

/// Identifies one pluto call: a repeated call has the same key.
public struct PlutoEventKey: Sendable, Hashable, CustomStringConvertible {
    public var verb: String
    public var connection: UntrustedText
    public var peer: IPAddress
    public var peerClient: IPPrefix
    public var spiIn: UInt32
    public var spiOut: UInt32

    public var description: String {
        "\(verb) \(connection.escaped) \(peer) \(peerClient) 0x\(String(spiIn, radix: 16))/0x\(String(spiOut, radix: 16))"
    }
}

/// A variable pluto passed that the hook cannot accept: one line naming the variable, with the
/// value escaped and cut short.
public struct PlutoEventError: Error, Sendable, Hashable, CustomStringConvertible {
    public var variable: String
    public var problem: String
    /// The verb is one this hook does not know: log and exit 0, the tunnel must not fail for it.
    public var isUnknownVerb: Bool

    init(variable: String, problem: String, isUnknownVerb: Bool = false) {
        self.variable = variable
        self.problem = problem
        self.isUnknownVerb = isUnknownVerb
    }

    public var description: String { "\(variable): \(problem)" }
}

extension PlutoEvent {
    /// Variables this parser reads or deliberately ignores (sent by libreswan 4.10 or 5.x); anything
    /// else with the prefixes PLUTO_, VTI_ or CONNMARK_ is reported as unknown.
    static let knownNames: [StaticString] = [
        "PLUTO_VERB", "PLUTO_CONNECTION", "PLUTO_CONN_KIND", "PLUTO_CONN_ADDRFAMILY", "PLUTO_CLIENT_FAMILY",
        "PLUTO_ME", "PLUTO_PEER", "PLUTO_MY_CLIENT", "PLUTO_PEER_CLIENT", "PLUTO_MY_ID", "PLUTO_PEER_ID",
        "PLUTO_MY_SOURCEIP", "PLUTO_NEXT_HOP", "PLUTO_INTERFACE", "PLUTO_METRIC", "PLUTO_MTU", "CONNMARK_IN",
        "CONNMARK_OUT", "VTI_IFACE", "VTI_ROUTING", "VTI_SHARED", "VTI_IP", "PLUTO_SA_REQID", "SPI_IN",
        "SPI_OUT", "PLUTO_INBYTES", "PLUTO_OUTBYTES", "PLUTO_ADDTIME", "PLUTO_CONN_POLICY",
        "PLUTO_CFG_SERVER", "PLUTO_CFG_CLIENT", "PLUTO_VERSION", "PLUTO_CONNECTION_TYPE",
        "PLUTO_IS_PEER_CISCO", "PLUTO_MY_CLIENT_MASK", "PLUTO_MY_CLIENT_NET", "PLUTO_PEER_CLIENT_MASK",
        "PLUTO_PEER_CLIENT_NET", "PLUTO_MY_PORT", "PLUTO_MY_PROTOCOL", "PLUTO_PEER_PORT",
        "PLUTO_PEER_PROTOCOL", "PLUTO_NM_CONFIGURED", "PLUTO_PEER_BANNER", "PLUTO_PEER_CA",
        "PLUTO_PEER_DNS_INFO", "PLUTO_PEER_DOMAIN_INFO", "PLUTO_SA_TYPE", "PLUTO_STACK",
        "PLUTO_VIRT_INTERFACE", "PLUTO_XFRMI_ROUTE", "PLUTO_XFRMI_FWMARK", "PLUTO_USERNAME",
        "PLUTO_MOBIKE_EVENT", "PLUTO_DNS_RESOLVER",
        // libreswan 5.4's real environment (updown.c's build_updown_environ): pluto's PATH,
        // UPDOWN_DEBUG=yes with plutodebug=updown, and what only other setups send.
        "PATH", "UPDOWN_DEBUG", "INTERFACE_IP", "NFLOG", "CAT", "XAUTH_FAILED",
    ]

    /// Whether this parser reads or deliberately ignores the variable.
    public static func isKnown(_ name: String) -> Bool {
        var name = name
        return name.withUTF8 { isKnown(name: UnsafeRawBufferPointer($0)) }
    }

    /// The same for a name's bytes, so that the hook can pass over its environment's known
    /// variables without making a String of each.
    public static func isKnown(name: UnsafeRawBufferPointer) -> Bool {
        knownNames.contains { known in
            known.utf8CodeUnitCount == name.count
                && UnsafeRawBufferPointer(start: known.utf8Start, count: known.utf8CodeUnitCount).elementsEqual(name)
        }
    }

    /// Parses the hook's environment; `verbArgument` is argv[1] when the verb comes as an argument.
    /// An unknown verb throws before anything else is read (`isUnknownVerb`), since a newer pluto
    /// may send other variables with it.
    public init(environment: [String: String], verbArgument: String? = nil) throws(PlutoEventError) {
        try self.init(variables: PlutoVariables(environment), verbArgument: verbArgument)
    }

    /// Parses the variables from any source: the hook reads its own environment one variable at a
    /// time, without a dictionary of all of them.
    public init(variables: PlutoVariables, verbArgument: String? = nil) throws(PlutoEventError) {
        let reader = EnvironmentReader(variables)
        let verbText = verbArgument ?? variables.value("PLUTO_VERB").flatMap { $0.isEmpty ? nil : $0 }
        guard let verbText else {
            throw PlutoEventError(variable: "PLUTO_VERB", problem: "missing: is this program run by pluto (leftupdown=)?")
        }
        verb = PlutoVerb(verbText)
        if verb.isUnknown {
            throw PlutoEventError(variable: "PLUTO_VERB", problem: "unknown verb \(quoted(verbText))", isUnknownVerb: true)
        }
        connection = try reader.text("PLUTO_CONNECTION", required: true)
        kind = ConnectionKind(variables.value("PLUTO_CONN_KIND") ?? "")
        me = try reader.address("PLUTO_ME")
        peer = try reader.address("PLUTO_PEER")
        myClient = try reader.prefix("PLUTO_MY_CLIENT")
        peerClient = try reader.prefix("PLUTO_PEER_CLIENT")
        family = try reader.family("PLUTO_CONN_ADDRFAMILY") ?? me.family
        guard family == me.family else {
            throw PlutoEventError(variable: "PLUTO_CONN_ADDRFAMILY", problem: "says \(family) but PLUTO_ME \(me) is \(me.family)")
        }
        guard peer.family == me.family else {
            throw PlutoEventError(variable: "PLUTO_PEER", problem: "\(peer) is not of the same family as PLUTO_ME \(me)")
        }
        guard myClient.family == peerClient.family else {
            throw PlutoEventError(variable: "PLUTO_PEER_CLIENT", problem: "\(peerClient) is not of the same family as PLUTO_MY_CLIENT \(myClient)")
        }
        if let clientFamily = try reader.family("PLUTO_CLIENT_FAMILY"), clientFamily != myClient.family {
            throw PlutoEventError(variable: "PLUTO_CLIENT_FAMILY", problem: "says \(clientFamily) but PLUTO_MY_CLIENT \(myClient) is \(myClient.family)")
        }
        if case .known(_, let scope?, let isIPv6) = verb {
            // -host-v6 follows the end points' family. A -client verb may follow either: pluto 4.10
            // sends up-client-v6 for IPv4 selectors between IPv6 end points (recorded in the test
            // bed, hook-4in6-site-to-site). Only a suffix that fits neither family is refused.
            let verbFamily: AddressFamily = isIPv6 ? .ipv6 : .ipv4
            let fits = scope == .host ? me.family == verbFamily : (me.family == verbFamily || myClient.family == verbFamily)
            guard fits else {
                let (variable, subject) = scope == .host ? ("PLUTO_ME", "\(me)") : ("PLUTO_MY_CLIENT", "\(myClient)")
                throw PlutoEventError(variable: variable, problem: "\(subject) is \(scope == .host ? me.family : myClient.family) but the verb \(verb) says \(verbFamily)")
            }
        }
        myID = try reader.plutoEscapedText("PLUTO_MY_ID")
        peerID = try reader.plutoEscapedText("PLUTO_PEER_ID")
        mySourceIP = try reader.optionalAddress("PLUTO_MY_SOURCEIP")
        if let mySourceIP, mySourceIP.family != myClient.family {
            throw PlutoEventError(variable: "PLUTO_MY_SOURCEIP", problem: "\(mySourceIP) is not of the same family as PLUTO_MY_CLIENT \(myClient)")
        }
        nextHop = try reader.optionalAddress("PLUTO_NEXT_HOP")
        if let nextHop, nextHop.family != me.family {
            throw PlutoEventError(variable: "PLUTO_NEXT_HOP", problem: "\(nextHop) is not of the same family as PLUTO_ME \(me)")
        }
        interface = try reader.interface("PLUTO_INTERFACE", droppingAlias: true)
        metric = try reader.number("PLUTO_METRIC")
        mtu = try reader.mtu("PLUTO_MTU")
        markIn = try reader.mark("CONNMARK_IN")
        markOut = try reader.mark("CONNMARK_OUT")
        reqid = try reader.number("PLUTO_SA_REQID")
        spiIn = try reader.number("SPI_IN")
        spiOut = try reader.number("SPI_OUT")
        inBytes = try reader.counter("PLUTO_INBYTES")
        outBytes = try reader.counter("PLUTO_OUTBYTES")
        addTime = try reader.counter("PLUTO_ADDTIME")
        let policy = reader.unquoted("PLUTO_CONN_POLICY")
        policyText = policy.utf8.count <= 1024 ? policy : String(decoding: policy.utf8.prefix(1024), as: UTF8.self)
        isModeConfigServer = try reader.flag("PLUTO_CFG_SERVER")
        isModeConfigClient = try reader.flag("PLUTO_CFG_CLIENT")
        vti = nil
        if let device = try reader.interface("VTI_IFACE", droppingAlias: false) {
            // Both keys are needed: the stock script ignores vti-interface= without them, we say so.
            for (variable, mark) in [("CONNMARK_IN", markIn), ("CONNMARK_OUT", markOut)] where mark == nil {
                throw PlutoEventError(variable: variable, problem: "missing: a VTI conn (vti-interface=\(device)) needs mark= (or mark-in= and mark-out=)")
            }
            vti = VTI(interface: device,
                      routing: try reader.flag("VTI_ROUTING"),
                      shared: try reader.flag("VTI_SHARED"),
                      address: try reader.optionalPrefix("VTI_IP"))
        }
        xfrmInterface = nil
        if reader.unquoted("PLUTO_XFRMI_ROUTE") == "yes" {
            guard vti == nil else {
                throw PlutoEventError(variable: "PLUTO_XFRMI_ROUTE", problem: "yes, but the conn has a VTI too (VTI_IFACE): one device per conn")
            }
            let name = reader.unquoted("PLUTO_VIRT_INTERFACE")
            // libreswan computes the name from the number: "ipsec" and its decimal digits.
            guard name.utf8.starts(with: "ipsec".utf8), let device = InterfaceName(name),
                  let number = UInt32(String(decoding: name.utf8.dropFirst(5), as: UTF8.self)) else {
                throw PlutoEventError(variable: "PLUTO_VIRT_INTERFACE", problem: "\(quoted(name)) is not ipsecN, the device of ipsec-interface=N (PLUTO_XFRMI_ROUTE=yes)")
            }
            xfrmInterface = XfrmInterface(name: device, interfaceID: XfrmInterfaceSpec.interfaceID(number: number))
        }
        unknownVariables = variables.names().filter { name in
            (name.hasPrefix("PLUTO_") || name.hasPrefix("VTI_") || name.hasPrefix("CONNMARK_")) && !Self.isKnown(name)
        }.sorted().prefix(32).map { String(decoding: $0.utf8.prefix(64), as: UTF8.self) }
    }
}

/// Where an event's variables come from: a dictionary (vtid, which receives them from the hook;
/// tests), or a lookup into the process environment (the hook itself).
public struct PlutoVariables: Sendable {
    /// The value of one variable, nil when unset.
    public let value: @Sendable (String) -> String?
    /// The names of the variables, for reporting the unknown ones: all of them, or at least all
    /// that `PlutoEvent.isKnown` does not accept.
    public let names: @Sendable () -> [String]

    public init(value: @escaping @Sendable (String) -> String?, names: @escaping @Sendable () -> [String]) {
        self.value = value
        self.names = names
    }

    public init(_ environment: [String: String]) {
        self.init(value: { environment[$0] }, names: { Array(environment.keys) })
    }
}

/// Reads one variable at a time and names it in every error.
private struct EnvironmentReader {
    let variables: PlutoVariables
    init(_ variables: PlutoVariables) { self.variables = variables }

    /// The value without one pair of enclosing single quotes (the 4.x command-line form, replayed);
    /// empty when unset. Only for values that are parsed into types afterwards.
    func unquoted(_ name: String) -> String {
        guard let value = variables.value(name) else { return "" }
        let utf8 = value.utf8
        if utf8.count >= 2, utf8.first == UInt8(ascii: "'"), utf8.last == UInt8(ascii: "'") {
            return String(decoding: utf8.dropFirst().dropLast(), as: UTF8.self)
        }
        return value
    }

    private func value(_ name: String) -> String? {
        let value = unquoted(name)
        return value.isEmpty ? nil : value
    }

    func text(_ name: String, required: Bool = false) throws(PlutoEventError) -> UntrustedText {
        guard let raw = variables.value(name) else {
            if required { throw PlutoEventError(variable: name, problem: "missing") }
            return .empty
        }
        guard let text = UntrustedText(raw) else {
            throw PlutoEventError(variable: name, problem: "\(raw.utf8.count) bytes, longer than \(UntrustedText.maximumLength)")
        }
        if required && text.isEmpty { throw PlutoEventError(variable: name, problem: "empty") }
        return text
    }

    func plutoEscapedText(_ name: String) throws(PlutoEventError) -> UntrustedText {
        guard let raw = variables.value(name) else { return .empty }
        guard let text = UntrustedText.pluto(escaped: raw) else {
            throw PlutoEventError(variable: name, problem: "\(raw.utf8.count) bytes, longer than \(UntrustedText.maximumLength) once decoded")
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

    func family(_ name: String) throws(PlutoEventError) -> AddressFamily? {
        switch value(name) {
        case nil: return nil
        case "ipv4": return .ipv4
        case "ipv6": return .ipv6
        case let other?: throw PlutoEventError(variable: name, problem: "\(quoted(other)) is neither ipv4 nor ipv6")
        }
    }

    func interface(_ name: String, droppingAlias: Bool) throws(PlutoEventError) -> InterfaceName? {
        guard var raw = value(name), raw != "NULL" else { return nil }
        if droppingAlias, let colon = raw.firstIndex(of: ":") {
            // pluto may name an address label; routes go on the device (the stock script's ${X%:*}).
            raw = String(raw[..<colon])
        }
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

    func mtu(_ name: String) throws(PlutoEventError) -> Int? {
        guard let raw = value(name) else { return nil }
        guard let number = parseUInt32(raw), (68...65535).contains(number) else {
            throw PlutoEventError(variable: name, problem: "\(quoted(raw)) is not an MTU (68-65535)")
        }
        return Int(number)
    }

    func counter(_ name: String) throws(PlutoEventError) -> UInt64? {
        guard let raw = value(name) else { return nil }
        guard raw.utf8.count <= 20, raw.utf8.allSatisfy(isDecimalDigit), let number = UInt64(raw) else {
            throw PlutoEventError(variable: name, problem: "\(quoted(raw)) is not a 64-bit count")
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

    /// `yes`/`no` (VTI_*) or `1`/`0` (PLUTO_CFG_*); unset is no.
    func flag(_ name: String) throws(PlutoEventError) -> Bool {
        switch value(name) {
        case nil, "no", "0": return false
        case "yes", "1": return true
        case let other?: throw PlutoEventError(variable: name, problem: "\(quoted(other)) is neither yes nor no")
        }
    }
}

/// A value for an error message: escaped and cut short, because it may come from the peer.
func quoted(_ raw: String) -> String {
    let limit = 64
    let cut = raw.utf8.count > limit ? String(decoding: raw.utf8.prefix(limit), as: UTF8.self) : raw
    let escaped = UntrustedText(cut)?.escaped ?? "?"
    return "\"\(escaped)\"" + (raw.utf8.count > limit ? "..." : "")
}
