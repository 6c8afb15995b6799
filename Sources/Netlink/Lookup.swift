internal import CLibmnl
import SystemPackage

/// One question of a `lookUp` batch: objects read by key, not dumped.
public enum LookupQuestion: Sendable, Hashable {
    /// The link of this name (without statistics).
    case linkNamed(String)
    /// The link with this index (without statistics).
    case linkIndexed(Int32)
    /// The routing table entry the kernel would use for `address` (`ip route get fibmatch`): the
    /// entry itself, with its prefix, table, protocol and device, not a route cache line.
    case routeMatch(InetAddress)
    /// The SA with this destination, SPI (host order) and ESP, looked up with this mark value (an
    /// SA without a mark matches any).
    case securityAssociation(destination: InetAddress, spi: UInt32, mark: UInt32)
}

/// The kernel's answer to one `LookupQuestion`.
public enum LookupAnswer: Sendable, Hashable {
    case link(Link)
    case route(Route)
    case securityAssociation(SecurityAssociation)
    /// There is no such object (no such link, no route, no SA).
    case absent
    /// The question could not be answered.
    case failed(NetlinkError)
}

extension NetlinkSocket {
    /// Asks every question in one `sendmsg` (as many as fit) and reads the answers: a handful of
    /// objects read in one round trip instead of one each. One answer per question, in order.
    /// Link and route questions need a `.route` socket, SA questions an `.xfrm` one.
    public func lookUp(_ questions: [LookupQuestion]) -> [LookupAnswer] {
        // One array of answers, filled as the replies arrive (each collection type the hook
        // instantiates costs it start-up time).
        var answers = [LookupAnswer](repeating: .absent, count: questions.count)
        var index = 0
        while index < questions.count {
            requestBuffer.reset()
            let first = index
            let firstSequence = nextSequence
            while index < questions.count {
                let request = Self.request(questions[index])
                do {
                    try requestBuffer.append(type: request.type, flags: request.flags | UInt16(NLM_F_REQUEST | NLM_F_ACK),
                                             sequence: takeSequence(), request.build)
                    index += 1
                } catch {
                    nextSequence &-= 1
                    guard requestBuffer.count == 0 else { break }  // full: ask what is in it first
                    // Alone it does not fit (it never happens with these questions): no answer.
                    answers[index] = .failed(NetlinkError(operation: request.operation, errno: error.errno))
                    index += 1
                }
            }
            let count = requestBuffer.count
            guard count > 0 else { continue }
            do {
                try socket.send(requestBuffer, operation: "look up \(count) objects")
                var outstanding = count
                while outstanding > 0 {
                    for message in try socket.receive(into: receiveBuffer, operation: "look up \(count) objects") {
                        let offset = Int(message.sequence &- firstSequence)
                        guard message.portID == 0 || message.portID == socket.portID, offset >= 0, offset < count else { continue }
                        let position = first + offset
                        guard message.type == UInt16(NLMSG_ERROR) else {
                            answers[position] = Self.answer(questions[position], message)
                            continue
                        }
                        outstanding -= 1
                        let ack = try decodeAck(message)
                        guard ack.errno != 0 else { continue }  // the ACK after the object (or after nothing: absent)
                        switch Errno(rawValue: ack.errno) {
                        // What the kernel says when the object is not there.
                        case .operationNotSupportedByDevice, .networkUnreachable, .noRouteToHost, .noSuchProcess, .noSuchFileOrDirectory:
                            answers[position] = .absent
                        default:
                            answers[position] = .failed(NetlinkError(operation: Self.request(questions[position]).operation,
                                                                     errno: Errno(rawValue: ack.errno), kernelMessage: ack.message, offset: ack.offset))
                        }
                    }
                }
            } catch {
                // The socket failed: what was not answered yet has no answer.
                for position in first..<(first + count) where answers[position] == .absent {
                    answers[position] = .failed(error)
                }
            }
        }
        return answers
    }

    /// The object in a reply message, or why it could not be read.
    private static func answer(_ question: LookupQuestion, _ message: RawMessage) -> LookupAnswer {
        do throws(NetlinkDecodingError) {
            switch question {
            case .linkNamed, .linkIndexed:
                guard message.type == UInt16(RTM_NEWLINK) else { return .absent }
                return .link(try Link(decoding: message.payload))
            case .routeMatch:
                guard message.type == UInt16(RTM_NEWROUTE) else { return .absent }
                return .route(try Route(decoding: message.payload))
            case .securityAssociation:
                guard message.type == UInt16(XFRM_MSG_NEWSA) else { return .absent }
                return .securityAssociation(try SecurityAssociation(decodingInfoAt: 0, of: message.payload))
            }
        } catch {
            // The text is made only here: formatting costs more than the lookup itself.
            return .failed(NetlinkError(operation: request(question).operation, errno: .badMessage, kernelMessage: error.description))
        }
    }

    private static func request(_ question: LookupQuestion) -> Request {
        switch question {
        case .linkNamed(let name):
            return Request(type: UInt16(RTM_GETLINK), flags: 0, operation: "get link \(name)") { writer throws(NetlinkError) in
                try writer.putFixed(ifinfomsg())
                try writer.put(UInt16(IFLA_IFNAME), string: name)
                try writer.put(UInt16(IFLA_EXT_MASK), UInt32(RTEXT_FILTER_SKIP_STATS))
            }
        case .linkIndexed(let index):
            return Request(type: UInt16(RTM_GETLINK), flags: 0, operation: "get link \(index)") { writer throws(NetlinkError) in
                var header = ifinfomsg()
                header.ifi_index = index
                try writer.putFixed(header)
                try writer.put(UInt16(IFLA_EXT_MASK), UInt32(RTEXT_FILTER_SKIP_STATS))
            }
        case .routeMatch(let address):
            return Request(type: UInt16(RTM_GETROUTE), flags: 0, operation: "get route fibmatch \(address)") { writer throws(NetlinkError) in
                var header = rtmsg()
                header.rtm_family = address.family.rawValue
                // Strict checking wants a full-length destination for a lookup.
                header.rtm_dst_len = UInt8(address.bytes.count * 8)
                header.rtm_flags = UInt32(RTM_F_FIB_MATCH)
                try writer.putFixed(header)
                try writer.put(UInt16(RTA_DST.rawValue), bytes: address.bytes)
            }
        case .securityAssociation(let destination, let spi, let mark):
            return Request(type: UInt16(XFRM_MSG_GETSA), flags: 0, operation: "get SA \(destination) spi \(spi)") { writer throws(NetlinkError) in
                var id = xfrm_usersa_id()
                withUnsafeMutableBytes(of: &id.daddr) { raw in
                    for (offset, byte) in destination.bytes.enumerated() where offset < raw.count { raw[offset] = byte }
                }
                id.spi = spi.bigEndian
                id.family = UInt16(destination.family.rawValue)
                id.proto = UInt8(IPPROTO_ESP)
                try writer.putFixed(id)
                if mark != 0 {
                    var value = xfrm_mark()
                    value.v = mark
                    value.m = 0xffff_ffff
                    try writer.put(UInt16(XFRMA_MARK.rawValue), bytes: withUnsafeBytes(of: value) { Array($0) })
                }
            }
        }
    }
}
