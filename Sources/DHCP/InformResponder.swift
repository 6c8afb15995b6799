public import VTIModel

// What vtid does with one datagram on a tunnel device's DHCP socket, as a pure function of the
// bytes, where they came from, and the time: the sockets around it (VTIDaemon) only carry bytes.

/// What became of one datagram. `label` names it in metrics and logs.
public enum InformOutcome: Sendable, Hashable {
    /// A DHCPACK was built for a client's DHCPINFORM.
    case answered
    /// Not a DHCP message vtid can read.
    case malformed(DHCPParseError)
    /// A well-formed message that is not a client's INFORM (a DISCOVER, a REQUEST, a reply...):
    /// vtid never leases addresses, pluto's pool does.
    case ignored(DHCPMessageType)
    /// An INFORM without ciaddr: nowhere to answer.
    case noClientAddress
    /// An INFORM whose ciaddr is not the address it came from: the answer would go to another host.
    case addressMismatch
    /// This client asked too often; the answer is skipped.
    case rateLimited
    /// The answer could not be built (too large for the client).
    case replyFailed(InformReplyError)

    public var label: String {
        switch self {
        case .answered: "answered"
        case .malformed: "malformed"
        case .ignored: "ignored"
        case .noClientAddress: "no-ciaddr"
        case .addressMismatch: "address-mismatch"
        case .rateLimited: "rate-limited"
        case .replyFailed: "reply-failed"
        }
    }
}

/// A token bucket per client address: `burst` answers at once, then one per `interval`. The table
/// holds at most `capacity` clients; a full table first forgets clients whose buckets are full
/// again (they lose nothing), and refuses newcomers while every entry is busy.
public struct ClientRateLimiter: Sendable {
    public let burst: Int
    public let interval: Duration
    public let capacity: Int
    private var buckets: [IPv4Address: (tokens: Double, at: ContinuousClock.Instant)] = [:]

    public init(burst: Int = 4, interval: Duration = .seconds(2), capacity: Int = 4096) {
        self.burst = max(1, burst)
        self.interval = interval
        self.capacity = max(1, capacity)
    }

    public var trackedClients: Int { buckets.count }

    private func refilled(_ bucket: (tokens: Double, at: ContinuousClock.Instant), now: ContinuousClock.Instant) -> Double {
        let elapsed = bucket.at.duration(to: now)
        let gained = elapsed <= .zero ? 0 : elapsed / interval
        return min(Double(burst), bucket.tokens + gained)
    }

    /// Whether `client` may have an answer now; takes a token if so.
    public mutating func allow(_ client: IPv4Address, now: ContinuousClock.Instant) -> Bool {
        if buckets[client] == nil && buckets.count >= capacity {
            buckets = buckets.filter { refilled($0.value, now: now) < Double(burst) }
            guard buckets.count < capacity else { return false }
        }
        let tokens = buckets[client].map { refilled($0, now: now) } ?? Double(burst)
        guard tokens >= 1 else {
            buckets[client] = (tokens, now)
            return false
        }
        buckets[client] = (tokens - 1, now)
        return true
    }
}

/// One conn's answers: its parameters and the clients' rate limits.
public struct InformResponder: Sendable {
    public var parameters: InformParameters
    public var limiter: ClientRateLimiter

    public init(parameters: InformParameters, limiter: ClientRateLimiter = ClientRateLimiter()) {
        self.parameters = parameters
        self.limiter = limiter
    }

    /// The answer to `datagram`, received from `source` (its IP source address), to send to
    /// `source`, port 68; nil with every outcome but `.answered`.
    public mutating func handle(_ datagram: some Collection<UInt8>, from source: IPv4Address, serverIdentifier: IPv4Address,
                                now: ContinuousClock.Instant) -> (outcome: InformOutcome, reply: [UInt8]?) {
        let request: DHCPPacket
        do {
            request = try DHCPPacket(parsing: datagram)
        } catch {
            return (.malformed(error), nil)
        }
        guard request.op == DHCPPacket.bootRequest, request.messageType == .inform else { return (.ignored(request.messageType), nil) }
        guard request.ciaddr.rawValue != 0 else { return (.noClientAddress, nil) }
        guard request.ciaddr == source else { return (.addressMismatch, nil) }
        guard limiter.allow(source, now: now) else { return (.rateLimited, nil) }
        do {
            return (.answered, try makeInformAck(for: request, serverIdentifier: serverIdentifier, parameters: parameters))
        } catch {
            return (.replyFailed(error), nil)
        }
    }
}
