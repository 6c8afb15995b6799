import Glibc
// The project's one `AddressFamily` (its raw value is the kernel's AF_* number) is VTIModel's, a
// module of pure values.
public import VTIModel

/// An IP address as netlink carries it: network-order bytes of a family.
///
/// The Netlink module keeps addresses as bytes on purpose: it knows nothing of VTI policy, and the
/// planning layer has its own richer address types.
public struct InetAddress: Hashable, Sendable, CustomStringConvertible, Comparable {
    public let family: AddressFamily
    public let bytes: [UInt8]

    public init?(family: AddressFamily, bytes: [UInt8]) {
        guard bytes.count == family.addressLength else { return nil }
        self.family = family
        self.bytes = bytes
    }

    /// Parses dotted-quad or IPv6 text with the C library's `inet_pton`.
    public init?(_ text: String) {
        var buffer = [UInt8](repeating: 0, count: 16)
        if inet_pton(AF_INET, text, &buffer) == 1 {
            self.init(family: .ipv4, bytes: Array(buffer.prefix(4)))
        } else if inet_pton(AF_INET6, text, &buffer) == 1 {
            self.init(family: .ipv6, bytes: buffer)
        } else {
            return nil
        }
    }

    /// An IPv4 address from a host-order integer, handy for generating many routes.
    public init(ipv4 value: UInt32) {
        family = .ipv4
        bytes = [UInt8(value >> 24), UInt8((value >> 16) & 0xff), UInt8((value >> 8) & 0xff), UInt8(value & 0xff)]
    }

    public static func any(_ family: AddressFamily) -> InetAddress {
        InetAddress(family: family, bytes: [UInt8](repeating: 0, count: family.addressLength))!
    }

    public var isUnspecified: Bool { bytes.allSatisfy { $0 == 0 } }

    public var description: String {
        var output = [CChar](repeating: 0, count: 64)
        let family = self.family == .ipv4 ? AF_INET : AF_INET6
        guard inet_ntop(family, bytes, &output, socklen_t(output.count)) != nil else { return "?" }
        return String(decoding: output.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    /// IPv4 before IPv6, then by value.
    public static func < (a: InetAddress, b: InetAddress) -> Bool {
        a.family != b.family ? a.family == .ipv4 : a.bytes.lexicographicallyPrecedes(b.bytes)
    }
}

/// An address with a prefix length: a route destination, an interface address, a rule selector.
public struct InetPrefix: Hashable, Sendable, CustomStringConvertible {
    public let address: InetAddress
    public let length: UInt8

    public init?(_ address: InetAddress, length: UInt8) {
        guard Int(length) <= address.family.addressLength * 8 else { return nil }
        self.address = address
        self.length = length
    }

    /// Parses `10.0.1.0/24` or `2001:db8::/64`; a bare address is a host prefix.
    public init?(_ text: String) {
        let parts = text.split(separator: "/", maxSplits: 1, omittingEmptySubsequences: false)
        guard let address = InetAddress(String(parts[0])) else { return nil }
        if parts.count == 2 {
            guard let length = UInt8(parts[1]) else { return nil }
            self.init(address, length: length)
        } else {
            self.init(address, length: UInt8(address.family.addressLength * 8))
        }
    }

    public var family: AddressFamily { address.family }
    public var description: String { "\(address)/\(length)" }
}
