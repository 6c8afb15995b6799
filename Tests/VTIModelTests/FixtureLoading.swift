import Foundation
@testable import VTIModel

/// The recordings of real pluto calls: Fixtures/libreswan-4.10-updown (Debian 12's pluto),
/// Fixtures/libreswan-5.2-updown (Debian 13's, recorded in the qemu test bed with `TESTBED_RECORD=1`),
/// Fixtures/libreswan-5.4-exec (built to match libreswan v5.4's programs/pluto/updown.c: Debian
/// has no 5.4 to record from), and Fixtures/libreswan-*-xfrmi (conns with `ipsec-interface=`,
/// recorded in the qemu test bed; docs/xfrm-interfaces.md).
enum Libreswan: String {
    case v4_10 = "libreswan-4.10-updown"
    case v5_2 = "libreswan-5.2-updown"
    case v5_4 = "libreswan-5.4-exec"
    case v4_10_xfrmi = "libreswan-4.10-xfrmi"
    case v5_2_xfrmi = "libreswan-5.2-xfrmi"
}

/// A recorded pluto environment.
func fixtureEnvironment(_ name: String, _ version: Libreswan = .v4_10) throws -> [String: String] {
    guard let url = Bundle.module.url(forResource: name, withExtension: "env", subdirectory: "Fixtures/\(version.rawValue)") else {
        throw FixtureMissing(name: "\(version.rawValue)/\(name)")
    }
    var environment: [String: String] = [:]
    for line in try String(contentsOf: url, encoding: .utf8).split(separator: "\n") {
        let parts = line.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
        environment[String(parts[0])] = parts.count > 1 ? String(parts[1]) : ""
    }
    return environment
}

func allFixtureNames(_ version: Libreswan = .v4_10) -> [String] {
    guard let directory = Bundle.module.resourceURL?.appendingPathComponent("Fixtures/\(version.rawValue)"),
          let names = try? FileManager.default.contentsOfDirectory(atPath: directory.path) else { return [] }
    return names.filter { $0.hasSuffix(".env") }.map { String($0.dropLast(4)) }.sorted()
}

struct FixtureMissing: Error { var name: String }

func event(_ fixture: String, _ version: Libreswan = .v4_10, changing changes: [String: String?] = [:]) throws -> PlutoEvent {
    var environment = try fixtureEnvironment(fixture, version)
    for (key, value) in changes { environment[key] = value }
    return try PlutoEvent(environment: environment)
}

/// The steps that set up a VTI device, as the planner prints them with the default settings (the
/// golden plans of every libreswan version share them).
func expectedDeviceSetup(_ device: String, local: String, remote: String, key: Int, routing: Bool) -> [String] {
    [
        "ensure VTI \(device) local \(local) remote \(remote) ikey \(key) okey \(key)",
        "set net.ipv4.conf.\(device).disable_policy=1",
        "set net.ipv4.conf.\(device).rp_filter=2",
        "set net.ipv4.conf.\(device).forwarding=1",
        "set net.ipv4.conf.\(device).accept_redirects=0",
        "set net.ipv4.conf.\(device).send_redirects=0",
    ] + (routing ? ["set net.ipv4.ip_forward=1"] : []) + [
        "ensure MTU of \(device) (derived (fallback AES-CBC+HMAC-SHA2-512-256))",
    ]
}
