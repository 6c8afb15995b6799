internal import CLibmnl

/// A change the kernel announced on rtnetlink.
public enum RouteNotification: Hashable, Sendable {
    case linkChanged(Link)
    case linkRemoved(Link)
    case addressAdded(InterfaceAddress)
    case addressRemoved(InterfaceAddress)
    case routeAdded(Route)
    case routeRemoved(Route)
    case ruleAdded(RoutingRule)
    case ruleRemoved(RoutingRule)
}

/// A change the kernel announced on XFRM netlink.
public enum XfrmNotification: Hashable, Sendable {
    case securityAssociationAdded(SecurityAssociation)
    case securityAssociationUpdated(SecurityAssociation)
    case securityAssociationDeleted(SecurityAssociation)
    /// A lifetime ran out; after a hard expiry the kernel deletes the SA.
    case securityAssociationExpired(SecurityAssociation, hard: Bool)
    case securityAssociationsFlushed
    case policyAdded(SecurityPolicy)
    case policyUpdated(SecurityPolicy)
    case policyDeleted(SecurityPolicy)
    case policiesFlushed
}

/// Listens to link, address, route and rule changes (rtnetlink multicast groups).
///
/// If the kernel drops notifications because we were slow, `next` throws an error whose
/// `isOverrun` is true: the owner must then re-read the state it cares about.
public final class RouteMonitor {
    /// Which kinds of change to hear about.
    public struct Groups: OptionSet, Sendable {
        public let rawValue: UInt32
        public init(rawValue: UInt32) { self.rawValue = rawValue }
        public static let links = Groups(rawValue: 1 << 0)
        public static let addresses = Groups(rawValue: 1 << 1)
        public static let routes = Groups(rawValue: 1 << 2)
        public static let rules = Groups(rawValue: 1 << 3)
        public static let all: Groups = [.links, .addresses, .routes, .rules]

        var multicastGroups: [UInt32] {
            var groups: [UInt32] = []
            if contains(.links) { groups.append(RTNLGRP_LINK.rawValue) }
            if contains(.addresses) { groups += [RTNLGRP_IPV4_IFADDR.rawValue, RTNLGRP_IPV6_IFADDR.rawValue] }
            if contains(.routes) { groups += [RTNLGRP_IPV4_ROUTE.rawValue, RTNLGRP_IPV6_ROUTE.rawValue] }
            if contains(.rules) { groups += [RTNLGRP_IPV4_RULE.rawValue, RTNLGRP_IPV6_RULE.rawValue] }
            return groups
        }
    }

    private let subscription: NetlinkSubscription

    /// - Parameter receiveBufferBytes: the kernel-side queue; a burst larger than this overruns.
    public init(_ groups: Groups, receiveBufferBytes: Int32 = 4 << 20) throws(NetlinkError) {
        subscription = try NetlinkSubscription(bus: .route, groups: groups.multicastGroups, receiveBufferBytes: receiveBufferBytes)
    }

    public var fileDescriptor: Int32 { subscription.fileDescriptor }

    /// Waits up to `timeoutMilliseconds` (-1: forever); returns what arrived, possibly nothing.
    public func next(timeoutMilliseconds: Int32) throws(NetlinkError) -> [RouteNotification] {
        var notifications: [RouteNotification] = []
        for message in try subscription.receive(timeoutMilliseconds: timeoutMilliseconds) {
            if let notification = try decodeOrThrow("decode route notification", { () throws(NetlinkDecodingError) in
                try RouteNotification(message)
            }) {
                notifications.append(notification)
            }
        }
        return notifications
    }
}

extension RouteNotification {
    init?(_ message: RawMessage) throws(NetlinkDecodingError) {
        switch Int32(message.type) {
        case Int32(RTM_NEWLINK): self = .linkChanged(try Link(decoding: message.payload))
        case Int32(RTM_DELLINK): self = .linkRemoved(try Link(decoding: message.payload))
        case Int32(RTM_NEWADDR): self = .addressAdded(try InterfaceAddress(decoding: message.payload))
        case Int32(RTM_DELADDR): self = .addressRemoved(try InterfaceAddress(decoding: message.payload))
        case Int32(RTM_NEWROUTE): self = .routeAdded(try Route(decoding: message.payload))
        case Int32(RTM_DELROUTE): self = .routeRemoved(try Route(decoding: message.payload))
        case Int32(RTM_NEWRULE): self = .ruleAdded(try RoutingRule(decoding: message.payload))
        case Int32(RTM_DELRULE): self = .ruleRemoved(try RoutingRule(decoding: message.payload))
        default: return nil
        }
    }
}

/// Listens to XFRM SA, policy and expiry events: how vtid notices an SA that vanished without a
/// `down-client`.
public final class XfrmMonitor {
    private let subscription: NetlinkSubscription

    public init(receiveBufferBytes: Int32 = 4 << 20) throws(NetlinkError) {
        subscription = try NetlinkSubscription(
            bus: .xfrm,
            groups: [XFRMNLGRP_SA.rawValue, XFRMNLGRP_POLICY.rawValue, XFRMNLGRP_EXPIRE.rawValue],
            receiveBufferBytes: receiveBufferBytes)
    }

    public var fileDescriptor: Int32 { subscription.fileDescriptor }

    /// Waits up to `timeoutMilliseconds` (-1: forever); returns what arrived, possibly nothing.
    public func next(timeoutMilliseconds: Int32) throws(NetlinkError) -> [XfrmNotification] {
        var notifications: [XfrmNotification] = []
        for message in try subscription.receive(timeoutMilliseconds: timeoutMilliseconds) {
            if let notification = try decodeOrThrow("decode XFRM notification", { () throws(NetlinkDecodingError) in
                try XfrmNotification(message)
            }) {
                notifications.append(notification)
            }
        }
        return notifications
    }
}

extension XfrmNotification {
    init?(_ message: RawMessage) throws(NetlinkDecodingError) {
        let payload = message.payload
        switch Int32(message.type) {
        case Int32(XFRM_MSG_NEWSA):
            self = .securityAssociationAdded(try SecurityAssociation(decodingInfoAt: 0, of: payload))
        case Int32(XFRM_MSG_UPDSA):
            self = .securityAssociationUpdated(try SecurityAssociation(decodingInfoAt: 0, of: payload))
        case Int32(XFRM_MSG_DELSA):
            // An xfrm_usersa_id, then attributes: XFRMA_SA holds the whole SA.
            let start = alignedSize(of: xfrm_usersa_id.self)
            guard let info = embedded(XFRMA_SA.rawValue, in: payload, from: start) else { return nil }
            self = .securityAssociationDeleted(try SecurityAssociation(
                decodingInfoAt: 0, of: info + payload[start...], attributesStart: info.count))
        case Int32(XFRM_MSG_EXPIRE):
            let expire = try loadFixed(xfrm_user_expire.self, from: payload, what: "xfrm_user_expire")
            self = .securityAssociationExpired(
                try SecurityAssociation(decodingInfoAt: 0, of: payload, attributesStart: alignedSize(of: xfrm_user_expire.self)),
                hard: expire.hard != 0)
        case Int32(XFRM_MSG_FLUSHSA):
            self = .securityAssociationsFlushed
        case Int32(XFRM_MSG_NEWPOLICY):
            self = .policyAdded(try SecurityPolicy(decodingInfoAt: 0, of: payload))
        case Int32(XFRM_MSG_UPDPOLICY):
            self = .policyUpdated(try SecurityPolicy(decodingInfoAt: 0, of: payload))
        case Int32(XFRM_MSG_DELPOLICY):
            let start = alignedSize(of: xfrm_userpolicy_id.self)
            guard let info = embedded(XFRMA_POLICY.rawValue, in: payload, from: start) else { return nil }
            self = .policyDeleted(try SecurityPolicy(
                decodingInfoAt: 0, of: info + payload[start...], attributesStart: info.count))
        case Int32(XFRM_MSG_FLUSHPOLICY):
            self = .policiesFlushed
        default:
            return nil
        }
    }
}

/// The value of attribute `type` among the attributes starting at `start`, padded to alignment.
private func embedded(_ type: UInt32, in payload: [UInt8], from start: Int) -> [UInt8]? {
    var decoder = AttributeDecoder(payload, from: start)
    while let attribute = decoder.next() {
        guard attribute.type == UInt16(type) else { continue }
        var value = attribute.bytes
        value += [UInt8](repeating: 0, count: (4 - value.count % 4) % 4)
        return value
    }
    return nil
}
