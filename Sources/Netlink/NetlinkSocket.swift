internal import CLibmnl
import SystemPackage

/// A request/response netlink socket (rtnetlink or XFRM) with sequence numbers, ACKs, dumps and
/// batches. Not thread-safe: one owner at a time (wrap it in an actor to share it).
public final class NetlinkSocket {
    /// Which netlink family to talk to.
    public enum Bus: Sendable {
        /// The corresponding C constant is `NETLINK_ROUTE`: links, addresses, routes, rules, neighbours.
        case route
        /// The corresponding C constant is `NETLINK_XFRM`: IPsec SAs and policies.
        case xfrm
        /// The corresponding C constant is `NETLINK_GENERIC`: families such as the kernel's L2TP.
        case generic

        var number: Int32 {
            switch self {
            case .route: NETLINK_ROUTE
            case .xfrm: NETLINK_XFRM
            case .generic: NETLINK_GENERIC
            }
        }
    }

    let bus: Bus
    let socket: MnlSocket
    var nextSequence: UInt32
    let receiveBuffer = ReceiveBuffer(capacity: 1 << 16)
    let requestBuffer = MessageBuffer(capacity: 1 << 16)
    private var receiveBufferEnlarged = false

    public init(_ bus: Bus) throws(NetlinkError) {
        self.bus = bus
        socket = try MnlSocket(bus: bus.number, groups: 0, operation: "open netlink socket")
        // Let the kernel filter route dumps by table and protocol (Linux 4.20+).
        socket.enableStrictChecking()
        nextSequence = UInt32.random(in: 1...0x7fff_ffff)
    }

    /// One message to send: its type, flags and a closure that writes its body.
    struct Request {
        var type: UInt16
        var flags: UInt16
        /// Human text for errors, e.g. "add route 10.0.0.0/24", made only when an error needs it
        /// (formatting a route costs more than sending it).
        var describe: () -> String
        var build: (inout MessageWriter) throws(NetlinkError) -> Void

        init(type: UInt16, flags: UInt16, operation: @autoclosure @escaping () -> String,
             build: @escaping (inout MessageWriter) throws(NetlinkError) -> Void) {
            self.type = type
            self.flags = flags
            self.describe = operation
            self.build = build
        }

        var operation: String { describe() }
    }

    /// The bytes `execute` would send for `request`, with sequence and port id zero; for tests.
    static func encodedBytes(of request: Request) throws(NetlinkError) -> [UInt8] {
        let buffer = MessageBuffer(capacity: 1 << 16)
        try buffer.append(type: request.type, flags: request.flags | UInt16(NLM_F_REQUEST | NLM_F_ACK), sequence: 0, request.build)
        return buffer.bytes
    }

    func takeSequence() -> UInt32 {
        defer { nextSequence &+= 1; if nextSequence == 0 { nextSequence = 1 } }
        return nextSequence
    }

    /// Sends one request and waits for its ACK; the kernel's refusal becomes a `NetlinkError`,
    /// except the errno `tolerated`, for which it returns false: an expected answer (an address
    /// that is there already), for which no error and no error text are made.
    @discardableResult
    func execute(_ request: Request, tolerating tolerated: Errno? = nil) throws(NetlinkError) -> Bool {
        try !exchange(request, flags: UInt16(NLM_F_ACK), tolerating: tolerated).tolerated
    }

    /// Sends many requests in as few `sendmsg` calls as fit, and returns one result per request
    /// (nil for success) in order. A failure of one request does not stop the others.
    func executeBatch(_ requests: [Request]) -> [NetlinkError?] {
        var results = [NetlinkError?](repeating: nil, count: requests.count)
        var index = 0
        while index < requests.count {
            requestBuffer.reset()
            let firstSequence = nextSequence
            var chunkEnd = index
            var sentIndices: [Int] = []  // request index of each message in the buffer
            // Fill the buffer until the next request does not fit.
            while chunkEnd < requests.count {
                let request = requests[chunkEnd]
                do {
                    try requestBuffer.append(
                        type: request.type, flags: request.flags | UInt16(NLM_F_REQUEST | NLM_F_ACK),
                        sequence: takeSequence(), request.build)
                    sentIndices.append(chunkEnd)
                    chunkEnd += 1
                } catch {
                    nextSequence &-= 1
                    guard requestBuffer.count == 0 else { break }  // full: send what we have
                    // Alone it does not fit: that request fails, the batch goes on.
                    results[chunkEnd] = NetlinkError(operation: request.operation, errno: error.errno)
                    chunkEnd += 1
                }
            }
            defer { index = chunkEnd }
            guard let firstSent = sentIndices.first else { continue }
            if sentIndices.count > 64 && !receiveBufferEnlarged {
                // Room for the ACKs of a full batch buffer, with error texts (the default holds a
                // few hundred); asked only when a batch is that large, a syscall less for the hook.
                socket.setReceiveBuffer(bytes: 1 << 20)
                receiveBufferEnlarged = true
            }
            do {
                try socket.send(requestBuffer, operation: requests[firstSent].operation)
                try collectAcks(first: firstSequence, count: sentIndices.count) { offset, ack in
                    let request = requests[sentIndices[offset]]
                    if ack.errno != 0 {
                        results[sentIndices[offset]] = NetlinkError(
                            operation: request.operation, errno: Errno(rawValue: ack.errno),
                            kernelMessage: ack.message, offset: ack.offset)
                    }
                }
            } catch {
                // The socket itself failed: we cannot tell which of these the kernel applied.
                for position in sentIndices where results[position] == nil {
                    results[position] = NetlinkError(operation: requests[position].operation, errno: error.errno,
                                                     kernelMessage: error.kernelMessage)
                }
            }
        }
        return results
    }

    /// Reads until every sequence number in `first ..< first + count` has its ACK or error.
    private func collectAcks(
        first: UInt32, count: Int, _ record: (Int, KernelAck) -> Void
    ) throws(NetlinkError) {
        var outstanding = count
        while outstanding > 0 {
            for message in try socket.receive(into: receiveBuffer, operation: "receive netlink ACK") {
                let offset = Int(message.sequence &- first)
                guard message.portID == 0 || message.portID == socket.portID,
                      offset >= 0, offset < count, message.type == UInt16(NLMSG_ERROR)
                else { continue }
                record(offset, try decodeAck(message))
                outstanding -= 1
            }
        }
    }

    /// Sends a single GET request and returns the kernel's reply messages (before its ACK).
    func query(_ request: Request) throws(NetlinkError) -> [RawMessage] {
        try exchange(request, flags: UInt16(NLM_F_ACK), tolerating: nil).messages
    }

    /// Sends a dump request and returns every reply message, retrying if the kernel says the dump
    /// was interrupted by a concurrent change (`NLM_F_DUMP_INTR`).
    func dump(_ request: Request) throws(NetlinkError) -> [RawMessage] {
        for _ in 0..<5 {
            let reply = try exchange(request, flags: UInt16(NLM_F_DUMP), tolerating: nil)
            if !reply.interrupted { return reply.messages }
        }
        throw NetlinkError(operation: request.operation, errno: .resourceTemporarilyUnavailable,
                           kernelMessage: "dump kept being interrupted by concurrent changes")
    }

    /// Sends one request and collects the replies to it until NLMSG_DONE or the ACK; a kernel
    /// error becomes a thrown `NetlinkError`, except `tolerated`, which ends it with `tolerated` set.
    private func exchange(_ request: Request, flags: UInt16, tolerating tolerated: Errno?) throws(NetlinkError)
        -> (messages: [RawMessage], interrupted: Bool, tolerated: Bool) {
        requestBuffer.reset()
        let sequence = takeSequence()
        try requestBuffer.append(type: request.type, flags: request.flags | UInt16(NLM_F_REQUEST) | flags,
                                 sequence: sequence, request.build)
        try socket.send(requestBuffer, operation: request.operation)
        var collected: [RawMessage] = []
        var interrupted = false
        while true {
            for message in try socket.receive(into: receiveBuffer, operation: request.operation)
            where message.sequence == sequence {
                if message.flags & UInt16(NLM_F_DUMP_INTR) != 0 { interrupted = true }
                switch Int32(message.type) {
                case NLMSG_DONE:
                    return (collected, interrupted, false)
                case NLMSG_ERROR:
                    let ack = try decodeAck(message)
                    if ack.errno == 0 { return (collected, interrupted, false) }
                    if ack.errno == tolerated?.rawValue { return (collected, interrupted, true) }
                    throw NetlinkError(operation: request.operation, errno: Errno(rawValue: ack.errno),
                                       kernelMessage: ack.message, offset: ack.offset)
                default:
                    collected.append(message)
                }
            }
        }
    }
}

/// A socket that receives kernel notifications (link, route, XFRM changes) from multicast groups.
public final class NetlinkSubscription {
    let bus: NetlinkSocket.Bus
    private let socket: MnlSocket
    private let receiveBuffer = ReceiveBuffer(capacity: 1 << 16)

    init(bus: NetlinkSocket.Bus, groups: [UInt32], receiveBufferBytes: Int32) throws(NetlinkError) {
        self.bus = bus
        socket = try MnlSocket(bus: bus.number, groups: 0, operation: "open netlink notification socket")
        socket.setReceiveBuffer(bytes: receiveBufferBytes)
        for group in groups {
            try socket.join(group: group, operation: "join netlink multicast group \(group)")
        }
    }

    /// The file descriptor, for callers that multiplex with poll or an event loop.
    public var fileDescriptor: Int32 { socket.fileDescriptor }

    /// Waits up to `timeoutMilliseconds` (-1: forever) and returns what arrived, possibly nothing.
    /// Throws with `isOverrun` when the kernel dropped notifications: the caller must resync.
    func receive(timeoutMilliseconds: Int32) throws(NetlinkError) -> [RawMessage] {
        guard try socket.waitReadable(milliseconds: timeoutMilliseconds) else { return [] }
        return try socket.receive(into: receiveBuffer, operation: "receive netlink notifications")
    }
}

/// Decodes an `NLMSG_ERROR` payload: `struct nlmsgerr` and, with extended ACK, its TLVs.
func decodeAck(_ message: RawMessage) throws(NetlinkError) -> KernelAck {
    do throws(NetlinkDecodingError) {
        let error = try loadFixed(nlmsgerr.self, from: message.payload, what: "nlmsgerr")
        // The kernel sends 0 or a negative errno; negating Int32.min would trap (found by fuzzing).
        guard error.error != .min else { throw NetlinkDecodingError(what: "nlmsgerr: error \(error.error)", offset: 0) }
        var ack = KernelAck(errno: -error.error, message: nil, offset: nil)
        guard message.flags & UInt16(NLM_F_ACK_TLVS) != 0 else { return ack }
        var tlvStart = MemoryLayout<nlmsgerr>.size
        if message.flags & UInt16(NLM_F_CAPPED) == 0 {
            tlvStart += (Int(error.msg.nlmsg_len) - MemoryLayout<nlmsghdr>.size + 3) & ~3
        }
        var decoder = AttributeDecoder(message.payload, from: tlvStart)
        while let attribute = decoder.next() {
            switch Int(attribute.type) {
            case Int(NLMSGERR_ATTR_MSG.rawValue): ack.message = attribute.string
            case Int(NLMSGERR_ATTR_OFFS.rawValue): ack.offset = try attribute.uint32()
            default: break
            }
        }
        return ack
    } catch {
        throw NetlinkError(operation: "decode netlink ACK", errno: .badMessage, kernelMessage: error.description)
    }
}
