import ArgumentParser
import ControlProtocol
import Foundation

extension VTICtl {
    /// `vtictl leases`: the address-pool lease table, persisted by vtid.
    struct Leases: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Show road-warrior clients and their pool addresses (from vtid).")

        @Flag(help: "Only clients connected now.")
        var connected = false

        @OptionGroup var daemon: DaemonOptions
        @OptionGroup var output: OutputOptions

        func run() throws {
            var reply = try ask { try daemon.client.fetch("leases", as: LeasesReply.self) }
            if connected { reply.leases.removeAll { !$0.connected } }
            if output.json {
                print(try encodeJSON(reply))
                return
            }
            print(Table(
                header: ["CLIENT", "CONN", "PEER ID", "PEER", "STATE", "FIRST SEEN", "LAST SEEN", "IN BYTES", "OUT BYTES"],
                rows: reply.leases.map {
                    [$0.address, $0.connection, $0.peerID, $0.peerAddress, $0.connected ? "connected" : "gone", clock($0.firstSeen),
                     clock($0.lastSeen), "\($0.inBytes)", "\($0.outBytes)"]
                },
                empty: "no leases").lines.joined(separator: "\n"))
            if let l2tp = reply.l2tpClients, !l2tp.isEmpty {
                print("\n" + l2tpTable(l2tp).joined(separator: "\n"))
            }
        }
    }

    /// `vtictl events`: what vtid did with recent hook events.
    struct Events: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Show recent hook events and their results (from vtid).")

        @Option(help: "Show at most this many, newest last.")
        var limit = 50

        @OptionGroup var daemon: DaemonOptions
        @OptionGroup var output: OutputOptions

        func run() throws {
            var reply = try ask { try daemon.client.fetch("events", as: EventsReply.self) }
            reply.events = Array(reply.events.suffix(max(0, limit)))
            if output.json {
                print(try encodeJSON(reply))
                return
            }
            print(Table(
                header: ["#", "TIME", "VERB", "CONN", "BY", "RESULT", "µs", "DETAIL"],
                rows: reply.events.map {
                    ["\($0.sequence)", clock($0.time / 1000), $0.verb, $0.connection, $0.source.rawValue, $0.result.rawValue,
                     "\($0.microseconds)", $0.error ?? $0.lines.joined(separator: "; ")]
                },
                empty: "no events yet").lines.joined(separator: "\n"))
        }
    }

    /// `vtictl reconcile`: make the kernel hold what vtid wants now, or show the difference.
    struct Reconcile: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Run vtid's reconcile now; with --dry-run, print the difference it would repair and change nothing.")

        @Flag(help: "Only print what would be done.")
        var dryRun = false

        @OptionGroup var daemon: DaemonOptions
        @OptionGroup var output: OutputOptions

        func run() throws {
            let line = try ask { try daemon.client.send("reconcile", ["dry_run": .bool(dryRun)]) }
            let lines = (try? JSONValue(parsing: line))?["lines"]?.arrayValue?.compactMap(\.stringValue) ?? []
            if output.json {
                print(String(decoding: line, as: UTF8.self))
            } else if lines.isEmpty {
                print(dryRun ? "nothing to repair: the kernel holds what vtid wants" : "nothing needed repair")
            } else {
                lines.forEach { print($0) }
            }
        }
    }

    /// `vtictl reload`: what SIGHUP does, with the answer.
    struct Reload: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Make vtid re-read vtid.yaml and ipsec.conf; a broken file keeps the running configuration.")

        @OptionGroup var daemon: DaemonOptions

        @Flag(help: "Allow a configuration after which vtid deletes every device it manages (vtid refuses such a reload otherwise).")
        var allowRemove = false

        func run() throws {
            _ = try ask { try daemon.client.send("reload", allowRemove ? ["allow_remove": .bool(true)] : [:]) }
            print("vtid reloaded its configuration")
        }
    }

    /// `vtictl metrics`: Prometheus text, for a node_exporter textfile or a quick look.
    struct Metrics: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Print vtid's metrics in Prometheus text format.")

        @OptionGroup var daemon: DaemonOptions

        func run() throws {
            let line = try ask { try daemon.client.send("metrics") }
            print((try? JSONValue(parsing: line))?["metrics"]?.stringValue ?? "", terminator: "")
        }
    }
}

/// Runs a request; a failure becomes one sentence on stderr and exit status 1.
func ask<Reply>(_ request: () throws -> Reply) throws -> Reply {
    do {
        return try request()
    } catch {
        throw failure("\(error)")
    }
}

/// Says what went wrong in one sentence on stderr (no usage text: the command was right) and
/// gives the exit status 1 to throw.
func failure(_ sentence: String) -> ExitCode {
    FileHandle.standardError.write(Data("vtictl: \(sentence)\n".utf8))
    return ExitCode(1)
}
