public import VTIModel
internal import CLibmnl

/// A policy-routing rule (`RTM_NEWRULE`): traffic matching the selectors looks up `table`.
/// Source-based routing of a public prefix routed over the VPN is `from PREFIX table N`.
public struct RoutingRule: Hashable, Sendable, CustomStringConvertible {
    public var family: AddressFamily
    public var priority: UInt32?
    public var source: InetPrefix?
    public var destination: InetPrefix?
    public var table: RouteTable
    public var firewallMark: UInt32?
    public var firewallMask: UInt32?
    /// `FRA_PROTOCOL`: who installed the rule, as for routes.
    public var `protocol`: RouteProtocol
    /// `not` (FIB_RULE_INVERT): the rule applies to traffic its selectors do not match. Read from
    /// dumps; rules this module adds are never inverted.
    public var isInverted = false
    /// What a matching packet meets, when it is not a table lookup (read from dumps).
    public var action = RuleAction.lookup

    public init(
        family: AddressFamily, priority: UInt32? = nil, source: InetPrefix? = nil, destination: InetPrefix? = nil,
        table: RouteTable, firewallMark: UInt32? = nil, firewallMask: UInt32? = nil, protocol: RouteProtocol = .boot
    ) {
        self.family = family
        self.priority = priority
        self.source = source
        self.destination = destination
        self.table = table
        self.firewallMark = firewallMark
        self.firewallMask = firewallMask
        self.protocol = `protocol`
    }

    public var description: String {
        var text = ""
        if let priority { text += "\(priority): " }
        text += "from \(source.map(String.init(describing:)) ?? "all")"
        if let destination { text += " to \(destination)" }
        if let firewallMark { text += " fwmark \(firewallMark)" }
        return text + " lookup \(table)"
    }
}

/// `fib_rule_hdr.action`.
public enum RuleAction: Hashable, Sendable, CustomStringConvertible {
    case lookup, goto, nop, blackhole, unreachable, prohibit, other(UInt8)

    init(_ raw: UInt8) {
        switch Int32(raw) {
        case Int32(FR_ACT_TO_TBL): self = .lookup
        case Int32(FR_ACT_GOTO): self = .goto
        case Int32(FR_ACT_NOP): self = .nop
        case Int32(FR_ACT_BLACKHOLE): self = .blackhole
        case Int32(FR_ACT_UNREACHABLE): self = .unreachable
        case Int32(FR_ACT_PROHIBIT): self = .prohibit
        default: self = .other(raw)
        }
    }

    public var description: String {
        switch self {
        case .lookup: "lookup"
        case .goto: "goto"
        case .nop: "nop"
        case .blackhole: "blackhole"
        case .unreachable: "unreachable"
        case .prohibit: "prohibit"
        case .other(let raw): "action \(raw)"
        }
    }
}

extension NetlinkSocket {
    /// Rules of one family. Equivalent to `ip rule show` (or `ip -6 rule show`).
    public func rules(family: AddressFamily) throws(NetlinkError) -> [RoutingRule] {
        let messages = try dump(Request(type: UInt16(RTM_GETRULE), flags: 0, operation: "list rules") { writer throws(NetlinkError) in
            var header = fib_rule_hdr()
            header.family = family.rawValue
            try writer.putFixed(header)
        })
        return try decodeAll(messages, type: RTM_NEWRULE, operation: "list rules", RoutingRule.init(decoding:))
    }

    /// Adds a rule; fails with `.fileExists` for an identical one. Equivalent to `ip rule add`.
    public func addRule(_ rule: RoutingRule) throws(NetlinkError) {
        try execute(ruleRequest(RTM_NEWRULE, flags: UInt16(NLM_F_CREATE | NLM_F_EXCL), rule, verb: "add"))
    }

    /// Deletes the rule matching these selectors. Equivalent to `ip rule del`.
    public func deleteRule(_ rule: RoutingRule) throws(NetlinkError) {
        try execute(ruleRequest(RTM_DELRULE, flags: 0, rule, verb: "delete"))
    }

    func ruleRequest<T: BinaryInteger>(_ type: T, flags: UInt16, _ rule: RoutingRule, verb: String) -> Request {
        Request(type: UInt16(type), flags: flags, operation: "\(verb) rule \(rule)") { writer throws(NetlinkError) in
            var header = fib_rule_hdr()
            header.family = rule.family.rawValue
            header.src_len = rule.source?.length ?? 0
            header.dst_len = rule.destination?.length ?? 0
            // A delete leaves the action unspecified so that it matches, as `ip rule del` does.
            header.action = type == RTM_NEWRULE ? UInt8(FR_ACT_TO_TBL) : 0
            header.table = UInt8(truncatingIfNeeded: rule.table.rawValue < 256 ? rule.table.rawValue : 0)
            try writer.putFixed(header)
            if let priority = rule.priority { try writer.put(UInt16(FRA_PRIORITY), priority) }
            if let source = rule.source { try writer.put(UInt16(FRA_SRC), bytes: source.address.bytes) }
            if let destination = rule.destination { try writer.put(UInt16(FRA_DST), bytes: destination.address.bytes) }
            if let mark = rule.firewallMark { try writer.put(UInt16(FRA_FWMARK), mark) }
            if let mask = rule.firewallMask { try writer.put(UInt16(FRA_FWMASK), mask) }
            if rule.table.rawValue >= 256 { try writer.put(UInt16(FRA_TABLE), rule.table.rawValue) }
            try writer.put(UInt16(FRA_PROTOCOL), rule.protocol.rawValue)
        }
    }
}

extension RoutingRule {
    init(decoding payload: [UInt8]) throws(NetlinkDecodingError) {
        let header = try loadFixed(fib_rule_hdr.self, from: payload, what: "fib_rule_hdr")
        guard let family = AddressFamily(rawValue: header.family) else {
            throw NetlinkDecodingError(what: "rule family \(header.family)", offset: 0)
        }
        self.init(family: family, table: RouteTable(rawValue: UInt32(header.table)), protocol: .unspecified)
        isInverted = header.flags & UInt32(FIB_RULE_INVERT) != 0
        action = RuleAction(header.action)
        var decoder = AttributeDecoder(payload, from: alignedSize(of: fib_rule_hdr.self))
        while let attribute = decoder.next() {
            switch Int(attribute.type) {
            case Int(FRA_PRIORITY): priority = try attribute.uint32()
            case Int(FRA_TABLE): table = RouteTable(rawValue: try attribute.uint32())
            case Int(FRA_FWMARK): firewallMark = try attribute.uint32()
            case Int(FRA_FWMASK): firewallMask = try attribute.uint32()
            case Int(FRA_PROTOCOL): `protocol` = RouteProtocol(rawValue: try attribute.uint8())
            case Int(FRA_SRC): source = InetPrefix(try decodeAddress(attribute, family: family), length: header.src_len)
            case Int(FRA_DST): destination = InetPrefix(try decodeAddress(attribute, family: family), length: header.dst_len)
            default: break
            }
        }
        try decoder.finish()
    }
}
