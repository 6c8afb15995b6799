import Glibc
internal import CLibmnl
public import SystemPackage

// vtid's control socket. It lives here because this is the project's one module with unsafe
// pointer code (sockaddr_un, SO_PEERCRED), not because it is netlink.

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

    /// The next connection; nil if interrupted or the socket was shut down.
    public func accept() throws(LocalSocketError) -> LocalSocket? {
        while true {
            let client = vtictl_accept_cloexec(descriptor)
            if client >= 0 { return LocalSocket(descriptor: client) }
            switch errno {
            case EINTR, ECONNABORTED: continue
            case EINVAL, EBADF: return nil
            case let code: throw LocalSocketError("accept", Errno(rawValue: code))
            }
        }
    }

    /// Wakes a thread blocked in `accept`.
    public func shutdown() {
        _ = Glibc.shutdown(descriptor, Int32(SHUT_RDWR))
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

    /// Makes reads wait at most this long (SO_RCVTIMEO), so that a client who sends half a line
    /// cannot hold a server thread.
    public func setReceiveTimeout(milliseconds: Int) {
        var value = timeval(tv_sec: milliseconds / 1000, tv_usec: (milliseconds % 1000) * 1000)
        _ = setsockopt(descriptor, SOL_SOCKET, SO_RCVTIMEO, &value, socklen_t(MemoryLayout<timeval>.size))
    }
}

/// An exclusive advisory lock on a file (flock), held by whoever applies an event: vtid, or the
/// hook when vtid does not answer. It is released when the holder exits, even by a crash.
public final class ApplyLock {
    private let descriptor: Int32

    public init(path: String) throws(LocalSocketError) {
        descriptor = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o600)
        guard descriptor >= 0 else { throw LocalSocketError("open lock \(path)", Errno(rawValue: errno)) }
    }

    deinit { Glibc.close(descriptor) }

    public func lock() {
        while flock(descriptor, LOCK_EX) != 0 && errno == EINTR {}
    }

    public func unlock() {
        _ = flock(descriptor, LOCK_UN)
    }
}
