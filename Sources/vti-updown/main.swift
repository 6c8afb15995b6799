// vti-updown: libreswan's updown hook for route-based (VTI) conns. pluto runs it for every state
// change of a conn (leftupdown=/usr/local/libexec/vtictl/vti-updown) and waits for it, so it is
// small and quick: no Foundation, statically linked Swift runtime, netlink instead of `ip`.
//
// It reads the PLUTO_* environment into a typed event, plans what the kernel should hold, applies
// the plan idempotently, prints one line per change (pluto logs them) and exits 0; on bad input or
// a kernel refusal it prints one line saying what and exits 1.
import Glibc
import VTIKernel
import VTIModel

let version = "0.1.0"
let defaultSettingsPath = "/etc/vtictl/hook.conf"

/// One line to stderr, which pluto copies into its log.
func complain(_ text: String) {
    let line = "vti-updown: \(text)\n"
    _ = line.withCString { write(2, $0, strlen($0)) }
}

func say(_ text: String) {
    print("vti-updown: \(text)")
}

/// Nothing the hook does may keep pluto waiting: after 10 s it gives up, saying so.
func armWatchdog() {
    signal(SIGALRM) { _ in
        let message: StaticString = "vti-updown: gave up after 10 s (the kernel did not answer); nothing more was changed\n"
        _ = write(2, message.utf8Start, message.utf8CodeUnitCount)
        _exit(1)
    }
    alarm(10)
}

func readEnvironment() -> [String: String] {
    var environment: [String: String] = [:]
    var entry = environ
    while let pointer = entry.pointee {
        let text = String(cString: pointer)
        if let equals = text.utf8.firstIndex(of: UInt8(ascii: "=")) {
            environment[String(text[..<equals])] = String(text[text.index(after: equals)...])
        }
        entry += 1
    }
    return environment
}

func readFile(_ path: String) -> String? {
    let descriptor = open(path, O_RDONLY | O_CLOEXEC)
    guard descriptor >= 0 else { return nil }
    defer { close(descriptor) }
    var bytes: [UInt8] = []
    var chunk = [UInt8](repeating: 0, count: 4096)
    while true {
        let count = read(descriptor, &chunk, chunk.count)
        if count > 0 { bytes += chunk.prefix(count); if bytes.count > 1 << 20 { return nil } } else if count < 0 && errno == EINTR { continue } else { break }
    }
    return String(decoding: bytes, as: UTF8.self)
}

let usage = """
    usage: vti-updown [--config FILE] [--plan] [VERB]
      Run by pluto (leftupdown=) with PLUTO_* variables; VERB overrides PLUTO_VERB (libreswan 5.x).
      --config FILE  settings (default \(defaultSettingsPath); absent means defaults)
      --plan         print what would be done, change nothing
      --version, --help
    """

// Arguments: pluto 4.10 passes none; 5.x may pass the verb.
var settingsPath = defaultSettingsPath
var planOnly = false
var verbArgument: String?
var arguments = CommandLine.arguments.dropFirst()
while let argument = arguments.popFirst() {
    switch argument {
    case "--help", "-h": print(usage); exit(0)
    case "--version": print("vti-updown \(version)"); exit(0)
    case "--plan": planOnly = true
    case "--config":
        guard let path = arguments.popFirst() else { complain("--config needs a file"); exit(2) }
        settingsPath = path
    default:
        guard verbArgument == nil, !argument.hasPrefix("-") else { complain("unexpected argument \(argument)\n\(usage)"); exit(2) }
        verbArgument = argument
    }
}

armWatchdog()
var settings = HookSettings()
if let text = readFile(settingsPath) {
    do {
        settings = try HookSettings(parsing: text, file: settingsPath)
    } catch {
        complain("\(error); nothing was changed")
        exit(1)
    }
} else if settingsPath != defaultSettingsPath {
    complain("cannot read \(settingsPath); nothing was changed")
    exit(1)
}

let environment = readEnvironment()
let event: PlutoEvent
do {
    event = try PlutoEvent(environment: environment, verbArgument: verbArgument)
} catch where error.variable == "PLUTO_VERB" && (environment["PLUTO_VERB"] ?? verbArgument) != nil {
    // A verb from a newer pluto: log it and let the tunnel proceed.
    say("ignoring \(error)")
    exit(0)
} catch {
    complain("\(error); nothing was changed")
    exit(1)
}
if !event.unknownVariables.isEmpty {
    say("ignoring unknown variables \(event.unknownVariables.joined(separator: " "))")
}

let plan = planHook(event: event, settings: settings)
let context = "\(event.verb) \(event.connection.escaped) peer \(event.peer) id \(event.peerID.escaped)"
if planOnly {
    print("vti-updown: plan for \(context):")
    for action in plan { print("  \(action)") }
    exit(0)
}
do {
    let applier = HookApplier(kernel: try KernelApplier())
    for line in try applier.apply(plan) { say(line) }
} catch let error as ApplyError {
    complain("\(context): \(error)")
    exit(1)
} catch {
    complain("\(context): \(error)")
    exit(1)
}
