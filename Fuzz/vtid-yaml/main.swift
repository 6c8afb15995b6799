import CLibFuzzer
import Glibc
import VTIConfiguration

/// vtid.yaml: any text parses or throws; what parses is checked against no conns, as
/// `vtictl check` does against ipsec.conf's.
func fuzzVTIDYAML(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    let text = String(decoding: UnsafeBufferPointer(start: data, count: size), as: UTF8.self)
    guard let configuration = try? DaemonConfiguration(yaml: text, file: "vtid.yaml") else { return 0 }
    _ = configuration.findings(against: [], file: "/etc/ipsec.conf")
    return 0
}

// libFuzzer reads its options and corpus directories from the arguments, then calls the function
// above for each input.
var argc = CommandLine.argc
var argv = Optional(CommandLine.unsafeArgv)
exit(LLVMFuzzerRunDriver(&argc, &argv, fuzzVTIDYAML))
