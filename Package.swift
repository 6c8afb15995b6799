// swift-tools-version: 6.1
import PackageDescription

let package = Package(
    name: "vtictl",
    platforms: [.macOS(.v14)],
    products: [
        .executable(name: "vti-updown", targets: ["vti-updown"]),
        .executable(name: "vtid", targets: ["vtid"]),
        .executable(name: "vtictl", targets: ["vtictl"]),
        .library(name: "Netlink", targets: ["Netlink"]),
        .library(name: "VTIModel", targets: ["VTIModel"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-system", from: "1.8.1"),
    ],
    targets: [
        // libmnl, found through pkg-config; Debian package libmnl-dev.
        .systemLibrary(
            name: "CLibmnl",
            pkgConfig: "libmnl",
            providers: [.apt(["libmnl-dev"])]
        ),
        // The only module with unsafe pointer code: typed rtnetlink and XFRM over libmnl.
        .target(
            name: "Netlink",
            dependencies: [
                "CLibmnl",
                .product(name: "SystemPackage", package: "swift-system"),
            ],
            swiftSettings: [.enableUpcomingFeature("InternalImportsByDefault")]
        ),
        // Pure values and planning: no I/O, no Foundation.
        .target(name: "VTIModel"),
        // Effects: makes the kernel hold what the planner decided, through Netlink.
        .target(name: "VTIKernel", dependencies: ["Netlink", "VTIModel"]),
        .executableTarget(
            name: "vti-updown",
            dependencies: ["VTIModel", "VTIKernel", "Netlink"],
            linkerSettings: [.unsafeFlags(["-static-stdlib"])]
        ),
        .executableTarget(
            name: "vtid",
            dependencies: ["VTIModel", "Netlink"]
        ),
        .executableTarget(
            name: "vtictl",
            dependencies: [
                "VTIModel", "Netlink",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),
        // Scripts/bench-routes: batched route installs through the Netlink module.
        .executableTarget(
            name: "vtictl-bench-routes",
            dependencies: ["Netlink"],
            path: "Benchmarks/RouteBatch"
        ),
        // Runs a test in a throwaway network namespace (a child process under `unshare -n`).
        .target(name: "KernelTestSupport", path: "Tests/KernelTestSupport"),
        // Scripts/bench-hook: the start-up floor of a static Swift program.
        .executableTarget(
            name: "vtictl-bench-noop",
            path: "Benchmarks/Noop",
            linkerSettings: [.unsafeFlags(["-static-stdlib"])]
        ),
        .testTarget(
            name: "NetlinkTests",
            dependencies: ["Netlink", "KernelTestSupport"],
            resources: [.copy("Fixtures")]
        ),
        .testTarget(name: "VTIModelTests", dependencies: ["VTIModel"], resources: [.copy("Fixtures")]),
        .testTarget(name: "VTIKernelTests", dependencies: ["VTIKernel", "VTIModel", "Netlink", "KernelTestSupport"]),
        // Boots the User-Mode Linux test bed (Scripts/testbed) and checks its scenarios.
        .testTarget(name: "TestbedTests", exclude: ["Fixtures"]),
    ],
    swiftLanguageModes: [.v6]
)
