import CLibFuzzer
import Glibc
import VTIModel

/// hook.conf: any text parses or throws; what parses renders to a file that parses back the same.
func fuzzHookSettings(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    let text = String(decoding: UnsafeBufferPointer(start: data, count: size), as: UTF8.self)
    guard let settings = try? HookSettings(parsing: text, file: "hook.conf") else { return 0 }
    // `rendered` leaves out `vtid =` (vtid writes the file for the hook, which finds vtid by it).
    var expected = settings
    expected.vtidRunDirectory = HookSettings().vtidRunDirectory
    let again: HookSettings
    do {
        again = try HookSettings(parsing: settings.rendered, file: "rendered")
    } catch {
        fatalError("rendered settings do not parse: \(error)\n\(settings.rendered)")
    }
    precondition(again == expected, "rendered settings parse differently:\n\(settings.rendered)")
    return 0
}

// libFuzzer reads its options and corpus directories from the arguments, then calls the function
// above for each input.
var argc = CommandLine.argc
var argv = Optional(CommandLine.unsafeArgv)
exit(LLVMFuzzerRunDriver(&argc, &argv, fuzzHookSettings))
