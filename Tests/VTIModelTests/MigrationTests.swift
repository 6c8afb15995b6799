import Foundation
import XCTest
@testable import VTIModel

/// `vtictl migrate`'s plan: the exact diff for each case, applied with GNU patch as the README
/// says (`patch -p1 -d /`), the result read back as XFRM-interface conns with the same subnets and
/// pools, and `patch -R` giving back the original bytes.
final class MigrationTests: XCTestCase {
    private var directory = ""

    override func setUpWithError() throws {
        directory = NSTemporaryDirectory().replacingOccurrences(of: "//", with: "/") + "vtictl-migrate-\(UUID().uuidString)"
        if !directory.hasPrefix("/") { directory = FileManager.default.currentDirectoryPath + "/" + directory }
        directory = (directory as NSString).standardizingPath
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
    }

    override func tearDown() {
        try? FileManager.default.removeItem(atPath: directory)
    }

    private let hook = "    leftupdown=/usr/local/libexec/vtictl/vti-updown\n"

    /// Writes the files (the first is the main one; `include NAME` names another by its name)
    /// and reads them as vtictl does.
    private func write(_ files: KeyValuePairs<String, String>) throws {
        for (name, text) in files { try Data(text.utf8).write(to: URL(fileURLWithPath: "\(directory)/\(name)")) }
    }

    private func read(_ main: String = "ipsec.conf") throws -> (IPsecConfig, [IPsecConfig.Source]) {
        var sources: [IPsecConfig.Source] = []
        func source(_ path: String) throws(IPsecConfigError) -> IPsecConfig.Source {
            guard let data = FileManager.default.contents(atPath: path) else {
                throw IPsecConfigError(location: ConfigLocation(file: path, line: 0), problem: "missing")
            }
            let source = IPsecConfig.Source(file: path, text: String(decoding: data, as: UTF8.self))
            sources.append(source)
            return source
        }
        let config = try IPsecConfig(main: try source("\(directory)/\(main)")) { pattern, _ throws(IPsecConfigError) in
            [try source("\(self.directory)/\(pattern)")]
        }
        return (config, sources)
    }

    private func plan(_ conns: [String]? = nil, version: LibreswanVersion? = LibreswanVersion(major: 5, minor: 2)) throws -> MigrationPlan {
        let (config, files) = try read()
        return try planMigration(config, files: files, selected: conns, version: version)
    }

    /// The diff with the test's directory as DIR.
    private func diff(_ plan: MigrationPlan) -> String { plan.unifiedDiff.replacingOccurrences(of: directory, with: "DIR") }

    /// `patch -p1 -d /` (`-R`: the rollback) with the diff on standard input.
    private func patch(_ diff: String, reverse: Bool = false) throws {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/patch")
        process.arguments = ["-p1", "-d", "/", "--batch", "--no-backup-if-mismatch", "--quiet"] + (reverse ? ["-R"] : [])
        let input = Pipe()
        let output = Pipe()
        process.standardInput = input
        process.standardOutput = output
        process.standardError = output
        try process.run()
        input.fileHandleForWriting.write(Data(diff.utf8))
        try input.fileHandleForWriting.close()
        let text = String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        XCTAssertEqual(process.terminationStatus, 0, "patch \(reverse ? "-R " : "")failed: \(text)")
    }

    private func bytes() throws -> [String: Data] {
        var result: [String: Data] = [:]
        for name in try FileManager.default.contentsOfDirectory(atPath: directory) {
            result[name] = FileManager.default.contents(atPath: "\(directory)/\(name)")
        }
        return result
    }

    /// Applies the plan's diff, checks that each migrated conn is now on its XFRM interface with
    /// what it had (subnets, pool, ends, updown) and nothing of VTI, rolls back and compares bytes.
    @discardableResult
    private func applyAndRollBack(_ plan: MigrationPlan, file: StaticString = #filePath, line: UInt = #line) throws -> [String: RouteBasedConn] {
        let before = try bytes()
        let old = Dictionary(uniqueKeysWithValues: try RouteBasedConn.all(in: read().0).map { ($0.name, $0) })
        try patch(plan.unifiedDiff)
        XCTAssertNotEqual(try bytes(), before, "the diff changed nothing", file: file, line: line)
        let new = Dictionary(uniqueKeysWithValues: try RouteBasedConn.all(in: read().0).map { ($0.name, $0) })
        XCTAssertEqual(Set(new.keys), Set(old.keys), "the same route-based conns", file: file, line: line)
        for conn in plan.conns {
            let device = try XCTUnwrap(plan.devices.first { $0.conns.contains(conn.name) }, file: file, line: line)
            let was = try XCTUnwrap(old[conn.name], file: file, line: line)
            let now = try XCTUnwrap(new[conn.name], file: file, line: line)
            XCTAssertEqual(now.backend, .xfrmInterface(number: device.number, managedByPluto: true), conn.name, file: file, line: line)
            XCTAssertEqual(now.interfaceName, device.xfrm, file: file, line: line)
            XCTAssertEqual(now.leftSubnets, was.leftSubnets, file: file, line: line)
            XCTAssertEqual(now.rightSubnets, was.rightSubnets, file: file, line: line)
            XCTAssertEqual(now.addressPools, was.addressPools, file: file, line: line)
            XCTAssertEqual([now.leftEnd, now.rightEnd, now.leftUpdown, now.rightUpdown], [was.leftEnd, was.rightEnd, was.leftUpdown, was.rightUpdown], file: file, line: line)
            XCTAssertFalse(now.vtiShared, file: file, line: line)
        }
        for (name, conn) in old where !plan.conns.contains(where: { $0.name == name }) && !plan.edits.contains(where: { $0.section == name }) {
            XCTAssertEqual(new[name], conn, "conn \(name) is not migrated: unchanged", file: file, line: line)
        }
        try patch(plan.unifiedDiff, reverse: true)
        XCTAssertEqual(try bytes(), before, "patch -R gives back every byte", file: file, line: line)
        return new
    }

    // MARK: - Diffs

    /// One site-to-site conn: comments, blank lines and the other conns stay byte for byte;
    /// vti-interface= becomes ipsec-interface= where it was, with its comment; the marks and
    /// vti-routing= go; leftvti= becomes leftinterface-ip=.
    func testASiteToSiteConnGoldenDiffAppliesAndRollsBack() throws {
        try write(["ipsec.conf": """
            # libreswan configuration
            config setup
                uniqueids=yes

            conn policy
                left=192.0.2.1
                right=203.0.113.9
                auto=start

            conn site
                left=192.0.2.1
                right=198.51.100.1
                leftsubnet=10.1.0.0/24
                rightsubnet=10.2.0.0/24
                mark=0x80010/0xffffffff
                vti-interface=vti01   # the branch
                vti-routing=yes
                leftvti=10.255.0.1/30
            \(hook)    auto=start
            # end

            """])
        let plan = try plan()
        XCTAssertEqual(diff(plan), """
            --- aDIR/ipsec.conf
            +++ bDIR/ipsec.conf
            @@ -12,10 +12,8 @@
                 right=198.51.100.1
                 leftsubnet=10.1.0.0/24
                 rightsubnet=10.2.0.0/24
            -    mark=0x80010/0xffffffff
            -    vti-interface=vti01   # the branch
            -    vti-routing=yes
            -    leftvti=10.255.0.1/30
            +    ipsec-interface=1   # the branch
            +    leftinterface-ip=10.255.0.1/30
                 leftupdown=/usr/local/libexec/vtictl/vti-updown
                 auto=start
             # end

            """)
        XCTAssertEqual(plan.devices.map { "\($0.vti) \($0.xfrm) \($0.interfaceID) \($0.conns)" }, ["vti01 ipsec1 1 [\"site\"]"])
        XCTAssertEqual(plan.conns.map(\.initiates), [true])
        XCTAssertEqual(plan.blocked, [])
        try applyAndRollBack(plan)
    }

    /// Two conns on one VTI device (vti-shared=yes) share one XFRM interface; a conn on another
    /// device gets its own; the marks of both devices go.
    func testConnsSharingAVTIShareOneXfrmInterface() throws {
        try write(["ipsec.conf": """
            conn rw-a
                left=192.0.2.1
                leftsubnet=10.1.0.0/24
                right=%any
                rightaddresspool=10.0.1.10-10.0.1.50
                mark=12/0xffffffff
                vti-interface=vti-rw12
                vti-shared=yes
            \(hook)
            conn rw-b
                left=192.0.2.1
                leftsubnet=10.1.0.0/24
                right=%any
                rightaddresspool=10.0.2.10-10.0.2.50
                mark=12/0xffffffff
                vti-interface=vti-rw12
                vti-shared=yes
            \(hook)
            conn site
                left=192.0.2.1
                right=198.51.100.1
                mark=5
                vti-interface=vti5
            \(hook)
            """])
        let plan = try plan()
        XCTAssertEqual(plan.devices.map { "\($0.vti)->\($0.xfrm) \($0.conns.joined(separator: ","))" }, ["vti-rw12->ipsec12 rw-a,rw-b", "vti5->ipsec5 site"])
        XCTAssertEqual(diff(plan), """
            --- aDIR/ipsec.conf
            +++ bDIR/ipsec.conf
            @@ -3,9 +3,7 @@
                 leftsubnet=10.1.0.0/24
                 right=%any
                 rightaddresspool=10.0.1.10-10.0.1.50
            -    mark=12/0xffffffff
            -    vti-interface=vti-rw12
            -    vti-shared=yes
            +    ipsec-interface=12
                 leftupdown=/usr/local/libexec/vtictl/vti-updown
            \u{20}
             conn rw-b
            @@ -13,14 +11,11 @@
                 leftsubnet=10.1.0.0/24
                 right=%any
                 rightaddresspool=10.0.2.10-10.0.2.50
            -    mark=12/0xffffffff
            -    vti-interface=vti-rw12
            -    vti-shared=yes
            +    ipsec-interface=12
                 leftupdown=/usr/local/libexec/vtictl/vti-updown
            \u{20}
             conn site
                 left=192.0.2.1
                 right=198.51.100.1
            -    mark=5
            -    vti-interface=vti5
            +    ipsec-interface=5
                 leftupdown=/usr/local/libexec/vtictl/vti-updown

            """)
        let new = try applyAndRollBack(plan)
        XCTAssertEqual(checkRouteBasedConns(Array(new.values).sorted { $0.name < $1.name }).filter { $0.severity == .error }, [], "two conns on one XFRM interface are fine")
    }

    /// The settings live in an also= section that only the migrated conns use (a fragment: no
    /// auto= of its own): they are edited there, once, for both conns; tabs stay tabs.
    func testAnAlsoSectionIsEditedWhenEveryConnUsingItMigrates() throws {
        try write(["ipsec.conf": """
            conn %default
            \tikev2=insist

            conn rw-common
            \tleft=192.0.2.1
            \tleftsubnet=10.1.0.0/24
            \tmark=12/0xffffffff
            \tvti-interface=vti01
            \tvti-shared=yes
            \tleftupdown=/usr/local/libexec/vtictl/vti-updown

            conn rw1
            \talso=rw-common
            \tright=%any
            \trightaddresspool=10.0.1.10-10.0.1.50
            \tauto=add

            conn rw2
            \talso=rw-common
            \tright=%any
            \trightaddresspool=10.0.2.10-10.0.2.50
            \tauto=add

            """])
        let plan = try plan()
        XCTAssertEqual(plan.conns.map(\.name), ["rw1", "rw2"], "the fragment is no conn of its own")
        XCTAssertEqual(plan.edits.map(\.conns), [["rw1", "rw2"], ["rw1", "rw2"], ["rw1", "rw2"]])
        XCTAssertEqual(diff(plan), """
            --- aDIR/ipsec.conf
            +++ bDIR/ipsec.conf
            @@ -4,9 +4,7 @@
             conn rw-common
             \tleft=192.0.2.1
             \tleftsubnet=10.1.0.0/24
            -\tmark=12/0xffffffff
            -\tvti-interface=vti01
            -\tvti-shared=yes
            +\tipsec-interface=1
             \tleftupdown=/usr/local/libexec/vtictl/vti-updown
            \u{20}
             conn rw1

            """)
        try applyAndRollBack(plan)
        // The same with --conn naming both: the fragment goes with them.
        XCTAssertEqual(try self.plan(["rw1", "rw2"]).unifiedDiff, plan.unifiedDiff)
    }

    /// --conn rw1 alone: the device comes from a section rw2 also uses and rw2 stays on the VTI, so
    /// rw1 cannot move (libreswan cannot unset what a conn inherits): no edit, exit 1 in the CLI.
    func testAConnWhoseDeviceIsSharedWithAConnThatStaysIsNotMigrated() throws {
        try write(["ipsec.conf": """
            conn rw-common
                left=192.0.2.1
                mark=12/0xffffffff
                vti-interface=vti01
                vti-shared=yes
            \(hook)
            conn rw1
                also=rw-common
                right=%any
                rightaddresspool=10.0.1.10-10.0.1.50
                auto=add

            conn rw2
                also=rw-common
                right=%any
                rightaddresspool=10.0.2.10-10.0.2.50
                auto=add

            """])
        let plan = try plan(["rw1"])
        XCTAssertEqual(plan.conns, [])
        XCTAssertEqual(plan.edits, [])
        XCTAssertEqual(plan.unifiedDiff, "")
        XCTAssertEqual(plan.blocked.map { $0.reason.replacingOccurrences(of: directory, with: "DIR") }, [
            "it takes vti-interface=vti01 from conn rw-common (DIR/ipsec.conf:4), which conn rw2 also takes and is not migrated: libreswan cannot unset a setting a conn inherits, so migrate it too (--conn) or move vti-interface= into each conn first",
        ])
        XCTAssertTrue(plan.text(diffCommand: "vtictl migrate --diff").contains("Not migrated:\n  conn rw1 ("))
    }

    /// The mark comes from `conn %default`, which a policy-based conn also takes it from: it stays
    /// (libreswan cannot unset it) and the plan says so; the device, written in the conn, moves.
    /// When every conn taking it migrates, it goes from %default.
    func testAMarkInDefaultSharedWithAConnThatStaysIsKeptAndNoted() throws {
        let site = "conn site\n    left=192.0.2.1\n    right=198.51.100.1\n    vti-interface=vti07\n\(hook)\n"
        try write(["ipsec.conf": "conn %default\n    mark=7/0xffffffff\n\nconn policy\n    left=192.0.2.1\n    right=203.0.113.9\n\n" + site])
        let plan = try plan()
        XCTAssertEqual(diff(plan), """
            --- aDIR/ipsec.conf
            +++ bDIR/ipsec.conf
            @@ -8,6 +8,6 @@
             conn site
                 left=192.0.2.1
                 right=198.51.100.1
            -    vti-interface=vti07
            +    ipsec-interface=7
                 leftupdown=/usr/local/libexec/vtictl/vti-updown
            \u{20}

            """)
        XCTAssertEqual(plan.conns.first?.notes.first?.replacingOccurrences(of: directory, with: "DIR"),
                       "keeps mark=7/0xffffffff from conn %default (DIR/ipsec.conf:2), which policy also uses: libreswan cannot unset it; with ipsec-interface= it only becomes the output mark of the encrypted packets (instead of the if_id) and PLUTO_XFRMI_FWMARK, which matters only to ip rules and firewall rules that match it")
        try applyAndRollBack(plan)

        try write(["ipsec.conf": "conn %default\n    mark=7/0xffffffff\n\n" + site])
        XCTAssertEqual(diff(try self.plan()), """
            --- aDIR/ipsec.conf
            +++ bDIR/ipsec.conf
            @@ -1,9 +1,8 @@
             conn %default
            -    mark=7/0xffffffff
            \u{20}
             conn site
                 left=192.0.2.1
                 right=198.51.100.1
            -    vti-interface=vti07
            +    ipsec-interface=7
                 leftupdown=/usr/local/libexec/vtictl/vti-updown
            \u{20}

            """)
        try applyAndRollBack(try self.plan())
    }

    /// leftvti= from a section a conn that stays also uses: the migrated conn gets its own
    /// leftinterface-ip= (inserted after its last setting, indented like it).
    func testAnInheritedLeftVTIGetsAnInterfaceIPInTheConn() throws {
        try write(["ipsec.conf": """
            conn base
                left=192.0.2.1
                leftvti=10.255.0.1/30

            conn a
                also=base
                right=198.51.100.1
                mark=5
                vti-interface=vti05
            \(hook)    auto=start

            conn b
                also=base
                right=198.51.100.2
                mark=6
                vti-interface=vti06
            \(hook)    auto=start

            """])
        let plan = try plan(["a"])
        XCTAssertEqual(diff(plan), """
            --- aDIR/ipsec.conf
            +++ bDIR/ipsec.conf
            @@ -5,10 +5,10 @@
             conn a
                 also=base
                 right=198.51.100.1
            -    mark=5
            -    vti-interface=vti05
            +    ipsec-interface=5
                 leftupdown=/usr/local/libexec/vtictl/vti-updown
                 auto=start
            +    leftinterface-ip=10.255.0.1/30
            \u{20}
             conn b
                 also=base

            """)
        XCTAssertEqual(plan.devices.map(\.xfrm.rawValue), ["ipsec5"])
        try applyAndRollBack(plan)
        let (config, _) = try read()
        XCTAssertEqual(try config.resolved("b")?.settings["leftinterface-ip"], nil, "b stays as it was")
    }

    /// leftvti= with leftsourceip=: libreswan refuses interface-ip= beside sourceip=.
    func testLeftVTIWithASourceIPIsNotMigrated() throws {
        try write(["ipsec.conf": "conn a\n    left=192.0.2.1\n    right=198.51.100.1\n    leftsourceip=10.1.0.1\n    leftvti=10.255.0.1/30\n    mark=5\n    vti-interface=vti05\n\(hook)"])
        let plan = try plan()
        XCTAssertEqual(plan.unifiedDiff, "")
        XCTAssertEqual(plan.blocked.count, 1)
        XCTAssertTrue(plan.blocked[0].reason.contains("libreswan refuses leftinterface-ip= beside leftsourceip="), plan.blocked[0].reason)
    }

    /// An included CRLF file, and a main file without a final newline whose last line changes:
    /// CRs stay, the "No newline" marker is where patch wants it, and both roll back.
    func testCRLFAndAMissingFinalNewline() throws {
        try write([
            "ipsec.conf": "include branch.conf\nconn site\n    left=192.0.2.1\n    right=198.51.100.1\n    leftupdown=/usr/local/libexec/vtictl/vti-updown\n    mark=5\n    vti-interface=vti05",
            "branch.conf": "conn branch\r\n    left=192.0.2.1\r\n    right=198.51.100.7\r\n    leftupdown=/usr/local/libexec/vtictl/vti-updown\r\n    mark=7\r\n    vti-interface=vti07\r\n",
        ])
        let plan = try plan()
        XCTAssertEqual(diff(plan), """
            --- aDIR/ipsec.conf
            +++ bDIR/ipsec.conf
            @@ -3,5 +3,4 @@
                 left=192.0.2.1
                 right=198.51.100.1
                 leftupdown=/usr/local/libexec/vtictl/vti-updown
            -    mark=5
            -    vti-interface=vti05
            \\ No newline at end of file
            +    ipsec-interface=5
            \\ No newline at end of file
            --- aDIR/branch.conf
            +++ bDIR/branch.conf
            @@ -2,5 +2,4 @@
                 left=192.0.2.1\r
                 right=198.51.100.7\r
                 leftupdown=/usr/local/libexec/vtictl/vti-updown\r
            -    mark=7\r
            -    vti-interface=vti07\r
            +    ipsec-interface=7\r

            """, "the main file first, as read: the include's conns come first in the parse but its file second")
        try applyAndRollBack(plan)
    }

    /// A line break the parser counts and patch does not: refused rather than a diff at the wrong line.
    func testALineBreakOtherThanLFIsRefused() throws {
        try write(["ipsec.conf": "conn a\u{0C}\n    left=192.0.2.1\n    right=198.51.100.1\n    mark=5\n    vti-interface=vti05\n\(hook)"])
        XCTAssertThrowsError(try plan()) { error in
            XCTAssertTrue("\(error)".contains("line 1 has a line break U+C"), "\(error)")
        }
    }

    // MARK: - Numbers and selection

    /// The VTI's own number when free; else the lowest free one: not an if_id of an existing
    /// ipsec-interface= (0 is 16384), not the name of a VTI; conn by conn as all at once.
    func testNumbersAreTheVTIsOwnWhenFreeAndStableConnByConn() throws {
        func conn(_ name: String, _ device: String, _ mark: Int) -> String {
            "conn \(name)\n    left=192.0.2.1\n    right=198.51.100.\(mark)\n    mark=\(mark)\n    vti-interface=\(device)\n\(hook)\n"
        }
        try write(["ipsec.conf": conn("a", "vti16384", 1) + conn("b", "vti1", 2) + conn("c", "hub", 3) + conn("d", "ipsec2", 4) + conn("e", "vti07", 5)
                   + "conn x\n    left=192.0.2.1\n    right=198.51.100.99\n    ipsec-interface=0\n\(hook)\n"
                   + "conn y\n    left=192.0.2.1\n    right=198.51.100.98\n    ipsec-interface=1\n\(hook)\n"])
        let all = try plan()
        XCTAssertEqual(all.devices.map { "\($0.vti)=\($0.number): \($0.reason)" }, [
            "vti16384=3: the lowest free number (16384 is taken by conn x's ipsec-interface=)",
            "vti1=4: the lowest free number (1 is taken by conn y's ipsec-interface=)",
            "hub=5: the lowest free number",
            "ipsec2=6: the lowest free number (ipsec2 is a VTI device's name)",
            "vti07=7: vti07's own number",
        ])
        for name in ["a", "b", "c", "d", "e"] {
            let one = try plan([name])
            XCTAssertEqual(one.devices.map(\.number), all.devices.filter { $0.conns == [name] }.map(\.number), "conn \(name) alone")
        }
        let firstRun = try plan()
        XCTAssertEqual(firstRun.unifiedDiff, all.unifiedDiff, "stable across runs")
        // Migrating c first, then the rest: the rest keep their numbers.
        try patch(try plan(["c"]).unifiedDiff)
        XCTAssertEqual(try plan().devices.map(\.number), [3, 4, 6, 7])
        XCTAssertEqual(try plan().devices.map(\.number), all.devices.filter { $0.vti.rawValue != "hub" }.map(\.number))
    }

    func testConnSelectionErrors() throws {
        try write(["ipsec.conf": "conn x\n    left=192.0.2.1\n    ipsec-interface=1\n\(hook)\nconn p\n    left=192.0.2.1\n"])
        XCTAssertThrowsError(try plan(["x"])) { XCTAssertEqual("\($0)", "conn x is already on an XFRM interface (ipsec-interface=)") }
        XCTAssertThrowsError(try plan(["p"])) { XCTAssertEqual("\($0)", "conn p is not a route-based VTI conn (no vti-interface=)") }
        XCTAssertThrowsError(try plan(["q"])) { XCTAssertEqual("\($0)", "no conn q in the configuration") }
        XCTAssertEqual(try plan().conns, [], "nothing to migrate is no error")
    }

    /// The plan for people shows every line the diff removes and adds, and the numbers, marks and
    /// device names an operator changes elsewhere.
    func testThePlanShowsTheDiffsEdits() throws {
        try write(["ipsec.conf": "conn a\n    left=192.0.2.1\n    right=198.51.100.1\n    rightsubnet=10.2.0.0/24\n    mark=5\n    vti-interface=vti05\n\(hook)conn b\n    left=192.0.2.1\n    right=198.51.100.2\n    mark-in=6\n    mark-out=6\n    vti-interface=vti06\n    vti-routing=yes\n\(hook)"])
        let plan = try plan(version: LibreswanVersion(major: 4, minor: 10))
        let text = plan.text(diffCommand: "vtictl migrate --diff")
        let changed = plan.unifiedDiff.split(separator: "\n").filter { ($0.hasPrefix("-") || $0.hasPrefix("+")) && !$0.hasPrefix("---") && !$0.hasPrefix("+++") }
        XCTAssertEqual(changed.count, 8)
        for line in changed { XCTAssertTrue(text.contains("    \(line)\n"), "the plan shows \(line)") }
        XCTAssertTrue(text.contains("vti05 -> ipsec5: e.g. nftables iifname/oifname \"vti05\""), text)
        XCTAssertTrue(text.contains("rules matching the mark 5/0xffffffff"), text)
        XCTAssertTrue(text.contains("for libreswan 4.10"), text)
        XCTAssertTrue(text.contains("pluto creates it at the conn's first Child SA"), text)
        XCTAssertTrue(text.contains("conn a: routes now: it had no vti-routing=yes, but every XFRM-interface conn routes (PLUTO_XFRMI_ROUTE=yes), so vti-updown will route 10.2.0.0/24 into ipsec5"), text)
        XCTAssertTrue(text.contains("Rollback: patch -R -p1 -d / < vti-to-xfrm.diff"), text)
    }
}
