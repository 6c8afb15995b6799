import Glibc
internal import CLocalIPC
public import SystemPackage

// vtid's control socket, the apply lock and systemd's notification socket: what the hook, vtid
// and vtictl say to each other on this host, and nothing of netlink.

/// A failed operation on the control socket or its lock: what was tried and the errno.
public struct LocalSocketError: Error, Hashable, Sendable, CustomStringConvertible {
    public var operation: String
    public var errno: Errno
    public init(_ operation: String, _ errno: Errno) {
        self.operation = operation
        self.errno = errno
    }
    public var description: String { "\(operation): \(errno)" }
    /// Nobody listens there: no socket file, or a file left by a process that is gone.
    public var isNobodyListening: Bool { errno == .noSuchFileOrDirectory || errno == .connectionRefused }
}

/// The process on the other end of a Unix socket, as the kernel vouches for it (SO_PEERCRED).
public struct PeerCredentials: Sendable, Hashable {
    public var pid: Int32
    public var uid: UInt32
    public var gid: UInt32
}

/// A connected or listening Unix stream socket. One owner at a time.
public final class LocalSocket {
    public let descriptor: Int32
    private var buffered: [UInt8] = []

    private init(descriptor: Int32) {
        self.descriptor = descriptor
    }

    deinit { Glibc.close(descriptor) }

    private static func address(_ path: String) throws(LocalSocketError) -> sockaddr_un {
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let bytes = Array(path.utf8)
        guard bytes.count < MemoryLayout.size(ofValue: address.sun_path), !bytes.isEmpty else {
            throw LocalSocketError("socket path \(path)", .fileNameTooLong)
        }
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            raw.copyBytes(from: bytes)
            raw[bytes.count] = 0
        }
        return address
    }

    private static func newSocket(_ operation: String) throws(LocalSocketError) -> Int32 {
        let descriptor = vtictl_unix_stream_socket()
        guard descriptor >= 0 else { throw LocalSocketError(operation, Errno(rawValue: errno)) }
        return descriptor
    }

    /// Connects, giving up after `timeoutMilliseconds` (a listener whose backlog is full blocks).
    public static func connect(path: String, timeoutMilliseconds: Int32) throws(LocalSocketError) -> LocalSocket {
        var address = try address(path)
        let descriptor = try newSocket("connect to \(path)")
        let socket = LocalSocket(descriptor: descriptor)
        let flags = fcntl(descriptor, F_GETFL)
        _ = fcntl(descriptor, F_SETFL, flags | O_NONBLOCK)
        let result = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                Glibc.connect(descriptor, $0, socklen_t(MemoryLayout<sockaddr_un>.size))
            }
        }
        if result != 0 {
            let code = errno
            // A Unix socket whose listener's backlog is full says EAGAIN; wait for room.
            guard code == EINPROGRESS || code == EAGAIN else { throw LocalSocketError("connect to \(path)", Errno(rawValue: code)) }
            guard try socket.wait(forWriting: true, timeoutMilliseconds: timeoutMilliseconds) else {
                throw LocalSocketError("connect to \(path)", .timedOut)
            }
            if code == EAGAIN {
                let again = withUnsafePointer(to: &address) {
                    $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                        Glibc.connect(descriptor, $0, socklen_t(MemoryLayout<sockaddr_un>.size))
                    }
                }
                if again != 0 && errno != EISCONN { throw LocalSocketError("connect to \(path)", Errno(rawValue: errno)) }
            }
        }
        _ = fcntl(descriptor, F_SETFL, flags)
        return socket
    }

    /// Binds and listens; replaces a stale socket file left by a process that is gone, but refuses
    /// to start a second listener on a live one.
    public static func listen(path: String, mode: UInt32, backlog: Int32) throws(LocalSocketError) -> LocalSocket {
        if (try? connect(path: path, timeoutMilliseconds: 200)) != nil {
            throw LocalSocketError("listen on \(path): another process is serving it", .addressInUse)
        }
        unlink(path)
        var address = try address(path)
        let descriptor = try newSocket("listen on \(path)")
        let socket = LocalSocket(descriptor: descriptor)
        let previous = umask(mode_t(0o777 & ~mode))
        let result = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                bind(descriptor, $0, socklen_t(MemoryLayout<sockaddr_un>.size))
            }
        }
        let bindErrno = errno
        umask(previous)
        guard result == 0 else { throw LocalSocketError("bind \(path)", Errno(rawValue: bindErrno)) }
        guard Glibc.listen(descriptor, backlog) == 0 else { throw LocalSocketError("listen on \(path)", Errno(rawValue: errno)) }
        return socket
    }

    /// The next connection; nil if interrupted, the socket was shut down, or (non-blocking) none waits.
    public func accept() throws(LocalSocketError) -> LocalSocket? {
        while true {
            let client = vtictl_accept_cloexec(descriptor)
            if client >= 0 { return LocalSocket(descriptor: client) }
            switch errno {
            case EINTR, ECONNABORTED: continue
            case EINVAL, EBADF, EAGAIN: return nil
            case let code: throw LocalSocketError("accept", Errno(rawValue: code))
            }
        }
    }

    /// Wakes a thread blocked in `accept`.
    public func shutdown() {
        _ = Glibc.shutdown(descriptor, Int32(SHUT_RDWR))
    }

    /// The peer's supplementary groups, as the kernel recorded them when it connected
    /// (SO_PEERGROUPS); nil if the kernel cannot say.
    public func peerGroups() -> [UInt32]? {
        var groups = [UInt32](repeating: 0, count: 256)
        let count = groups.withUnsafeMutableBufferPointer { vtictl_peer_groups(descriptor, $0.baseAddress!, Int32($0.count)) }
        guard count >= 0 else { return nil }
        return Array(groups.prefix(Int(count)))
    }

    /// Whether reads and writes wait (false for the control server's poll loop).
    public func setBlocking(_ blocking: Bool) {
        let flags = fcntl(descriptor, F_GETFL)
        _ = fcntl(descriptor, F_SETFL, blocking ? flags & ~O_NONBLOCK : flags | O_NONBLOCK)
    }

    /// Takes what the kernel has for this socket now, without waiting; false at end of stream.
    /// Throws past `limit` buffered bytes. Complete lines are then taken with `takeLine`.
    public func receiveAvailable(limit: Int) throws(LocalSocketError) -> Bool {
        var chunk = [UInt8](repeating: 0, count: 16384)
        while true {
            let count = chunk.withUnsafeMutableBytes { recv(descriptor, $0.baseAddress!, $0.count, Int32(MSG_DONTWAIT)) }
            if count > 0 {
                buffered += chunk.prefix(count)
                guard buffered.count <= limit else { throw LocalSocketError("read a line of over \(limit) bytes", .messageTooLong) }
                continue
            }
            if count == 0 { return false }
            switch errno {
            case EINTR: continue
            case EAGAIN: return true
            case let code: throw LocalSocketError("receive", Errno(rawValue: code))
            }
        }
    }

    /// The first complete line already received, without its newline.
    public func takeLine() -> [UInt8]? {
        guard let newline = buffered.firstIndex(of: UInt8(ascii: "\n")) else { return nil }
        let line = Array(buffered[..<newline])
        buffered.removeSubrange(...newline)
        return line
    }

    public func peerCredentials() -> PeerCredentials? {
        var pid: Int32 = 0
        var uid: UInt32 = 0
        var gid: UInt32 = 0
        guard vtictl_peer_credentials(descriptor, &pid, &uid, &gid) == 0 else { return nil }
        return PeerCredentials(pid: pid, uid: uid, gid: gid)
    }

    /// Writes all of `bytes`; fails (EPIPE) if the other end has closed.
    public func send(_ bytes: [UInt8]) throws(LocalSocketError) {
        var offset = 0
        while offset < bytes.count {
            let count = bytes.withUnsafeBytes { raw in
                Glibc.send(descriptor, raw.baseAddress! + offset, raw.count - offset, Int32(MSG_NOSIGNAL))
            }
            if count < 0 {
                if errno == EINTR { continue }
                throw LocalSocketError("send", Errno(rawValue: errno))
            }
            offset += count
        }
    }

    public func send(line: String) throws(LocalSocketError) {
        try send(Array(line.utf8) + [UInt8(ascii: "\n")])
    }

    /// Whether a read would not block, waiting up to `timeoutMilliseconds` (-1: forever).
    public func wait(forWriting: Bool = false, timeoutMilliseconds: Int32) throws(LocalSocketError) -> Bool {
        if !forWriting && !buffered.isEmpty { return true }
        var entry = pollfd(fd: descriptor, events: Int16(forWriting ? POLLOUT : POLLIN), revents: 0)
        while true {
            let result = poll(&entry, 1, timeoutMilliseconds)
            if result >= 0 { return result > 0 }
            if errno != EINTR { throw LocalSocketError("poll", Errno(rawValue: errno)) }
        }
    }

    /// The next line without its newline; nil at end of stream or after `timeoutMilliseconds`
    /// without one. A line longer than `limit` bytes is an error: nobody gets to fill our memory.
    public func readLine(limit: Int, timeoutMilliseconds: Int32) throws(LocalSocketError) -> [UInt8]? {
        var chunk = [UInt8](repeating: 0, count: 65536)
        var searched = 0  // bytes already known to hold no newline: a 2 MB reply is scanned once
        while true {
            if let newline = buffered[searched...].firstIndex(of: UInt8(ascii: "\n")) {
                let line = Array(buffered[..<newline])
                buffered.removeSubrange(...newline)
                return line
            }
            searched = buffered.count
            guard buffered.count <= limit else { throw LocalSocketError("read a line of over \(limit) bytes", .messageTooLong) }
            guard try wait(timeoutMilliseconds: timeoutMilliseconds) else { return nil }
            let count = chunk.withUnsafeMutableBytes { recv(descriptor, $0.baseAddress!, $0.count, 0) }
            if count < 0 {
                if errno == EINTR { continue }
                throw LocalSocketError("receive", Errno(rawValue: errno))
            }
            if count == 0 { return nil }
            buffered += chunk.prefix(count)
        }
    }

    /// Makes sends wait at most this long (SO_SNDTIMEO): a client that does not read its answer
    /// cannot hold the thread that writes it.
    public func setSendTimeout(milliseconds: Int) {
        var value = timeval(tv_sec: milliseconds / 1000, tv_usec: (milliseconds % 1000) * 1000)
        _ = setsockopt(descriptor, SOL_SOCKET, SO_SNDTIMEO, &value, socklen_t(MemoryLayout<timeval>.size))
    }

    /// Makes reads wait at most this long (SO_RCVTIMEO), so that a client who sends half a line
    /// cannot hold a server thread.
    public func setReceiveTimeout(milliseconds: Int) {
        var value = timeval(tv_sec: milliseconds / 1000, tv_usec: (milliseconds % 1000) * 1000)
        _ = setsockopt(descriptor, SOL_SOCKET, SO_RCVTIMEO, &value, socklen_t(MemoryLayout<timeval>.size))
    }
}

/// An exclusive advisory lock on a file (flock), held by whoever applies an event: vtid, or the
/// hook when vtid does not answer. It is released when the holder exits, even by a crash.
public final class ApplyLock: Sendable {
    private let descriptor: Int32

    public init(path: String) throws(LocalSocketError) {
        descriptor = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o600)
        guard descriptor >= 0 else { throw LocalSocketError("open lock \(path)", Errno(rawValue: errno)) }
    }

    deinit { Glibc.close(descriptor) }

    public func lock() {
        while flock(descriptor, LOCK_EX) != 0 && errno == EINTR {}
    }

    /// Takes the lock if it can within `milliseconds`; false if its holder kept it all that time
    /// (a stopped or hung vtid: the hook must not wait on it past pluto's patience).
    public func lock(withinMilliseconds milliseconds: Int) -> Bool {
        var waited = 0
        var pause = 1
        while true {
            if flock(descriptor, LOCK_EX | LOCK_NB) == 0 { return true }
            if errno == EINTR { continue }
            guard errno == EWOULDBLOCK, waited < milliseconds else { return false }
            usleep(useconds_t(pause * 1000))
            waited += pause
            pause = min(pause * 2, 50)
        }
    }

    public func unlock() {
        _ = flock(descriptor, LOCK_UN)
    }
}

/// Waits until some of `descriptors` can be read (or hung up), at most `timeoutMilliseconds`
/// (-1: forever). Returns those that can.
public func waitForReadable(_ descriptors: [Int32], timeoutMilliseconds: Int32) -> Set<Int32> {
    var entries = descriptors.map { pollfd(fd: $0, events: Int16(POLLIN), revents: 0) }
    while true {
        let result = entries.withUnsafeMutableBufferPointer { poll($0.baseAddress, nfds_t($0.count), timeoutMilliseconds) }
        if result >= 0 { break }
        if errno != EINTR { return [] }
    }
    return Set(entries.filter { $0.revents != 0 }.map(\.fd))
}

/// A pipe that wakes a thread waiting in `waitForReadable`: another thread calls `wake`.
public final class WakePipe: Sendable {
    public let readDescriptor: Int32
    private let writeDescriptor: Int32

    public init() throws(LocalSocketError) {
        var ends: [Int32] = [0, 0]
        guard ends.withUnsafeMutableBufferPointer({ pipe($0.baseAddress) }) == 0 else {
            throw LocalSocketError("pipe", Errno(rawValue: errno))
        }
        for end in ends {
            _ = fcntl(end, F_SETFD, FD_CLOEXEC)
            _ = fcntl(end, F_SETFL, fcntl(end, F_GETFL) | O_NONBLOCK)
        }
        readDescriptor = ends[0]
        writeDescriptor = ends[1]
    }

    deinit {
        Glibc.close(readDescriptor)
        Glibc.close(writeDescriptor)
    }

    public func wake() {
        var byte: UInt8 = 1
        _ = Glibc.write(writeDescriptor, &byte, 1)
    }
}

/// Tells systemd something about this service (`READY=1`, `STOPPING=1`), as sd_notify does: one
/// datagram to the socket in `NOTIFY_SOCKET`. Without that variable (not started by systemd with
/// `Type=notify`) it does nothing. Returns false if the message could not be sent.
@discardableResult
public func notifySystemd(_ message: String) -> Bool {
    guard let path = getenv("NOTIFY_SOCKET") else { return true }
    return message.withCString { text in vtictl_notify_datagram(path, text, strlen(text)) == 0 }
}
