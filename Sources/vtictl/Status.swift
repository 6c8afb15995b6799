import ArgumentParser
import ControlProtocol
import Foundation
import Netlink

extension VTICtl {
    /// `vtictl status`: vtid's view (conns, clients, errors) next to the kernel's (devices, SAs).
    /// With vtid down it says so and shows the kernel's view alone.
    struct Status: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Show vtid's conns and clients and the kernel's VTI devices and IPsec SAs.")

        @Argument(help: "Show only this conn.")
        var connection: String?

        @OptionGroup var daemon: DaemonOptions
        @OptionGroup var output: OutputOptions

        func run() throws {
            let kernel: KernelReport
            var kernelError: String?
            do {
                kernel = try KernelReport.read()
            } catch {
                // Without root the XFRM state cannot be read; vtid's answer (or its refusal) still says the most.
                kernelError = "cannot read the kernel's state: \(error)\(geteuid() == 0 ? "" : " (reading IPsec SAs needs root)")"
                kernel = KernelReport(devices: [], securityAssociations: [])
            }
            var report = StatusReport(vtidRunning: false, vtidError: nil, vtid: nil, kernel: kernel)
            if output.json && connection == nil, let raw = try? daemon.client.send("status") {
                // vtid's answer as it came (with the SA counters it filled in): thousands of
                // clients need no decoding and encoding again.
                print("{\"kernel\":\(try encodeJSON(kernel, pretty: false)),\"vtid\":\(String(decoding: raw, as: UTF8.self)),\"vtidRunning\":true}")
                return
            }
            do {
                report.vtid = try daemon.client.fetch("status", as: StatusReply.self)
                report.vtidRunning = true
            } catch {
                report.vtidError = "\(error)"
            }
            if let kernelError {
                guard report.vtidRunning else { throw failure("\(report.vtidError ?? "vtid did not answer"); and \(kernelError)") }
                FileHandle.standardError.write(Data("vtictl: \(kernelError); showing vtid's view only\n".utf8))
            }
            if let connection { report.keep(connection: connection) }
            if output.json {
                print(try encodeJSON(report))
            } else {
                // existing_device conns use devices of other kinds; the table shows their state too.
                let shown = Set(report.kernel.devices.map(\.name))
                let others = Set(report.vtid?.connections.map(\.device) ?? []).subtracting(shown)
                print(report.table(otherDevices: others.isEmpty ? [:] : (try? KernelReport.linkStates(others)) ?? [:]))
            }
        }
    }
}

/// `vtictl status --json`: the documented schema (README, "vtictl status --json").
struct StatusReport: Codable {
    var vtidRunning: Bool
    var vtidError: String?
    var vtid: StatusReply?
    var kernel: KernelReport

    mutating func keep(connection: String) {
        vtid?.connections.removeAll { $0.name != connection }
        vtid?.leases.removeAll { $0.connection != connection }
        if let device = vtid?.connections.first?.device {
            kernel.devices.removeAll { $0.name != device }
        }
    }

    func table(otherDevices: [String: (state: String, mtu: UInt32)] = [:]) -> String {
        var lines: [String] = []
        if let vtid {
            let daemon = vtid.daemon
            let unrecorded = (daemon.eventsNotRecorded ?? 0) > 0 ? " (\(daemon.eventsNotRecorded!) not recorded)" : ""
            let state = daemon.degraded == true ? colour("running, DEGRADED (see PROBLEMS)", .red) : "running"
            lines.append("vtid: \(state) (pid \(daemon.pid), up \(duration(since: daemon.started)), \(daemon.eventsApplied) events applied\(unrecorded), \(daemon.eventsFailed) failed), \(daemon.configurationFile)")
            if let error = daemon.reloadError { lines.append("  last reload FAILED, running the previous configuration: \(error)") }
            lines.append("")
            lines += Table(
                header: ["CONN", "DEVICE", "STATE", "MTU", "MARK IN/OUT", "SHARED", "PEER", "SAS SINCE", "IN BYTES/PKTS", "OUT BYTES/PKTS",
                         "POOL", "CLIENTS", "DEFINED AT"],
                rows: vtid.connections.map { conn in
                    let device = kernel.devices.first { $0.name == conn.device }.map { (state: $0.state, mtu: $0.mtu) } ?? otherDevices[conn.device]
                    let clients = vtid.leases.filter { $0.connection == conn.name && $0.connected }.count
                    let traffic = conn.traffic
                    let peers = traffic?.peers ?? []
                    return [conn.name, conn.device, device?.state ?? "missing", device.map { "\($0.mtu)" } ?? "-",
                            conn.markIn == conn.markOut ? conn.markIn : "\(conn.markIn)/\(conn.markOut)", conn.shared ? "yes" : "no",
                            peers.first.map { peers.count > 1 ? "\($0) +\(peers.count - 1)" : $0 } ?? "-",
                            traffic?.since.map(clock) ?? "-",
                            traffic.map { "\($0.inBytes)/\($0.inPackets)" } ?? "-", traffic.map { "\($0.outBytes)/\($0.outPackets)" } ?? "-",
                            conn.addressPool ?? "-", "\(clients)", conn.location]
                },
                empty: "no route-based conns in \(daemon.ipsecConf)").lines
            for conn in vtid.connections {
                if let repair = conn.lastRepair { lines.append("  \(conn.name): last repair \(repair)") }
            }
            if !vtid.problems.isEmpty {
                lines.append("")
                lines.append(colour("PROBLEMS", .red))
                lines += vtid.problems.map { "  " + $0 }
            }
            lines.append("")
            lines += Table(
                header: ["CLIENT", "CONN", "PEER ID", "PEER", "STATE", "SINCE", "IN BYTES", "OUT BYTES"],
                rows: vtid.leases.map { lease in
                    [lease.address, lease.connection, lease.peerID, lease.peerAddress, lease.connected ? "connected" : "gone",
                     clock(lease.connected ? lease.firstSeen : lease.lastSeen), "\(lease.inBytes)", "\(lease.outBytes)"]
                },
                empty: "no road-warrior clients").lines
            lines.append("")
        } else {
            lines.append(colour("vtid: NOT RUNNING", .red) + " (\(vtidError ?? "no answer")); showing what the kernel holds")
            lines.append("")
        }
        lines += kernel.table()
        return lines.joined(separator: "\n")
    }
}

enum Colour: String {
    case red = "31"
}

/// ANSI colour only when stdout is a terminal: pipes and scripts get plain text.
func colour(_ text: String, _ colour: Colour) -> String {
    isatty(1) != 0 && ProcessInfo.processInfo.environment["NO_COLOR"] == nil ? "\u{1b}[\(colour.rawValue)m\(text)\u{1b}[0m" : text
}

func duration(since start: Int64) -> String {
    let seconds = max(0, Int64(Date().timeIntervalSince1970) - start)
    if seconds < 120 { return "\(seconds)s" }
    if seconds < 7200 { return "\(seconds / 60)m" }
    if seconds < 172_800 { return "\(seconds / 3600)h \(seconds % 3600 / 60)m" }
    return "\(seconds / 86400)d \(seconds % 86400 / 3600)h"
}

/// Local time of day for today, else the date: what a 3 a.m. reader wants.
func clock(_ time: Int64) -> String {
    let date = Date(timeIntervalSince1970: TimeInterval(time))
    return (Calendar.current.isDateInToday(date) ? Clock.timeOfDay : Clock.day).string(from: date)
}

/// Formatters are costly to make: one each for a table of thousands of rows.
private enum Clock {
    static let timeOfDay = formatter("HH:mm:ss")
    static let day = formatter("yyyy-MM-dd HH:mm")

    static func formatter(_ format: String) -> DateFormatter {
        let formatter = DateFormatter()
        formatter.dateFormat = format
        return formatter
    }
}

func encodeJSON(_ value: some Encodable, pretty: Bool = true) throws -> String {
    let encoder = JSONEncoder()
    encoder.outputFormatting = pretty ? [.prettyPrinted, .sortedKeys] : [.sortedKeys]
    return String(decoding: try encoder.encode(value), as: UTF8.self)
}

/// What `status` prints; the JSON keys are a stable interface for scripts.
struct KernelReport: Codable {
    struct Device: Codable {
        var name: String
        var state: String
        var mtu: UInt32
        var local: String
        var remote: String
        var inputKey: UInt32
        var outputKey: UInt32
        var receivedBytes: UInt64
        var transmittedBytes: UInt64
    }
    struct SA: Codable {
        var source: String
        var destination: String
        var spi: String
        var reqid: UInt32
        var mark: String?
        var bytes: UInt64
        var packets: UInt64
    }
    var devices: [Device]
    var securityAssociations: [SA]

    static func read() throws -> KernelReport {
        let route = try NetlinkSocket(.route)
        let devices = try route.links().compactMap { link -> Device? in
            // ip_vti0 and ip6_vti0: the kernel's catch-all devices, made when the module loads.
            guard let vti = link.vti, !(["ip_vti0", "ip6_vti0"].contains(link.name) && vti.inputKey == 0 && vti.local.isUnspecified) else { return nil }
            return Device(
                name: link.name, state: link.isUp ? "up" : "down", mtu: link.mtu,
                local: vti.local.description, remote: vti.remote.description,
                inputKey: vti.inputKey, outputKey: vti.outputKey,
                receivedBytes: link.statistics?.receivedBytes ?? 0, transmittedBytes: link.statistics?.transmittedBytes ?? 0)
        }
        let sas = try NetlinkSocket(.xfrm).securityAssociations().map { sa in
            SA(source: sa.source.description, destination: sa.destination.description,
               spi: "0x" + String(sa.spi, radix: 16), reqid: sa.reqid, mark: sa.mark?.description,
               bytes: sa.bytes, packets: sa.packets)
        }
        return KernelReport(devices: devices, securityAssociations: sas)
    }

    /// State and MTU of devices by name, whatever their kind.
    static func linkStates(_ names: Set<String>) throws -> [String: (state: String, mtu: UInt32)] {
        var states: [String: (state: String, mtu: UInt32)] = [:]
        for link in try NetlinkSocket(.route).links() where names.contains(link.name) {
            states[link.name] = (link.isUp ? "up" : "down", link.mtu)
        }
        return states
    }

    func table() -> [String] {
        var lines: [String] = []
        lines.append(contentsOf: Table(
            header: ["DEVICE", "STATE", "MTU", "LOCAL", "REMOTE", "IKEY", "OKEY", "RX BYTES", "TX BYTES"],
            rows: devices.map { [$0.name, $0.state, "\($0.mtu)", $0.local, $0.remote, "\($0.inputKey)", "\($0.outputKey)",
                                 "\($0.receivedBytes)", "\($0.transmittedBytes)"] },
            empty: "no VTI devices").lines)
        lines.append("")
        lines.append(contentsOf: Table(
            header: ["SA", "SPI", "REQID", "MARK", "BYTES", "PACKETS"],
            rows: securityAssociations.map { ["\($0.source) -> \($0.destination)", $0.spi, "\($0.reqid)", $0.mark ?? "-",
                                              "\($0.bytes)", "\($0.packets)"] },
            empty: "no IPsec SAs").lines)
        return lines
    }
}

/// Left-aligned columns, two spaces apart, as `ip -br` and `wg show` print them.
struct Table {
    var header: [String]
    var rows: [[String]]
    var empty: String

    var lines: [String] {
        guard !rows.isEmpty else { return [empty] }
        let widths = header.indices.map { column in
            ([header] + rows).map { $0[column].count }.max() ?? 0
        }
        return ([header] + rows).map { row in
            row.enumerated().map { column, cell in
                column == row.count - 1 ? cell : cell.padding(toLength: widths[column], withPad: " ", startingAt: 0)
            }.joined(separator: "  ")
        }
    }
}
