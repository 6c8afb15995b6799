import CLibFuzzer
import Glibc
import VTIModel

/// ipsec.conf as `vtictl check` and vtid read it: parsed with its includes, every conn resolved
/// (`conn %default`, `also=`), the route-based ones typed and checked. The input holds the files:
/// /etc/ipsec.conf first, then each file after a line `#file PATH` (a comment to the parser, so
/// an input without includes is one plain ipsec.conf). Includes are resolved among those files as
/// `ConfigFiles.swift` resolves them on disk: relative to the including file, wildcards by fnmatch.
func fuzzIPsecConf(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    let text = String(decoding: UnsafeBufferPointer(start: data, count: size), as: UTF8.self)
    var files: [IPsecConfig.Source] = [.init(file: "/etc/ipsec.conf", text: "")]
    for line in text.split(separator: "\n", omittingEmptySubsequences: false) {
        if line.hasPrefix("#file ") {
            files.append(.init(file: String(line.dropFirst("#file ".count)), text: ""))
        } else {
            files[files.count - 1].text += line + "\n"
        }
    }
    // Each level of includes may name every file again: without a cap a small input nests into
    // millions of files (10 levels deep), a slow input for the fuzzer and nothing else.
    var includedFiles = 0
    let resolveInclude = { (pattern: String, location: ConfigLocation) throws(IPsecConfigError) -> [IPsecConfig.Source] in
        let directory = location.file.split(separator: "/", omittingEmptySubsequences: false).dropLast().joined(separator: "/")
        let absolute = pattern.hasPrefix("/") ? pattern : directory + "/" + pattern
        let matches: [IPsecConfig.Source]
        if absolute.contains(where: { "*?[".contains($0) }) {
            matches = files.dropFirst().filter { fnmatch(absolute, $0.file, FNM_PATHNAME) == 0 }.sorted { $0.file < $1.file }
        } else {
            guard let file = files.first(where: { $0.file == absolute }) else {
                throw IPsecConfigError(location: location, problem: "include \(absolute): no such file")
            }
            matches = [file]
        }
        includedFiles += matches.count
        guard includedFiles <= 200 else { throw IPsecConfigError(location: location, problem: "more than 200 included files") }
        return matches
    }
    guard let config = try? IPsecConfig(main: files[0], resolveInclude: resolveInclude) else { return 0 }
    for conn in config.conns { _ = try? config.resolved(conn.name) }
    let (conns, _) = RouteBasedConn.each(in: config)
    _ = checkRouteBasedConns(conns)
    _ = checkForLibreswan5(config, version: LibreswanVersion(major: 5, minor: 4))
    // Two gateways' pools (`vtictl check --peer-ipsec-conf`): this file against itself.
    let pools = config.addressPools().pools
    _ = checkPoolsAcrossGateways(pools, peer: pools)
    return 0
}

// libFuzzer reads its options and corpus directories from the arguments, then calls the function
// above for each input.
var argc = CommandLine.argc
var argv = Optional(CommandLine.unsafeArgv)
exit(LLVMFuzzerRunDriver(&argc, &argv, fuzzIPsecConf))
