public import VTIModel

// The answer to a DHCPINFORM (RFC 2131 §4.3.5): a DHCPACK with the configuration parameters and
// nothing about an address (no yiaddr, no lease time), sent to the client's ciaddr.

/// One classless static route (RFC 3442, option 121; Microsoft's option 249 has the same bytes).
public struct ClasslessRoute: Sendable, Hashable, CustomStringConvertible {
    public let destination: IPv4Address
    public let prefixLength: Int
    /// The next hop; 0.0.0.0 means on-link (RFC 3442 "Local Subnet Routes").
    public let router: IPv4Address

    /// Nil for a length over 32, or a destination with bits set past the length (RFC 3442: the
    /// significant octets alone go on the wire, so such a destination cannot be sent).
    public init?(destination: IPv4Address, prefixLength: Int, router: IPv4Address) {
        guard (0...32).contains(prefixLength) else { return nil }
        let mask: UInt32 = prefixLength == 0 ? 0 : UInt32.max << (32 - prefixLength)
        guard destination.rawValue & ~mask == 0 else { return nil }
        self.destination = destination
        self.prefixLength = prefixLength
        self.router = router
    }

    public var description: String { "\(destination)/\(prefixLength) via \(router)" }

    /// Width, significant octets of the destination, router (RFC 3442 "Classless Route Option Format").
    public var encoded: [UInt8] {
        [UInt8(prefixLength)] + destination.bytes.prefix((prefixLength + 7) / 8) + router.bytes
    }
}

/// Option 121's (and 249's) data for these routes, in order.
public func encodeClasslessRoutes(_ routes: [ClasslessRoute]) -> [UInt8] {
    routes.flatMap(\.encoded)
}

/// Why an option 121/249 value cannot be read.
public enum ClasslessRouteError: Error, Sendable, Hashable {
    /// A width over 32, or a descriptor or router cut short at the end of the data.
    case malformed(offset: Int)
    /// A destination with bits set past its width (RFC 3442 says to ignore the whole option).
    case nonZeroHostBits(offset: Int)
}

/// Reads option 121's (or 249's) data: what a client does with it.
public func decodeClasslessRoutes(_ data: [UInt8]) throws(ClasslessRouteError) -> [ClasslessRoute] {
    var routes: [ClasslessRoute] = []
    var index = 0
    while index < data.count {
        let width = Int(data[index])
        let significant = (width + 7) / 8
        guard width <= 32, index + 1 + significant + 4 <= data.count else { throw .malformed(offset: index) }
        var destination = [UInt8](data[index + 1..<index + 1 + significant])
        destination += [UInt8](repeating: 0, count: 4 - significant)
        let routerStart = index + 1 + significant
        let router = Array(data[routerStart..<routerStart + 4])
        guard let route = ClasslessRoute(destination: IPv4Address(octets: destination), prefixLength: width,
                                         router: IPv4Address(octets: router))
        else { throw .nonZeroHostBits(offset: index) }
        routes.append(route)
        index = routerStart + 4
    }
    return routes
}

extension IPv4Address {
    /// From four bytes in network order.
    init(octets: [UInt8]) {
        self.init(rawValue: octets.reduce(0) { $0 << 8 | UInt32($1) })
    }
}

/// A domain name that cannot go into option 15 or 119.
public struct DomainNameError: Error, Sendable, Hashable, CustomStringConvertible {
    public var name: String
    public var problem: String
    public var description: String { "\(name): \(problem)" }
}

/// The labels of a domain name for the wire: letters, digits, hyphens and underscores, 1-63 bytes
/// a label, 253 characters at most (a trailing dot is allowed and dropped).
public func domainLabels(_ name: String) throws(DomainNameError) -> [[UInt8]] {
    var text = Array(name.utf8)
    if text.last == UInt8(ascii: ".") { text.removeLast() }
    guard !text.isEmpty, text.count <= 253 else { throw DomainNameError(name: name, problem: "must be 1 to 253 characters") }
    let labels = text.split(separator: UInt8(ascii: "."), omittingEmptySubsequences: false).map(Array.init)
    for label in labels {
        guard (1...63).contains(label.count) else { throw DomainNameError(name: name, problem: "each label must be 1 to 63 characters") }
        let allowed = label.allSatisfy { byte in
            (UInt8(ascii: "a")...UInt8(ascii: "z")).contains(byte | 0x20) || (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(byte)
                || byte == UInt8(ascii: "-") || byte == UInt8(ascii: "_")
        }
        guard allowed else { throw DomainNameError(name: name, problem: "only letters, digits, - and _ may appear in a label") }
    }
    return labels
}

/// Option 119's data (RFC 3397): the names in DNS wire form, each suffix already written replaced
/// by a compression pointer to its first occurrence (offsets from the start of the data).
public func encodeDomainSearch(_ names: [String]) throws(DomainNameError) -> [UInt8] {
    var data: [UInt8] = []
    // Suffixes (labels in lower case: DNS names compare without case) to where they start.
    var written: [[[UInt8]]: Int] = [:]
    for name in names {
        let labels = try domainLabels(name)
        let folded = labels.map { label in label.map { (0x41...0x5a).contains($0) ? $0 | 0x20 : $0 } }
        var index = 0
        while index < labels.count {
            let suffix = Array(folded[index...])
            if let offset = written[suffix] {
                data += [0xc0 | UInt8(offset >> 8), UInt8(offset & 0xff)]
                break
            }
            // A pointer has 14 bits of offset.
            if data.count < 0x4000 { written[suffix] = data.count }
            data.append(UInt8(labels[index].count))
            data += labels[index]
            index += 1
        }
        if index == labels.count { data.append(0) }
    }
    return data
}

/// An IPv4 destination: a network address and a prefix length, no host bits set.
public struct IPv4Network: Sendable, Hashable, CustomStringConvertible {
    public let address: IPv4Address
    public let length: Int

    public init?(address: IPv4Address, length: Int) {
        guard ClasslessRoute(destination: address, prefixLength: length, router: address) != nil else { return nil }
        self.address = address
        self.length = length
    }

    public var description: String { "\(address)/\(length)" }
}

/// What vtid says in its answer to an INFORM on one conn's devices (vtid.yaml `dhcp_inform`).
public struct InformParameters: Sendable, Hashable {
    /// What goes into the router field of each route.
    public enum Router: Sendable, Hashable {
        /// The server identifier: the gateway's address the client talks to.
        case server
        /// 0.0.0.0 (RFC 3442: the destination is on the link).
        case onLink
        case address(IPv4Address)
    }

    public var routes: [IPv4Network]
    public var router: Router
    public var dnsServers: [IPv4Address]
    public var domainName: String?
    public var searchDomains: [String]

    public init(routes: [IPv4Network], router: Router = .server, dnsServers: [IPv4Address] = [],
                domainName: String? = nil, searchDomains: [String] = []) {
        self.routes = routes
        self.router = router
        self.dnsServers = dnsServers
        self.domainName = domainName
        self.searchDomains = searchDomains
    }

    /// The routes with their router field for this server identifier.
    public func classlessRoutes(serverIdentifier: IPv4Address) -> [ClasslessRoute] {
        let router: IPv4Address = switch self.router {
        case .server: serverIdentifier
        case .onLink: IPv4Address(rawValue: 0)
        case .address(let address): address
        }
        return routes.compactMap { ClasslessRoute(destination: $0.address, prefixLength: $0.length, router: router) }
    }

    /// The options after the message type and server identifier, in the order they are sent.
    public func options(serverIdentifier: IPv4Address) throws(DomainNameError) -> [(code: UInt8, value: [UInt8])] {
        var options: [(code: UInt8, value: [UInt8])] = []
        if !dnsServers.isEmpty { options.append((DHCPOptionCode.domainNameServers, dnsServers.flatMap(\.bytes))) }
        if let domainName {
            _ = try domainLabels(domainName)
            var text = Array(domainName.utf8)
            if text.last == UInt8(ascii: ".") { text.removeLast() }
            options.append((DHCPOptionCode.domainName, text))
        }
        if !searchDomains.isEmpty { options.append((DHCPOptionCode.domainSearch, try encodeDomainSearch(searchDomains))) }
        let routes = encodeClasslessRoutes(classlessRoutes(serverIdentifier: serverIdentifier))
        if !routes.isEmpty {
            options.append((DHCPOptionCode.classlessStaticRoutes, routes))
            options.append((DHCPOptionCode.microsoftClasslessStaticRoutes, routes))
        }
        return options
    }
}

/// Why no answer could be built.
public enum InformReplyError: Error, Sendable, Hashable, CustomStringConvertible {
    /// The request is not a client's DHCPINFORM.
    case notAnInform
    /// The INFORM has no ciaddr: there is nowhere to send the answer (RFC 2131 §4.3.5).
    case noClientAddress
    /// The answer would exceed what the client takes (576-byte datagrams unless it says more).
    case tooLarge(size: Int, limit: Int)
    case badDomainName(DomainNameError)

    public var description: String {
        switch self {
        case .notAnInform: "not a client's DHCPINFORM"
        case .noClientAddress: "the INFORM has no ciaddr"
        case .tooLarge(let size, let limit): "the answer would be \(size) bytes, over the \(limit) the client takes"
        case .badDomainName(let error): "\(error)"
        }
    }
}

/// The DHCPACK answering `request`, a client's DHCPINFORM, from `serverIdentifier`.
///
/// RFC 2131 §4.3.5 and table 3: op BOOTREPLY; htype, hlen, xid, flags, giaddr, chaddr and ciaddr
/// from the request; yiaddr, siaddr, secs and hops zero; no lease time (51); message type 53 =
/// DHCPACK and server identifier 54 first, then the parameters, END, and zeros up to BOOTP's
/// 300-byte minimum. An option over 255 bytes is split into consecutive instances (RFC 3396).
public func makeInformAck(for request: DHCPPacket, serverIdentifier: IPv4Address,
                          parameters: InformParameters) throws(InformReplyError) -> [UInt8] {
    guard request.op == DHCPPacket.bootRequest, request.messageType == .inform else { throw .notAnInform }
    guard request.ciaddr.rawValue != 0 else { throw .noClientAddress }
    var packet = [UInt8](repeating: 0, count: DHCPPacket.fixedLength)
    packet[0] = DHCPPacket.bootReply
    packet[1] = request.htype
    packet[2] = request.hlen
    func put32(_ value: UInt32, at offset: Int) {
        for index in 0..<4 { packet[offset + index] = UInt8(truncatingIfNeeded: value >> (24 - 8 * index)) }
    }
    put32(request.xid, at: 4)
    packet[10] = UInt8(request.flags >> 8)
    packet[11] = UInt8(truncatingIfNeeded: request.flags)
    put32(request.ciaddr.rawValue, at: 12)
    put32(request.giaddr.rawValue, at: 24)
    packet.replaceSubrange(28..<44, with: request.chaddr)
    packet += DHCPPacket.magicCookie
    let rest: [(code: UInt8, value: [UInt8])]
    do {
        rest = try parameters.options(serverIdentifier: serverIdentifier)
    } catch {
        throw .badDomainName(error)
    }
    let options: [(code: UInt8, value: [UInt8])] = [
        (DHCPOptionCode.messageType, [DHCPMessageType.ack.rawValue]),
        (DHCPOptionCode.serverIdentifier, serverIdentifier.bytes),
    ] + rest
    for (code, value) in options {
        var remaining = value[...]
        repeat {
            let part = remaining.prefix(255)
            packet += [code, UInt8(part.count)] + part
            remaining = remaining.dropFirst(part.count)
        } while !remaining.isEmpty
    }
    packet.append(DHCPOptionCode.end)
    if packet.count < 300 { packet += [UInt8](repeating: 0, count: 300 - packet.count) }
    // The client's limit is for the whole IP datagram: 20 bytes of IP and 8 of UDP header.
    let limit = min(request.maximumMessageSize ?? 576, DHCPPacket.maximumLength) - 28
    guard packet.count <= limit else { throw .tooLarge(size: packet.count, limit: limit) }
    return packet
}

/// The size of the answer these parameters make for a client that takes any size (the server
/// identifier is four bytes whatever it is); nil if a name cannot be encoded. For checking a
/// configuration before any client asks.
public func informAnswerSize(_ parameters: InformParameters) -> Int? {
    var bytes = [UInt8](repeating: 0, count: DHCPPacket.fixedLength)
    bytes[0] = DHCPPacket.bootRequest
    bytes[12] = 10
    bytes += DHCPPacket.magicCookie + [DHCPOptionCode.messageType, 1, DHCPMessageType.inform.rawValue,
                                       DHCPOptionCode.maximumMessageSize, 2, 0x05, 0xdc, DHCPOptionCode.end]
    guard let request = try? DHCPPacket(parsing: bytes) else { return nil }
    return (try? makeInformAck(for: request, serverIdentifier: IPv4Address(rawValue: 0), parameters: parameters))?.count
}
