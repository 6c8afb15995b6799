import ArgumentParser
import Foundation
import Netlink
import VTIModel
import VTIDaemon

extension VTICtl {
    /// `vtictl check`: libreswan's route-based conns and the kernel's support for them, read-only.
    struct Check: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Check libreswan's route-based conns and the kernel's VTI support, changing nothing.",
            discussion: "Exits 1 if anything is an error, 0 with warnings only. Each finding names file and line.")

        @Option(name: .customLong("ipsec-conf"), help: "libreswan's main configuration file.")
        var ipsecConf = "/etc/ipsec.conf"

        @Flag(help: "Skip the kernel checks (for checking a configuration meant for another host).")
        var noKernel = false

        @OptionGroup var output: OutputOptions

        func run() throws {
            var findings: [ConfigFinding] = []
            var connCount = 0
            do {
                let config = try loadIPsecConfig(ipsecConf)
                let conns = try RouteBasedConn.all(in: config)
                connCount = conns.count
                findings += checkRouteBasedConns(conns)
            } catch {
                findings.append(ConfigFinding(severity: .error, location: error.location, message: error.problem))
            }
            if !noKernel { findings += kernelFindings() }
            let errors = findings.filter { $0.severity == .error }.count
            let warnings = findings.count - errors
            if output.json {
                let report = CheckReport(
                    routeBasedConns: connCount, errors: errors, warnings: warnings,
                    findings: findings.map { .init(severity: $0.severity.rawValue, file: $0.location?.file, line: $0.location?.line, message: $0.message) })
                let encoder = JSONEncoder()
                encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
                print(String(decoding: try encoder.encode(report), as: UTF8.self))
            } else {
                for finding in findings { print(finding) }
                print("\(connCount) route-based conn\(connCount == 1 ? "" : "s") checked: \(errors) error\(errors == 1 ? "" : "s"), \(warnings) warning\(warnings == 1 ? "" : "s")")
            }
            if errors > 0 { throw ExitCode(1) }
        }
    }
}

/// `vtictl check --json`: a stable shape for scripts.
struct CheckReport: Codable {
    struct Finding: Codable {
        var severity: String
        var file: String?
        var line: Int?
        var message: String
    }
    var routeBasedConns: Int
    var errors: Int
    var warnings: Int
    var findings: [Finding]
}

/// Can this kernel carry VTI tunnels? ip_vti and esp4 loaded, built in, or loadable; XFRM netlink.
private func kernelFindings() -> [ConfigFinding] {
    var findings: [ConfigFinding] = []
    var release = utsname()
    uname(&release)
    let version = withUnsafeBytes(of: release.release) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
    let modulesDirectory = "/lib/modules/\(version)"
    let known = ["modules.dep", "modules.builtin"].compactMap {
        FileManager.default.contents(atPath: "\(modulesDirectory)/\($0)").map { String(decoding: $0, as: UTF8.self) }
    }.joined(separator: "\n")
    for (module, purpose) in [("ip_vti", "VTI devices"), ("esp4", "ESP (IPsec encryption)")] {
        if FileManager.default.fileExists(atPath: "/sys/module/\(module)") || known.contains("/\(module).ko") { continue }
        findings.append(ConfigFinding(severity: .error, location: nil,
            message: "the running kernel (\(version)) has no \(module) for \(purpose): it is neither loaded, built in, nor in \(modulesDirectory)"))
    }
    do {
        _ = try NetlinkSocket(.xfrm)
    } catch {
        findings.append(ConfigFinding(severity: .error, location: nil, message: "no XFRM netlink (xfrm_user): \(error)"))
    }
    return findings
}
