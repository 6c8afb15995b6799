/// `vtictl migrate`: the ipsec.conf edits that move route-based VTI conns (`vti-interface=`,
/// `mark=`) to XFRM interfaces (`ipsec-interface=N`), as a plan for people and as a unified diff
/// that `patch -p1 -d /` applies and `patch -R -p1 -d /` takes back. Pure: the caller reads the
/// files and prints the result; nothing here touches the host.
///
/// The rules (README, "Migrating from VTI to XFRM interfaces"):
/// - **One XFRM interface per VTI device.** Conns that share a VTI device share one
///   `ipsec-interface=N` (libreswan shares the device between conns, as `vti-shared=yes` did).
/// - **The number**: the VTI device's trailing number when there is one (`vti01` → 1, `ipsec1`),
///   else the lowest free number from 1; a number is free when no `ipsec-interface=` of the files
///   has its if_id (0 and 16384 are one if_id), no other migrated device took it, and `ipsecN` is
///   no VTI device's name. Devices are numbered in the order the files name them, all of them even
///   with `--conn`, so migrating conn by conn gives the numbers migrating all at once gives.
/// - **Marks go** (`mark=`, `mark-in=`, `mark-out=`): with `ipsec-interface=` libreswan no longer
///   matches SAs and policies by mark (the if_id ties them to the device; vtid finds them by it);
///   `mark-out=` would only become the output mark of the encrypted packets (`XFRMA_SET_MARK`,
///   else the if_id) and `PLUTO_XFRMI_FWMARK`. Firewall rules that match the old marks need the
///   device name instead.
/// - **`vti-routing=`, `vti-shared=` go**: every XFRM-interface conn routes into its device
///   (pluto says `PLUTO_XFRMI_ROUTE=yes`), and one device serves any number of conns and peers.
/// - **`leftvti=` becomes `leftinterface-ip=`** (`rightvti=` likewise): libreswan 5.x puts it on
///   `ipsecN` itself; 4.x accepts it but puts it nowhere (a note says so). libreswan refuses
///   `interface-ip=` with `sourceip=` on the same side: such a conn is not migrated.
/// - **A setting is edited where it is written.** In `conn %default` or an `also=` section it is
///   edited there when every conn that takes it from there is migrated too; otherwise
///   `vti-interface=` blocks the conn (libreswan cannot unset an inherited setting), marks and
///   `vti-*` flags stay (harmless, noted), `leftvti=` gets a `leftinterface-ip=` in the conn. A
///   section that other conns name in `also=` and that has no `auto=` of its own is a fragment:
///   it is not a conn, so it does not hold others back.

/// What `planMigration` cannot work with at all (one conn's trouble blocks only that conn).
public struct MigrationError: Error, Sendable, Hashable, CustomStringConvertible {
    public var message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}

public struct MigrationPlan: Sendable {
    /// A VTI device and the XFRM interface its migrated conns move to.
    public struct Device: Sendable, Hashable {
        public var vti: InterfaceName
        /// `ipsec-interface=` value.
        public var number: UInt32
        public var xfrm: InterfaceName
        public var interfaceID: UInt32
        /// How the number was chosen.
        public var reason: String
        /// The migrated conns on it, in file order.
        public var conns: [String]
        /// Conns that stay on the VTI device (not selected, or blocked).
        public var staying: [String]
        /// The VTI's keys as the conns had them.
        public var marks: [FirewallMark]
    }

    /// One changed line: `old` replaced by `new` (empty: deleted); `old` nil: `new` inserted
    /// after `line` (0: at the top).
    public struct Edit: Sendable, Hashable {
        public var file: String
        public var line: Int
        public var old: String?
        public var new: [String]
        /// The section the line is in.
        public var section: String
        /// The migrated conns the edit is for.
        public var conns: [String]
        public var why: String
    }

    /// A migrated conn and what an operator should know of it.
    public struct Conn: Sendable, Hashable {
        public var name: String
        public var location: ConfigLocation
        public var vti: InterfaceName
        public var xfrm: InterfaceName
        public var notes: [String]
        /// This host initiates it (`auto=start`): bring it up after the replace.
        public var initiates: Bool
    }

    /// A selected conn that is not migrated, and why.
    public struct Blocked: Sendable, Hashable {
        public var name: String
        public var location: ConfigLocation
        public var reason: String
    }

    public var devices: [Device]
    public var conns: [Conn]
    public var edits: [Edit]
    public var blocked: [Blocked]
    /// The libreswan the plan is for (nil: not known).
    public var version: LibreswanVersion?
    /// `config setup`'s `ipsec-interface-managed` (pluto creates the devices unless it says no).
    public var managedByPluto: Bool
    /// The files as read, for the diff.
    public var files: [IPsecConfig.Source]
}

private let removedKeys = ["vti-routing", "vti-shared", "mark", "mark-in", "mark-out"]

/// Plans the migration of `selected` conns (nil: every route-based VTI conn) of `config`, whose
/// files are `files` (the main file and its includes, as read). File names must be absolute.
public func planMigration(
    _ config: IPsecConfig, files: [IPsecConfig.Source], selected: [String]? = nil, version: LibreswanVersion? = nil
) throws(MigrationError) -> MigrationPlan {
    let parsed = RouteBasedConn.each(in: config)
    let sections = config.conns.filter { $0.name != "%default" }
    var resolved: [String: ConfigSection] = [:]
    for section in sections {
        if let merged = try? config.resolved(section.name) { resolved[section.name] = merged }
    }
    // Fragments: named in another section's also= and loaded by nothing of their own.
    var referenced = Set<String>()
    for section in config.conns {
        for target in section.settings["also"]?.value.split(separator: " ") ?? [] { referenced.insert(String(target)) }
    }
    func isFragment(_ name: String) -> Bool {
        guard referenced.contains(name) else { return false }
        let auto = resolved[name]?.settings["auto"]?.value.lowercased()
        return auto == nil || auto == "ignore"
    }
    let vtiConns = parsed.conns.filter { $0.vtiKeys != nil }
    var candidates: [RouteBasedConn]
    if let selected {
        candidates = []
        for name in selected where !candidates.contains(where: { $0.name == name }) {
            guard let conn = vtiConns.first(where: { $0.name == name }) else {
                if parsed.conns.contains(where: { $0.name == name }) {
                    throw MigrationError("conn \(name) is already on an XFRM interface (ipsec-interface=)")
                }
                if let error = parsed.errors.first(where: { error in config.conns.contains { $0.name == name && $0.location == error.location } || error.problem.hasPrefix("conn \(name) ") }) {
                    throw MigrationError("conn \(name) cannot be read: \(error)")
                }
                throw MigrationError(sections.contains(where: { $0.name == name })
                    ? "conn \(name) is not a route-based VTI conn (no vti-interface=)" : "no conn \(name) in the configuration")
            }
            candidates.append(conn)
        }
    } else {
        candidates = vtiConns.filter { !isFragment($0.name) }
    }
    for file in files {
        guard file.file.hasPrefix("/"), !file.file.contains(where: { $0 == " " || $0 == "\t" || $0.isNewline || $0.asciiValue.map { $0 < 0x20 || $0 == 0x7f } ?? false }),
              !file.file.split(separator: "/").contains(where: { $0 == "." || $0 == ".." }) else {
            throw MigrationError("\(file.file): the diff names files by absolute paths without spaces, '.' or '..' components")
        }
    }

    // The numbers: over every VTI device of the files, in file order.
    let devices = allocateNumbers(vtiConns: vtiConns, xfrmConns: parsed.conns.filter { $0.interfaceID != nil })

    // Which conns take a setting from where: users of one written line.
    func users(_ key: String, at location: ConfigLocation) -> [String] {
        sections.map(\.name).filter { !isFragment($0) && resolved[$0]?.settings[key]?.location == location }
    }
    func section(at location: ConfigLocation) -> ConfigSection? {
        config.conns.last { $0.location.file == location.file && $0.location.line <= location.line }
    }

    var lines: [String: [Substring]] = [:]
    for file in files { lines[file.file] = splitLines(file.text).lines }
    func raw(_ location: ConfigLocation) throws(MigrationError) -> Substring {
        guard let fileLines = lines[location.file] else { throw MigrationError("\(location.file): not among the files read") }
        guard location.line >= 1, location.line <= fileLines.count else { throw MigrationError("\(location): no such line") }
        return fileLines[location.line - 1]
    }

    // Plan each conn; a blocked conn leaves the selection and the rest is planned again, since
    // what may be edited in a shared section depends on who migrates.
    var migrating = candidates
    var blocked: [MigrationPlan.Blocked] = []
    while true {
        let names = Set(migrating.map(\.name))
        var edits: [MigrationPlan.Edit] = []
        var plans: [MigrationPlan.Conn] = []
        var newlyBlocked: [MigrationPlan.Blocked] = []
        for conn in migrating {
            guard let settings = resolved[conn.name]?.settings, let own = config.conns.first(where: { $0.name == conn.name }),
                  let device = devices.first(where: { $0.vti == conn.interfaceName }) else { continue }
            var connEdits: [MigrationPlan.Edit] = []
            var notes: [String] = []
            var problem: String?
            func shared(_ key: String, _ location: ConfigLocation) -> (sectionName: String, others: [String]) {
                let name = section(at: location)?.name ?? "?"
                return (name, users(key, at: location).filter { !names.contains($0) })
            }
            func edit(_ location: ConfigLocation, _ new: [String], _ why: String) throws(MigrationError) {
                connEdits.append(.init(file: location.file, line: location.line, old: String(try raw(location)), new: new,
                                       section: section(at: location)?.name ?? "?", conns: [conn.name], why: why))
            }
            // The device.
            let interface = settings["vti-interface"]!
            let (interfaceSection, interfaceOthers) = shared("vti-interface", interface.location)
            if !interfaceOthers.isEmpty {
                problem = "it takes vti-interface=\(interface.value) from conn \(interfaceSection) (\(interface.location)), which conn\(interfaceOthers.count == 1 ? "" : "s") \(interfaceOthers.joined(separator: ", ")) also take\(interfaceOthers.count == 1 ? "s" : "") and \(interfaceOthers.count == 1 ? "is" : "are") not migrated: libreswan cannot unset a setting a conn inherits, so migrate \(interfaceOthers.count == 1 ? "it" : "them") too (--conn) or move vti-interface= into each conn first"
            } else {
                try edit(interface.location, [replacingSetting(try raw(interface.location), key: "ipsec-interface", value: "\(device.number)")],
                         "the device: \(device.vti) becomes \(device.xfrm) (if_id \(device.interfaceID))")
            }
            // Marks and the VTI flags.
            for key in removedKeys {
                guard let setting = settings[key] else { continue }
                let (sectionName, others) = shared(key, setting.location)
                let why = key.hasPrefix("mark")
                    ? "marks are a VTI's keys; an XFRM interface's SAs and policies carry its if_id instead (libreswan would only \(key == "mark-in" ? "pass it to the updown as CONNMARK_IN" : "turn it into the output mark of the encrypted packets"))"
                    : key == "vti-routing" ? "every XFRM-interface conn routes into its device (PLUTO_XFRMI_ROUTE=yes)"
                    : "one XFRM interface serves any number of conns and peers"
                if others.isEmpty {
                    try edit(setting.location, [], why)
                } else if key.hasPrefix("mark") {
                    notes.append("keeps \(key)=\(setting.value) from conn \(sectionName) (\(setting.location)), which \(others.joined(separator: ", ")) also use\(others.count == 1 ? "s" : ""): libreswan cannot unset it; with ipsec-interface= it only becomes the output mark of the encrypted packets (instead of the if_id) and PLUTO_XFRMI_FWMARK, which matters only to ip rules and firewall rules that match it")
                } else {
                    notes.append("keeps \(key)=\(setting.value) from conn \(sectionName) (\(setting.location)), which \(others.joined(separator: ", ")) also use\(others.count == 1 ? "s" : ""): libreswan cannot unset it, and ignores it for an ipsec-interface= conn (vtictl check warns)")
                }
            }
            // The device's address.
            for side in ["left", "right"] {
                guard let vti = settings["\(side)vti"] else { continue }
                if let source = settings["\(side)sourceip"] {
                    problem = problem ?? "it has \(side)vti=\(vti.value) (\(vti.location)) and \(side)sourceip=\(source.value) (\(source.location)): libreswan refuses \(side)interface-ip= beside \(side)sourceip= (and 5.x puts \(side)sourceip='s address on ipsecN), so the device's address cannot move as it is; drop one of them first"
                    continue
                }
                let (sectionName, others) = shared("\(side)vti", vti.location)
                let target = "\(side)interface-ip"
                if settings[target] != nil {
                    if others.isEmpty { try edit(vti.location, [], "\(target)= is set already: the XFRM interface's address") }
                    else { notes.append("keeps \(side)vti=\(vti.value) from conn \(sectionName) (\(vti.location)): ignored for an ipsec-interface= conn; \(target)= is its address") }
                } else if others.isEmpty {
                    try edit(vti.location, [replacingKey(try raw(vti.location), with: target)], "the device's address: \(side)vti= is VTI's, \(target)= the XFRM interface's")
                } else {
                    let anchor = own.settings.values.filter { $0.location.file == own.location.file }.map(\.location.line).max() ?? own.location.line
                    let template = anchor == own.location.line ? nil : try raw(ConfigLocation(file: own.location.file, line: anchor))
                    connEdits.append(.init(file: own.location.file, line: anchor, old: nil,
                                           new: [newSettingLine(like: template, key: target, value: settingText(try raw(vti.location)))],
                                           section: own.name, conns: [conn.name],
                                           why: "the device's address: \(side)vti= comes from conn \(sectionName) (\(vti.location)), which \(others.joined(separator: ", ")) also use\(others.count == 1 ? "s" : ""), so it stays there (ignored for this conn)"))
                }
                if version.map({ $0.major < 5 }) ?? true {
                    notes.append("\(version.map { "libreswan \($0)" } ?? "libreswan 4.x") accepts \(target)=\(vti.value) but puts it on no device (5.x does), and vti-updown does not either: give \(device.xfrm) that address yourself, or wait for libreswan 5")
                }
            }
            if let problem {
                newlyBlocked.append(.init(name: conn.name, location: conn.location, reason: problem))
                continue
            }
            if !conn.routing {
                let routed = conn.rightSubnets.filter { !$0.isDefault }
                if !routed.isEmpty {
                    notes.append("routes now: it had no vti-routing=yes, but every XFRM-interface conn routes (PLUTO_XFRMI_ROUTE=yes), so vti-updown will route \(routed.map(\.description).joined(separator: ", ")) into \(device.xfrm)")
                }
            }
            edits += connEdits
            plans.append(.init(name: conn.name, location: conn.location, vti: conn.interfaceName, xfrm: device.xfrm, notes: notes,
                               initiates: settings["auto"]?.value.lowercased() == "start"))
        }
        if newlyBlocked.isEmpty {
            // One edit per line: conns that share a section share its edits.
            var merged: [MigrationPlan.Edit] = []
            for edit in edits {
                if let index = merged.firstIndex(where: { $0.file == edit.file && $0.line == edit.line && ($0.old == nil) == (edit.old == nil) }) {
                    guard merged[index].new == edit.new else {
                        throw MigrationError("\(edit.file):\(edit.line): conns \(merged[index].conns.joined(separator: ", ")) and \(edit.conns.joined(separator: ", ")) would need different edits of this line")
                    }
                    merged[index].conns += edit.conns.filter { !merged[index].conns.contains($0) }
                } else {
                    merged.append(edit)
                }
            }
            let fileOrder = files.map(\.file)
            func order(_ edit: MigrationPlan.Edit) -> (Int, Int, Int) { (fileOrder.firstIndex(of: edit.file) ?? 0, edit.line, edit.old == nil ? 1 : 0) }
            merged.sort { order($0) < order($1) }
            for file in Set(merged.map(\.file)) {
                if let text = files.first(where: { $0.file == file })?.text, let bad = splitLines(text).unsupported {
                    throw MigrationError("\(file): \(bad): vtictl numbers lines at LF (and CRLF) only, as patch does; convert the file first")
                }
            }
            let migrated = Set(plans.map(\.name))
            let planned = devices.compactMap { device -> MigrationPlan.Device? in
                let on = vtiConns.filter { $0.interfaceName == device.vti }
                let moving = on.filter { migrated.contains($0.name) }.map(\.name)
                guard !moving.isEmpty else { return nil }
                var marks: [FirewallMark] = []
                for conn in on where migrated.contains(conn.name) {
                    if let keys = conn.vtiKeys { for mark in [keys.markIn, keys.markOut] where !marks.contains(mark) { marks.append(mark) } }
                }
                return .init(vti: device.vti, number: device.number, xfrm: device.xfrm, interfaceID: device.interfaceID, reason: device.reason,
                             conns: moving, staying: on.filter { !migrated.contains($0.name) && !isFragment($0.name) }.map(\.name), marks: marks)
            }
            let managed = config.setup?.settings["ipsec-interface-managed"]?.value != "no"
            return MigrationPlan(devices: planned, conns: plans, edits: merged, blocked: blocked, version: version, managedByPluto: managed, files: files)
        }
        blocked += newlyBlocked
        let out = Set(newlyBlocked.map(\.name))
        migrating.removeAll { out.contains($0.name) }
    }
}

private struct Allocation {
    var vti: InterfaceName
    var number: UInt32
    var xfrm: InterfaceName
    var interfaceID: UInt32
    var reason: String
}

/// Numbers for every VTI device: its own trailing number if free, else the lowest free one.
private func allocateNumbers(vtiConns: [RouteBasedConn], xfrmConns: [RouteBasedConn]) -> [Allocation] {
    var order: [InterfaceName] = []
    for conn in vtiConns where !order.contains(conn.interfaceName) { order.append(conn.interfaceName) }
    let vtiNames = Set(order.map(\.rawValue))
    var takenIDs: [UInt32: String] = [:]
    for conn in xfrmConns { if let id = conn.interfaceID, takenIDs[id] == nil { takenIDs[id] = "conn \(conn.name)'s ipsec-interface=" } }
    func free(_ number: UInt32) -> Bool {
        takenIDs[XfrmInterfaceSpec.interfaceID(number: number)] == nil && !vtiNames.contains("ipsec\(number)")
    }
    var result: [InterfaceName: Allocation] = [:]
    var why: [InterfaceName: String] = [:]
    func assign(_ device: InterfaceName, _ number: UInt32, _ reason: String) {
        let name = InterfaceName("ipsec\(number)")!
        let id = XfrmInterfaceSpec.interfaceID(number: number)
        result[device] = Allocation(vti: device, number: number, xfrm: name, interfaceID: id, reason: reason)
        takenIDs[id] = "\(device) (migrated to \(name))"
    }
    for device in order {
        let digits = device.rawValue.reversed().prefix { $0.isASCII && $0.isNumber }.reversed()
        guard !digits.isEmpty, let number = UInt32(String(digits)), number > 0 else { continue }
        if free(number) {
            assign(device, number, "\(device)'s own number")
        } else {
            let id = XfrmInterfaceSpec.interfaceID(number: number)
            why[device] = takenIDs[id].map { "\(number) is taken by \($0)" } ?? "ipsec\(number) is a VTI device's name"
        }
    }
    var next: UInt32 = 1
    for device in order where result[device] == nil {
        while !free(next) { next += 1 }
        assign(device, next, "the lowest free number" + (why[device].map { " (\($0))" } ?? ""))
    }
    return order.compactMap { result[$0] }
}

// MARK: - Lines

/// A file's lines as patch counts them (at LF; a CR before it stays in the line), whether the last
/// one ends with LF, and the first other line break the parser would count (nil: none).
func splitLines(_ text: String) -> (lines: [Substring], endsWithNewline: Bool, unsupported: String?) {
    // Character-wise, CRLF is one character: split at every LF scalar instead.
    var lines: [Substring] = []
    var start = text.unicodeScalars.startIndex
    var unsupported: String?
    var index = start
    var lineNumber = 1
    let scalars = text.unicodeScalars
    while index < scalars.endIndex {
        let scalar = scalars[index]
        if scalar == "\n" {
            lines.append(Substring(String(Substring(scalars[start..<index]))))
            start = scalars.index(after: index)
            lineNumber += 1
        } else if unsupported == nil {
            let next = scalars.index(after: index)
            if scalar == "\r" && (next == scalars.endIndex || scalars[next] != "\n") {
                unsupported = "line \(lineNumber) has a CR without LF"
            } else if ["\u{0B}", "\u{0C}", "\u{85}", "\u{2028}", "\u{2029}"].contains(scalar) {
                unsupported = "line \(lineNumber) has a line break U+\(String(scalar.value, radix: 16, uppercase: true))"
            }
        }
        index = scalars.index(after: index)
    }
    let endsWithNewline = start == scalars.endIndex && !text.isEmpty
    if start < scalars.endIndex { lines.append(Substring(String(Substring(scalars[start..<scalars.endIndex])))) }
    return (lines, endsWithNewline, unsupported)
}

/// A setting line in its parts: indentation, `key=value`, then spaces, a comment and a CR.
private struct SettingLine {
    var indent: Substring
    var key: Substring
    /// From the end of the key to the value: `=`, or ` = `.
    var separator: Substring
    var value: Substring
    var trailer: Substring

    init(_ line: Substring) {
        var rest = line
        if rest.hasSuffix("\r") { rest = rest.dropLast() }
        indent = rest.prefix { $0 == " " || $0 == "\t" }
        rest = rest.dropFirst(indent.count)
        // The comment starts at a # after whitespace, outside quotes (IPsecConfig's rule).
        var end = rest.endIndex
        var inQuotes = false
        var previous: Character = " "
        for index in rest.indices {
            let character = rest[index]
            if character == "\"" { inQuotes.toggle() }
            if character == "#", !inQuotes, previous == " " || previous == "\t" { end = index; break }
            previous = character
        }
        var body = rest[..<end]
        while let last = body.last, last == " " || last == "\t" { body = body.dropLast() }
        let equals = body.firstIndex(of: "=") ?? body.endIndex
        var keyPart = body[..<equals]
        while let last = keyPart.last, last == " " || last == "\t" { keyPart = keyPart.dropLast() }
        key = keyPart
        let afterEquals = equals < body.endIndex ? body.index(after: equals) : equals
        let valueStart = body[afterEquals...].firstIndex { $0 != " " && $0 != "\t" } ?? body.endIndex
        separator = body[keyPart.endIndex..<valueStart]
        value = body[valueStart...]
        // Spaces, the comment and the CR, as they were.
        trailer = line[body.endIndex...]
    }

    var text: String { String(indent) + String(key) + String(separator) + String(value) + String(trailer) }
}

/// The line with `key=value` instead of its setting, indentation and comment kept.
private func replacingSetting(_ line: Substring, key: String, value: String) -> String {
    var parts = SettingLine(line)
    parts.key = Substring(key)
    parts.value = Substring(value)
    return parts.text
}

/// The line with another key, the value as written.
private func replacingKey(_ line: Substring, with key: String) -> String {
    var parts = SettingLine(line)
    parts.key = Substring(key)
    return parts.text
}

/// The value of a setting line as written (quotes kept).
private func settingText(_ line: Substring) -> String { String(SettingLine(line).value) }

/// A new setting line indented like `template` (a tab without one), with its CR if it has one.
private func newSettingLine(like template: Substring?, key: String, value: String) -> String {
    let indent = template.map { String($0.prefix { $0 == " " || $0 == "\t" }) } ?? "\t"
    return indent + key + "=" + value + (template?.hasSuffix("\r") == true ? "\r" : "")
}

// MARK: - The diff

extension MigrationPlan {
    /// A unified diff of every file the plan edits, named `a/PATH` and `b/PATH` for
    /// `patch -p1 -d /`; 3 lines of context. Empty when nothing changes.
    public var unifiedDiff: String {
        var output = ""
        for file in files {
            let fileEdits = edits.filter { $0.file == file.file }
            guard !fileEdits.isEmpty else { continue }
            output += diff(file: file, edits: fileEdits)
        }
        return output
    }

    private func diff(file: IPsecConfig.Source, edits: [Edit]) -> String {
        let (lines, endsWithNewline, _) = splitLines(file.text)
        // What each old line becomes: its replacement (nothing: deleted), then lines inserted after it.
        var becomes = lines.map { [String($0)] }
        var changed = Set<Int>()
        for edit in edits where edit.line >= 1 && edit.line <= lines.count {
            let index = edit.line - 1
            if edit.old == nil {
                becomes[index] += edit.new
            } else {
                becomes[index] = edit.new + Array(becomes[index].dropFirst())
            }
            changed.insert(index)
        }
        let last = lines.count - 1
        let context = 3
        var groups: [[Int]] = []
        for index in changed.sorted() {
            if let previous = groups.last?.last, index - previous <= 2 * context { groups[groups.count - 1].append(index) } else { groups.append([index]) }
        }
        let noNewline = "\\ No newline at end of file"
        var output = "--- a\(file.file)\n+++ b\(file.file)\n"
        for group in groups {
            let start = max(0, group.first! - context)
            let end = min(last, group.last! + context)
            var body: [String] = []
            var newCount = 0
            // A run of changed lines: its old lines, then its new ones (diff's order).
            var minus: [String] = []
            var plus: [String] = []
            func flush() {
                body += minus.map { "-" + $0 }
                if minus.count > 0, end == last, !endsWithNewline, changed.contains(last) { body.append(noNewline) }
                body += plus.map { "+" + $0 }
                if plus.count > 0, end == last, !endsWithNewline, changed.contains(last) { body.append(noNewline) }
                minus = []
                plus = []
            }
            for index in start...end {
                let old = String(lines[index])
                let new = becomes[index]
                // The file's last line without LF: patch wants the marker after it, on each side.
                let unterminated = index == last && !endsWithNewline
                newCount += new.count
                if !changed.contains(index) {
                    flush()
                    body.append(" " + old)
                    if unterminated { body.append(noNewline) }
                } else if new.first == old && !unterminated && minus.isEmpty {
                    // Lines inserted after an unchanged one.
                    flush()
                    body.append(" " + old)
                    plus += new.dropFirst()
                } else {
                    if !plus.isEmpty && minus.isEmpty { flush() }
                    minus.append(old)
                    plus += new
                }
            }
            flush()
            let oldCount = end - start + 1
            let newStart = start + 1 + becomes[..<start].reduce(0) { $0 + $1.count - 1 }
            func range(_ first: Int, _ count: Int) -> String { count == 1 ? "\(first)" : "\(count == 0 ? first - 1 : first),\(count)" }
            output += "@@ -\(range(start + 1, oldCount)) +\(range(newStart, newCount)) @@\n"
            output += body.map { $0 + "\n" }.joined()
        }
        return output
    }
}

// MARK: - The plan in words

extension MigrationPlan {
    /// The plan for people: devices, the edits (the diff's, line by line), notes, what pluto,
    /// vti-updown and vtid do during the switch, the steps and the rollback. `diffCommand` is the
    /// command line that prints the diff (`vtictl migrate --diff ...`).
    public func text(diffCommand: String) -> String {
        var out: [String] = []
        let versionText = version.map { "libreswan \($0)" } ?? "libreswan (version unknown: 4.10 or later assumed; --libreswan says which)"
        if conns.isEmpty {
            out.append("Nothing to migrate: no route-based VTI conn\(blocked.isEmpty ? "" : " that can move as it is").")
        } else {
            out.append("Plan: move \(conns.count) route-based VTI conn\(conns.count == 1 ? "" : "s") to XFRM interfaces (ipsec-interface=), for \(versionText). Nothing has been changed.")
            out.append("")
            out.append("Devices (one XFRM interface per VTI device; its conns share it):")
            for device in devices {
                var line = "  \(device.vti) -> \(device.xfrm) (ipsec-interface=\(device.number), if_id \(device.interfaceID); \(device.reason)): conn\(device.conns.count == 1 ? "" : "s") \(device.conns.joined(separator: ", "))"
                if !device.staying.isEmpty { line += "; \(device.vti) stays for \(device.staying.joined(separator: ", "))" }
                out.append(line)
            }
            out.append("")
            out.append("Edits (the same as `\(diffCommand)` prints as a patch):")
            for edit in edits {
                let header = edit.old == nil ? "after \(edit.file):\(edit.line)" : "\(edit.file):\(edit.line)"
                let target = edit.section == edit.conns.joined(separator: ", ") ? "conn \(edit.section)" : "conn \(edit.section), for \(edit.conns.joined(separator: ", "))"
                out.append("  \(header) (\(target)): \(edit.why)")
                if let old = edit.old { out.append("    -\(visible(old))") }
                out += edit.new.map { "    +\(visible($0))" }
            }
        }
        let noted = conns.filter { !$0.notes.isEmpty }
        if !noted.isEmpty {
            out.append("")
            out.append("Notes:")
            for conn in noted { out += conn.notes.map { "  conn \(conn.name): \($0)" } }
        }
        if !blocked.isEmpty {
            out.append("")
            out.append("Not migrated:")
            out += blocked.map { "  conn \($0.name) (\($0.location)): \($0.reason)" }
        }
        guard !conns.isEmpty else { return out.joined(separator: "\n") + "\n" }
        out.append("")
        out.append("Firewall rules and other files (vtictl does not edit them): rename the devices they name")
        for device in devices {
            let marks = device.marks.map(\.description).joined(separator: ", ")
            out.append("  \(device.vti) -> \(device.xfrm): e.g. nftables iifname/oifname \"\(device.vti)\", iptables -i/-o \(device.vti), sysctl.d net.ipv4.conf.\(device.vti).*; rules matching the mark\(device.marks.count == 1 ? "" : "s") \(marks) match nothing of these tunnels any more")
        }
        out.append("")
        out.append("What happens during the switch:")
        let five = version.map { $0.major >= 5 }
        if managedByPluto {
            let creates = five == true ? "creates it when the conn is added" : five == false ? "creates it at the conn's first Child SA" : "creates it (5.x when the conn is added, 4.x at its first Child SA)"
            out.append("  pluto: `ipsec auto --replace CONN` deletes the conn with its SAs and policies (its tunnels on the VTI go down; road-warrior clients must reconnect) and adds it again with ipsec-interface=; pluto \(creates) and deletes it with the last conn that uses it.")
        } else {
            out.append("  pluto (config setup ipsec-interface-managed=no): creates no device; it expects one with the if_id. vtid creates \(devices.map(\.xfrm.rawValue).joined(separator: ", ")) when it reads the new ipsec.conf (`vtictl reload`): do that before replacing the conns.")
        }
        out.append("  vti-updown: at each tunnel's up it adopts the XFRM interface (pluto's; made as pluto would make it only if it is missing), sets its MTU and sysctls, and routes the tunnel's clients or subnets into it, as it did into the VTI.")
        out.append("  vtid: once it has read the new ipsec.conf (`vtictl reload`, before the replace) it deletes the old VTI device as soon as no SA with its keys is up, i.e. right after the replace (until then the device stays as it is), and it never makes it again; it keeps the XFRM interface while the conn is configured.")
        out.append("")
        out.append("Steps:")
        out.append("  1. \(diffCommand) > vti-to-xfrm.diff")
        out.append("  2. patch -p1 -d / --dry-run < vti-to-xfrm.diff && patch -p1 -d / < vti-to-xfrm.diff")
        out.append("  3. vtictl check    (it knows XFRM interfaces: if_ids, devices in the way, the kernel's xfrm_interface)")
        out.append(managedByPluto ? "  4. vtictl reload    (vtid reads the new ipsec.conf)" : "  4. vtictl reload    (vtid reads the new ipsec.conf and creates the XFRM interfaces)")
        let names = conns.map(\.name)
        out.append("  5. for each conn: ipsec auto --replace CONN (\(names.joined(separator: ", "))), or `ipsec restart` for all at once (every tunnel of the host goes down)")
        let initiated = conns.filter(\.initiates).map(\.name)
        if !initiated.isEmpty {
            out.append("     then ipsec auto --up CONN for those this host starts (auto=start): \(initiated.joined(separator: ", "))")
        }
        out.append("  6. edit the firewall rules above; vtictl status shows the conns on their XFRM interfaces once their tunnels are up")
        out.append("")
        out.append("Rollback: patch -R -p1 -d / < vti-to-xfrm.diff, `vtictl reload`, then the same replace (or restart); pluto deletes the XFRM interfaces it made, vtid deletes those it kept once no SA with their if_id is up, vti-updown and vtid make the VTI devices again, and the firewall rules go back.")
        return out.joined(separator: "\n") + "\n"
    }
}

/// A line as shown in the plan: CRs and other control characters (not tabs) made visible, so that the plan shows what the diff changes.
private func visible(_ line: String) -> String {
    var text = ""
    for scalar in line.unicodeScalars {
        switch scalar {
        case "\r": text += "\\r"
        case _ where scalar.value < 0x20 || scalar.value == 0x7f: text += "\\x" + String(scalar.value, radix: 16)
        default: text.unicodeScalars.append(scalar)
        }
    }
    return text
}
