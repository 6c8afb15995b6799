import CLibFuzzer
import ControlProtocol
import Glibc
import VTIModel

/// A line of vtid's control protocol: any bytes parse as JSON or throw; a parsed value serializes
/// to text that parses back to it; and it is read as vtid reads a `hook-event` request (down to
/// the pluto event) and as the hook reads vtid's reply.
func fuzzControlJSON(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    guard let value = try? JSONValue(parsing: Array(UnsafeBufferPointer(start: data, count: size))) else { return 0 }
    let serialized = value.serialized
    do {
        let again = try JSONValue(parsing: serialized)
        precondition(again == value, "serialized JSON parses to another value: \(serialized)")
    } catch {
        fatalError("serialized JSON does not parse: \(error): \(serialized)")
    }
    if let request = try? HookEventRequest(json: value) {
        _ = try? PlutoEvent(environment: request.environment, verbArgument: request.verbArgument)
    }
    _ = try? HookEventReply(json: value)
    return 0
}

// libFuzzer reads its options and corpus directories from the arguments, then calls the function
// above for each input.
var argc = CommandLine.argc
var argv = Optional(CommandLine.unsafeArgv)
exit(LLVMFuzzerRunDriver(&argc, &argv, fuzzControlJSON))
