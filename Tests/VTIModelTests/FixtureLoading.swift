import Foundation
@testable import VTIModel

/// A recorded pluto environment from Fixtures/libreswan-4.10-updown.
func fixtureEnvironment(_ name: String) throws -> [String: String] {
    guard let url = Bundle.module.url(forResource: name, withExtension: "env", subdirectory: "Fixtures/libreswan-4.10-updown") else {
        throw FixtureMissing(name: name)
    }
    var environment: [String: String] = [:]
    for line in try String(contentsOf: url, encoding: .utf8).split(separator: "\n") {
        let parts = line.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
        environment[String(parts[0])] = parts.count > 1 ? String(parts[1]) : ""
    }
    return environment
}

func allFixtureNames() -> [String] {
    guard let directory = Bundle.module.resourceURL?.appendingPathComponent("Fixtures/libreswan-4.10-updown"),
          let names = try? FileManager.default.contentsOfDirectory(atPath: directory.path) else { return [] }
    return names.filter { $0.hasSuffix(".env") }.map { String($0.dropLast(4)) }.sorted()
}

struct FixtureMissing: Error { var name: String }

func event(_ fixture: String, changing changes: [String: String?] = [:]) throws -> PlutoEvent {
    var environment = try fixtureEnvironment(fixture)
    for (key, value) in changes { environment[key] = value }
    return try PlutoEvent(environment: environment)
}
