#if canImport(Glibc)
import Glibc
#endif

/// Where vti-updown leaves the events it applied itself (vtid did not take them) and where vtid
/// reads them back: one file per event, written by the hook, removed by vtid only after it has
/// committed what the file says. Both sides use this type, so the format and the limits are one.
///
/// The spool is bounded: at `maximumFiles` records or `maximumBytes` bytes the hook still applies
/// its event but writes no record, and leaves one `overflow` mark (created once, so the hook says
/// it once). vtid shows the mark as a problem: some events it was not told about. That loses no
/// route: vtid never removes a route for lack of a record.
public struct Spool: Sendable {
    public let directory: String
    /// 4,096 records: about 16 MiB of tmpfs (a page a file), far more than a pluto restart makes.
    public var maximumFiles = 4096
    public var maximumBytes = 16 << 20

    public static let overflowMark = "overflow"
    static let suffix = ".event"

    public init(runDirectory: String) {
        directory = ControlProtocol.spoolPath(in: runDirectory)
    }

    /// What became of a record the hook tried to leave.
    public enum WriteOutcome: Sendable, Equatable {
        case written
        /// The spool is at its bound: nothing written. `firstTime`: this call left the overflow mark.
        case full(firstTime: Bool)
        case failed(String)
    }

    /// Writes a record (write to a temporary name, then rename: vtid never reads half a record).
    public func write(_ request: HookEventRequest, _ reply: HookEventReply, uniqueName: String) -> WriteOutcome {
        let text = request.json.serialized + "\n" + reply.json.serialized + "\n"
        let usage = self.usage()
        if usage.files >= maximumFiles || usage.bytes + text.utf8.count > maximumBytes {
            let mark = open(directory + "/" + Self.overflowMark, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
            if mark >= 0 { close(mark) }
            return .full(firstTime: mark >= 0)
        }
        let name = directory + "/" + uniqueName
        let descriptor = open(name + ".tmp", O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
        guard descriptor >= 0 else { return .failed("cannot write to vtid's spool \(name).tmp: \(errorText())") }
        var written = 0
        var failure: String?
        text.utf8CString.withUnsafeBufferPointer { bytes in
            let count = bytes.count - 1  // without the terminating zero
            while written < count {
                let result = Glibc.write(descriptor, bytes.baseAddress! + written, count - written)
                if result < 0 && errno == EINTR { continue }
                guard result > 0 else { failure = errorText(); return }
                written += result
            }
        }
        if failure == nil && fsync(descriptor) != 0 { failure = errorText() }
        close(descriptor)
        if failure == nil && rename(name + ".tmp", name + Self.suffix) != 0 { failure = errorText() }
        if let failure {
            unlink(name + ".tmp")
            return .failed("cannot write to vtid's spool \(name)\(Self.suffix): \(failure)")
        }
        return .written
    }

    /// Records and bytes now in the spool (temporary files included: they take room too).
    public func usage() -> (files: Int, bytes: Int) {
        var files = 0
        var bytes = 0
        forEachName { name in
            guard name.hasSuffix(Self.suffix) || name.hasSuffix(".tmp") else { return }
            files += 1
            var info = stat()
            if stat(directory + "/" + name, &info) == 0 { bytes += Int(info.st_size) }
        }
        return (files, bytes)
    }

    /// One record read back.
    public struct Record: Sendable {
        public var name: String
        public var request: HookEventRequest
        public var reply: HookEventReply
    }

    /// What the spool holds, oldest first: its records, the files that are not records (with why),
    /// and whether the overflow mark is there.
    public func read() -> (records: [Record], unreadable: [(name: String, problem: String)], overflowed: Bool) {
        var names: [String] = []
        var overflowed = false
        forEachName { name in
            if name == Self.overflowMark { overflowed = true } else if name.hasSuffix(Self.suffix) { names.append(name) }
        }
        var records: [Record] = []
        var unreadable: [(name: String, problem: String)] = []
        // Names start with the hook's clock in nanoseconds, the same width for centuries: text order is time order.
        for name in names.sorted() {
            guard let bytes = readAll(directory + "/" + name) else {
                unreadable.append((name, "cannot read it: \(errorText())"))
                continue
            }
            let lines = bytes.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: true)
            do {
                guard lines.count == 2 else { throw ControlProtocolError("\(lines.count) lines instead of 2") }
                let request = try HookEventRequest(json: try JSONValue(parsing: Array(lines[0])))
                let reply = try HookEventReply(json: try JSONValue(parsing: Array(lines[1])))
                records.append(Record(name: name, request: request, reply: reply))
            } catch {
                unreadable.append((name, "not a hook event record: \(error)"))
            }
        }
        return (records, unreadable, overflowed)
    }

    /// Removes records (after vtid committed them) and, with `overflow`, the mark.
    public func remove(_ names: [String], overflow: Bool = false) {
        for name in names { unlink(directory + "/" + name) }
        if overflow { unlink(directory + "/" + Self.overflowMark) }
    }

    private func forEachName(_ body: (String) -> Void) {
        guard let stream = opendir(directory) else { return }
        defer { closedir(stream) }
        while let entry = readdir(stream) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
            }
            if name != "." && name != ".." { body(name) }
        }
    }

    private func readAll(_ path: String) -> [UInt8]? {
        let descriptor = open(path, O_RDONLY | O_CLOEXEC)
        guard descriptor >= 0 else { return nil }
        defer { close(descriptor) }
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 8192)
        while true {
            let count = Glibc.read(descriptor, &chunk, chunk.count)
            if count < 0 && errno == EINTR { continue }
            if count < 0 { return nil }
            if count == 0 { return bytes }
            bytes += chunk.prefix(count)
            if bytes.count > ControlProtocol.maximumRequestBytes * 2 { return bytes }
        }
    }
}

private func errorText() -> String { String(cString: strerror(errno)) }
