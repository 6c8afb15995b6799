// vtid, the supervisor. Its service (control socket, reconciliation, kernel watching) is the next
// issue; for now it answers --help and --version so packaging and units can be tested.
import Glibc

let version = "0.1.0"
let usage = """
    usage: vtid [--help] [--version]
    The vtictl supervisor: owns VTI devices, routes and sysctls around libreswan's tunnels.
    Only --help and --version work so far.
    """
let arguments = Array(CommandLine.arguments.dropFirst())
switch arguments {
case ["--version"]:
    print("vtid \(version)")
case [], ["--help"], ["-h"]:
    print(usage)
default:
    let message = "vtid: unknown arguments \(arguments)\n\(usage)\n"
    _ = message.withCString { write(2, $0, strlen($0)) }
    exit(2)
}
