import Foundation
import NFTables
import VTIKernel
import VTIModel

/// TCP MSS clamping (README "MSS clamping"): the rules in vtid's own nf_tables table
/// (`inet vtictl`, NFTables module) made to match each managed conn's `mss_clamp` and its device's
/// MTU as the kernel has it now. Runs after each reconcile pass and after each batch of hook
/// events, so a device made, an MTU changed, a device deleted or a rule damaged by hand is followed
/// at the latest by the next pass. Conns that share a device: the first (by name) with a clamp
/// decides it.
extension Supervisor {
    /// The clamp each device should have: device name to the conn's setting.
    func wantedMSSClampSettings() -> [String: MSSClampSetting] {
        var settings: [String: MSSClampSetting] = [:]
        for conn in ipsec.values.sorted(by: { $0.name < $1.name }) where configuration.manages(conn.name) {
            let setting = configuration.connections[conn.name]?.mssClamp ?? .off
            guard setting != .off else { continue }
            let device = conn.device(existingDevices: configuration.hook.existingDevices).rawValue
            if settings[device] == nil { settings[device] = setting }
        }
        return settings
    }

    /// Brings the clamp table to what the configuration and the devices' MTUs ask; a line for each
    /// change. Does nothing, not even open a socket, while no conn clamps and vtid holds no rules.
    func syncMSSClampsOnQueue() -> [String] {
        let settings = wantedMSSClampSettings()
        guard !settings.isEmpty || mssClampRulesMayExist else { return [] }
        var lines: [String] = []
        var applied: [String: MSSClamp] = [:]
        do {
            let table = try MSSClampTable()
            let listed = try table.listRules()
            let byDevice = Dictionary(grouping: listed.compactMap { rule in rule.device.map { ($0, rule) } }, by: \.0)
                .mapValues { $0.map(\.1) }
            for (device, setting) in settings.sorted(by: { $0.key < $1.key }) {
                do {
                    let mtu = try kernelApplier().link(named: device).map { Int($0.mtu) }
                    guard let clamp = setting.clamp(deviceMTU: mtu),
                          let mss = UInt16(exactly: clamp.ipv4), let mss6 = UInt16(exactly: clamp.ipv6) else { continue }
                    applied[device] = clamp
                    let wanted = MSSClampRule.both(device: device, mss: mss, mss6: mss6)
                    if byDevice[device]?.map(\.clamp) == wanted.map(Optional.some) { continue }
                    try table.replaceRules(of: device, with: wanted)
                    lines.append("MSS clamp on \(device): \(clamp) (IPv4/IPv6, mss_clamp \(setting))")
                } catch {
                    applied[device] = nil
                    lines.append("failed: MSS clamp on \(device): \(error)")
                }
            }
            // Rules of devices that no longer clamp: conn off or gone, device deleted.
            for device in byDevice.keys.sorted() where applied[device] == nil {
                do {
                    try table.deleteRules(of: device)
                    lines.append("MSS clamp on \(device) removed")
                } catch {
                    lines.append("failed: MSS clamp on \(device) not removed: \(error)")
                }
            }
            // No conn clamps and the chain holds nothing but vtid's own rules (now deleted): the
            // table goes too, so a gateway with clamping turned off has no table of ours at all. A
            // rule someone added by hand keeps the table (and that rule) where it is.
            if settings.isEmpty, !lines.contains(where: { $0.hasPrefix("failed") }), listed.allSatisfy({ $0.device != nil }) {
                do {
                    if try table.deleteTable() { lines.append("MSS clamp table inet \(MSSClampTable.tableName) removed (no conn clamps)") }
                } catch {
                    lines.append("failed: MSS clamp table inet \(MSSClampTable.tableName) not removed: \(error)")
                }
            }
            mssClampRulesMayExist = !applied.isEmpty || lines.contains { $0.hasPrefix("failed") }
        } catch {
            // No conn clamps and the table cannot be read (a kernel without nf_tables' inet family,
            // as Debian's UML build): there is nothing of vtid's to remove; not a problem.
            guard settings.isEmpty else {
                lines.append("failed: MSS clamp table: \(error)")
                mssClampRulesMayExist = true
                return reportMSSClampLines(lines, applied: applied)
            }
            mssClampRulesMayExist = false
        }
        return reportMSSClampLines(lines, applied: applied)
    }

    private func reportMSSClampLines(_ lines: [String], applied: [String: MSSClamp]) -> [String] {
        mssClamps = applied
        if lines.contains(where: { $0.hasPrefix("failed") }) {
            problems.report("mss-clamp", lines.filter { $0.hasPrefix("failed") }.joined(separator: "; "), degrading: false, logger: logger)
        } else {
            problems.clear("mss-clamp", logger: logger) { _ in "MSS clamp rules are right again" }
        }
        return lines
    }

    /// `vtictl status`'s view of a conn's clamp: nil when off; else the setting and the values in
    /// force (`auto: 1406/1386`), or why none are (`auto: no device`).
    func mssClampStatus(connection name: String, device: String) -> String? {
        let setting = configuration.connections[name]?.mssClamp ?? .off
        guard setting != .off else { return nil }
        return "\(setting): " + (mssClamps[device].map { "\($0)" } ?? "none in force (device missing or not yet synced)")
    }
}
