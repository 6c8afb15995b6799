import ArgumentParser
import Foundation
import VTIConfiguration
import VTIModel

extension VTICtl {
    /// `vtictl migrate`: the ipsec.conf edits that move route-based VTI conns to XFRM interfaces,
    /// printed, never applied.
    struct Migrate: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Print how to move route-based VTI conns to XFRM interfaces (ipsec-interface=), changing nothing.",
            discussion: """
                Reads ipsec.conf and its includes and prints the plan: for each VTI device the XFRM interface \
                its conns move to (ipsecN, if_id N: the VTI's own number when free, else the lowest free one; \
                conns sharing a VTI share the XFRM interface), the edits of each file (vti-interface= becomes \
                ipsec-interface=N; mark=, mark-in=, mark-out=, vti-routing=, vti-shared= go; leftvti= becomes \
                leftinterface-ip=), the firewall rules to rename, what pluto, vti-updown and vtid do during the \
                switch, the steps and the rollback.

                --diff prints the same edits as a unified diff with absolute paths under a/ and b/: \
                `patch -p1 -d / < FILE` applies it, `patch -R -p1 -d / < FILE` rolls it back. \
                Every other byte of the files stays as it is.

                Exits 1 if a conn asked for cannot be migrated as written (the plan says why); the others are \
                still planned.
                """)

        @Option(name: .customLong("ipsec-conf"), help: "libreswan's main configuration file.")
        var ipsecConf = "/etc/ipsec.conf"

        @Option(name: .customLong("conn"), help: "Migrate only this conn (repeatable; default: every route-based VTI conn).")
        var conns: [String] = []

        @Flag(help: "Print the edits as a unified diff for `patch -p1 -d /` (notes go to standard error).")
        var diff = false

        @Option(help: "The libreswan release the conns are for, e.g. 5.2 (default: the installed package's, from dpkg's status file).")
        var libreswan: String?

        func run() throws {
            let version = try VTICtl.libreswanVersion(libreswan)
            let loaded: (config: IPsecConfig, files: [IPsecConfig.Source])
            do {
                loaded = try loadIPsecConfigFiles(ipsecConf)
            } catch {
                return try fail("\(error)")
            }
            let plan: MigrationPlan
            do {
                plan = try planMigration(loaded.config, files: loaded.files, selected: conns.isEmpty ? nil : conns, version: version)
            } catch {
                return try fail(error.message)
            }
            if diff {
                FileHandle.standardOutput.write(Data(plan.unifiedDiff.utf8))
                for conn in plan.conns { for note in conn.notes { FileHandle.standardError.write(Data("note: conn \(conn.name): \(note)\n".utf8)) } }
                for blocked in plan.blocked {
                    FileHandle.standardError.write(Data("error: conn \(blocked.name) (\(blocked.location)) is not in the diff: \(blocked.reason)\n".utf8))
                }
            } else {
                print(plan.text(diffCommand: diffCommand), terminator: "")
            }
            if !plan.blocked.isEmpty { throw ExitCode(1) }
        }

        /// Nothing planned: the reason on standard error, exit 1.
        private func fail(_ message: String) throws {
            FileHandle.standardError.write(Data("error: \(message)\n".utf8))
            throw ExitCode(1)
        }

        /// The command line that prints this plan's diff.
        private var diffCommand: String {
            var words = ["vtictl", "migrate", "--diff"]
            if ipsecConf != "/etc/ipsec.conf" { words += ["--ipsec-conf", shellQuoted(ipsecConf)] }
            for conn in conns { words += ["--conn", shellQuoted(conn)] }
            if let libreswan { words += ["--libreswan", shellQuoted(libreswan)] }
            return words.joined(separator: " ")
        }
    }
}

/// A word as a POSIX shell reads it back (for commands the plan prints; never run).
private func shellQuoted(_ word: String) -> String {
    guard word.isEmpty || word.contains(where: { !($0.isASCII && ($0.isLetter || $0.isNumber || "/._-+=:,%@".contains($0))) }) else { return word }
    return "'" + word.replacingOccurrences(of: "'", with: "'\\''") + "'"
}
