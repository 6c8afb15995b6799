/// libreswan's own configuration (`ipsec.conf` and what it includes), read so that vtid and
/// `vtictl check` learn marks, devices, subnets and pools from it instead of duplicating them.
/// Parsing is pure: reading files (and expanding include globs) is the caller's job.

/// Where a setting or section was written, for messages an operator can act on.
public struct ConfigLocation: Sendable, Hashable, CustomStringConvertible {
    public var file: String
    public var line: Int
    public init(file: String, line: Int) {
        self.file = file
        self.line = line
    }
    public var description: String { "\(file):\(line)" }
}

/// A line of libreswan's configuration that cannot be understood.
public struct IPsecConfigError: Error, Sendable, Hashable, CustomStringConvertible {
    public var location: ConfigLocation
    public var problem: String
    public init(location: ConfigLocation, problem: String) {
        self.location = location
        self.problem = problem
    }
    public var description: String { "\(location): \(problem)" }
}

/// One `key=value` with where it was written.
public struct ConfigSetting: Sendable, Hashable {
    public var value: String
    public var location: ConfigLocation
}

/// A `conn NAME` (or `config setup`) section as written.
public struct ConfigSection: Sendable, Hashable {
    public var name: String
    public var location: ConfigLocation
    public var settings: [String: ConfigSetting]
}

/// The sections of an ipsec.conf and its includes, in order.
public struct IPsecConfig: Sendable, Hashable {
    public var setup: ConfigSection?
    public var conns: [ConfigSection]

    /// A file of the configuration: its name and text.
    public struct Source: Sendable {
        public var file: String
        public var text: String
        public init(file: String, text: String) {
            self.file = file
            self.text = text
        }
    }

    /// Parses `main`; `include` lines call `resolveInclude(pattern, location)` for the files a
    /// pattern names (in order). Includes nest up to 10 deep.
    public init(
        main: Source,
        resolveInclude: (String, ConfigLocation) throws(IPsecConfigError) -> [Source] = { _, _ in [] }
    ) throws(IPsecConfigError) {
        conns = []
        try parse(main, depth: 0, resolveInclude: resolveInclude)
    }

    private mutating func parse(
        _ source: Source, depth: Int,
        resolveInclude: (String, ConfigLocation) throws(IPsecConfigError) -> [Source]
    ) throws(IPsecConfigError) {
        var current: ConfigSection?
        func finish() {
            guard let section = current else { return }
            if section.name == "%setup" { setup = section } else { conns.append(section) }
            current = nil
        }
        for (index, rawLine) in source.text.split(omittingEmptySubsequences: false, whereSeparator: \.isNewline).enumerated() {
            let location = ConfigLocation(file: source.file, line: index + 1)
            let line = stripComment(rawLine)
            if line.allSatisfy({ $0 == " " || $0 == "\t" }) { continue }
            let indented = line.first == " " || line.first == "\t"
            let words = line.split(whereSeparator: { $0 == " " || $0 == "\t" }).map(String.init)
            if !indented {
                finish()
                switch words.first {
                case "conn":
                    guard words.count == 2 else { throw IPsecConfigError(location: location, problem: "expected 'conn NAME'") }
                    guard words[1].utf8.count <= 64, words[1].allSatisfy({ $0.isLetter || $0.isNumber || "-_.%".contains($0) }) else {
                        throw IPsecConfigError(location: location, problem: "invalid conn name \(quoted(words[1]))")
                    }
                    current = ConfigSection(name: words[1], location: location, settings: [:])
                case "config":
                    guard words == ["config", "setup"] else { throw IPsecConfigError(location: location, problem: "expected 'config setup'") }
                    current = ConfigSection(name: "%setup", location: location, settings: [:])
                case "include":
                    guard words.count == 2 else { throw IPsecConfigError(location: location, problem: "expected 'include PATTERN'") }
                    guard depth < 10 else { throw IPsecConfigError(location: location, problem: "includes nested more than 10 deep") }
                    for included in try resolveInclude(words[1], location) {
                        try parse(included, depth: depth + 1, resolveInclude: resolveInclude)
                    }
                case "version":
                    continue
                default:
                    throw IPsecConfigError(location: location, problem: "expected 'conn', 'config setup' or 'include' at the start of a line, found \(quoted(words.first ?? ""))")
                }
                continue
            }
            guard current != nil else {
                throw IPsecConfigError(location: location, problem: "indented setting outside any 'conn' or 'config setup' section")
            }
            let trimmed = line.drop { $0 == " " || $0 == "\t" }
            guard let equals = trimmed.firstIndex(of: "=") else {
                throw IPsecConfigError(location: location, problem: "expected key=value, found \(quoted(String(trimmed)))")
            }
            let key = String(trimmed[..<equals]).trimmingSpaces
            var value = String(trimmed[trimmed.index(after: equals)...]).trimmingSpaces
            guard !key.isEmpty, key.allSatisfy({ $0.isLetter || $0.isNumber || $0 == "-" || $0 == "_" }) else {
                throw IPsecConfigError(location: location, problem: "invalid key \(quoted(key))")
            }
            if value.hasPrefix("\"") {
                guard value.count >= 2, value.hasSuffix("\"") else {
                    throw IPsecConfigError(location: location, problem: "\(key): unterminated quote")
                }
                value = String(value.dropFirst().dropLast())
            }
            if let earlier = current?.settings[key] {
                throw IPsecConfigError(location: location, problem: "\(key) set twice in this section (first at line \(earlier.location.line))")
            }
            current?.settings[key] = ConfigSetting(value: value, location: location)
        }
        finish()
    }

    /// A conn's settings with `conn %default` and `also=` merged in (its own win), as pluto sees them.
    public func resolved(_ name: String) throws(IPsecConfigError) -> ConfigSection? {
        guard let conn = conns.first(where: { $0.name == name }) else { return nil }
        var merged = conns.first(where: { $0.name == "%default" })?.settings ?? [:]
        var visiting: [String] = []
        func apply(_ section: ConfigSection) throws(IPsecConfigError) {
            guard !visiting.contains(section.name) else {
                throw IPsecConfigError(location: section.location, problem: "also= loop: \((visiting + [section.name]).joined(separator: " -> "))")
            }
            visiting.append(section.name)
            if let also = section.settings["also"] {
                for target in also.value.split(separator: " ").map(String.init) {
                    guard let included = conns.first(where: { $0.name == target }) else {
                        throw IPsecConfigError(location: also.location, problem: "also=\(target): no conn of that name")
                    }
                    try apply(included)
                }
            }
            for (key, setting) in section.settings where key != "also" { merged[key] = setting }
            visiting.removeLast()
        }
        try apply(conn)
        return ConfigSection(name: conn.name, location: conn.location, settings: merged)
    }
}

/// Drops a `#` comment: at the start of a line, or after whitespace outside quotes.
private func stripComment(_ line: Substring) -> Substring {
    var inQuotes = false
    var previous: Character = " "
    for index in line.indices {
        let character = line[index]
        if character == "\"" { inQuotes.toggle() }
        if character == "#", !inQuotes, previous == " " || previous == "\t" { return line[..<index] }
        previous = character
    }
    return line
}

extension String {
    var trimmingSpaces: String { Substring(self).trimmingSpaces }
}

/// What vtid and `vtictl check` need of a route-based conn, every value typed and located.
public struct RouteBasedConn: Sendable, Hashable {
    /// How the conn gets its device.
    public enum Backend: Sendable, Hashable {
        /// `vti-interface=` with `mark=` (or `mark-in=`/`mark-out=`): a VTI whose keys are the marks.
        case vti(markIn: FirewallMark, markOut: FirewallMark)
        /// `ipsec-interface=N`: an XFRM interface, if_id N (16384 for 0). `managedByPluto` is
        /// `config setup`'s `ipsec-interface-managed` (yes unless set to no, libreswan 5.2+): pluto
        /// creates and deletes the device; otherwise it expects it to exist.
        case xfrmInterface(number: UInt32, managedByPluto: Bool)
    }

    public var name: String
    public var location: ConfigLocation
    public var backend: Backend
    /// The conn's device: `vti-interface=`, or `ipsecN` for `ipsec-interface=N`.
    public var interfaceName: InterfaceName
    /// Routes go into the device: `vti-routing=yes`, or any XFRM-interface conn (pluto says
    /// `PLUTO_XFRMI_ROUTE=yes` for each).
    public var routing: Bool
    /// `vti-shared=yes` (VTI conns only).
    public var vtiShared: Bool
    /// `mark=`, `mark-in=`: a VTI's keys; optional for an XFRM-interface conn.
    public var markIn: FirewallMark?
    public var markOut: FirewallMark?

    /// What ties the conn's SAs and outbound policies to its device.
    public var tunnelKey: TunnelKey {
        switch backend {
        case .vti(_, let markOut): .mark(markOut.value)
        case .xfrmInterface(let number, _): .interfaceID(XfrmInterfaceSpec.interfaceID(number: number))
        }
    }

    /// A VTI conn's keys; nil for an XFRM-interface conn.
    public var vtiKeys: (markIn: FirewallMark, markOut: FirewallMark)? {
        if case .vti(let markIn, let markOut) = backend { return (markIn, markOut) }
        return nil
    }

    /// The if_id of an XFRM-interface conn.
    public var interfaceID: UInt32? {
        if case .xfrmInterface(let number, _) = backend { return XfrmInterfaceSpec.interfaceID(number: number) }
        return nil
    }
    public var leftSubnets: [IPPrefix]
    public var rightSubnets: [IPPrefix]
    /// `rightaddresspool=FIRST-LAST`, or a prefix (`2001:db8:1::/120`: libreswan 4.x takes an IPv6
    /// pool only so), as the range of its addresses; libreswan 5.x takes one of each family,
    /// comma-separated (a dual-stack client gets an address from each).
    public var addressPools: [ClosedRange<IPAddress>] = []
    /// Whether the address is one of the pools'.
    public func poolContains(_ address: IPAddress) -> Bool { addressPools.contains { $0.contains(address) } }
    public var leftUpdown: String?
    public var rightUpdown: String?
    /// Where `leftupdown=` and `rightupdown=` were written (perhaps in `conn %default`).
    public var leftUpdownLocation: ConfigLocation?
    public var rightUpdownLocation: ConfigLocation?
    /// `left=` and `right=` as written: addresses, `%defaultroute`, `%any`, host names.
    public var leftEnd: String?
    public var rightEnd: String?
    /// The device the conn's routes go into: its VTI, or the device vtid.yaml's `existing_device`
    /// names for it (managed elsewhere).
    public func device(existingDevices: [String: InterfaceName]) -> InterfaceName {
        existingDevices[name] ?? interfaceName
    }

    public var leftVTI: IPPrefix?
    /// `left=` and `right=` when they are addresses (not %defaultroute, %any or a host name).
    public var leftAddress: IPAddress?
    public var rightAddress: IPAddress?

    /// The route-based conns of a configuration (those with `vti-interface=` or `ipsec-interface=`), resolved.
    public static func all(in config: IPsecConfig) throws(IPsecConfigError) -> [RouteBasedConn] {
        let (conns, errors) = each(in: config)
        if let first = errors.first { throw first }
        return conns
    }

    /// Every conn that can be read, and what is wrong with each one that cannot: `vtictl check`
    /// reports all broken conns at once.
    public static func each(in config: IPsecConfig) -> (conns: [RouteBasedConn], errors: [IPsecConfigError]) {
        var result: [RouteBasedConn] = []
        var errors: [IPsecConfigError] = []
        for section in config.conns where section.name != "%default" {
            do {
                guard let resolved = try config.resolved(section.name), resolved.settings["vti-interface"] != nil || isXfrmInterfaceConn(resolved) else { continue }
                result.append(try RouteBasedConn(resolved, setup: config.setup))
            } catch {
                errors.append(error)
            }
        }
        return (result, errors)
    }

    /// `ipsec-interface=` set to something other than `no`.
    private static func isXfrmInterfaceConn(_ section: ConfigSection) -> Bool {
        guard let value = section.settings["ipsec-interface"]?.value else { return false }
        return value != "no"
    }

    init(_ section: ConfigSection, setup: ConfigSection? = nil) throws(IPsecConfigError) {
        let settings = section.settings
        func value(_ key: String) -> ConfigSetting? { settings[key] }
        func mark(_ key: String) throws(IPsecConfigError) -> FirewallMark? {
            guard let setting = value(key) else { return nil }
            guard let mark = FirewallMark(setting.value) else {
                throw IPsecConfigError(location: setting.location, problem: "\(key)=\(quoted(setting.value)) is not a mark (VALUE/MASK)")
            }
            return mark
        }
        func flag(_ key: String) throws(IPsecConfigError) -> Bool {
            guard let setting = value(key) else { return false }
            switch setting.value {
            case "yes": return true
            case "no": return false
            default: throw IPsecConfigError(location: setting.location, problem: "\(key)=\(quoted(setting.value)) is neither yes nor no")
            }
        }
        func subnets(_ key: String) throws(IPsecConfigError) -> [IPPrefix] {
            guard let setting = value(key) else { return [] }
            var prefixes: [IPPrefix] = []
            for part in setting.value.split(whereSeparator: { $0 == "," || $0 == " " }) {
                guard let prefix = IPPrefix(part) else {
                    throw IPsecConfigError(location: setting.location, problem: "\(key): \(quoted(String(part))) is not a subnet")
                }
                prefixes.append(prefix)
            }
            return prefixes
        }
        name = section.name
        location = section.location
        let both = try mark("mark")
        markIn = try mark("mark-in") ?? both
        markOut = try mark("mark-out") ?? both
        if let xfrm = value("ipsec-interface"), xfrm.value != "no" {
            if let vti = value("vti-interface") {
                throw IPsecConfigError(location: vti.location, problem: "conn \(section.name) has both vti-interface= and ipsec-interface= (\(xfrm.location)): one device per conn, a VTI or an XFRM interface")
            }
            // libreswan: yes is 1; a number up to 2^32-1 (the if_id; 0 becomes 16384).
            guard let number = xfrm.value == "yes" ? 1 : UInt32(xfrm.value) else {
                throw IPsecConfigError(location: xfrm.location, problem: "ipsec-interface=\(quoted(xfrm.value)) is not yes, no or a number")
            }
            let managed = setup?.settings["ipsec-interface-managed"]
            guard managed == nil || managed?.value == "yes" || managed?.value == "no" else {
                throw IPsecConfigError(location: managed!.location, problem: "ipsec-interface-managed=\(quoted(managed!.value)) is neither yes nor no")
            }
            backend = .xfrmInterface(number: number, managedByPluto: managed?.value != "no")
            // libreswan names the device after the number; "ipsec" and 10 digits fit in 15 bytes.
            interfaceName = InterfaceName("ipsec\(number)")!
            routing = true
            vtiShared = false
        } else {
            guard let device = value("vti-interface"), let interface = InterfaceName(device.value) else {
                let setting = value("vti-interface")
                throw IPsecConfigError(location: setting?.location ?? section.location,
                                       problem: "vti-interface=\(quoted(setting?.value ?? "")) is not a valid interface name (1-15 letters, digits, '.', '-' or '_')")
            }
            interfaceName = interface
            guard let markIn, let markOut else {
                throw IPsecConfigError(location: section.location, problem: "conn \(section.name) has vti-interface= but no mark= (the VTI's keys)")
            }
            backend = .vti(markIn: markIn, markOut: markOut)
            routing = try flag("vti-routing")
            vtiShared = try flag("vti-shared")
        }
        leftSubnets = try subnets("leftsubnet")
        rightSubnets = try subnets("rightsubnet")
        if let pool = value("rightaddresspool") {
            addressPools = try parseAddressPools(pool, key: "rightaddresspool")
        }
        leftUpdown = value("leftupdown")?.value
        rightUpdown = value("rightupdown")?.value
        leftUpdownLocation = value("leftupdown")?.location
        rightUpdownLocation = value("rightupdown")?.location
        leftEnd = value("left")?.value
        rightEnd = value("right")?.value
        leftAddress = value("left").flatMap { IPAddress($0.value) }
        rightAddress = value("right").flatMap { IPAddress($0.value) }
        if let vti = value("leftvti") {
            guard let prefix = IPPrefix(vti.value) else {
                throw IPsecConfigError(location: vti.location, problem: "leftvti=\(quoted(vti.value)) is not an address with prefix length")
            }
            leftVTI = prefix
        }
    }
}

/// `rightaddresspool=`'s (or `leftaddresspool=`'s) ranges: `FIRST-LAST` or a prefix (`2001:db8:1::/120`; libreswan 5.4's
/// prefix leases, `2001:db8::/56/64`, are the /56), one IPv4 and one IPv6 at most, comma-separated.
public func parseAddressPools(_ pool: ConfigSetting, key: String) throws(IPsecConfigError) -> [ClosedRange<IPAddress>] {
    var addressPools: [ClosedRange<IPAddress>] = []
    let parts = pool.value.split(separator: ",")
    for part in parts {
        var text = part.trimmingSpaces
        // libreswan 5.4's prefix leases, `2001:db8::/56/64`: the pool is the /56, each
        // client leases a /64 (routed as that prefix, PLUTO_PEER_CLIENT says which).
        let slashes = text.split(separator: "/", omittingEmptySubsequences: false)
        // Compared, not made a range: `pool...128` traps when the file says a pool length above 128.
        if slashes.count == 3, let lease = Int(slashes[2]), let pool = Int(slashes[1]), pool <= lease, lease <= 128 {
            text = String(slashes[0]) + "/" + slashes[1]
        }
        if let prefix = IPPrefix(text) {
            addressPools.append(prefix.network.address...prefix.lastAddress)
            continue
        }
        let ends = text.split(separator: "-", maxSplits: 1)
        guard ends.count == 2, let first = IPAddress(ends[0]), let last = IPAddress(ends[1]), first.family == last.family, first <= last else {
            let which = parts.count > 1 ? ": \(quoted(text))" : ""
            throw IPsecConfigError(location: pool.location, problem: "\(key)=\(quoted(pool.value))\(which) is neither FIRST-LAST nor a PREFIX/LENGTH")
        }
        addressPools.append(first...last)
    }
    guard Set(addressPools.map(\.lowerBound.family)).count == addressPools.count else {
        throw IPsecConfigError(location: pool.location, problem: "\(key)=\(quoted(pool.value)) has two pools of one family (libreswan takes one IPv4 and one IPv6)")
    }
    return addressPools
}
