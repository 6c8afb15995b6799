import Foundation

/// Where `swift build` put the products (vtid, vti-updown, vtictl): next to the test binary.
public func productsDirectory() -> String {
    URL(fileURLWithPath: currentExecutable()).deletingLastPathComponent().path
}

/// A built product by name, e.g. "vtid".
public func product(_ name: String) -> String { productsDirectory() + "/" + name }

/// A program running in the background with its output going to a file; killed when dropped.
public final class BackgroundProcess {
    public let pid: pid_t
    public let logPath: String
    private var reaped = false

    /// Starts `arguments` with exactly `environment` (nothing inherited).
    public init(_ arguments: [String], environment: [String: String] = ["PATH": "/usr/sbin:/usr/bin:/sbin:/bin"], logPath: String) throws {
        self.logPath = logPath
        pid = try spawn(arguments, environment: environment, outputPath: logPath)
    }

    public var log: String { (try? String(contentsOfFile: logPath, encoding: .utf8)) ?? "" }

    public func signal(_ number: Int32) { kill(pid, number) }

    /// Waits for the exit; returns the exit status (128 + signal for a signal).
    @discardableResult
    public func wait() -> Int32 {
        reaped = true
        return waitForExit(pid)
    }

    /// SIGTERM and wait.
    @discardableResult
    public func stop() -> Int32 {
        guard !reaped else { return 0 }
        kill(pid, SIGCONT)
        kill(pid, SIGTERM)
        return wait()
    }

    deinit {
        if !reaped {
            kill(pid, SIGKILL)
            _ = waitForExit(pid)
        }
    }
}

/// posix_spawn with a clean environment and stdout+stderr to a file (or /dev/null).
public func spawn(_ arguments: [String], environment: [String: String], outputPath: String = "/dev/null") throws -> pid_t {
    var actions = posix_spawn_file_actions_t()
    posix_spawn_file_actions_init(&actions)
    defer { posix_spawn_file_actions_destroy(&actions) }
    posix_spawn_file_actions_addopen(&actions, 1, outputPath, O_WRONLY | O_CREAT | O_APPEND, 0o644)
    posix_spawn_file_actions_adddup2(&actions, 1, 2)
    var cArguments = arguments.map { strdup($0) } + [nil]
    var cEnvironment = environment.map { strdup("\($0)=\($1)") } + [nil]
    defer { (cArguments + cEnvironment).forEach { free($0) } }
    var pid: pid_t = 0
    let spawned = posix_spawn(&pid, arguments[0], &actions, nil, &cArguments, &cEnvironment)
    guard spawned == 0 else { throw CommandError(message: "cannot run \(arguments[0]): \(String(cString: strerror(spawned)))") }
    return pid
}

/// waitpid until the child exits; its exit status, or 128 + the signal that ended it.
public func waitForExit(_ pid: pid_t) -> Int32 {
    var status: Int32 = 0
    while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
    return (status & 0x7f) == 0 ? (status >> 8) & 0xff : 128 + (status & 0x7f)
}

/// Polls `condition` every 20 ms until it holds or `seconds` pass; whether it held.
public func eventually(within seconds: Double, _ condition: () -> Bool) -> Bool {
    let deadline = Date().addingTimeInterval(seconds)
    while Date() < deadline {
        if condition() { return true }
        usleep(20_000)
    }
    return condition()
}
