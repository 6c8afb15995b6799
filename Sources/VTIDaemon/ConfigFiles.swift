import Foundation
import VTIModel

/// Reads libreswan's ipsec.conf with the files its `include` lines name.
public func loadIPsecConfig(_ path: String) throws(IPsecConfigError) -> IPsecConfig {
    try IPsecConfig(main: try readSource(path, from: nil), resolveInclude: resolveInclude)
}

/// Reads vtid's YAML; a missing file at the default path means every default.
public func loadDaemonConfiguration(_ path: String, requireFile: Bool) throws(ConfigurationError) -> DaemonConfiguration {
    guard let data = FileManager.default.contents(atPath: path) else {
        if requireFile || FileManager.default.fileExists(atPath: path) {
            throw ConfigurationError(file: path, line: nil, problem: "cannot read the file")
        }
        return DaemonConfiguration()
    }
    return try DaemonConfiguration(yaml: String(decoding: data, as: UTF8.self), file: path)
}

private func readSource(_ path: String, from location: ConfigLocation?) throws(IPsecConfigError) -> IPsecConfig.Source {
    guard let data = FileManager.default.contents(atPath: path) else {
        throw IPsecConfigError(location: location ?? ConfigLocation(file: path, line: 0), problem: "cannot read \(path)")
    }
    return IPsecConfig.Source(file: path, text: String(decoding: data, as: UTF8.self))
}

/// `include` patterns are shell globs, relative to the including file's directory.
private func resolveInclude(_ pattern: String, _ location: ConfigLocation) throws(IPsecConfigError) -> [IPsecConfig.Source] {
    let absolute = pattern.hasPrefix("/") ? pattern
        : (location.file as NSString).deletingLastPathComponent + "/" + pattern
    var matches = glob_t()
    defer { globfree(&matches) }
    guard glob(absolute, 0, nil, &matches) == 0 else { return [] }  // no match: libreswan ignores it too
    var sources: [IPsecConfig.Source] = []
    for index in 0..<Int(matches.gl_pathc) {
        guard let path = matches.gl_pathv[index].map({ String(cString: $0) }) else { continue }
        sources.append(try readSource(path, from: location))
    }
    return sources
}
