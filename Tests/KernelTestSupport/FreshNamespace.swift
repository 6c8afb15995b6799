import Foundation
import XCTest

/// Runs a test body in a throwaway network namespace.
///
/// `setns`/`unshare` move one thread only and Swift code may hop threads, so the test re-executes
/// this very test binary under `unshare -n` for the one test, and reports the child's failures.
/// The child sees `VTICTL_TEST_NETNS=1` and runs the body for real.
///
/// Kernel tests need root (CI runs as root); without it they fail saying so, they never skip.
/// With `privateMounts` the child gets its own mount namespace too (`unshare -m`, propagation
/// private): a test may mount a tiny tmpfs to fill, and the host never sees it.
public func inFreshNetworkNamespace(
    _ test: XCTestCase, privateMounts: Bool = false, file: StaticString = #filePath, line: UInt = #line, _ body: () throws -> Void
) rethrows {
    if ProcessInfo.processInfo.environment["VTICTL_TEST_NETNS"] == "1" {
        // Set by the parent below for its `unshare -n` child. Set by hand in the machine's own
        // namespace, the body would add and delete the host's devices, addresses and routes.
        guard !sharesParentNetworkNamespace() else {
            XCTFail("VTICTL_TEST_NETNS=1 is set but this process is in its parent's network namespace, not a throwaway one: kernel tests change what they find; unset it (each test makes its own namespace) or run under unshare -n", file: file, line: line)
            return
        }
        try body()
        return
    }
    guard geteuid() == 0 else {
        XCTFail("this test talks to the kernel and needs root in a throwaway network namespace: run the tests as root (Scripts/test)", file: file, line: line)
        return
    }
    let result = runChild(
        ["/usr/bin/unshare", "-n"] + (privateMounts ? ["-m", "--propagation", "private"] : []) + ["--", currentExecutable(), xctestFilter(for: test)],
        environment: ["VTICTL_TEST_NETNS": "1"])
    guard result.launched else {
        XCTFail("could not start unshare (apt-get install util-linux): \(result.output)", file: file, line: line)
        return
    }
    // A filter that matched nothing would pass silently: insist that exactly this test ran.
    let ranOne = result.output.contains("Executed 1 test")
    if result.status != 0 || !ranOne {
        let failures = result.output.split(separator: "\n").filter {
            $0.contains("error") || $0.contains("failed") || $0.contains("Fatal")
        }
        XCTFail("in a fresh network namespace (exit \(result.status)):\n" + (failures.isEmpty ? result.output : failures.joined(separator: "\n")),
                file: file, line: line)
    }
}

/// Whether this process is in its parent's network namespace: `unshare -n` puts the child in a new
/// one, so a child that is not there was started some other way.
public func sharesParentNetworkNamespace() -> Bool {
    var mine = stat()
    var parent = stat()
    guard stat("/proc/self/ns/net", &mine) == 0, stat("/proc/\(getppid())/ns/net", &parent) == 0 else { return false }
    return mine.st_dev == parent.st_dev && mine.st_ino == parent.st_ino
}

/// `Module.Class/testMethod`, the form swift-corelibs-xctest takes on its command line.
func xctestFilter(for test: XCTestCase) -> String {
    // On Linux `name` reads "Class.testMethod"; the module comes from the type.
    let method = test.name.split(separator: ".").last.map(String.init) ?? test.name
    return "\(String(reflecting: type(of: test)))/\(method)"
}

public func currentExecutable() -> String {
    (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
}

public struct ChildResult {
    public var launched: Bool
    public var status: Int32
    public var output: String
}

/// Runs a program to completion, stdout and stderr together.
///
/// posix_spawn and waitpid directly: Foundation's Process can miss a child's exit when the test
/// binary itself runs under `unshare`, and then waits forever.
public func runChild(_ arguments: [String], environment extra: [String: String] = [:]) -> ChildResult {
    runChild(arguments, exactEnvironment: ProcessInfo.processInfo.environment.merging(extra) { $1 }.map { "\($0)=\($1)" })
}

/// Runs a program with exactly these environment lines, in this order (nothing inherited): as
/// execve would, e.g. as libreswan 5.4's pluto execs its updown.
public func runChild(_ arguments: [String], exactEnvironment environment: [String]) -> ChildResult {
    var pipeEnds: [Int32] = [0, 0]
    // Close-on-exec: a grandchild (a daemon a test starts) must not hold the pipe open, or this
    // read would wait for it forever.
    guard pipe(&pipeEnds) == 0 else { return ChildResult(launched: false, status: -1, output: "pipe failed") }
    for end in pipeEnds { _ = fcntl(end, F_SETFD, FD_CLOEXEC) }
    var actions = posix_spawn_file_actions_t()
    posix_spawn_file_actions_init(&actions)
    defer { posix_spawn_file_actions_destroy(&actions) }
    posix_spawn_file_actions_adddup2(&actions, pipeEnds[1], 1)
    posix_spawn_file_actions_adddup2(&actions, pipeEnds[1], 2)
    posix_spawn_file_actions_addclose(&actions, pipeEnds[0])
    var cArguments = arguments.map { strdup($0) } + [nil]
    var cEnvironment = environment.map { strdup($0) } + [nil]
    defer { (cArguments + cEnvironment).forEach { free($0) } }
    var pid: pid_t = 0
    let spawned = posix_spawn(&pid, arguments[0], &actions, nil, &cArguments, &cEnvironment)
    close(pipeEnds[1])
    guard spawned == 0 else {
        close(pipeEnds[0])
        return ChildResult(launched: false, status: -1, output: "cannot run \(arguments[0]): \(String(cString: strerror(spawned)))")
    }
    var output: [UInt8] = []
    var chunk = [UInt8](repeating: 0, count: 65536)
    while true {
        let count = read(pipeEnds[0], &chunk, chunk.count)
        if count > 0 { output += chunk.prefix(count); continue }
        if count < 0 && errno == EINTR { continue }
        break
    }
    close(pipeEnds[0])
    var status: Int32 = 0
    while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
    let exitCode = (status & 0x7f) == 0 ? (status >> 8) & 0xff : 128 + (status & 0x7f)
    return ChildResult(launched: true, status: exitCode, output: String(decoding: output, as: UTF8.self))
}

/// Runs `ip ARGS...` (tests only, to cross-check what the kernel holds) and returns its stdout.
@discardableResult
public func ip(_ arguments: String...) throws -> String {
    let result = runChild(["/usr/sbin/ip"] + arguments)
    guard result.launched else { throw CommandError(message: "ip is missing: apt-get install iproute2") }
    guard result.status == 0 else {
        throw CommandError(message: "ip \(arguments.joined(separator: " ")) failed: \(result.output)")
    }
    return result.output
}

/// A test's helper command failed.
public struct CommandError: Error, CustomStringConvertible {
    public var message: String
    public init(message: String) { self.message = message }
    public var description: String { message }
}
