public import SystemPackage

/// A kernel setting under `/proc/sys`, named by type rather than by string so that an interface
/// name can never climb out of its directory.
public struct SysctlKey: Hashable, Sendable, CustomStringConvertible {
    /// Path relative to `/proc/sys`, e.g. `net/ipv4/conf/vti01/rp_filter`.
    public let relativePath: String

    private init(relativePath: String) { self.relativePath = relativePath }

    /// Which `conf/` directory of a family a setting lives in.
    public enum Scope: Hashable, Sendable {
        /// `conf/all`: for rp_filter the kernel uses the larger of `all` and the device's value.
        case all
        /// `conf/default`: inherited by devices created later.
        case `default`
        case interface(String)
    }

    /// A per-interface IPv4 setting, `net/ipv4/conf/SCOPE/NAME`.
    public struct IPv4Setting: RawRepresentable, Hashable, Sendable {
        public let rawValue: String
        public init(rawValue: String) { self.rawValue = rawValue }
        public static let reversePathFilter = IPv4Setting(rawValue: "rp_filter")
        public static let disablePolicy = IPv4Setting(rawValue: "disable_policy")
        public static let disableXfrm = IPv4Setting(rawValue: "disable_xfrm")
        public static let forwarding = IPv4Setting(rawValue: "forwarding")
        public static let acceptRedirects = IPv4Setting(rawValue: "accept_redirects")
        public static let sendRedirects = IPv4Setting(rawValue: "send_redirects")
        public static let proxyARP = IPv4Setting(rawValue: "proxy_arp")
    }

    /// A per-interface IPv6 setting, `net/ipv6/conf/SCOPE/NAME`.
    public struct IPv6Setting: RawRepresentable, Hashable, Sendable {
        public let rawValue: String
        public init(rawValue: String) { self.rawValue = rawValue }
        public static let disablePolicy = IPv6Setting(rawValue: "disable_policy")
        public static let forwarding = IPv6Setting(rawValue: "forwarding")
        public static let acceptRedirects = IPv6Setting(rawValue: "accept_redirects")
        public static let acceptRouterAdvertisements = IPv6Setting(rawValue: "accept_ra")
        public static let proxyNDP = IPv6Setting(rawValue: "proxy_ndp")
        public static let disableIPv6 = IPv6Setting(rawValue: "disable_ipv6")
    }

    /// `net/ipv4/conf/SCOPE/NAME`; nil if the interface name is not a valid one.
    public static func ipv4(_ scope: Scope, _ setting: IPv4Setting) -> SysctlKey? {
        directory(of: scope).map { SysctlKey(relativePath: "net/ipv4/conf/\($0)/\(setting.rawValue)") }
    }

    /// `net/ipv6/conf/SCOPE/NAME`; nil if the interface name is not a valid one.
    public static func ipv6(_ scope: Scope, _ setting: IPv6Setting) -> SysctlKey? {
        directory(of: scope).map { SysctlKey(relativePath: "net/ipv6/conf/\($0)/\(setting.rawValue)") }
    }

    /// `net/ipv4/ip_forward`: routing between interfaces at all.
    public static let ipv4Forwarding = SysctlKey(relativePath: "net/ipv4/ip_forward")

    private static func directory(of scope: Scope) -> String? {
        switch scope {
        case .all: return "all"
        case .default: return "default"
        case .interface(let name):
            // The kernel's own rule for interface names (dev_valid_name).
            let bytes = Array(name.utf8)
            guard !bytes.isEmpty, bytes.count <= 15, name != ".", name != "..",
                  bytes.allSatisfy({ $0 > 0x20 && $0 < 0x7f && $0 != UInt8(ascii: "/") && $0 != UInt8(ascii: ":") })
            else { return nil }
            return name
        }
    }

    public var path: FilePath { FilePath("/proc/sys/" + relativePath) }
    public var description: String { relativePath.replacingSlashes() }
}

/// Reading or writing a sysctl failed.
public struct SysctlError: Error, Hashable, Sendable, CustomStringConvertible {
    public var key: SysctlKey
    public var errno: Errno
    public var writing: Int?

    public var description: String {
        let action = writing.map { "cannot set \(key) to \($0)" } ?? "cannot read \(key)"
        let hint = errno == .noSuchFileOrDirectory ? " (no such setting: is the interface or the kernel feature there?)" : ""
        return "\(action): \(errno)\(hint)"
    }
}

/// Per-network-namespace kernel settings through `/proc/sys` of the calling process.
public enum Sysctl {
    public static func read(_ key: SysctlKey) throws(SysctlError) -> Int {
        do {
            let descriptor = try FileDescriptor.open(key.path, .readOnly, options: [.closeOnExec])
            let text = try descriptor.closeAfter {
                var buffer = [UInt8](repeating: 0, count: 64)
                let count = try buffer.withUnsafeMutableBytes { try descriptor.read(into: $0) }
                return String(decoding: buffer.prefix(count), as: UTF8.self)
            }
            let trimmed = text.split(whereSeparator: { $0 == "\n" || $0 == " " || $0 == "\t" }).first.map(String.init) ?? ""
            guard let value = Int(trimmed) else { throw SysctlError(key: key, errno: .invalidArgument) }
            return value
        } catch let error as SysctlError {
            throw error
        } catch {
            throw SysctlError(key: key, errno: (error as? Errno) ?? .ioError)
        }
    }

    public static func write(_ key: SysctlKey, _ value: Int) throws(SysctlError) {
        do {
            let descriptor = try FileDescriptor.open(key.path, .writeOnly, options: [.closeOnExec])
            try descriptor.closeAfter {
                _ = try descriptor.writeAll(Array("\(value)\n".utf8))
            }
        } catch {
            throw SysctlError(key: key, errno: (error as? Errno) ?? .ioError, writing: value)
        }
    }

    /// Writes only if the value differs; returns whether it changed anything.
    @discardableResult
    public static func ensure(_ key: SysctlKey, _ value: Int) throws(SysctlError) -> Bool {
        if try read(key) == value { return false }
        try write(key, value)
        return true
    }
}

extension String {
    /// `net/ipv4/conf/vti01/rp_filter` -> `net.ipv4.conf.vti01.rp_filter`, as `sysctl` prints it.
    fileprivate func replacingSlashes() -> String {
        String(map { $0 == "/" ? "." : $0 })
    }
}
