import Foundation
import VTIModel

/// Reads libreswan's ipsec.conf with the files its `include` lines name.
public func loadIPsecConfig(_ path: String) throws(IPsecConfigError) -> IPsecConfig {
    try IPsecConfig(main: try readSource(path, from: nil), resolveInclude: resolveInclude)
}

/// `loadIPsecConfig`, with the text of every file read (the main file first, then each include
/// as it is parsed) and every path made absolute and standardised (no `.`, `..` or `//`): what
/// `vtictl migrate` needs to write a diff of them.
public func loadIPsecConfigFiles(_ path: String) throws(IPsecConfigError) -> (config: IPsecConfig, files: [IPsecConfig.Source]) {
    func standard(_ path: String) -> String {
        let absolute = path.hasPrefix("/") ? path : FileManager.default.currentDirectoryPath + "/" + path
        return (absolute as NSString).standardizingPath
    }
    var files: [IPsecConfig.Source] = []
    func remember(_ source: IPsecConfig.Source) -> IPsecConfig.Source {
        let named = IPsecConfig.Source(file: standard(source.file), text: source.text)
        if !files.contains(where: { $0.file == named.file }) { files.append(named) }
        return named
    }
    let main = remember(try readSource(standard(path), from: nil))
    let config = try IPsecConfig(main: main) { pattern, location throws(IPsecConfigError) in
        try resolveInclude(pattern, location).map(remember)
    }
    return (config, files)
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
        var isDirectory: ObjCBool = false
        let exists = FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory)
        let why = !exists ? "no such file" : isDirectory.boolValue ? "a directory, not a file" : "cannot read it"
        guard let location else {
            throw IPsecConfigError(location: ConfigLocation(file: path, line: 0), problem: "cannot read \(path) (\(why))")
        }
        throw IPsecConfigError(location: location, problem: "include \(path): \(why); its conns would be missing (pluto only warns and starts without them)")
    }
    return IPsecConfig.Source(file: path, text: String(decoding: data, as: UTF8.self))
}

/// `include` patterns are shell globs, relative to the including file's directory. A pattern
/// without wildcards names one file, which must be readable (libreswan only warns, "could not
/// open include filename", and runs without its conns); a wildcard pattern that matches nothing
/// is normal (libreswan's default ipsec.conf includes `/etc/ipsec.d/*.conf`), one whose
/// directory cannot be read is not.
private func resolveInclude(_ pattern: String, _ location: ConfigLocation) throws(IPsecConfigError) -> [IPsecConfig.Source] {
    let absolute = pattern.hasPrefix("/") ? pattern
        : (location.file as NSString).deletingLastPathComponent + "/" + pattern
    guard absolute.contains(where: { "*?[".contains($0) }) else {
        return [try readSource(absolute, from: location)]
    }
    var matches = glob_t()
    defer { globfree(&matches) }
    // A directory that does not exist matches nothing; one that cannot be read is an error.
    switch glob(absolute, 0, { _, error in error == ENOENT || error == ENOTDIR ? 0 : 1 }, &matches) {
    case 0: break
    case GLOB_NOMATCH: return []
    default: throw IPsecConfigError(location: location, problem: "include \(pattern): cannot read the directories it names")
    }
    var sources: [IPsecConfig.Source] = []
    for index in 0..<Int(matches.gl_pathc) {
        guard let path = matches.gl_pathv[index].map({ String(cString: $0) }) else { continue }
        sources.append(try readSource(path, from: location))
    }
    return sources
}
