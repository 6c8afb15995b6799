import ControlProtocol
import Foundation
import KernelTestSupport
import XCTest

/// vti-updown's own command line: what an operator types to try it (`--plan` with a recorded
/// event changes nothing), and what pluto never passes.
final class HookCommandLineTests: XCTestCase {
    private let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .appendingPathComponent("../VTIModelTests/Fixtures/libreswan-4.10-updown").standardized.path

    private func recorded(_ name: String) throws -> [String] {
        try String(contentsOfFile: "\(fixtures)/\(name).env", encoding: .utf8).split(separator: "\n").map(String.init)
    }

    func testVersionHelpAndBadArguments() {
        XCTAssertEqual(runChild([product("vti-updown"), "--version"]).output, "vti-updown \(vtictlRelease)\n")
        let help = runChild([product("vti-updown"), "--help"])
        XCTAssertEqual(help.status, 0)
        XCTAssertTrue(help.output.hasPrefix("usage: vti-updown [--config FILE] [--plan] [VERB]\n"), help.output)
        let bad = runChild([product("vti-updown"), "--frobnicate"])
        XCTAssertEqual(bad.status, 2)
        XCTAssertTrue(bad.output.hasPrefix("vti-updown: unexpected argument --frobnicate\n"), bad.output)
    }

    /// The road client's route-client as pluto 4.10 sent it: the plan, one line per step, and no change.
    func testPlanPrintsWhatWouldBeDone() throws {
        let result = runChild(["/usr/bin/env", "-i"] + (try recorded("rw-road1-03-route-client")) + [product("vti-updown"), "--plan", "--config", "/dev/null"])
        XCTAssertEqual(result.status, 0, result.output)
        XCTAssertTrue(result.output.hasPrefix("""
            vti-updown: plan for route-client rw peer 192.0.2.2 id @east:
              ensure address 10.0.1.10/32 on lo
              add route 0.0.0.0/1 dev eth0 src 10.0.1.10 proto 157
              add route 128.0.0.0/1 dev eth0 src 10.0.1.10 proto 157
            vti-updown: writes needed now:

            """), result.output)
        // Read from this host's kernel, which has neither the address nor the routes.
        let writes = result.output.components(separatedBy: "writes needed now:\n").last ?? ""
        XCTAssertTrue(writes.hasPrefix("  add address 10.0.1.10/32 to lo\n  add route 0.0.0.0/1 dev eth0 src 10.0.1.10 proto 157\n"), result.output)
    }

    /// The hook reads its own environment without a dictionary: variables it does not know are
    /// still named, once each, and nothing else (not the shell's, not the ones it knows).
    func testUnknownVariablesOfTheProcessEnvironmentAreNamed() throws {
        let result = runChild(["/usr/bin/env", "-i"] + (try recorded("rw-road1-03-route-client"))
            + ["PLUTO_SOMETHING_NEW=1", "XYZ=2", "VTI_FUTURE=3", "CONNMARK_ODD=4", product("vti-updown"), "--plan", "--config", "/dev/null"])
        XCTAssertEqual(result.status, 0, result.output)
        XCTAssertEqual(result.output.split(separator: "\n").first, "vti-updown: ignoring unknown variables CONNMARK_ODD PLUTO_SOMETHING_NEW VTI_FUTURE")
    }

    /// String's substring search and regular expressions live in _StringProcessing, about 1 MB of
    /// code and metadata that the loader relocates at every hook call (`text.contains(" of ")`
    /// once brought it in): the hook links none of it.
    func testHookLinksNoRegularExpressionCode() throws {
        let symbols = runChild(["/usr/bin/nm", "--defined-only", product("vti-updown")])
        XCTAssertEqual(symbols.status, 0, "nm (binutils) is needed: \(symbols.output)")
        let linked = symbols.output.split(separator: "\n").filter { $0.contains("17_StringProcessing") || $0.contains("12_RegexParser") }
        XCTAssertEqual(linked.count, 0, "the hook links _StringProcessing, e.g. \(linked.prefix(3))")
    }

    /// How the hook is linked decides most of its start-up (README, Benchmarks): only libc, libm
    /// and libmnl are loaded at run time (the Swift runtime, libstdc++ and libgcc's unwinder are
    /// inside), its dynamic symbol table holds only imports, and its relocations are packed where
    /// glibc reads them (2.36 and later).
    func testHookLoadsOnlyLibcLibmAndLibmnl() throws {
        let dynamic = runChild(["/usr/bin/readelf", "-d", product("vti-updown")])
        XCTAssertEqual(dynamic.status, 0, "readelf (binutils) is needed: \(dynamic.output)")
        let needed = dynamic.output.split(separator: "\n").filter { $0.contains("(NEEDED)") }.compactMap { line in
            line.split(separator: "[").last?.split(separator: "]").first.map(String.init)
        }
        // The dynamic loader (named in PT_INTERP, per architecture: ld-linux-x86-64.so.2,
        // ld-linux-aarch64.so.1, ...) may be listed too: it is loaded for any dynamic executable.
        let interpreter = try XCTUnwrap(programInterpreter(product("vti-updown")), "no PT_INTERP in the hook")
        let loader = URL(fileURLWithPath: interpreter).lastPathComponent
        XCTAssertTrue(loader.hasPrefix("ld-"), "unexpected program interpreter \(interpreter)")
        XCTAssertEqual(Set(needed).subtracting([loader]), ["libmnl.so.0", "libm.so.6", "libc.so.6"], dynamic.output)
        // Only what libraries need is exported: the runtime's dladdr at start walks this table.
        let symbols = runChild(["/usr/bin/readelf", "--dyn-syms", "-W", product("vti-updown")])
        let exported = symbols.output.split(separator: "\n").filter { $0.contains(" GLOBAL ") || $0.contains(" WEAK ") }.count
        XCTAssertLessThan(exported, 1000, "the hook exports \(exported) dynamic symbols: linked with --export-dynamic?")
        let glibc = runChild(["/usr/bin/getconf", "GNU_LIBC_VERSION"]).output.split(separator: " ").last.map { $0.split(separator: ".").compactMap { Int($0.trimmingCharacters(in: .whitespacesAndNewlines)) } } ?? []
        if glibc.count >= 2, (glibc[0], glibc[1]) >= (2, 36) {
            XCTAssertTrue(dynamic.output.contains("(RELR)"), "glibc \(glibc) reads packed relocations: the hook should have them\n\(dynamic.output)")
        }
    }

    /// The linker lays out the hook's code from `Linking/vti-updown.order` (Package.swift,
    /// `hookLayout`) and silently skips the names the build no longer has
    /// (`--no-warn-symbol-ordering`): after the hook's code changes, the file must be made again or
    /// the layout, and the start-up it buys (README, Benchmarks), slowly goes. The names are those
    /// of the optimised build (specialisations that a debug build does not have), so the release
    /// build is checked, which `Scripts/test` makes. The threshold is `Scripts/bench-hook`'s (90%):
    /// a few renamed functions pass, a tenth of the list gone (a changed path through the code) fails.
    func testCodeLayoutMatchesTheReleaseBuild() throws {
        let hook = URL(fileURLWithPath: productsDirectory()).deletingLastPathComponent()
            .appendingPathComponent("release/vti-updown").path
        guard FileManager.default.fileExists(atPath: hook) else {
            let message = "no release build of the hook at \(hook): Scripts/test makes it (swift build -c release --disable-local-rpath --product vti-updown)"
            // CI runs Scripts/test: a missing build there is a broken script, not a reason to skip.
            guard ProcessInfo.processInfo.environment["CI"] == "true" else { throw XCTSkip(message) }
            XCTFail(message)
            return
        }
        let orderFile = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
            .appendingPathComponent("../../Linking/vti-updown.order").standardized.path
        let listed = Set(try String(contentsOfFile: orderFile, encoding: .utf8).split(separator: "\n")
            .filter { !$0.hasPrefix("#") && !$0.isEmpty }.map(String.init))
        XCTAssertGreaterThan(listed.count, 100, "\(orderFile) lists too few functions: run Scripts/hook-order")
        let symbols = runChild(["/usr/bin/nm", "--defined-only", hook])
        XCTAssertEqual(symbols.status, 0, "nm (binutils) is needed: \(symbols.output.prefix(1000))")
        // "ADDRESS TYPE NAME", one a line.
        let defined = Set(symbols.output.split(separator: "\n").compactMap { line in
            line.split(separator: " ", maxSplits: 2).dropFirst(2).first.map(String.init)
        })
        let present = listed.intersection(defined).count
        XCTAssertTrue(present * 10 >= listed.count * 9, """
            only \(present) of the \(listed.count) functions in Linking/vti-updown.order are in the release build \
            of the hook (\(hook)): the file is stale and the hook's code layout is being lost. Run \
            Scripts/hook-order (needs valgrind) and commit Linking/vti-updown.order (or, if that build \
            is older than the code, rebuild it first: Scripts/test does). Missing, for example: \
            \(listed.subtracting(defined).sorted().prefix(3).joined(separator: " "))
            """)
    }

    /// The path in the executable's PT_INTERP (`readelf -l`: "[Requesting program interpreter: PATH]").
    private func programInterpreter(_ executable: String) -> String? {
        let headers = runChild(["/usr/bin/readelf", "-l", "-W", executable])
        let marker = "program interpreter: "
        guard let line = headers.output.split(separator: "\n").first(where: { $0.contains(marker) }),
              let start = line.range(of: marker)?.upperBound else { return nil }
        return String(line[start...].prefix { $0 != "]" })
    }
}
