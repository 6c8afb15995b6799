import CLibFuzzer
import ControlProtocol
import Glibc
import VTIModel

/// pluto's environment for the hook: the input is `KEY=VALUE` lines (the fixtures' format); a line
/// without `=` is argv's verb. Whatever parses must parse the same in vtid, after the hook has
/// handed the variables over as a `hook-event` request.
func fuzzPlutoEnvironment(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    let text = String(decoding: UnsafeBufferPointer(start: data, count: size), as: UTF8.self)
    var environment: [String: String] = [:]
    var verbArgument: String?
    for line in text.split(separator: "\n", omittingEmptySubsequences: false) {
        if let equals = line.firstIndex(of: "=") {
            environment[String(line[..<equals])] = String(line[line.index(after: equals)...])
        } else if verbArgument == nil {
            verbArgument = String(line)
        }
    }
    guard let event = try? PlutoEvent(environment: environment, verbArgument: verbArgument) else { return 0 }
    let request = HookEventRequest(environment: environment, verbArgument: verbArgument)
    do {
        let received = try HookEventRequest(json: try JSONValue(parsing: request.json.serialized))
        let inVtid = try PlutoEvent(environment: received.environment, verbArgument: received.verbArgument)
        precondition(inVtid == event, "vtid reads another event than the hook:\n\(text)")
    } catch {
        fatalError("vtid cannot read an event the hook read: \(error)\n\(text)")
    }
    return 0
}

// libFuzzer reads its options and corpus directories from the arguments, then calls the function
// above for each input.
var argc = CommandLine.argc
var argv = Optional(CommandLine.unsafeArgv)
exit(LLVMFuzzerRunDriver(&argc, &argv, fuzzPlutoEnvironment))
