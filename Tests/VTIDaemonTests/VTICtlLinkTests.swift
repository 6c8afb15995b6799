import Foundation
import KernelTestSupport
import XCTest

/// vtictl is linked from the client and the configuration modules, not from vtid's library:
/// SQLite (GRDB), Prometheus and the service lifecycle stay out of the CLI (Package.swift). The
/// built binaries are read, so a dependency that comes back through another module fails too.
final class VTICtlLinkTests: XCTestCase {
    /// vtid's modules that vtictl must not contain.
    private let daemonModules = ["VTIDaemon", "GRDB", "Prometheus", "ServiceLifecycle"]

    func testVTICtlLinksNoDaemonModules() throws {
        // vtid has them all: a check that finds none there reads the symbols wrong.
        XCTAssertEqual(try swiftModules(daemonModules, in: product("vtid")), Set(daemonModules),
                       "vtid should contain every daemon module: the symbol check below would prove nothing")
        let linked = try swiftModules(daemonModules, in: product("vtictl"))
        XCTAssertEqual(linked, [], """
            vtictl contains code of \(linked.sorted().joined(separator: ", ")): some module it depends on \
            (Package.swift, target vtictl) brings vtid's library or its dependencies back
            """)
        XCTAssertTrue(try neededLibraries(product("vtid")).contains { $0.hasPrefix("libsqlite3.") },
                      "vtid should need libsqlite3: the check below would prove nothing")
        let sqlite = try neededLibraries(product("vtictl")).filter { $0.hasPrefix("libsqlite3.") }
        XCTAssertEqual(sqlite, [], "vtictl loads SQLite")
    }

    /// Which of `modules` have symbols in `binary` (`nm`). A Swift symbol is mangled as `$s`, then
    /// the module's name after its length: `$s4GRDB...`.
    private func swiftModules(_ modules: [String], in binary: String) throws -> Set<String> {
        let symbols = runChild(["/usr/bin/nm", "-P", binary])
        guard symbols.status == 0 else { throw CommandError(message: "nm (binutils) is needed to read \(binary): \(symbols.output.prefix(1000))") }
        let prefixes = modules.map { ("$s\($0.utf8.count)\($0)", $0) }
        var found = Set<String>()
        // POSIX format: "NAME TYPE VALUE SIZE", one a line.
        for line in symbols.output.split(separator: "\n") {
            for (prefix, module) in prefixes where line.hasPrefix(prefix) { found.insert(module) }
        }
        return found
    }

    /// The shared libraries `binary` names (`readelf -d`, its NEEDED entries).
    private func neededLibraries(_ binary: String) throws -> [String] {
        let dynamic = runChild(["/usr/bin/readelf", "-d", binary])
        guard dynamic.status == 0 else { throw CommandError(message: "readelf (binutils) is needed to read \(binary): \(dynamic.output.prefix(1000))") }
        return dynamic.output.split(separator: "\n").filter { $0.contains("(NEEDED)") }.compactMap { line in
            line.split(separator: "[").last?.split(separator: "]").first.map(String.init)
        }
    }
}
