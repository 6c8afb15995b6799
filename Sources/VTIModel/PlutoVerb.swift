/// What pluto asks the hook to do: `prepare|route|unroute|up|down` + `-host|-client` + `-v6`, or
/// libreswan 5.x's compound verbs (`prepare-route-up-client`), which run several steps in order.
public struct PlutoVerb: Sendable, Hashable, CustomStringConvertible {
    public enum Step: String, Sendable, Hashable, CaseIterable {
        /// Before routing: make the device exist (libreswan runs it before route).
        case prepare
        /// The conn is routed (policy or route installed, no SA yet).
        case route
        /// The conn's routing is removed: on delete, or when it goes down for good.
        case unroute
        /// A Child SA is up.
        case up
        /// A Child SA is gone.
        case down
    }

    /// The local selector is the host's own address (`-host`) or a subnet behind it (`-client`).
    public enum Scope: String, Sendable, Hashable {
        case host, client
    }

    public let steps: [Step]
    public let scope: Scope
    public let isIPv6: Bool
    /// The verb as pluto sent it, for logs.
    public let text: String

    /// Parses a verb; nil for anything pluto is not known to send (the hook logs and ignores it).
    public init?(_ text: some StringProtocol) {
        let words = String(text).split(separator: "-", omittingEmptySubsequences: false).map(String.init)
        guard !words.isEmpty, text.utf8.count <= 64 else { return nil }
        var steps: [Step] = []
        var scope: Scope?
        var isIPv6 = false
        for (index, word) in words.enumerated() {
            if let step = Step(rawValue: word), scope == nil, !isIPv6 {
                guard !steps.contains(step) else { return nil }
                steps.append(step)
            } else if let parsed = Scope(rawValue: word), scope == nil, !steps.isEmpty {
                scope = parsed
            } else if word == "v6", index == words.count - 1, !steps.isEmpty {
                isIPv6 = true
            } else {
                return nil
            }
        }
        guard !steps.isEmpty else { return nil }
        self.steps = steps
        // 5.x's compound verbs may come without a scope; they concern the client selectors.
        self.scope = scope ?? .client
        self.isIPv6 = isIPv6
        self.text = String(text)
    }

    public var description: String { text }
}
