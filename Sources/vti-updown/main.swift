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
import LocalIPC
import Netlink
import VTIKernel
import VTIModel

let version = vtictlRelease
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
/// The settings and argv's verb as they are now final (constants: the functions below may read them).
let planning = settings
let verb = verbArgument

/// The event, parsed when the hook has to act itself (vtid parses what it is handed: with vtid
/// running the hook neither parses nor plans). Bad input: one line, exit 1, and with vtid's run
/// directory given the refusal is left in its spool, so that `vtictl events` shows it too.
func parsedEvent(spoolIn runDirectory: String?) -> PlutoEvent {
    do {
        let event = try PlutoEvent(variables: processVariables, verbArgument: verb)
        if !event.unknownVariables.isEmpty {
            say("ignoring unknown variables \(event.unknownVariables.joined(separator: " "))")
        }
        return event
    } catch where error.variable == "PLUTO_VERB" && (getenv("PLUTO_VERB") != nil || verb != nil) {
        // A verb from a newer pluto: log it and let the tunnel proceed.
        say("ignoring \(error)")
        exit(0)
    } catch {
        complain("\(error); nothing was changed")
        if let runDirectory {
            spool(HookEventReply(ok: false, lines: [], error: "\(error); nothing was changed"), in: runDirectory)
        }
        exit(1)
    }
}

/// The event in a few words, for the lines that need it, from the raw variables (escaped: the peer
/// ID is the remote side's text): also for an event the hook did not parse.
func context() -> String {
    func variable(_ name: String) -> String {
        guard let value = name.withCString({ getenv($0) }).map({ String(cString: $0) }) else { return "?" }
        return UntrustedText(value)?.escaped ?? "?"
    }
    return "\(verb.flatMap { UntrustedText($0)?.escaped } ?? variable("PLUTO_VERB")) \(variable("PLUTO_CONNECTION")) peer \(variable("PLUTO_PEER")) id \(variable("PLUTO_PEER_ID"))"
}

/// `--plan`: the desired state, then the writes that would reach it from the kernel as it is now
/// (read, never changed).
func printPlan() -> Never {
    let plan = planHook(event: parsedEvent(spoolIn: nil), settings: planning)
    output("vti-updown: plan for \(context()):")
    for action in plan { output("  \(action)") }
    do {
        let writes = try HookApplier(kernel: try KernelApplier()).operations(for: plan)
        output(writes.isEmpty ? "vti-updown: no writes needed now: the kernel holds this already" : "vti-updown: writes needed now:")
        for write in writes { output("  \(write)") }
    } catch {
        output("vti-updown: the writes needed now are unknown: cannot read the kernel (\(error))")
    }
    exit(0)
}

if planOnly { printPlan() }
/// When the hook started: its steps share pluto's patience (the watchdog's 10 s).
let started = monotonicMilliseconds()

func monotonicMilliseconds() -> Int {
    var now = timespec()
    clock_gettime(CLOCK_MONOTONIC, &now)
    return now.tv_sec * 1000 + now.tv_nsec / 1_000_000
}

/// Parses, plans and applies the event here, in this process; exits. `note`: a line saying why,
/// for pluto's log.
func applyAlone(spoolIn runDirectory: String?, note: String? = nil) -> Never {
    let plan = planHook(event: parsedEvent(spoolIn: runDirectory), settings: planning)
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
    if let note { reply.lines.insert(note, at: 0) }
    if let runDirectory { spool(reply, in: runDirectory) }
    for line in reply.lines { say(line) }
    withExtendedLifetime(kernel) {}
    if let error = reply.error {
        complain("\(context()): \(error)")
        exit(1)
    }
    exit(0)
}

/// Leaves the event and its result where vtid reads them when it is back. A spool vtid cannot
/// take (full, or its bound reached) does not fail the event: it was applied; the line says so.
func spool(_ reply: HookEventReply, in runDirectory: String) {
    var now = timespec()
    clock_gettime(CLOCK_REALTIME, &now)
    let name = "\(Int64(now.tv_sec) * 1_000_000_000 + Int64(now.tv_nsec))-\(getpid())"
    let request = HookEventRequest(environment: readEnvironment(), verbArgument: verb)
    switch Spool(runDirectory: runDirectory).write(request, reply, uniqueName: name) {
    case .written: break
    case .full(let firstTime):
        if firstTime { complain("vtid's spool is at its bound: events are applied but vtid is not told of them until it reads the spool again") }
    case .failed(let why):
        complain("\(why); the event was applied but vtid is not told of it (it removes no route for lack of a record)")
    }
}

/// Waits for vtid's result of an event it was told to apply (`go`), prints it, exits.
func finish(with connection: LocalSocket, runDirectory: String) -> Never {
    // Until shortly before the watchdog: a vtid that took the event and then stopped must not
    // make pluto believe the event failed.
    let patience = Int32(max(0, 8_500 - (monotonicMilliseconds() - started)))
    if (try? connection.wait(timeoutMilliseconds: patience)) == false {
        say("vtid took the event and has not finished it within \(patience) ms (stopped or hung?); it applies it when it runs again: see vtictl events")
        exit(0)
    }
    // The connection ended without a result (or reset: vtid died with our `go` unread): vtid did
    // not take our late `go`, or it died (a crash, kill -9) and kept no note of the event. Applying
    // it here is safe either way: every step is idempotent and vtid applies only events whose `go`
    // it has read, and a dead vtid applies nothing.
    guard let line = try? connection.readLine(limit: ControlProtocol.maximumReplyBytes, timeoutMilliseconds: 0),
          let reply = try? HookEventReply(json: JSONValue(parsing: line)) else {
        fallBack(runDirectory: runDirectory, note: "vtid did not finish the event; applying it here")
    }
    report(reply)
}

/// Applies the event here under the apply lock (so that a vtid reconcile does not judge a half
/// applied event), waiting for the lock only as long as pluto can wait: a vtid stopped while it
/// holds the lock must not fail the tunnel.
func fallBack(runDirectory: String, note: String?) -> Never {
    let lock = try? ApplyLock(path: ControlProtocol.lockPath(in: runDirectory))
    let patience = max(0, 7_000 - (monotonicMilliseconds() - started))
    if let lock, !lock.lock(withinMilliseconds: patience) {
        applyAlone(spoolIn: runDirectory, note: (note.map { $0 + "; " } ?? "") + "vtid has held its apply lock for over \(patience) ms (stopped or hung?): applying without it")
    }
    applyAlone(spoolIn: runDirectory, note: note)
}

/// Prints vtid's result for pluto's log and exits with its status.
func report(_ reply: HookEventReply) -> Never {
    for line in reply.lines { say(line) }
    if let error = reply.error { complain("\(context()): vtid: \(error)") }
    exit(reply.ok ? 0 : 1)
}

guard let runDirectory = planning.vtidRunDirectory, exists(runDirectory) else { applyAlone(spoolIn: nil) }
let request = HookEventRequest(environment: readEnvironment(), verbArgument: verb)
// The handover (ControlProtocol): vtid offers (`ready`) when the event's turn comes; only if the
// offer arrives within the deadline does the hook answer `go` and leave the event to vtid.
// Otherwise it closes the connection, which withdraws the event, and applies it itself.
do {
    let socket = try LocalSocket.connect(path: ControlProtocol.socketPath(in: runDirectory), timeoutMilliseconds: planning.vtidDeadlineMilliseconds)
    try socket.send(line: request.json.serialized)
    if let line = try socket.readLine(limit: ControlProtocol.maximumReplyBytes, timeoutMilliseconds: planning.vtidDeadlineMilliseconds) {
        let answer = try JSONValue(parsing: line)
        if answer.isReady {
            if (try? socket.send(line: goLine.serialized)) != nil { finish(with: socket, runDirectory: runDirectory) }
            fallBack(runDirectory: runDirectory, note: "vtid went away as it took the event; applying it here")
        }
        // Refused without being offered (bad input, not allowed, another protocol version): vtid changed nothing.
        report(try HookEventReply(json: answer))
    }
    // Shutting the connection down withdraws the event: vtid's offer fails, it will not apply it.
    socket.shutdown()
    fallBack(runDirectory: runDirectory, note: "vtid did not take the event within \(planning.vtidDeadlineMilliseconds) ms; applying it here")
} catch let error as LocalSocketError where error.isNobodyListening {
    // vtid is not running: the usual case for the fallback.
    fallBack(runDirectory: runDirectory, note: nil)
} catch {
    fallBack(runDirectory: runDirectory, note: "vtid: \(error); applying the event here")
}
