import ArgumentParser
import Foundation
import Netlink

extension VTICtl {
    /// `vtictl status`: until vtid answers on its control socket, the kernel's own view.
    struct Status: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Show VTI devices and IPsec SAs (the kernel's view while vtid is not running).")

        @OptionGroup var output: OutputOptions

        func run() throws {
            let report: KernelReport
            do {
                report = try KernelReport.read()
            } catch {
                throw ValidationError("cannot read the kernel's state: \(error)")
            }
            if output.json {
                let encoder = JSONEncoder()
                encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
                print(String(decoding: try encoder.encode(report), as: UTF8.self))
            } else {
                print(report.table())
            }
        }
    }
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
    var vtid: String
    var devices: [Device]
    var securityAssociations: [SA]

    static func read() throws -> KernelReport {
        let route = try NetlinkSocket(.route)
        let devices = try route.links().compactMap { link -> Device? in
            guard let vti = link.vti else { return nil }
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
        return KernelReport(vtid: "not running", devices: devices, securityAssociations: sas)
    }

    func table() -> String {
        var lines = ["vtid: \(vtid) (showing what the kernel holds)", ""]
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
        return lines.joined(separator: "\n")
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
