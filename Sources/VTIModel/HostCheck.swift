/// `vtictl check`'s judgement of route-based conns against the host they are meant for: other
/// users of the same firewall marks, devices already in the way, sysctl files that undo what
/// the hook sets, a hook path that cannot run, a kernel without VTI or ESP. Pure: the CLI
/// gathers the facts.

/// What `vtictl check` read from the running host.
public struct HostFacts: Sendable {
    /// An `ip rule` that selects packets by firewall mark.
    public struct MarkRule: Sendable, Hashable {
        public var priority: UInt32
        public var mark: UInt32
        public var mask: UInt32
        public var table: UInt32
        public init(priority: UInt32, mark: UInt32, mask: UInt32, table: UInt32) {
            self.priority = priority
            self.mark = mark
            self.mask = mask
            self.table = table
        }

        func matches(_ value: UInt32) -> Bool { value & mask == mark & mask }
    }

    /// A network device; `vti` is nil for any other kind.
    public struct Device: Sendable, Hashable {
        public var name: String
        public var vti: VTIParameters?
        public init(name: String, vti: VTIParameters?) {
            self.name = name
            self.vti = vti
        }
    }

    public struct VTIParameters: Sendable, Hashable {
        public var inputKey: UInt32
        public var outputKey: UInt32
        public var local: String
        public var remote: String
        public init(inputKey: UInt32, outputKey: UInt32, local: String, remote: String) {
            self.inputKey = inputKey
            self.outputKey = outputKey
            self.local = local
            self.remote = remote
        }
    }

    public var markRules: [MarkRule] = []
    public var devices: [Device] = []
    /// Settings from sysctl.conf and sysctl.d files, in the order `sysctl --system` applies them.
    public var sysctlFiles: [SysctlFileSetting] = []
    /// leftupdown= paths that exist and are executable.
    public var executables: Set<String> = []

    public init() {}
}

/// One `key = value` line of a sysctl.d file.
public struct SysctlFileSetting: Sendable, Hashable {
    /// Dotted, as `sysctl` writes it: `net.ipv4.conf.all.rp_filter`.
    public var key: String
    public var value: String
    public var location: ConfigLocation

    /// Reads a sysctl.d file as systemd-sysctl does: `#` and `;` comments, `/` or `.` separators,
    /// a leading `-` (ignore failures) dropped; anything else is skipped, not judged.
    public static func parse(_ text: String, file: String) -> [SysctlFileSetting] {
        var settings: [SysctlFileSetting] = []
        for (index, raw) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let line = raw.drop { $0 == " " || $0 == "\t" }
            guard let first = line.first, first != "#", first != ";", let equals = line.firstIndex(of: "=") else { continue }
            var key = line[..<equals].trimmingSpaces
            if key.hasPrefix("-") { key = String(key.dropFirst()) }
            // In slash form the separators are slashes and a dot belongs to a name (a VLAN device).
            if key.contains("/") {
                key = String(key.map { $0 == "/" ? "." : ($0 == "." ? "/" : $0) })
            }
            settings.append(SysctlFileSetting(key: key, value: line[line.index(after: equals)...].trimmingSpaces,
                                              location: ConfigLocation(file: file, line: index + 1)))
        }
        return settings
    }
}

/// Well-known route protocol numbers (iproute2's rt_protos): routes of a routing daemon on a
/// VTI device would be taken for vtid's own and pruned if vtid used the same number.
public let routeProtocolsInUse: [UInt8: String] = [
    2: "kernel", 3: "boot", 4: "static", 8: "gated", 9: "ra", 10: "mrt", 11: "zebra", 12: "bird", 13: "dnrouted",
    14: "xorp", 15: "ntk", 16: "dhcp", 17: "mrouted", 18: "keepalived", 42: "babel", 99: "openr",
    186: "bgp", 187: "isis", 188: "ospf", 189: "rip", 192: "eigrp",
]

/// Checks conns and the hook's settings against what is on the host.
public func checkHost(_ conns: [RouteBasedConn], settings: HookSettings, facts: HostFacts) -> [ConfigFinding] {
    var findings: [ConfigFinding] = []
    func add(_ severity: ConfigFinding.Severity, _ location: ConfigLocation?, _ message: String) {
        findings.append(ConfigFinding(severity: severity, location: location, message: message))
    }
    if let user = routeProtocolsInUse[settings.routeProtocol] {
        add(.error, nil, "route protocol \(settings.routeProtocol) is \(user)'s: vtid would prune that daemon's routes on VTI devices as its own (pick an unassigned number, the default is 157)")
    }
    for conn in conns {
        let device = settings.existingDevices[conn.name] ?? conn.vtiInterface
        for mark in Set([conn.markIn.value, conn.markOut.value]).sorted() {
            for rule in facts.markRules where rule.matches(mark) {
                add(.error, conn.location, "conn \(conn.name)'s mark \(mark) (0x\(String(mark, radix: 16))) is also selected by the kernel's ip rule \(rule.priority) (fwmark 0x\(String(rule.mark, radix: 16))/0x\(String(rule.mask, radix: 16)) lookup \(rule.table)): another firewall-mark user would route this tunnel's packets; give the conn a mark outside that range")
            }
        }
        for other in facts.devices where other.name != device.rawValue && other.vti?.inputKey == conn.markIn.value && conn.markIn.value != 0 {
            add(.error, conn.location, "the kernel's \(other.name) already uses key \(conn.markIn.value) (local \(other.vti!.local), remote \(other.vti!.remote)): conn \(conn.name)'s \(device) with the same key would take or lose its traffic; delete \(other.name) or give the conn another mark")
        }
        if let existing = facts.devices.first(where: { $0.name == device.rawValue }) {
            if let vti = existing.vti {
                if settings.existingDevices[conn.name] == nil && (vti.inputKey != conn.markIn.value || vti.outputKey != conn.markOut.value) {
                    add(.error, conn.location, "\(device) exists with keys \(vti.inputKey)/\(vti.outputKey), not conn \(conn.name)'s \(conn.markIn.value)/\(conn.markOut.value): vti-updown will refuse to adopt it (delete it or fix mark=)")
                }
            } else if settings.existingDevices[conn.name] == nil {
                add(.error, conn.location, "\(device) exists and is not a VTI device: conn \(conn.name) cannot have it (rename vti-interface= or set existing_device in vtid.yaml)")
            }
        } else if settings.existingDevices[conn.name] != nil {
            add(.warning, conn.location, "conn \(conn.name)'s existing_device \(device) does not exist (yet): its routes have nowhere to go")
        }
        if let updown = conn.updownProgram, updown.hasPrefix("/"), !facts.executables.contains(updown) {
            add(.error, conn.location, "conn \(conn.name): leftupdown=\(updown) is not an executable file here: pluto would fail every state change")
        }
    }
    findings += sysctlConflicts(conns, settings: settings, files: facts.sysctlFiles)
    return findings
}

/// sysctl.d lines that `sysctl --system` (a package upgrade, a boot) would apply over what the
/// hook sets: the tunnels then break long after the change that caused it.
private func sysctlConflicts(_ conns: [RouteBasedConn], settings: HookSettings, files: [SysctlFileSetting]) -> [ConfigFinding] {
    var findings: [ConfigFinding] = []
    let devices = Set(conns.map { (settings.existingDevices[$0.name] ?? $0.vtiInterface).rawValue })
    let forwarding = conns.contains { $0.vtiRouting || $0.addressPool != nil }
    for line in files {
        let parts = line.key.split(separator: ".").map(String.init)
        let value = Int(line.value)
        func warn(_ message: String) {
            findings.append(ConfigFinding(severity: .warning, location: line.location, message: message))
        }
        if line.key == "net.ipv4.ip_forward" && value == 0 && forwarding {
            warn("net.ipv4.ip_forward = 0: route-based conns route clients and subnets; the hook turns forwarding on, and `sysctl --system` would turn it off again")
        }
        guard parts.count == 5, parts[0] == "net", parts[1] == "ipv4", parts[2] == "conf" else { continue }
        let scope = parts[3]
        let name = parts[4]
        if name == "rp_filter", let value, scope == "all" || devices.contains(scope) {
            let wanted = settings.reversePathFilter.rawValue
            // The kernel uses max(all, device): all can only make a device stricter.
            if scope == "all" && value > wanted {
                warn("net.ipv4.conf.all.rp_filter = \(value) overrides rp_filter \(settings.reversePathFilter) on every VTI device (the kernel uses the larger of all and the device): \(value == 1 ? "strict checking drops replies that come back through another tunnel" : "loose checking instead of off")")
            } else if scope != "all" && value != wanted {
                warn("net.ipv4.conf.\(scope).rp_filter = \(value) contradicts the hook's rp_filter \(settings.reversePathFilter) (\(wanted)) on \(scope)")
            }
        }
        if name == "disable_policy", value == 0, devices.contains(scope) {
            warn("net.ipv4.conf.\(scope).disable_policy = 0: decrypted packets on \(scope) would be checked against IPsec policies again and dropped")
        }
    }
    return findings
}

/// Whether the running kernel can carry VTI tunnels.
public struct KernelSupport: Sendable {
    public var release: String
    public var modulesDirectory: String
    /// Modules that are loaded, built in, or installed for this release.
    public var availableModules: Set<String>
    /// Why an XFRM netlink socket could not be opened; nil if it could.
    public var xfrmNetlinkError: String?

    public init(release: String, modulesDirectory: String, availableModules: Set<String>, xfrmNetlinkError: String?) {
        self.release = release
        self.modulesDirectory = modulesDirectory
        self.availableModules = availableModules
        self.xfrmNetlinkError = xfrmNetlinkError
    }

    /// Modules a route-based IPv4 conn needs, and what for.
    public static let required = [("ip_vti", "VTI devices"), ("esp4", "ESP (IPsec encryption)"), ("xfrm_user", "pluto's XFRM netlink")]

    public var findings: [ConfigFinding] {
        var findings: [ConfigFinding] = []
        for (module, purpose) in Self.required where !availableModules.contains(module) && !(module == "xfrm_user" && xfrmNetlinkError == nil) {
            findings.append(ConfigFinding(severity: .error, location: nil,
                message: "the running kernel (\(release)) has no \(module) for \(purpose): it is neither loaded, built in, nor in \(modulesDirectory) (install the distribution's full kernel modules package)"))
        }
        if let xfrmNetlinkError, availableModules.contains("xfrm_user") {
            findings.append(ConfigFinding(severity: .error, location: nil, message: "no XFRM netlink socket: \(xfrmNetlinkError)"))
        }
        return findings
    }
}
