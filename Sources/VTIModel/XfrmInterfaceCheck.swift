/// `vtictl check`'s rules for how `ipsec-interface=` conns are written (the rules between conns are
/// in `checkRouteBasedConns`, those against the host in `checkHost` and `KernelSupport`):
/// - `config setup`'s `ipsec-interface-managed=` is libreswan 5.2's: older versions refuse the
///   file (unrecognized keyword);
/// - `vti-routing=`, `vti-shared=`, `leftvti=`, `rightvti=` are VTI's: beside `ipsec-interface=`
///   they do nothing (every XFRM-interface conn routes, one device serves many conns, and the
///   device's address is `leftinterface-ip=`). IPsecConf already refuses `vti-interface=` beside it.
/// Pure: the caller says which libreswan it found (nil: unknown).

public func checkXfrmInterfaceSettings(_ config: IPsecConfig, version: LibreswanVersion?) -> [ConfigFinding] {
    var findings: [ConfigFinding] = []
    if let managed = config.setup?.settings["ipsec-interface-managed"], let version, version < LibreswanVersion(major: 5, minor: 2) {
        findings.append(ConfigFinding(
            severity: .error, location: managed.location,
            message: "config setup: ipsec-interface-managed=\(managed.value) needs libreswan 5.2; libreswan \(version) refuses the file (unrecognized keyword)\(managed.value == "no" ? " and always creates the XFRM interfaces itself" : "")"))
    }
    var reported = Set<ConfigLocation>()
    for section in config.conns where section.name != "%default" {
        guard let conn = try? config.resolved(section.name), let xfrm = conn.settings["ipsec-interface"], xfrm.value != "no" else { continue }
        let ignored: [(String, String)] = [
            ("vti-routing", "every ipsec-interface= conn routes into its device (PLUTO_XFRMI_ROUTE=yes)"),
            ("vti-shared", "one XFRM interface serves any number of conns and peers"),
            ("leftvti", "the XFRM interface's address is leftinterface-ip="),
            ("rightvti", "the XFRM interface's address is rightinterface-ip="),
        ]
        for (key, why) in ignored {
            guard let setting = conn.settings[key], reported.insert(setting.location).inserted else { continue }
            findings.append(ConfigFinding(
                severity: .warning, location: setting.location,
                message: "conn \(conn.name): \(key)=\(setting.value) is ignored beside ipsec-interface=\(xfrm.value) (\(xfrm.location)): \(why)"))
        }
    }
    return findings
}
