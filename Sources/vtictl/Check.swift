import ArgumentParser
import Foundation
import Netlink
import VTIConfiguration
import VTIModel

extension VTICtl {
    /// `vtictl check`: libreswan's route-based conns and the kernel's support for them, read-only.
    struct Check: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Check libreswan's route-based conns (VTI and XFRM interfaces) and the kernel's support, changing nothing.",
            discussion: "Exits 1 if anything is an error, 0 with warnings only. Each finding names file and line.")

        @Option(help: "vtid's configuration; a missing file at the default path means vtid's defaults.")
        var config = "/etc/vtictl/vtid.yaml"

        @Option(name: .customLong("ipsec-conf"), help: "libreswan's main configuration file (default: vtid.yaml's ipsec_conf, else /etc/ipsec.conf).")
        var ipsecConf: String?

        @Option(name: .customLong("peer-ipsec-conf"),
                help: "Another gateway's ipsec.conf (repeatable): report address pools that overlap this gateway's, naming both files and lines.")
        var peerIPsecConf: [String] = []

        @Flag(help: "Skip the checks against this host: kernel support, devices, ip rules, sysctl files, the hook's path (for a configuration meant for another host).")
        var noKernel = false

        @Option(help: "The libreswan release the conns are meant for, e.g. 5.2 (default: the installed package's, from dpkg's status file).")
        var libreswan: String?

        @OptionGroup var output: OutputOptions

        /// The hook installed with this vtictl: PREFIX/libexec/vtictl/vti-updown next to PREFIX/bin/vtictl
        /// (/usr from the Debian package, /usr/local from Scripts/install) if it is there; else where
        /// the package puts it.
        static func installedHookPath() -> String {
            guard let me = try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe") else { return packagedHookPath }
            let bin = URL(fileURLWithPath: me).deletingLastPathComponent()
            guard bin.lastPathComponent == "bin" else { return packagedHookPath }
            let hook = bin.deletingLastPathComponent().appendingPathComponent("libexec/vtictl/vti-updown").path
            return FileManager.default.isExecutableFile(atPath: hook) ? hook : packagedHookPath
        }

        func run() throws {
            var findings: [ConfigFinding] = []
            var daemon = DaemonConfiguration()
            do {
                daemon = try loadDaemonConfiguration(config, requireFile: config != "/etc/vtictl/vtid.yaml")
            } catch {
                findings.append(ConfigFinding(severity: .error, location: error.line.map { ConfigLocation(file: error.file, line: $0) },
                                              message: error.line == nil ? "\(error.file): \(error.problem)" : error.problem))
            }
            if let ipsecConf { daemon.ipsecConf = ipsecConf }
            var conns: [RouteBasedConn] = []
            let libreswanVersion = try libreswanVersion()
            var localPools: [ConnAddressPool] = []
            do {
                let ipsecConfig = try loadIPsecConfig(daemon.ipsecConf)
                localPools = ipsecConfig.addressPools().pools
                let parsed = RouteBasedConn.each(in: ipsecConfig)
                conns = parsed.conns
                findings += parsed.errors.map { ConfigFinding(severity: .error, location: $0.location, message: $0.problem) }
                findings += checkForLibreswan5(ipsecConfig, version: libreswanVersion, debianBuild: libreswan == nil && libreswanVersion != nil)
                findings += checkXfrmInterfaceSettings(ipsecConfig, version: libreswanVersion)
            } catch {
                findings.append(ConfigFinding(severity: .error, location: error.location, message: error.problem))
            }
            let answeringARP = Set(daemon.connections.filter { $0.value.proxyARP != nil && daemon.manages($0.key) }.keys)
            findings += checkRouteBasedConns(conns, managed: daemon.managedConnections, proxyARP: answeringARP, hookPath: Self.installedHookPath())
            findings += daemon.findings(against: conns, file: config)
            for peer in peerIPsecConf {
                do {
                    let (pools, errors) = try loadIPsecConfig(peer).addressPools()
                    findings += errors.map { ConfigFinding(severity: .error, location: $0.location, message: "the other gateway's \($0.problem)") }
                    findings += checkPoolsAcrossGateways(localPools, peer: pools)
                } catch {
                    // Line 0: the file itself cannot be read, and the message names it.
                    findings.append(ConfigFinding(severity: .error, location: error.location.line > 0 ? error.location : nil,
                                                  message: "the other gateway's file: \(error.problem)"))
                }
            }
            if !noKernel {
                findings += KernelSupport.ofRunningKernel().findings(for: conns)
                findings += checkHost(conns, settings: daemon.hook, facts: HostFacts.read(updowns: Set(conns.flatMap { $0.updownSides.compactMap(\.program) })))
            }
            let errors = findings.filter { $0.severity == .error }.count
            let warnings = findings.count - errors
            if output.json {
                let report = CheckReport(
                    routeBasedConns: conns.count, errors: errors, warnings: warnings,
                    findings: findings.map { .init(severity: $0.severity.rawValue, file: $0.location?.file, line: $0.location?.line, message: $0.message) })
                print(try encodeJSON(report))
            } else {
                for finding in findings { print(finding) }
                print("\(conns.count) route-based conn\(conns.count == 1 ? "" : "s") checked: \(errors) error\(errors == 1 ? "" : "s"), \(warnings) warning\(warnings == 1 ? "" : "s")")
            }
            if errors > 0 { throw ExitCode(1) }
        }
    }
}

extension VTICtl.Check {
    func libreswanVersion() throws -> LibreswanVersion? { try VTICtl.libreswanVersion(libreswan) }
}

extension VTICtl {
    /// `--libreswan`, else the installed package's version as dpkg records it (nil elsewhere).
    /// (The version is then Debian's package's: `checkForLibreswan5`'s `debianBuild`.)
    static func libreswanVersion(_ libreswan: String?) throws -> LibreswanVersion? {
        if let libreswan {
            guard let version = LibreswanVersion(libreswan) else { throw ValidationError("--libreswan wants a release like 5.2, not \(libreswan)") }
            return version
        }
        guard let status = try? String(contentsOfFile: "/var/lib/dpkg/status", encoding: .utf8) else { return nil }
        for stanza in status.split(separator: "\n\n") where stanza.hasPrefix("Package: libreswan\n") {
            guard stanza.contains("\nStatus: install ok installed") else { continue }
            if let line = stanza.split(separator: "\n").first(where: { $0.hasPrefix("Version: ") }) {
                return LibreswanVersion(line.dropFirst("Version: ".count))
            }
        }
        return nil
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

extension KernelSupport {
    /// Loaded (/sys/module), built in or installed (modules.builtin, modules.dep) for `uname -r`.
    static func ofRunningKernel() -> KernelSupport {
        let version = FileManager.default.contents(atPath: "/proc/sys/kernel/osrelease")
            .map { String(decoding: $0, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines) } ?? "(unknown release)"
        let modulesDirectory = "/lib/modules/\(version)"
        let index = ["modules.dep", "modules.builtin"].compactMap {
            FileManager.default.contents(atPath: "\(modulesDirectory)/\($0)").map { String(decoding: $0, as: UTF8.self) }
        }.joined(separator: "\n")
        let available = Set((required.map(\.0) + [xfrmInterfaceModule]).filter { module in
            FileManager.default.fileExists(atPath: "/sys/module/\(module)") || index.contains("/\(module).ko")
        })
        var xfrmError: String?
        do {
            _ = try NetlinkSocket(.xfrm)
        } catch {
            xfrmError = "\(error)"
        }
        return KernelSupport(release: version, modulesDirectory: modulesDirectory, availableModules: available, xfrmNetlinkError: xfrmError)
    }
}

extension HostFacts {
    /// The sysctl files in the order `sysctl --system` reads them (later lines win).
    static let sysctlDirectories = ["/usr/lib/sysctl.d", "/lib/sysctl.d", "/usr/local/lib/sysctl.d", "/run/sysctl.d", "/etc/sysctl.d"]

    static func read(updowns: Set<String>) -> HostFacts {
        var facts = HostFacts()
        if let route = try? NetlinkSocket(.route) {
            for family in [AddressFamily.ipv4, AddressFamily.ipv6] {
                for rule in (try? route.rules(family: family)) ?? [] {
                    guard let mark = rule.firewallMark else { continue }
                    facts.markRules.append(.init(priority: rule.priority ?? 0, mark: mark, mask: rule.firewallMask ?? 0xffff_ffff,
                                                 action: rule.action == .lookup ? "lookup \(tableName(rule.table.rawValue))" : "\(rule.action)", isInverted: rule.isInverted))
                }
            }
            facts.devices = ((try? route.links()) ?? []).map { link in
                .init(name: link.name, vti: link.vti.map {
                    .init(inputKey: $0.inputKey, outputKey: $0.outputKey, local: $0.local.description, remote: $0.remote.description)
                }, xfrmInterfaceID: link.xfrmInterface?.interfaceID)
            }
        }
        // systemd-sysctl: a file name in a later directory replaces the same name in an earlier one.
        var files: [String: String] = [:]
        for directory in sysctlDirectories {
            for name in (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? [] where name.hasSuffix(".conf") {
                files[name] = "\(directory)/\(name)"
            }
        }
        var read = Set<String>()  // Debian's /etc/sysctl.d/99-sysctl.conf is a link to /etc/sysctl.conf
        for path in files.keys.sorted().compactMap({ files[$0] }) + ["/etc/sysctl.conf"] {
            guard read.insert(URL(fileURLWithPath: path).resolvingSymlinksInPath().path).inserted,
                  let data = FileManager.default.contents(atPath: path) else { continue }
            facts.sysctlFiles += SysctlFileSetting.parse(String(decoding: data, as: UTF8.self), file: path)
        }
        facts.executables = Set(updowns.filter { FileManager.default.isExecutableFile(atPath: $0) })
        return facts
    }
}
