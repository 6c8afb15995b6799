/// `vtictl check`'s rules for what libreswan 5.x changed (kept apart from `checkRouteBasedConns`):
/// - 5.0 drops IKEv1 unless `config setup` says `ikev1-policy=accept`;
/// - 5.x deprecates `vti-interface=`, `vti-routing=`, `vti-shared=` for `ipsec-interface=` (XFRM
///   interfaces, which pluto creates itself);
/// - 5.4 adds `updown-config=exec` (the `leftupdown=` string split on spaces and exec'd, no shell)
///   and `async` (one compound `prepare-route-up` call for the responder's established Child SA,
///   first selector pair only); earlier versions refuse the keyword (the file does not load).
/// Pure: the caller says which libreswan it found (nil: unknown, then only what holds for any).

/// A libreswan release, as `ipsec --version` or the package manager says it (`5.2`, `4.10`).
public struct LibreswanVersion: Sendable, Hashable, Comparable, CustomStringConvertible {
    public var major: Int
    public var minor: Int

    public init(major: Int, minor: Int) {
        self.major = major
        self.minor = minor
    }

    /// `5.2`, `5.2-2.2` (Debian's version), `v5.4`, `Libreswan 5.2`: the first MAJOR.MINOR in the text.
    public init?(_ text: some StringProtocol) {
        for word in text.split(whereSeparator: { $0 == " " || $0 == "\n" }) {
            let digits = word.drop { !$0.isNumber }
            let parts = digits.split(separator: ".", maxSplits: 2).map { $0.prefix { $0.isNumber } }
            if parts.count >= 2, let major = Int(parts[0]), let minor = Int(parts[1]) {
                self.init(major: major, minor: minor)
                return
            }
        }
        return nil
    }

    public static func < (a: LibreswanVersion, b: LibreswanVersion) -> Bool { (a.major, a.minor) < (b.major, b.minor) }
    public var description: String { "\(major).\(minor)" }
}

/// `debianBuild`: the version is Debian's package, whose pluto drops IKEv1 by default from 4.5-2 on
/// (upstream 4.x accepts it): seen in the test bed, "failed to add IKEv1 connection: global
/// ikev1-policy does not allow IKEv1 connections" from 4.10-2+deb12u1.
public func checkForLibreswan5(_ config: IPsecConfig, version: LibreswanVersion?, debianBuild: Bool = false) -> [ConfigFinding] {
    var findings: [ConfigFinding] = []
    let isFive = version.map { $0.major >= 5 } ?? false
    let debianDrops = debianBuild && (version.map { $0 >= LibreswanVersion(major: 4, minor: 6) } ?? false)
    let setup = config.setup?.settings ?? [:]
    let named = version.map { "libreswan \($0)" } ?? "this libreswan"

    let ikev1Accepted = setup["ikev1-policy"]?.value.lowercased() == "accept"

    for section in config.conns where section.name != "%default" {
        guard let conn = try? config.resolved(section.name) else { continue }  // the parser reports broken also=
        let settings = conn.settings
        func finding(_ severity: ConfigFinding.Severity, _ key: String, _ message: String) {
            findings.append(ConfigFinding(severity: severity, location: settings[key]?.location ?? conn.location, message: message))
        }
        if settings["auto"]?.value == "ignore" { continue }

        // IKEv1: 4.x's ikev2=no/never/permit, 5.x's keyexchange=ikev1 (ike is its old spelling).
        let exchange = settings["keyexchange"]?.value.lowercased()
        let ikev2 = settings["ikev2"]?.value.lowercased()
        let isIKEv1 = exchange == "ikev1" || ((exchange == nil || exchange == "ike") && (ikev2 == "no" || ikev2 == "never"))
        if isIKEv1 && isFive && !ikev1Accepted {
            finding(.error, settings["keyexchange"] != nil ? "keyexchange" : "ikev2",
                    "conn \(conn.name) is IKEv1: \(named) drops IKEv1 unless config setup has ikev1-policy=accept (5.0's default is drop)")
        } else if isIKEv1 && debianDrops && !ikev1Accepted {
            finding(.error, settings["keyexchange"] != nil ? "keyexchange" : "ikev2",
                    "conn \(conn.name) is IKEv1: Debian's \(named) drops IKEv1 unless config setup has ikev1-policy=accept (Debian's default since 4.5-2 is drop; pluto refuses to load the conn)")
        }

        // The VTI keywords: deprecated in 5.x, still honoured; vti-updown and vtid keep handling them.
        if isFive, let interface = settings["vti-interface"] {
            let others = ["vti-routing", "vti-shared"].filter { settings[$0] != nil }
            findings.append(ConfigFinding(
                severity: .warning, location: interface.location,
                message: "conn \(conn.name): vti-interface=\(others.isEmpty ? "" : " (and " + others.map { $0 + "=" }.joined(separator: ", ") + ")") is deprecated in \(named) in favour of ipsec-interface= (XFRM interfaces, created by pluto); it still works, and vti-updown and vtid handle it as before"))
        }

        // updown-config= (both ends' spellings).
        for key in ["updown-config", "leftupdown-config", "rightupdown-config"] {
            guard let setting = settings[key] else { continue }
            let flags = Set(setting.value.lowercased().split(whereSeparator: { $0 == "," || $0 == " " || $0 == "+" }).map(String.init))
            if let version, version < LibreswanVersion(major: 5, minor: 4) {
                // 4.10 and 5.2 refuse the file: "unrecognized keyword 'updown-config'" (addconn --checkconfig).
                finding(.error, key, "conn \(conn.name): \(key)= needs libreswan 5.4; \(named) refuses the file (unrecognized keyword)")
            }
            let unknown = flags.subtracting(["exec", "async", "no", "none"])
            if !unknown.isEmpty {
                finding(.error, key, "conn \(conn.name): \(key)= knows exec and async, not \(unknown.sorted().joined(separator: ", "))")
            }
            let exec = flags.contains("exec") || flags.contains("async")
            let updownKey = key.hasPrefix("right") ? "rightupdown" : "leftupdown"
            if exec, let updown = settings[updownKey]?.value ?? settings["leftupdown"]?.value,
               updown.contains(where: { "'\"$`;|&<>()*?\\".contains($0) }) {
                finding(.error, updownKey, "conn \(conn.name): with \(key)=\(setting.value) pluto execs \(updownKey)= split on spaces, without a shell: quotes, variables and other shell syntax in \"\(updown)\" reach the program as they are")
            }
            if flags.contains("async") {
                let pairs = ["leftsubnets", "rightsubnets"].compactMap { settings[$0] }
                    .filter { $0.value.split(whereSeparator: { $0 == " " || $0 == "," || $0 == "{" || $0 == "}" }).count > 1 }
                if !pairs.isEmpty {
                    finding(.error, key, "conn \(conn.name): \(key)=async passes the hook only the first selector pair, so the other subnets of \(pairs.map { "\($0.value)" }.joined(separator: " ")) get no routes: use one subnet pair per conn, or drop async")
                }
            }
        }
    }
    return findings
}
