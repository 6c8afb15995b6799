public import VTIModel
internal import CLibmnl

/// Who installed a route (`rtm_protocol`). vtid tags its own routes with one number so it can find
/// them again and so routing daemons can redistribute them.
public struct RouteProtocol: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
    public let rawValue: UInt8
    public init(rawValue: UInt8) { self.rawValue = rawValue }
    /// The corresponding C constant is `RTPROT_UNSPEC`; in a dump filter it means "any".
    public static let unspecified = RouteProtocol(rawValue: 0)
    /// The corresponding C constant is `RTPROT_KERNEL`.
    public static let kernel = RouteProtocol(rawValue: 2)
    /// The corresponding C constant is `RTPROT_BOOT`: what `ip route add` uses by default.
    public static let boot = RouteProtocol(rawValue: 3)
    /// The corresponding C constant is `RTPROT_STATIC`.
    public static let `static` = RouteProtocol(rawValue: 4)
    public var description: String { String(rawValue) }
}

/// `rtm_scope` / `ifa_scope`.
public struct RouteScope: RawRepresentable, Hashable, Sendable {
    public let rawValue: UInt8
    public init(rawValue: UInt8) { self.rawValue = rawValue }
    /// The corresponding C constant is `RT_SCOPE_UNIVERSE`.
    public static let universe = RouteScope(rawValue: 0)
    /// The corresponding C constant is `RT_SCOPE_LINK`.
    public static let link = RouteScope(rawValue: 253)
    /// The corresponding C constant is `RT_SCOPE_HOST`.
    public static let host = RouteScope(rawValue: 254)
    /// The corresponding C constant is `RT_SCOPE_NOWHERE`; deletes use it to match any scope.
    public static let nowhere = RouteScope(rawValue: 255)
}

/// `rtm_type`.
public struct RouteType: RawRepresentable, Hashable, Sendable {
    public let rawValue: UInt8
    public init(rawValue: UInt8) { self.rawValue = rawValue }
    /// The corresponding C constant is `RTN_UNICAST`.
    public static let unicast = RouteType(rawValue: 1)
    /// The corresponding C constant is `RTN_LOCAL`.
    public static let local = RouteType(rawValue: 2)
    /// The corresponding C constant is `RTN_BLACKHOLE`.
    public static let blackhole = RouteType(rawValue: 6)
    /// The corresponding C constant is `RTN_UNREACHABLE`.
    public static let unreachable = RouteType(rawValue: 7)
}

/// A routing table number; tables above 255 travel in `RTA_TABLE`.
public struct RouteTable: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
    public let rawValue: UInt32
    public init(rawValue: UInt32) { self.rawValue = rawValue }
    /// The corresponding C constant is `RT_TABLE_UNSPEC`; in a dump filter it means "any".
    public static let unspecified = RouteTable(rawValue: 0)
    /// The corresponding C constant is `RT_TABLE_MAIN`.
    public static let main = RouteTable(rawValue: 254)
    /// The corresponding C constant is `RT_TABLE_LOCAL`.
    public static let local = RouteTable(rawValue: 255)
    public var description: String { rawValue == 254 ? "main" : String(rawValue) }
}

/// A route (`RTM_NEWROUTE`), IPv4 or IPv6.
public struct Route: Hashable, Sendable, CustomStringConvertible {
    public var destination: InetPrefix
    public var table: RouteTable
    public var `protocol`: RouteProtocol
    public var scope: RouteScope
    public var type: RouteType
    public var outputInterface: Int32?
    public var gateway: InetAddress?
    public var preferredSource: InetAddress?
    /// `RTA_PRIORITY`, the metric.
    public var metric: UInt32?
    /// `RTAX_MTU` inside `RTA_METRICS`.
    public var mtu: UInt32?

    public init(
        destination: InetPrefix, table: RouteTable = .main, protocol: RouteProtocol = .boot,
        scope: RouteScope? = nil, type: RouteType = .unicast, outputInterface: Int32? = nil,
        gateway: InetAddress? = nil, preferredSource: InetAddress? = nil, metric: UInt32? = nil, mtu: UInt32? = nil
    ) {
        self.destination = destination
        self.table = table
        self.protocol = `protocol`
        // An IPv4 unicast route without a gateway is on-link, as iproute2 decides it.
        self.scope = scope ?? (gateway == nil && type == .unicast && destination.family == .ipv4 ? .link : .universe)
        self.type = type
        self.outputInterface = outputInterface
        self.gateway = gateway
        self.preferredSource = preferredSource
        self.metric = metric
        self.mtu = mtu
    }

    public var family: AddressFamily { destination.family }

    public var description: String {
        var text = "\(destination)"
        if let gateway { text += " via \(gateway)" }
        if let outputInterface { text += " dev #\(outputInterface)" }
        if table != .main { text += " table \(table)" }
        text += " proto \(`protocol`)"
        if let metric { text += " metric \(metric)" }
        return text
    }
}

/// Which routes a dump returns; the kernel filters by table and protocol, we check again.
public struct RouteFilter: Sendable {
    public var family: AddressFamily
    public var table: RouteTable
    public var `protocol`: RouteProtocol
    public var outputInterface: Int32?

    public init(family: AddressFamily, table: RouteTable = .unspecified, protocol: RouteProtocol = .unspecified, outputInterface: Int32? = nil) {
        self.family = family
        self.table = table
        self.protocol = `protocol`
        self.outputInterface = outputInterface
    }

    func matches(_ route: Route) -> Bool {
        (table == .unspecified || route.table == table)
            && (`protocol` == .unspecified || route.protocol == `protocol`)
            && (outputInterface == nil || route.outputInterface == outputInterface)
    }
}

extension NetlinkSocket {
    /// Routes matching the filter. Equivalent to `ip route show table T proto P [dev D]`.
    public func routes(_ filter: RouteFilter) throws(NetlinkError) -> [Route] {
        let messages = try dump(Request(type: UInt16(RTM_GETROUTE), flags: 0, operation: "list routes") { writer throws(NetlinkError) in
            var header = rtmsg()
            header.rtm_family = filter.family.rawValue
            header.rtm_protocol = filter.protocol.rawValue
            header.rtm_table = UInt8(truncatingIfNeeded: filter.table.rawValue < 256 ? filter.table.rawValue : 0)
            try writer.putFixed(header)
            if filter.table != .unspecified { try writer.put(UInt16(RTA_TABLE.rawValue), filter.table.rawValue) }
            if let index = filter.outputInterface { try writer.put(UInt16(RTA_OIF.rawValue), UInt32(bitPattern: index)) }
        })
        let all = try decodeAll(messages, type: RTM_NEWROUTE, operation: "list routes", Route.init(decoding:))
        return all.filter(filter.matches)
    }

    /// Adds a route; fails with `.fileExists` if it is there. Equivalent to `ip route add`.
    public func addRoute(_ route: Route) throws(NetlinkError) {
        try execute(routeRequest(.add, route))
    }

    /// Adds or replaces a route. Sends CREATE|REPLACE; equivalent to `ip route replace`.
    public func replaceRoute(_ route: Route) throws(NetlinkError) {
        try execute(routeRequest(.replace, route))
    }

    /// Deletes a route. Equivalent to `ip route del`.
    public func deleteRoute(_ route: Route) throws(NetlinkError) {
        try execute(routeRequest(.delete, route))
    }

    /// What a batch does with each route.
    public enum RouteChange: Sendable {
        case add, replace, delete
    }

    /// Applies one change to many routes in batched `sendmsg` calls; one result per route, nil for success.
    public func changeRoutes(_ change: RouteChange, _ routes: [Route]) -> [NetlinkError?] {
        executeBatch(routes.map { routeRequest(change, $0) })
    }

    func routeRequest(_ change: RouteChange, _ route: Route) -> Request {
        let (type, flags, verb): (Int32, Int32, String) = switch change {
        case .add: (Int32(RTM_NEWROUTE), NLM_F_CREATE | NLM_F_EXCL, "add")
        case .replace: (Int32(RTM_NEWROUTE), NLM_F_CREATE | NLM_F_REPLACE, "replace")
        case .delete: (Int32(RTM_DELROUTE), 0, "delete")
        }
        return Request(type: UInt16(type), flags: UInt16(flags), operation: "\(verb) route \(route)") { writer throws(NetlinkError) in
            try encodeRoute(route, deleting: change == .delete, into: &writer)
        }
    }
}

/// Attribute order follows iproute2's, so requests compare byte for byte with `ip route`.
private func encodeRoute(_ route: Route, deleting: Bool, into writer: inout MessageWriter) throws(NetlinkError) {
    var header = rtmsg()
    header.rtm_family = route.family.rawValue
    header.rtm_dst_len = route.destination.length
    header.rtm_protocol = route.protocol.rawValue
    header.rtm_scope = deleting ? RouteScope.nowhere.rawValue : route.scope.rawValue
    // A delete matches any scope and type unless told otherwise, as with `ip route del`.
    header.rtm_type = deleting ? 0 : route.type.rawValue
    header.rtm_table = UInt8(truncatingIfNeeded: route.table.rawValue < 256 ? route.table.rawValue : 0)
    try writer.putFixed(header)
    if route.table.rawValue >= 256 { try writer.put(UInt16(RTA_TABLE.rawValue), route.table.rawValue) }
    try writer.put(UInt16(RTA_DST.rawValue), bytes: route.destination.address.bytes)
    if let source = route.preferredSource { try writer.put(UInt16(RTA_PREFSRC.rawValue), bytes: source.bytes) }
    if let gateway = route.gateway { try writer.put(UInt16(RTA_GATEWAY.rawValue), bytes: gateway.bytes) }
    if let metric = route.metric { try writer.put(UInt16(RTA_PRIORITY.rawValue), metric) }
    if let index = route.outputInterface { try writer.put(UInt16(RTA_OIF.rawValue), UInt32(bitPattern: index)) }
    if let mtu = route.mtu {
        try writer.nest(UInt16(RTA_METRICS.rawValue)) { metrics throws(NetlinkError) in
            try metrics.put(UInt16(RTAX_MTU), mtu)
        }
    }
}

extension Route {
    init(decoding payload: [UInt8]) throws(NetlinkDecodingError) {
        let header = try loadFixed(rtmsg.self, from: payload, what: "rtmsg")
        guard let family = AddressFamily(rawValue: header.rtm_family) else {
            throw NetlinkDecodingError(what: "route family \(header.rtm_family)", offset: 0)
        }
        var destination = InetAddress.any(family)
        var table = RouteTable(rawValue: UInt32(header.rtm_table))
        var outputInterface: Int32?
        var gateway: InetAddress?
        var source: InetAddress?
        var metric: UInt32?
        var mtu: UInt32?
        var decoder = AttributeDecoder(payload, from: alignedSize(of: rtmsg.self))
        while let attribute = decoder.next() {
            switch Int(attribute.type) {
            case Int(RTA_DST.rawValue): destination = try decodeAddress(attribute, family: family)
            case Int(RTA_TABLE.rawValue): table = RouteTable(rawValue: try attribute.uint32())
            case Int(RTA_OIF.rawValue): outputInterface = Int32(bitPattern: try attribute.uint32())
            case Int(RTA_GATEWAY.rawValue): gateway = try decodeAddress(attribute, family: family)
            case Int(RTA_PREFSRC.rawValue): source = try decodeAddress(attribute, family: family)
            case Int(RTA_PRIORITY.rawValue): metric = try attribute.uint32()
            case Int(RTA_METRICS.rawValue):
                var metrics = attribute.nested()
                while let item = metrics.next() {
                    if Int(item.type) == Int(RTAX_MTU) { mtu = try item.uint32() }
                }
                try metrics.finish()
            default: break
            }
        }
        try decoder.finish()
        guard let prefix = InetPrefix(destination, length: header.rtm_dst_len) else {
            throw NetlinkDecodingError(what: "route prefix length \(header.rtm_dst_len)", offset: 1)
        }
        self.init(destination: prefix, table: table, protocol: RouteProtocol(rawValue: header.rtm_protocol),
                  scope: RouteScope(rawValue: header.rtm_scope), type: RouteType(rawValue: header.rtm_type),
                  outputInterface: outputInterface, gateway: gateway, preferredSource: source, metric: metric, mtu: mtu)
    }
}
