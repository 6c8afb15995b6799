/// What pluto asks the hook to do.
///
/// libreswan 4.x and 5.x send `prepare|route|unroute|up|down` + `-host|-client` + optional `-v6`
/// (`-host` when the local selector is the host's own address; `-v6` for IPv6 selectors).
/// libreswan 5.x's experimental asynchronous mode sends compound verbs without a suffix, made of
/// `prepare`, `route` and `up` in that order (`prepare-route-up`, `route-up`, `up`, ...), which
/// run those steps one after the other. Anything else is `.unknown`: the hook logs it and exits 0
/// so that a newer pluto's new verb does not fail a tunnel.
public enum PlutoVerb: Sendable, Hashable, CustomStringConvertible {
    /// One step of a conn's life.
    public enum Step: String, Sendable, Hashable, CaseIterable {
        /// Before routing: the device must exist (4.10 sends it after `up` for a new Child SA).
        case prepare
        /// The conn is routed: its policies (and for VTI, its routes) are installed.
        case route
        /// The conn's routing goes: sent when the conn (or instance) is deleted.
        case unroute
        /// A Child SA is up.
        case up
        /// A Child SA is gone; the conn stays and may come back.
        case down
    }

    /// Whether the local selector is the host's own address (`-host`) or a subnet (`-client`).
    public enum Scope: String, Sendable, Hashable {
        case host, client
    }

    /// A verb pluto sends. `scope` is nil for 5.x's compound verbs, which carry no suffix.
    case known(steps: [Step], scope: Scope?, isIPv6: Bool)
    /// Anything else, as received (cut to 64 bytes).
    case unknown(String)

    /// Never fails: what is not a known verb is `.unknown`.
    public init(_ text: some StringProtocol) {
        self = PlutoVerb.parse(String(text)) ?? .unknown(String(decoding: text.utf8.prefix(64), as: UTF8.self))
    }

    private static let compoundOrder: [Step] = [.prepare, .route, .up]

    private static func parse(_ text: String) -> PlutoVerb? {
        if let single = parseSingleStep(text) { return single }
        guard text.utf8.count <= 64 else { return nil }
        var words = text.split(separator: "-", omittingEmptySubsequences: false).map(String.init)
        var isIPv6 = false
        if words.last == "v6" {
            isIPv6 = true
            words.removeLast()
        }
        var scope: Scope?
        if let last = words.last, let parsed = Scope(rawValue: last) {
            scope = parsed
            words.removeLast()
        } else if isIPv6 {
            return nil
        }
        var steps: [Step] = []
        for word in words {
            guard let step = Step(rawValue: word) else { return nil }
            steps.append(step)
        }
        guard !steps.isEmpty else { return nil }
        if steps.count > 1 {
            // Compound: distinct steps from prepare, route, up, in that order.
            let positions = steps.compactMap { compoundOrder.firstIndex(of: $0) }
            guard positions.count == steps.count, zip(positions, positions.dropFirst()).allSatisfy({ $0 < $1 }) else { return nil }
        }
        return .known(steps: steps, scope: scope, isIPv6: isIPv6)
    }

    /// The verbs every pluto sends (one step, a scope, maybe `-v6`), read from the text's UTF-8:
    /// no splitting, no characters, no table (the hook runs this for every call, and each part of
    /// the standard library it touches for the first time costs page faults).
    private static func parseSingleStep(_ text: String) -> PlutoVerb? {
        var rest = text.utf8[...]
        /// Whether `rest` ends with `suffix`; if so, `rest` loses it.
        func dropSuffix(_ suffix: String) -> Bool {
            let count = suffix.utf8.count
            guard rest.count >= count, rest.suffix(count).elementsEqual(suffix.utf8) else { return false }
            rest = rest.dropLast(count)
            return true
        }
        let isIPv6 = dropSuffix("-v6")
        let scope: Scope
        if dropSuffix("-client") {
            scope = .client
        } else if dropSuffix("-host") {
            scope = .host
        } else {
            return nil
        }
        let step: Step
        if rest.elementsEqual("up".utf8) {
            step = .up
        } else if rest.elementsEqual("down".utf8) {
            step = .down
        } else if rest.elementsEqual("route".utf8) {
            step = .route
        } else if rest.elementsEqual("unroute".utf8) {
            step = .unroute
        } else if rest.elementsEqual("prepare".utf8) {
            step = .prepare
        } else {
            return nil
        }
        return .known(steps: [step], scope: scope, isIPv6: isIPv6)
    }

    /// The steps to plan, in order; none for an unknown verb.
    public var steps: [Step] {
        if case .known(let steps, _, _) = self { return steps }
        return []
    }

    public var isUnknown: Bool {
        if case .unknown = self { return true }
        return false
    }

    /// The verb as pluto spells it; an unknown verb escaped, for logs.
    public var description: String {
        switch self {
        case .known(let steps, let scope, let isIPv6):
            var text = steps.map(\.rawValue).joined(separator: "-")
            if let scope { text += "-" + scope.rawValue }
            if isIPv6 { text += "-v6" }
            return text
        case .unknown(let text):
            return UntrustedText(text)?.escaped ?? "?"
        }
    }
}
