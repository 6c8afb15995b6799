// vti-updown: libreswan's updown hook for route-based (VTI) conns. pluto runs it for every state
// change of a conn (leftupdown=/usr/local/libexec/vtictl/vti-updown) and waits for it, so it is
// small and quick: no Foundation, statically linked Swift runtime, netlink instead of `ip`.
//
// It reads the PLUTO_* environment into a typed event, plans what the kernel should hold, applies
// the plan idempotently, prints one line per change (pluto logs them) and exits 0; on bad input or
// a kernel refusal it prints one line saying what and exits 1.
//
// With vtid running (its run directory, default /run/vtid, exists) the hook hands the event to vtid
// and prints vtid's answer. If vtid does not take the event within vtid_deadline_ms, the hook
// applies it itself under vtid's apply lock and leaves a record in vtid's spool; the lock and
// vtid's "accepted" line make sure exactly one of them applies it.
import ControlProtocol
import Glibc
import Netlink
import VTIKernel
import VTIModel

let version = "0.1.0"
let defaultSettingsPath = "/etc/vtictl/hook.conf"

/// Writes text as it is. Not `print`: its `Any` arguments make the runtime search every
/// protocol conformance in the binary on first use, which in the test bed cost 13 ms per call.
func output(_ text: String, to descriptor: Int32 = 1) {
    var line = text
    line.append("\n")
    line.withUTF8 { bytes in
        var offset = 0
        while offset < bytes.count {
            let written = write(descriptor, bytes.baseAddress! + offset, bytes.count - offset)
            if written < 0 && errno == EINTR { continue }
            guard written > 0 else { return }
            offset += written
        }
    }
}

/// One line to stderr, which pluto copies into its log.
func complain(_ text: String) {
    output("vti-updown: \(text)", to: 2)
}

func say(_ text: String) {
    output("vti-updown: \(text)")
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
    var environment: [String: String] = Dictionary(minimumCapacity: 96)  // pluto sends about 60
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

// Functions rather than closures in the top-level code: a closure there belongs to the main actor,
// and Swift 6 checks that at run time, which brings in the concurrency runtime (some 30 page faults a call).
func exists(_ path: String) -> Bool {
    path.withCString { access($0, F_OK) } == 0
}

func readFile(_ path: String) -> String? {
    // withCString: an implicit String-to-pointer conversion copies the text into a new array first.
    let descriptor = path.withCString { open($0, O_RDONLY | O_CLOEXEC) }
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

/// Built when asked for: each string the hook builds before its work costs page faults in the test bed.
var usage: String { """
    usage: vti-updown [--config FILE] [--plan] [VERB]
      Run by pluto (leftupdown=) with PLUTO_* variables; VERB overrides PLUTO_VERB (libreswan 5.x).
      --config FILE  settings (default \(defaultSettingsPath); absent means defaults)
      --plan         print what would be done, change nothing
      --version, --help
    """ }

// Arguments: pluto 4.10 and 5.x in its default mode run `/bin/sh -c LEFTUPDOWN`; 5.4's
// updown-config=exec (and async) exec the leftupdown= string split on spaces, so the hook's own
// flags arrive here; the verb comes in PLUTO_VERB (an argument overrides it).
var settingsPath = defaultSettingsPath
var planOnly = false
var verbArgument: String?
// Read from argv one at a time rather than through `CommandLine.arguments`, which builds an array
// of every argument first (pluto 4.10 passes none).
let argumentCount = Int(CommandLine.argc)
var argumentIndex = 1
while argumentIndex < argumentCount {
    let argument = String(cString: CommandLine.unsafeArgv[argumentIndex]!)
    argumentIndex += 1
    switch argument {
    case "--help", "-h": output(usage); exit(0)
    case "--version": output("vti-updown \(version)"); exit(0)
    case "--plan": planOnly = true
    case _ where argument.hasPrefix("--config="):
        // One word: libreswan 5.4's updown-config=exec splits leftupdown= on spaces, quotes and all.
        settingsPath = String(argument.dropFirst("--config=".count))
    case "--config":
        guard argumentIndex < argumentCount else { complain("--config needs a file"); exit(2) }
        settingsPath = String(cString: CommandLine.unsafeArgv[argumentIndex]!)
        argumentIndex += 1
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

// vtid leaves its planning settings in its run directory: a hook applying an event while vtid is
// away must plan exactly as vtid would.
if let runDirectory = settings.vtidRunDirectory, let text = readFile(runDirectory + "/hook.conf") {
    do {
        var fromVTID = try HookSettings(parsing: text, file: runDirectory + "/hook.conf")
        fromVTID.vtidRunDirectory = runDirectory
        settings = fromVTID
    } catch {
        complain("\(error); nothing was changed")
        exit(1)
    }
}

/// The process environment, read one variable at a time: a dictionary of all of it is built only
/// for vtid, which receives the whole environment.
let processVariables = PlutoVariables(
    value: { name in name.withCString { getenv($0) }.map { String(cString: $0) } },
    names: {
        // Only the names the parser does not know become strings: pluto sends some sixty.
        var names: [String] = []
        var entry = environ
        while let pointer = entry.pointee {
            entry += 1
            guard let equals = strchr(pointer, Int32(UInt8(ascii: "="))) else { continue }
            let name = UnsafeRawBufferPointer(start: pointer, count: pointer.distance(to: equals))
            if !PlutoEvent.isKnown(name: name) {
                names.append(String(decoding: name, as: UTF8.self))
            }
        }
        return names
    })
let event: PlutoEvent
do {
    event = try PlutoEvent(variables: processVariables, verbArgument: verbArgument)
} catch where error.variable == "PLUTO_VERB" && (getenv("PLUTO_VERB") != nil || verbArgument != nil) {
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
/// The event in a few words, for the lines that need it (built only for them).
func context() -> String { "\(event.verb) \(event.connection.escaped) peer \(event.peer) id \(event.peerID.escaped)" }
if planOnly {
    output("vti-updown: plan for \(context()):")
    for action in plan { output("  \(action)") }
    exit(0)
}
/// Applies the plan here, in this process; exits.
func applyAlone(spoolIn runDirectory: String?) -> Never {
    var reply: HookEventReply
    // Kept until the process ends, which closes its socket and unmaps its buffers anyway.
    var kernel: KernelApplier?
    do {
        let applier = HookApplier(kernel: try KernelApplier())
        kernel = applier.kernel
        reply = HookEventReply(ok: true, lines: try applier.apply(plan), error: nil)
    } catch {
        reply = HookEventReply(ok: false, lines: [], error: "\(error)")
    }
    if let runDirectory { spool(reply, in: runDirectory) }
    for line in reply.lines { say(line) }
    withExtendedLifetime(kernel) {}
    if let error = reply.error {
        complain("\(context()): \(error)")
        exit(1)
    }
    exit(0)
}

/// Leaves the event and its result where vtid reads them when it is back (write, then rename).
func spool(_ reply: HookEventReply, in runDirectory: String) {
    var now = timespec()
    clock_gettime(CLOCK_REALTIME, &now)
    let name = "\(ControlProtocol.spoolPath(in: runDirectory))/\(Int64(now.tv_sec) * 1_000_000_000 + Int64(now.tv_nsec))-\(getpid())"
    let text = request.json.serialized + "\n" + reply.json.serialized + "\n"
    let descriptor = open(name + ".tmp", O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
    guard descriptor >= 0 else { complain("cannot write to vtid's spool \(name).tmp: \(String(cString: strerror(errno)))"); return }
    let written = text.withCString { write(descriptor, $0, strlen($0)) }
    close(descriptor)
    if written != text.utf8.count || rename(name + ".tmp", name + ".event") != 0 {
        complain("cannot write to vtid's spool \(name).event: \(String(cString: strerror(errno)))")
        unlink(name + ".tmp")
    }
}

/// Waits for vtid's final answer to an event it accepted, prints it, exits.
func finish(with connection: LocalSocket, runDirectory: String) -> Never {
    do {
        // vtid has taken the event: it finishes it; the watchdog bounds the wait.
        guard let line = try connection.readLine(limit: ControlProtocol.maximumReplyBytes, timeoutMilliseconds: -1) else {
            // vtid died after taking the event (a crash, kill -9): it cannot apply it any more, and
            // it kept no note of it. Applying it here is safe: every step is idempotent, and the
            // lock, released with vtid, keeps out a vtid that is starting again.
            say("vtid stopped before finishing the event; applying it here")
            let lock = try? ApplyLock(path: ControlProtocol.lockPath(in: runDirectory))
            lock?.lock()
            applyAlone(spoolIn: runDirectory)
        }
        report(try HookEventReply(json: JSONValue(parsing: line)))
    } catch {
        complain("\(context()): vtid's answer could not be read: \(error)")
        exit(1)
    }
}

/// Prints vtid's result for pluto's log and exits with its status.
func report(_ reply: HookEventReply) -> Never {
    for line in reply.lines { say(line) }
    if let error = reply.error { complain("\(context()): vtid: \(error)") }
    exit(reply.ok ? 0 : 1)
}

/// Whether the line is vtid's `{"accepted": true}`, the promise to apply the event.
func isAccepted(_ line: [UInt8]) -> Bool {
    (try? JSONValue(parsing: line))?["accepted"]?.boolValue == true
}

guard let runDirectory = settings.vtidRunDirectory, exists(runDirectory) else { applyAlone(spoolIn: nil) }
let request = HookEventRequest(environment: readEnvironment(), verbArgument: verbArgument)
var connection: LocalSocket?
do {
    let socket = try LocalSocket.connect(path: ControlProtocol.socketPath(in: runDirectory), timeoutMilliseconds: settings.vtidDeadlineMilliseconds)
    try socket.send(line: request.json.serialized)
    connection = socket
    if let line = try socket.readLine(limit: ControlProtocol.maximumReplyBytes, timeoutMilliseconds: settings.vtidDeadlineMilliseconds) {
        if isAccepted(line) { finish(with: socket, runDirectory: runDirectory) }
        // Refused without being taken (bad input, another protocol version): vtid changed nothing.
        report(try HookEventReply(json: JSONValue(parsing: line)))
    }
    say("vtid did not take the event within \(settings.vtidDeadlineMilliseconds) ms; applying it here")
} catch let error as LocalSocketError where error.isNobodyListening {
    // vtid is not running: the usual case for the fallback.
} catch {
    say("vtid: \(error); applying the event here")
}
// vtid may be holding the lock for this very event: wait for it, then look once more for its promise.
let lock = try? ApplyLock(path: ControlProtocol.lockPath(in: runDirectory))
lock?.lock()
if let connection, (try? connection.wait(timeoutMilliseconds: 0)) == true,
   let line = try? connection.readLine(limit: 4096, timeoutMilliseconds: 0), isAccepted(line) {
    lock?.unlock()
    finish(with: connection, runDirectory: runDirectory)
}
// Closing first makes vtid's "accepted" fail, so it will not apply this event too.
connection = nil
applyAlone(spoolIn: runDirectory)
