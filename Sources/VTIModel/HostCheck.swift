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
        /// What a selected packet meets: `lookup 52`, `unreachable`.
        public var action: String
        /// `not fwmark`: the rule takes the packets without the mark (wg-quick's).
        public var isInverted: Bool
        public init(priority: UInt32, mark: UInt32, mask: UInt32, action: String, isInverted: Bool = false) {
            self.priority = priority
            self.mark = mark
            self.mask = mask
            self.action = action
            self.isInverted = isInverted
        }

        /// Whether packets carrying `value` are taken by this rule rather than passed over.
        func selects(_ value: UInt32) -> Bool { (value & mask == mark & mask) != isInverted }

        var selector: String { "\(isInverted ? "not " : "")fwmark 0x\(String(mark, radix: 16))/0x\(String(mask, radix: 16)) \(action)" }
    }

    /// A network device; `vti` is nil for any other kind, `xfrmInterfaceID` nil for anything but
    /// an XFRM interface (its if_id).
    public struct Device: Sendable, Hashable {
        public var name: String
        public var vti: VTIParameters?
        public var xfrmInterfaceID: UInt32?
        public init(name: String, vti: VTIParameters?, xfrmInterfaceID: UInt32? = nil) {
            self.name = name
            self.vti = vti
            self.xfrmInterfaceID = xfrmInterfaceID
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

/// One line of a sysctl.d file: `key = value`, or `-key` excluding a key from the globs.
public struct SysctlFileSetting: Sendable, Hashable {
    /// Dotted, as `sysctl` writes it: `net.ipv4.conf.all.rp_filter`; may hold `*` and `?`.
    public var key: String
    /// nil: an exclusion (`-net.ipv4.conf.all.rp_filter` on its own).
    public var value: String?
    public var location: ConfigLocation

    var isGlob: Bool { key.contains("*") || key.contains("?") }

    /// Reads a sysctl.d file as systemd-sysctl does: `#` and `;` comments; a key whose first
    /// separator is a dot has dots and slashes swapped (`net.ipv4.conf.eth0/100.rp_filter`), one
    /// whose first separator is a slash is taken as a path; a leading `-` before `key = value`
    /// only ignores failures. Anything else is skipped, not judged.
    public static func parse(_ text: String, file: String) -> [SysctlFileSetting] {
        var settings: [SysctlFileSetting] = []
        for (index, raw) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let line = raw.drop { $0 == " " || $0 == "\t" }
            guard let first = line.first, first != "#", first != ";" else { continue }
            let location = ConfigLocation(file: file, line: index + 1)
            guard let equals = line.firstIndex(of: "=") else {
                let key = line.trimmingSpaces
                if key.hasPrefix("-") && key.count > 1 { settings.append(SysctlFileSetting(key: dotted(String(key.dropFirst())), value: nil, location: location)) }
                continue
            }
            var key = line[..<equals].trimmingSpaces
            if key.hasPrefix("-") { key = String(key.dropFirst()) }
            settings.append(SysctlFileSetting(key: dotted(key), value: line[line.index(after: equals)...].trimmingSpaces, location: location))
        }
        return settings
    }

    /// The dotted form, in which a dot inside a name (a VLAN device) is a slash.
    private static func dotted(_ key: String) -> String {
        guard let separator = key.first(where: { $0 == "." || $0 == "/" }), separator == "/" else { return key }
        return String(key.map { $0 == "/" ? "." : ($0 == "." ? "/" : $0) })
    }

    /// The setting `sysctl --system` leaves for `key`: the last explicit one (an explicit key
    /// beats any glob), else the last matching glob, unless an exclusion takes the key out of them.
    static func effective(_ key: String, in settings: [SysctlFileSetting]) -> SysctlFileSetting? {
        if let explicit = settings.last(where: { !$0.isGlob && $0.key == key && $0.value != nil }) { return explicit }
        if settings.contains(where: { $0.value == nil && matches($0.key, key) }) { return nil }
        return settings.last { $0.isGlob && $0.value != nil && matches($0.key, key) }
    }

    /// `*` and `?` as in glob(7), over the dotted key.
    static func matches(_ pattern: String, _ key: String) -> Bool {
        let pattern = Array(pattern), key = Array(key)
        var p = 0, k = 0, star = -1, resume = 0
        while k < key.count {
            if p < pattern.count && (pattern[p] == "?" || pattern[p] == key[k]) {
                p += 1
                k += 1
            } else if p < pattern.count && pattern[p] == "*" {
                star = p
                resume = k
                p += 1
            } else if star >= 0 {
                p = star + 1
                resume += 1
                k = resume
            } else {
                return false
            }
        }
        while p < pattern.count && pattern[p] == "*" { p += 1 }
        return p == pattern.count
    }
}

/// Well-known route protocol numbers (iproute2's rt_protos): routes of a routing daemon on a
/// VTI device would be taken for vtid's own and pruned if vtid used the same number.
public let routeProtocolsInUse: [UInt8: String] = [
    2: "kernel", 3: "boot", 4: "static", 8: "gated", 9: "ra", 10: "mrt", 11: "zebra", 12: "bird", 13: "dnrouted",
    14: "xorp", 15: "ntk", 16: "dhcp", 17: "mrouted", 18: "keepalived", 42: "babel", 99: "openr",
    186: "bgp", 187: "isis", 188: "ospf", 189: "rip", 190: "ripng", 191: "nhrp", 192: "eigrp", 193: "ldp", 194: "sharp",
    195: "pbr", 196: "zstatic", 197: "openfabric", 198: "srte",
]

/// Checks conns and the hook's settings against what is on the host.
public func checkHost(_ conns: [RouteBasedConn], settings: HookSettings, facts: HostFacts) -> [ConfigFinding] {
    var findings: [ConfigFinding] = []
    func add(_ severity: ConfigFinding.Severity, _ location: ConfigLocation?, _ message: String) {
        findings.append(ConfigFinding(severity: severity, location: location, message: message))
    }
    if let user = routeProtocolsInUse[settings.routeProtocol.rawValue] {
        add(.error, nil, "route protocol \(settings.routeProtocol) is \(user)'s: vtid would prune that daemon's routes on VTI devices as its own (pick an unassigned number, the default is 157)")
    }
    for conn in conns {
        let device = conn.device(existingDevices: settings.existingDevices)
        // VTI keys and devices (XFRM interfaces have if_ids instead).
        if let (markIn, markOut) = conn.vtiKeys {
            for mark in Set([markIn.value, markOut.value]).sorted() {
                // The same rule in both families (Tailscale's) is one rule to the reader.
                var seen = Set<String>()
                let rules = facts.markRules.filter { $0.selects(mark) }.sorted { $0.priority < $1.priority }
                    .filter { seen.insert("\($0.priority) \($0.selector)").inserted }
                guard !rules.isEmpty else { continue }
                let listed = rules.map { "\($0.priority) (\($0.selector))" }.joined(separator: ", ")
                add(.error, conn.location, "conn \(conn.name)'s mark \(mark) (0x\(String(mark, radix: 16))) is also selected by the kernel's ip rule\(rules.count > 1 ? "s" : "") \(listed): another firewall-mark user would route this tunnel's packets; give the conn a mark outside that range")
            }
            for other in facts.devices where other.name != device.rawValue {
                guard let vti = other.vti, (vti.inputKey == markIn.value && vti.inputKey != 0) || (vti.outputKey == markOut.value && vti.outputKey != 0) else { continue }
                let key = vti.inputKey == markIn.value ? vti.inputKey : vti.outputKey
                add(.error, conn.location, "the kernel's \(other.name) already uses key \(key) (local \(vti.local), remote \(vti.remote)): conn \(conn.name)'s \(device) with the same key would take or lose its traffic; delete \(other.name) or give the conn another mark")
            }
            if let existing = facts.devices.first(where: { $0.name == device.rawValue }) {
                if let vti = existing.vti {
                    if settings.existingDevices[conn.name] == nil && (vti.inputKey != markIn.value || vti.outputKey != markOut.value) {
                        add(.error, conn.location, "\(device) exists with keys \(vti.inputKey)/\(vti.outputKey), not conn \(conn.name)'s \(markIn.value)/\(markOut.value): vti-updown will refuse to adopt it (delete it or fix mark=)")
                    }
                } else if settings.existingDevices[conn.name] == nil {
                    add(.error, conn.location, "\(device) exists and is not a VTI device: conn \(conn.name) cannot have it (rename vti-interface= or set existing_device in vtid.yaml)")
                }
            } else if settings.existingDevices[conn.name] != nil {
                add(.warning, conn.location, "conn \(conn.name)'s existing_device \(device) does not exist (yet): its routes have nowhere to go")
            }
        }
        if let interfaceID = conn.interfaceID {
            findings += checkXfrmInterfaceDevice(conn, interfaceID: interfaceID, device: device, settings: settings, devices: facts.devices)
        }
        var reported = Set<String>()
        for side in conn.updownSides {
            guard let updown = side.program, updown.hasPrefix("/"), !facts.executables.contains(updown), reported.insert(updown).inserted else { continue }
            add(.error, conn.location, "conn \(conn.name): \(side.key)=\(updown) is not an executable file here: pluto would fail every state change")
        }
    }
    findings += sysctlConflicts(conns, settings: settings, files: facts.sysctlFiles)
    return findings
}

/// An XFRM-interface conn against the kernel's devices: the kernel has one XFRM interface per if_id
/// (a second is refused, EEXIST), and pluto (5.2, `add_ipsec_interface`) refuses an `ipsecN` whose
/// if_id is not N's; vtid, for `ipsec-interface-managed=no`, can create neither.
private func checkXfrmInterfaceDevice(_ conn: RouteBasedConn, interfaceID: UInt32, device: InterfaceName, settings: HookSettings,
                                      devices: [HostFacts.Device]) -> [ConfigFinding] {
    var findings: [ConfigFinding] = []
    let existingDevice = settings.existingDevices[conn.name] != nil
    let maker = conn.isManagedByPluto ? "pluto" : "vtid"
    if let existing = devices.first(where: { $0.name == device.rawValue }) {
        if let id = existing.xfrmInterfaceID {
            if id != interfaceID {
                findings.append(ConfigFinding(severity: .error, location: conn.location, message: "\(device) exists as an XFRM interface with if_id \(id), not conn \(conn.name)'s \(interfaceID): \(conn.isManagedByPluto ? "pluto refuses to use it" : "its SAs and policies do not reach it") (delete it, or fix ipsec-interface=)"))
            }
        } else {
            findings.append(ConfigFinding(severity: .error, location: conn.location, message: "\(device) exists and is not an XFRM interface\(existing.vti != nil ? " (a VTI)" : ""): conn \(conn.name)'s ipsec-interface= needs that name for its XFRM interface (delete it\(existing.vti != nil ? " once its tunnels are gone" : ""), or pick another ipsec-interface= number)"))
        }
    } else if !existingDevice, let other = devices.first(where: { $0.xfrmInterfaceID == interfaceID }) {
        findings.append(ConfigFinding(severity: .error, location: conn.location, message: "the kernel's \(other.name) already has if_id \(interfaceID): \(maker) cannot create conn \(conn.name)'s \(device) beside it (one XFRM interface per if_id); delete \(other.name)\(conn.isManagedByPluto ? "" : " or name it in vtid.yaml's existing_device"), or pick another ipsec-interface= number"))
    }
    return findings
}

extension RouteBasedConn {
    /// pluto creates and deletes the conn's XFRM interface (`ipsec-interface-managed=yes`, the default).
    var isManagedByPluto: Bool {
        if case .xfrmInterface(_, let managed) = backend { return managed }
        return false
    }
}

/// sysctl.d settings that `sysctl --system` (a package upgrade, a boot) would apply over what
/// the hook sets: the tunnels then break long after the change that caused it. Judged on the
/// value each key ends up with, so a later file that corrects an earlier one is not reported.
private func sysctlConflicts(_ conns: [RouteBasedConn], settings: HookSettings, files: [SysctlFileSetting]) -> [ConfigFinding] {
    var findings: [ConfigFinding] = []
    let devices = Set(conns.map { $0.device(existingDevices: settings.existingDevices).rawValue }).sorted()
    let forwarding = conns.contains { $0.routing || !$0.addressPools.isEmpty }
    func check(_ key: String, _ judge: (Int) -> String?) {
        guard let setting = SysctlFileSetting.effective(key, in: files), let text = setting.value, let value = Int(text),
              let problem = judge(value) else { return }
        let shown = setting.key == key ? "\(key) = \(value)" : "\(setting.key) = \(value) (so \(key))"
        findings.append(ConfigFinding(severity: .warning, location: setting.location, message: "\(shown): \(problem)"))
    }
    if forwarding {
        for key in ["net.ipv4.ip_forward", "net.ipv4.conf.all.forwarding"] {
            check(key) { $0 == 0 ? "route-based conns route clients and subnets; the hook turns forwarding on, and `sysctl --system` would turn it off again" : nil }
        }
    }
    let wanted = settings.reversePathFilter.rawValue
    check("net.ipv4.conf.all.rp_filter") { value in
        // The kernel uses max(all, device): all can only make a device stricter.
        guard value > wanted else { return nil }
        return "overrides rp_filter \(settings.reversePathFilter) on every VTI device (the kernel uses the larger of all and the device): \(value == 1 ? "strict checking drops replies that come back through another tunnel" : "loose checking instead of off")"
    }
    for device in devices {
        check("net.ipv4.conf.\(device).rp_filter") { $0 != wanted ? "contradicts the hook's rp_filter \(settings.reversePathFilter) (\(wanted)) on \(device)" : nil }
        check("net.ipv4.conf.\(device).disable_policy") { $0 == 0 ? "decrypted packets on \(device) would be checked against IPsec policies again and dropped" : nil }
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

    /// The module of XFRM interfaces (`CONFIG_XFRM_INTERFACE`), needed by `ipsec-interface=` conns only.
    public static let xfrmInterfaceModule = "xfrm_interface"

    /// What the kernel lacks for these conns: `findings`, and `xfrm_interface` if any conn has
    /// `ipsec-interface=`.
    public func findings(for conns: [RouteBasedConn]) -> [ConfigFinding] {
        var findings = self.findings
        let xfrm = conns.filter { $0.interfaceID != nil }
        if let first = xfrm.first, !availableModules.contains(Self.xfrmInterfaceModule) {
            findings.append(ConfigFinding(severity: .error, location: first.location,
                message: "the running kernel (\(release)) has no \(Self.xfrmInterfaceModule) for XFRM interfaces (ipsec-interface= of conn\(xfrm.count == 1 ? "" : "s") \(xfrm.map(\.name).joined(separator: ", "))): it is neither loaded, built in, nor in \(modulesDirectory) (a kernel with CONFIG_XFRM_INTERFACE, e.g. the distribution's full kernel modules package)"))
        }
        return findings
    }

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
