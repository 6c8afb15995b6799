internal import CNftnl
internal import Glibc

/// vtid's own nf_tables table, `table inet vtictl`, and the TCP MSS clamp rules in its chain
/// `forward`, built with libnftnl and sent over a netfilter netlink socket (no `nft` process).
///
/// The chain is `type filter hook forward priority mangle` (-150): it sees forwarded packets before
/// any filter-priority (0) chain of the operator's, so a SYN is clamped whatever those chains do
/// with it later; it only rewrites the MSS option and accepts (policy accept), so it never decides
/// a packet's fate. Only this table is ever created, changed or read: other tables are not touched.
///
/// Each rule clamps one direction of one device for one family:
///
///     oifname "vti01" meta nfproto ipv4 tcp flags syn tcp option maxseg size > 1406
///         tcp option maxseg size set 1406 comment "vtictl:vti01"
///
/// The `> N` match makes it a clamp: an MSS already below N (a host behind a smaller MTU) is left
/// as it is, never raised. The comment names the device: vtid finds its own rules by it.
/// Not thread-safe: one owner at a time.
public final class MSSClampTable {
    public static let tableName = "vtictl"
    public static let chainName = "forward"
    /// The comment of a rule for `device`.
    public static func comment(for device: String) -> String { commentPrefix + device }
    static let commentPrefix = "vtictl:"

    private let socket: NFTSocket

    public init() throws(NFTablesError) {
        socket = try NFTSocket()
    }

    /// The rules in `inet vtictl forward`, in order; none when the table or chain is not there.
    public func listRules() throws(NFTablesError) -> [ListedRule] {
        try socket.dumpRules(table: Self.tableName, chain: Self.chainName)
    }

    /// The clamp rules of `device` become exactly `rules`, in one transaction: the table and chain
    /// are created if missing, the device's old rules (by their comment) deleted, the new ones
    /// appended. Rules of other devices are left alone.
    public func replaceRules(of device: String, with rules: [MSSClampRule]) throws(NFTablesError) {
        precondition(rules.allSatisfy { $0.device == device }, "rules for another device")
        let old = try listRules().filter { $0.device == device }
        var batch = NFTBatch()
        batch.ensureTableAndChain()
        for rule in old { batch.deleteRule(handle: rule.handle) }
        for rule in rules { batch.addRule(rule) }
        try socket.send(batch, operation: "set MSS clamp rules of \(device)")
    }

    /// Deletes the clamp rules of `device`; nothing to do when it has none.
    public func deleteRules(of device: String) throws(NFTablesError) {
        let old = try listRules().filter { $0.device == device }
        guard !old.isEmpty else { return }
        var batch = NFTBatch()
        for rule in old { batch.deleteRule(handle: rule.handle) }
        try socket.send(batch, operation: "delete MSS clamp rules of \(device)")
    }

    /// Deletes the whole table (what `nft delete table inet vtictl` does): true if it was there,
    /// false when it was absent already.
    @discardableResult
    public func deleteTable() throws(NFTablesError) -> Bool {
        var batch = NFTBatch()
        batch.deleteTable()
        do {
            try socket.send(batch, operation: "delete table inet vtictl")
            return true
        } catch where error.errno == ENOENT {
            return false
        }
    }

    /// libnftnl's text for `rule`'s expressions, the lines `nft --debug=netlink` prints for a rule
    /// (golden tests compare it with what nft made for the same rule).
    public static func debugText(of rule: MSSClampRule) -> String {
        let built = NFTRule(rule)
        defer { built.free() }
        return built.expressionText()
    }
}

/// One direction of one device for one family: TCP SYNs leaving (`outbound`, oifname) or
/// arriving (`inbound`, iifname) through `device` get an MSS of at most `mss`.
public struct MSSClampRule: Hashable, Sendable, CustomStringConvertible {
    public enum Direction: String, Sendable, Hashable, CaseIterable {
        /// Forwarded out through the device (`oifname`).
        case outbound
        /// Forwarded in from the device (`iifname`).
        case inbound
    }

    public enum Family: String, Sendable, Hashable, CaseIterable {
        case ipv4, ipv6
        var nfproto: UInt8 { self == .ipv4 ? UInt8(NFPROTO_IPV4) : UInt8(NFPROTO_IPV6) }
    }

    public var device: String
    public var direction: Direction
    public var family: Family
    public var mss: UInt16

    public init(device: String, direction: Direction, family: Family, mss: UInt16) {
        self.device = device
        self.direction = direction
        self.family = family
        self.mss = mss
    }

    /// The four rules that clamp both directions of `device`: IPv4 to `mss`, IPv6 to `mss6`.
    public static func both(device: String, mss: UInt16, mss6: UInt16) -> [MSSClampRule] {
        Direction.allCases.flatMap { direction in
            [MSSClampRule(device: device, direction: direction, family: .ipv4, mss: mss),
             MSSClampRule(device: device, direction: direction, family: .ipv6, mss: mss6)]
        }
    }

    public var description: String {
        "\(direction == .outbound ? "oifname" : "iifname") \"\(device)\" meta nfproto \(family.rawValue) "
            + "tcp flags syn tcp option maxseg size > \(mss) tcp option maxseg size set \(mss)"
    }
}

/// A rule found in vtid's chain.
public struct ListedRule: Sendable, Hashable {
    /// The kernel's handle, by which a rule is deleted.
    public var handle: UInt64
    /// The rule's comment, if it has one.
    public var comment: String?
    /// The clamp it is, when its expressions are exactly those vtid writes for its comment's
    /// device; nil for anything else (a rule changed by hand): the reconcile replaces it.
    public var clamp: MSSClampRule?

    /// The device its comment names (`vtictl:DEV`), whatever its expressions.
    public var device: String? {
        guard let comment, comment.hasPrefix(MSSClampTable.commentPrefix) else { return nil }
        return String(comment.dropFirst(MSSClampTable.commentPrefix.count))
    }
}

/// A failed nf_tables operation: what was tried and the kernel's errno.
public struct NFTablesError: Error, Sendable, CustomStringConvertible {
    public var operation: String
    public var errno: Int32

    public var description: String {
        "\(operation): \(String(cString: strerror(errno))) (errno \(errno))"
    }
}
