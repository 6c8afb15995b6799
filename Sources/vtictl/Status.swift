import ArgumentParser
import ControlProtocol
import Foundation
import Netlink
import VTIConfiguration
import VTIModel

extension VTICtl {
    /// `vtictl status`: vtid's view (conns, clients, errors) next to the kernel's (devices, SAs).
    /// With vtid down it says so and shows the kernel's view alone.
    struct Status: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Show vtid's conns and clients and the kernel's VTI devices and IPsec SAs.")

        @Argument(help: "Show only this conn.")
        var connection: String?

        @Option(help: "vtid's configuration, for its route protocol when vtid does not answer.")
        var config = "/etc/vtictl/vtid.yaml"

        @OptionGroup var daemon: DaemonOptions
        @OptionGroup var output: OutputOptions

        /// Which routes a routing daemon can announce: vtid's records (when it answers) against
        /// the kernel's routes with vtid's protocol. nil when the kernel cannot be read.
        func announcements() -> RouteAnnouncements? {
            let recorded = try? daemon.client.fetch("routes", as: RoutesReply.self)
            var routeProtocol = recorded?.routeProtocol ?? HookSettings.defaultRouteProtocol.rawValue
            if recorded == nil, let configuration = try? loadDaemonConfiguration(config, requireFile: false) {
                routeProtocol = configuration.hook.routeProtocol.rawValue
            }
            return try? RouteAnnouncements.read(recorded: recorded?.routes, routeProtocol: routeProtocol, connection: connection)
        }

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
            if output.json && connection == nil, let raw = try? daemon.client.send("status"),
               let answer = StatusReport.withDevices(raw, kernel: kernel) {
                // vtid's answer as it came (with the SA counters it filled in), only its conns
                // decoded to add their devices: thousands of clients need no decoding and encoding again.
                let routes = try announcements().map { "\"announcements\":" + (try encodeJSON($0, pretty: false)) + "," } ?? ""
                print("{\(routes)\"kernel\":\(try encodeJSON(kernel, pretty: false)),\"vtid\":\(String(decoding: answer, as: UTF8.self)),\"vtidRunning\":true}")
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
            report.announcements = announcements()
            if var connections = report.vtid?.connections {
                StatusReport.fillDevices(&connections, kernel: report.kernel)
                report.vtid?.connections = connections
            }
            print(output.json ? try encodeJSON(report) : report.table())
        }
    }
}

/// `vtictl status --json`: the documented schema (README, "vtictl status --json").
struct StatusReport: Codable {
    var vtidRunning: Bool
    var vtidError: String?
    var vtid: StatusReply?
    var kernel: KernelReport
    /// Which routes BIRD or FRR can announce; nil when the kernel's routes cannot be read.
    var announcements: RouteAnnouncements?

    mutating func keep(connection: String) {
        vtid?.connections.removeAll { $0.name != connection }
        vtid?.leases.removeAll { $0.connection != connection }
        if let device = vtid?.connections.first?.device {
            kernel.devices.removeAll { $0.name != device }
        }
    }

    /// Each conn's device state and MTU from the kernel: its VTI from `kernel.devices`, an
    /// `existing_device` of another kind looked up by name; `missing` when there is none.
    static func fillDevices(_ connections: inout [ConnectionRecord], kernel: KernelReport) {
        var devices: [String: (state: String, mtu: UInt32)] = [:]
        for device in kernel.devices { devices[device.name] = (device.state, device.mtu) }
        let others = Set(connections.map(\.device)).subtracting(devices.keys)
        if !others.isEmpty, let states = try? KernelReport.linkStates(others) { devices.merge(states) { first, _ in first } }
        for index in connections.indices {
            let device = devices[connections[index].device]
            connections[index].deviceState = device?.state ?? "missing"
            connections[index].deviceMTU = device?.mtu
        }
    }

    /// vtid's raw `status` answer with each conn's device filled in; nil if its conns cannot be
    /// found or read (the caller then decodes the whole answer).
    static func withDevices(_ raw: [UInt8], kernel: KernelReport) -> [UInt8]? {
        guard let range = topLevelMember("connections", in: raw),
              var connections = try? JSONDecoder().decode([ConnectionRecord].self, from: Data(raw[range])) else { return nil }
        fillDevices(&connections, kernel: kernel)
        // Encoded as vtid encodes them (keys in declaration order, compact): scripts that read
        // the answer's text see the same bytes, with the two fields added.
        guard var encoded = try? JSONLineEncoder().encodeLine(connections) else { return nil }
        if encoded.last == UInt8(ascii: "\n") { encoded.removeLast() }
        return Array(raw[..<range.lowerBound]) + encoded + Array(raw[range.upperBound...])
    }

    func table() -> String {
        var lines: [String] = []
        if let vtid {
            let daemon = vtid.daemon
            let unrecorded = (daemon.eventsNotRecorded ?? 0) > 0 ? " (\(daemon.eventsNotRecorded!) not recorded)" : ""
            let state = daemon.degraded == true ? colour("running, DEGRADED (see PROBLEMS)", .red) : "running"
            lines.append("vtid: \(state) (pid \(daemon.pid), up \(duration(since: daemon.started)), \(daemon.eventsApplied) events applied\(unrecorded), \(daemon.eventsFailed) failed), \(daemon.configurationFile)")
            if let error = daemon.reloadError { lines.append("  last reload FAILED, running the previous configuration: \(error)") }
            lines.append("")
            lines += Table(
                header: ["CONN", "DEVICE", "STATE", "MTU", "MARK/IF_ID", "SHARED", "PEER", "SAS SINCE", "IN BYTES/PKTS", "OUT BYTES/PKTS",
                         "POOL", "CLIENTS", "DEFINED AT"],
                rows: vtid.connections.map { conn in
                    let clients = vtid.leases.filter { $0.connection == conn.name && $0.connected }.count
                    let traffic = conn.traffic
                    let peers = traffic?.peers ?? []
                    return [conn.name, conn.device, conn.deviceState ?? "missing", conn.deviceMTU.map { "\($0)" } ?? "-",
                            conn.markIn == conn.markOut ? conn.markIn : "\(conn.markIn)/\(conn.markOut)", conn.shared ? "yes" : "no",
                            peers.first.map { peers.count > 1 ? "\($0) +\(peers.count - 1)" : $0 } ?? "-",
                            traffic?.since.map(clock) ?? "-",
                            traffic.map { "\($0.inBytes)/\($0.inPackets)" } ?? "-", traffic.map { "\($0.outBytes)/\($0.outPackets)" } ?? "-",
                            conn.addressPool ?? "-", "\(clients)", conn.location]
                },
                empty: "no route-based conns in \(daemon.ipsecConf)").lines
            for conn in vtid.connections {
                if let repair = conn.lastRepair { lines.append("  \(conn.name): last repair \(repair)") }
                if let clamp = conn.mssClamp { lines.append("  \(conn.name): MSS clamp \(clamp)") }
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
            if let l2tp = vtid.l2tpClients, !l2tp.isEmpty {
                lines += l2tpTable(l2tp)
                lines.append("")
            }
        } else {
            lines.append(colour("vtid: NOT RUNNING", .red) + " (\(vtidError ?? "no answer")); showing what the kernel holds")
            lines.append("")
        }
        if let announcements {
            lines += announcements.table()
            lines.append("")
        }
        lines += kernel.table()
        return lines.joined(separator: "\n")
    }
}

/// L2TP/IPsec clients (ppp links pppd made, with their IPsec SAs): `vtictl status` and `leases`.
func l2tpTable(_ clients: [L2TPClientRecord]) -> [String] {
    var lines = Table(
        header: ["L2TP CLIENT", "DEVICE", "STATE", "PEER", "SAS SINCE", "IN BYTES", "OUT BYTES"],
        rows: clients.map { client in
            [client.address ?? "-", client.device, client.state, client.peerAddress ?? "-", client.since.map(clock) ?? "-",
             "\(client.inBytes)", "\(client.outBytes)"]
        },
        empty: "no L2TP clients").lines
    lines += clients.compactMap { client in client.peerNote.map { "  \(client.device): \($0)" } }
    return lines
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
    /// A tunnel device: a VTI (end points and keys) or an XFRM interface (its if_id).
    struct Device: Codable {
        var name: String
        /// `vti` or `xfrm`, as `ip -d link` names the kind.
        var kind: String
        var state: String
        var mtu: UInt32
        var local: String?
        var remote: String?
        var inputKey: UInt32?
        var outputKey: UInt32?
        var interfaceID: UInt32?
        var receivedBytes: UInt64
        var transmittedBytes: UInt64
    }
    struct SA: Codable {
        var source: String
        var destination: String
        var spi: String
        var reqid: UInt32
        var mark: String?
        var interfaceID: UInt32?
        var bytes: UInt64
        var packets: UInt64
    }
    var devices: [Device]
    var securityAssociations: [SA]

    static func read() throws -> KernelReport {
        let route = try NetlinkSocket(.route)
        let devices = try route.links().compactMap { link -> Device? in
            let state = link.isUp ? "up" : "down"
            let received = link.statistics?.receivedBytes ?? 0, transmitted = link.statistics?.transmittedBytes ?? 0
            if let vti = link.vti {
                // ip_vti0 and ip6_vti0: the kernel's catch-all devices, made when the module loads.
                guard !(["ip_vti0", "ip6_vti0"].contains(link.name) && vti.inputKey == 0 && vti.local.isUnspecified) else { return nil }
                return Device(
                    name: link.name, kind: "vti", state: state, mtu: link.mtu,
                    local: vti.local.description, remote: vti.remote.description,
                    inputKey: vti.inputKey, outputKey: vti.outputKey,
                    receivedBytes: received, transmittedBytes: transmitted)
            }
            if let xfrm = link.xfrmInterface {
                return Device(name: link.name, kind: "xfrm", state: state, mtu: link.mtu, interfaceID: xfrm.interfaceID,
                              receivedBytes: received, transmittedBytes: transmitted)
            }
            return nil
        }
        let sas = try NetlinkSocket(.xfrm).securityAssociations().map { sa in
            SA(source: sa.source.description, destination: sa.destination.description,
               spi: "0x" + String(sa.spi, radix: 16), reqid: sa.reqid, mark: sa.mark?.description,
               interfaceID: sa.interfaceID, bytes: sa.bytes, packets: sa.packets)
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
            header: ["DEVICE", "KIND", "STATE", "MTU", "LOCAL", "REMOTE", "IKEY", "OKEY", "IF_ID", "RX BYTES", "TX BYTES"],
            rows: devices.map { [$0.name, $0.kind, $0.state, "\($0.mtu)", $0.local ?? "-", $0.remote ?? "-",
                                 $0.inputKey.map { "\($0)" } ?? "-", $0.outputKey.map { "\($0)" } ?? "-",
                                 $0.interfaceID.map { "\($0)" } ?? "-", "\($0.receivedBytes)", "\($0.transmittedBytes)"] },
            empty: "no tunnel devices (VTI or XFRM interface)").lines)
        lines.append("")
        lines.append(contentsOf: Table(
            header: ["SA", "SPI", "REQID", "MARK/IF_ID", "BYTES", "PACKETS"],
            rows: securityAssociations.map { ["\($0.source) -> \($0.destination)", $0.spi, "\($0.reqid)",
                                              $0.mark ?? $0.interfaceID.map { "if_id \($0)" } ?? "-",
                                              "\($0.bytes)", "\($0.packets)"] },
            empty: "no IPsec SAs").lines)
        return lines
    }
}

/// Where the value of a top-level member of a JSON object lies in `bytes`: one scan that skips
/// strings and counts brackets, decoding nothing.
func topLevelMember(_ key: String, in bytes: [UInt8]) -> Range<Int>? {
    let quote = UInt8(ascii: "\""), backslash = UInt8(ascii: "\\")
    let wanted = Array(key.utf8)
    /// Just past the string that opens at `start`.
    func stringEnd(_ start: Int) -> Int {
        var index = start + 1
        while index < bytes.count {
            if bytes[index] == backslash { index += 2; continue }
            if bytes[index] == quote { return index + 1 }
            index += 1
        }
        return bytes.count
    }
    /// Just past the value that starts at `start`.
    func valueEnd(_ start: Int) -> Int {
        var depth = 0
        var index = start
        while index < bytes.count {
            switch bytes[index] {
            case quote:
                index = stringEnd(index)
                if depth == 0 { return index }
                continue
            case UInt8(ascii: "{"), UInt8(ascii: "["): depth += 1
            case UInt8(ascii: "}"), UInt8(ascii: "]"):
                if depth == 0 { return index }
                depth -= 1
                if depth == 0 { return index + 1 }
            case UInt8(ascii: ","), UInt8(ascii: " "), UInt8(ascii: "\n"), UInt8(ascii: "\t"), UInt8(ascii: "\r"):
                if depth == 0 { return index }
            default: break
            }
            index += 1
        }
        return index
    }
    var depth = 0
    var expectingKey = false
    var index = 0
    while index < bytes.count {
        switch bytes[index] {
        case quote:
            let end = stringEnd(index)
            if depth == 1 && expectingKey {
                expectingKey = false
                if end - index - 2 == wanted.count, bytes[(index + 1)..<(end - 1)].elementsEqual(wanted) {
                    var start = end
                    while start < bytes.count, [UInt8(ascii: ":"), UInt8(ascii: " "), UInt8(ascii: "\n"), UInt8(ascii: "\t"), UInt8(ascii: "\r")].contains(bytes[start]) { start += 1 }
                    guard start < bytes.count else { return nil }
                    return start..<valueEnd(start)
                }
            }
            index = end
            continue
        case UInt8(ascii: "{"):
            depth += 1
            if depth == 1 { expectingKey = true }
        case UInt8(ascii: "["): depth += 1
        case UInt8(ascii: "}"), UInt8(ascii: "]"): depth -= 1
        case UInt8(ascii: ","): if depth == 1 { expectingKey = true }
        default: break
        }
        index += 1
    }
    return nil
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
