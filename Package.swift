// swift-tools-version: 6.1
import Foundation
#if canImport(Glibc)
import Glibc
#endif
import PackageDescription

// What the link settings below depend on, found where the manifest is evaluated (nothing tied to
// one architecture, GCC version or glibc).

/// The path of a file the C compiler links with, nil where there is none or no compiler to ask.
/// The toolchain's clang first (on PATH with swift): it drives swiftc's link, so its answer is in the
/// GCC installation the link uses; else the system's `cc`.
func compilerFile(_ name: String) -> String? {
    ["clang", "cc"].lazy.compactMap { printFileName(name, compiler: $0) }.first
}

/// `COMPILER -print-file-name=NAME`, if that names a file that exists (a compiler that does not have
/// it prints the bare name).
func printFileName(_ name: String, compiler: String) -> String? {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
    process.arguments = [compiler, "-print-file-name=" + name]
    let output = Pipe()
    process.standardOutput = output
    process.standardError = FileHandle.nullDevice
    guard (try? process.run()) != nil else { return nil }
    let answer = output.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    let path = String(decoding: answer, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
    guard process.terminationStatus == 0, path.hasPrefix("/"), FileManager.default.fileExists(atPath: path) else { return nil }
    return path
}

/// libstdc++ linked in statically, where GCC ships its archive (Debian: libstdc++-N-dev). The Swift
/// runtime asks for `-lstdc++`, and the linker takes the first libstdc++.so or .a on its search
/// path; the archive's directory also holds the shared library's libstdc++.so, so
/// `Linking/static-libstdc++` goes before it: its libstdc++.so is a linker script naming
/// `libstdc++.a`, which the linker looks up on the search path in turn and finds in that directory.
let staticLibstdcxx: [String] = compilerFile("libstdc++.a").map { archive in
    ["-L", Context.packageDirectory + "/Linking/static-libstdc++",
     "-L", URL(fileURLWithPath: archive).deletingLastPathComponent().path]
} ?? []

/// glibc reads packed relocations from 2.36 (Debian 12); an older one refuses such a binary.
let glibcReadsRELR: Bool = {
    #if canImport(Glibc)
    var text = [CChar](repeating: 0, count: 64)
    guard confstr(Int32(_CS_GNU_LIBC_VERSION), &text, text.count) > 0 else { return false }  // "glibc 2.36"
    let version = String(decoding: text.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    let parts = version.split(separator: " ").last?.split(separator: ".").compactMap { Int($0) } ?? []
    return parts.count >= 2 && (parts[0], parts[1]) >= (2, 36)
    #else
    return false
    #endif
}()

/// pluto waits for vti-updown at every state change, and its start-up is most of its time: in the
/// test bed a process start costs tens of milliseconds, each shared library and each page the
/// loader writes adds to it (`Scripts/bench-hook`, README "Benchmarks"). So the hook (and the no-op
/// it is measured against) is linked with
/// - the Swift runtime inside (`-static-stdlib`), libstdc++ too where the C compiler has its
///   archive (`staticLibstdcxx`), and libgcc's unwinder (`-static-libgcc`): libc, libm and libmnl
///   stay shared (Debian has no static libmnl, and glibc's libm.a needs glibc's libc.a);
/// - only the symbols libraries need in its dynamic symbol table (`--no-export-dynamic`; swiftc
///   exports every public one, 4,363 for the hook): the Swift runtime calls `dladdr` at start, which
///   walks that table;
/// - its ~18,000 relative relocations packed (`-z pack-relative-relocs`, lld; glibc 2.36 reads them),
///   which the loader applies from a 3 KB table instead of a 450 KB one.
/// The executable stays position-independent (address-space randomisation for a root process that
/// parses remote-chosen text).
// lld comes with every Swift 6 toolchain for Linux.
let staticLinking: [String] = ["-static-stdlib", "-Xclang-linker", "-static-libgcc", "-use-ld=lld", "-Xlinker", "--no-export-dynamic"]
    + staticLibstdcxx
    + (glibcReadsRELR ? ["-Xlinker", "-z", "-Xlinker", "pack-relative-relocs"] : [])
/// The functions a call of the hook runs, side by side (`Linking/vti-updown.order`, made by
/// `Scripts/hook-order`): the code a call touches then lies on a few pages instead of on pages all
/// over the 4.6 MB of code, each one a page fault. Names the file lacks are left where they are,
/// without a warning for each (the debug build lacks the optimised build's specialisations): a
/// test (`HookCommandLineTests`) fails when the release build has fewer than 90% of them.
let hookLayout = ["-Xlinker", "--symbol-ordering-file=" + Context.packageDirectory + "/Linking/vti-updown.order",
                  "-Xlinker", "--no-warn-symbol-ordering"]
let staticHookLinking: [LinkerSetting] = [.unsafeFlags(staticLinking + hookLayout)]
/// Generic types used by the code on the hook's path are made by calling their metadata functions
/// rather than from their mangled names: the first type made from a name pages the runtime's
/// demangler in (about a fifth of the instructions of a hook call).
let hookPathSwift: [SwiftSetting] = [.unsafeFlags(["-Xfrontend", "-disable-concrete-type-metadata-mangled-name-accessors"])]

let package = Package(
    name: "vtictl",
    platforms: [.macOS(.v14)],
    products: [
        .executable(name: "vti-updown", targets: ["vti-updown"]),
        .executable(name: "vtid", targets: ["vtid"]),
        .executable(name: "vtictl", targets: ["vtictl"]),
        .library(name: "Netlink", targets: ["Netlink"]),
        .library(name: "VTIModel", targets: ["VTIModel"]),
        .library(name: "NFTables", targets: ["NFTables"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-system", from: "1.8.1"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.4.1"),
        .package(url: "https://github.com/jpsim/Yams", from: "6.2.2"),
        .package(url: "https://github.com/groue/GRDB.swift", from: "7.10.0"),
        // vtid's GET /metrics (metrics_listen): NIOHTTP1, not Hummingbird, for CI's build time
        // (README "Logs and metrics").
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.2"),
    ],
    targets: [
        // libmnl, found through pkg-config; Debian package libmnl-dev.
        .systemLibrary(
            name: "CLibmnl",
            pkgConfig: "libmnl",
            providers: [.apt(["libmnl-dev"])]
        ),
        // Typed rtnetlink and XFRM over libmnl, and nothing else (the control socket is LocalIPC's).
        .target(
            name: "Netlink",
            dependencies: [
                // VTIModel for the project's one AddressFamily (pure values, no I/O).
                "CLibmnl", "VTIModel",
                .product(name: "SystemPackage", package: "swift-system"),
            ],
            swiftSettings: [.enableUpcomingFeature("InternalImportsByDefault")] + hookPathSwift
        ),
        // libnftnl (and libmnl, its socket), found through pkg-config; Debian package libnftnl-dev.
        .systemLibrary(
            name: "CNftnl",
            pkgConfig: "libnftnl",
            providers: [.apt(["libnftnl-dev"])]
        ),
        // vtid's own nf_tables table (`inet vtictl`) and its TCP MSS clamp rules, over libnftnl;
        // nothing else (README "MSS clamping").
        .target(
            name: "NFTables",
            dependencies: ["CNftnl"],
            swiftSettings: [.enableUpcomingFeature("InternalImportsByDefault")]
        ),
        // glibc's Unix socket calls that Swift cannot spell, as inline C (a header; no library).
        .systemLibrary(name: "CLocalIPC"),
        // Talk between processes on this host: vtid's control socket, the apply lock (flock) and
        // systemd's notification socket. The hook, vtid and vtictl each need it, none of them netlink.
        .target(
            name: "LocalIPC",
            dependencies: [
                "CLocalIPC",
                .product(name: "SystemPackage", package: "swift-system"),
            ],
            swiftSettings: [.enableUpcomingFeature("InternalImportsByDefault")] + hookPathSwift
        ),
        // Pure values and planning: no I/O, no Foundation.
        .target(name: "VTIModel", swiftSettings: hookPathSwift),
        // vtid's DHCP sockets: UDP bound to a device, with IP_PKTINFO (inline C; no library).
        .systemLibrary(name: "CDHCPSocket"),
        // DHCP messages read and written (vtid's DHCPINFORM answers): pure values, no Foundation.
        .target(name: "DHCP", dependencies: ["VTIModel"], swiftSettings: [.enableUpcomingFeature("InternalImportsByDefault")]),
        // Effects: makes the kernel hold what the planner decided, through Netlink.
        .target(name: "VTIKernel", dependencies: ["Netlink", "VTIModel"], swiftSettings: hookPathSwift),
        // vtid's control protocol: JSON lines, readable without Foundation (the hook speaks it).
        .target(name: "ControlProtocol", swiftSettings: hookPathSwift),
        // vtid.yaml (Yams) and libreswan's ipsec.conf read from their files, and the one checked
        // against the other: what vtid loads and `vtictl check` reports on.
        .target(
            name: "VTIConfiguration",
            dependencies: ["ControlProtocol", "VTIModel", "DHCP", .product(name: "Yams", package: "Yams")]
        ),
        // A request to vtid and its answer, for vtictl and tests: no SQLite, metrics or services.
        .target(name: "VTIClient", dependencies: ["ControlProtocol", "LocalIPC"]),
        // The supervisor's parts, as a library so that tests can run them in-process.
        .target(
            name: "VTIDaemon",
            dependencies: [
                "ControlProtocol", "VTIModel", "VTIKernel", "Netlink", "LocalIPC", "VTIConfiguration", "DHCP", "CDHCPSocket", "NFTables",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "GRDB", package: "GRDB.swift"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "UnixSignals", package: "swift-service-lifecycle"),
            ]
        ),
        .executableTarget(
            name: "vti-updown",
            dependencies: ["VTIModel", "VTIKernel", "Netlink", "LocalIPC", "ControlProtocol"],
            swiftSettings: hookPathSwift,
            linkerSettings: staticHookLinking
        ),
        .executableTarget(
            name: "vtid",
            dependencies: [
                "VTIDaemon", "VTIConfiguration", "LocalIPC",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "UnixSignals", package: "swift-service-lifecycle"),
            ]
        ),
        // Not VTIDaemon: the CLI links no SQLite, Prometheus or service lifecycle
        // (VTICtlLinkTests checks its binary).
        .executableTarget(
            name: "vtictl",
            dependencies: [
                "VTIModel", "Netlink", "ControlProtocol", "VTIClient", "VTIConfiguration",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),
        // Scripts/bench-routes: batched route installs through the Netlink module.
        .executableTarget(
            name: "vtictl-bench-routes",
            dependencies: ["Netlink"],
            path: "Benchmarks/RouteBatch"
        ),
        // Scripts/bench-reconcile: vtid's reconcile over routes that are already right.
        .executableTarget(
            name: "vtictl-bench-reconcile",
            dependencies: ["VTIDaemon", "VTIModel", .product(name: "Logging", package: "swift-log")],
            path: "Benchmarks/Reconcile"
        ),
        // Runs a test in a throwaway network namespace (a child process under `unshare -n`).
        .target(name: "KernelTestSupport", path: "Tests/KernelTestSupport"),
        // Scripts/bench-hook: the start-up floor of a static Swift program.
        .executableTarget(
            name: "vtictl-bench-noop",
            path: "Benchmarks/Noop",
            linkerSettings: staticHookLinking
        ),
        .testTarget(
            name: "NetlinkTests",
            dependencies: ["Netlink", "KernelTestSupport"],
            resources: [.copy("Fixtures")]
        ),
        .testTarget(
            name: "NFTablesTests",
            dependencies: ["NFTables", "KernelTestSupport"],
            resources: [.copy("Fixtures")]
        ),
        .testTarget(name: "VTIModelTests", dependencies: ["VTIModel"], resources: [.copy("Fixtures")]),
        .testTarget(name: "ControlProtocolTests", dependencies: ["ControlProtocol"]),
        .testTarget(name: "DHCPTests", dependencies: ["DHCP", "VTIModel"], resources: [.copy("Fixtures")]),
        .testTarget(
            name: "VTIDaemonTests",
            dependencies: ["VTIDaemon", "VTIClient", "VTIConfiguration", "LocalIPC", "ControlProtocol", "VTIModel", "DHCP", "KernelTestSupport", "Netlink"]
        ),
        .testTarget(name: "VTIKernelTests", dependencies: ["VTIKernel", "VTIModel", "Netlink", "KernelTestSupport"]),
        // Boots the User-Mode Linux test bed (Scripts/testbed) and checks its scenarios.
        .testTarget(name: "TestbedTests", exclude: ["Fixtures"]),
    ],
    swiftLanguageModes: [.v6]
)

// libFuzzer targets (Scripts/fuzz; README "Fuzzing"), declared only when VTICTL_FUZZ is set: the
// normal build and the tests never compile them. Scripts/fuzz builds them in their own build
// directory with `-sanitize=fuzzer,address` for every module, so that the parsers they call are
// instrumented too, not only the targets. Each one is `Fuzz/NAME`, seeded from `Fuzz/Corpus/NAME`;
// its main.swift hands libFuzzer's driver the function that reads one input.
if Context.environment["VTICTL_FUZZ"] != nil {
    let fuzzTargets: [(name: String, dependencies: [Target.Dependency])] = [
        ("pluto-environment", ["ControlProtocol", "VTIModel"]),
        ("ipsec-conf", ["VTIModel"]),
        ("hook-settings", ["VTIModel"]),
        ("vtid-yaml", ["VTIConfiguration"]),
        ("control-json", ["ControlProtocol", "VTIModel"]),
        ("netlink-messages", ["Netlink"]),
        ("dhcp-packet", ["DHCP"]),
    ]
    package.targets.append(.systemLibrary(name: "CLibFuzzer", path: "Fuzz/CLibFuzzer"))
    for (name, dependencies) in fuzzTargets {
        package.targets.append(.executableTarget(name: "fuzz-" + name, dependencies: ["CLibFuzzer"] + dependencies, path: "Fuzz/" + name))
    }
}
