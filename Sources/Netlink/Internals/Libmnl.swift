// Every call into libmnl lives in this file, and nothing else does. The rest of the module sees
// `MnlSocket` (a socket), `MessageBuffer`/`MessageWriter` (building requests) and `RawMessage`
// (received messages, copied out of libmnl's buffers into Swift arrays).

internal import CLibmnl
import Glibc
import SystemPackage

/// A received netlink message, copied out of the receive buffer so no pointer outlives a call.
struct RawMessage: Sendable {
    var type: UInt16
    var flags: UInt16
    var sequence: UInt32
    var portID: UInt32
    /// Everything after the 16-byte `nlmsghdr`.
    var payload: [UInt8]
}

/// The kernel's answer in an `NLMSG_ERROR` message: `errno` 0 is an ACK.
struct KernelAck: Sendable {
    var errno: Int32
    var message: String?
    var offset: UInt32?
}

/// An open libmnl socket. Owned by `NetlinkSocket`; closed on deinit.
final class MnlSocket {
    private let handle: OpaquePointer
    let portID: UInt32
    let fileDescriptor: Int32

    init(bus: Int32, groups: UInt32, operation: String) throws(NetlinkError) {
        guard let handle = mnl_socket_open2(bus, Int32(SOCK_CLOEXEC.rawValue)) else {
            throw NetlinkError(operation: operation, errno: Errno(rawValue: Glibc.errno))
        }
        self.handle = handle
        if mnl_socket_bind(handle, groups, pid_t(MNL_SOCKET_AUTOPID)) < 0 {
            let code = Glibc.errno
            mnl_socket_close(handle)
            throw NetlinkError(operation: operation, errno: Errno(rawValue: code))
        }
        portID = mnl_socket_get_portid(handle)
        fileDescriptor = mnl_socket_get_fd(handle)
        // Ask for the kernel's error text, and for ACKs without a copy of our request.
        var on: Int32 = 1
        _ = mnl_socket_setsockopt(handle, vtictl_nl_ext_ack(), &on, socklen_t(MemoryLayout<Int32>.size))
        _ = mnl_socket_setsockopt(handle, vtictl_nl_cap_ack(), &on, socklen_t(MemoryLayout<Int32>.size))
    }

    deinit { mnl_socket_close(handle) }

    /// Joins a multicast group by number (the `*NLGRP_*` values, which are not bit masks).
    func join(group: UInt32, operation: String) throws(NetlinkError) {
        var number = group
        if mnl_socket_setsockopt(handle, NETLINK_ADD_MEMBERSHIP, &number, socklen_t(MemoryLayout<UInt32>.size)) < 0 {
            throw NetlinkError(operation: operation, errno: Errno(rawValue: Glibc.errno))
        }
    }

    /// `NETLINK_GET_STRICT_CHK`: dump requests are validated and their filters honoured.
    func enableStrictChecking() {
        var on: Int32 = 1
        _ = mnl_socket_setsockopt(handle, NETLINK_GET_STRICT_CHK, &on, socklen_t(MemoryLayout<Int32>.size))
    }

    /// Sets the kernel receive buffer, beyond rmem_max when we have CAP_NET_ADMIN.
    func setReceiveBuffer(bytes: Int32) {
        var size = bytes
        if setsockopt(fileDescriptor, SOL_SOCKET, SO_RCVBUFFORCE, &size, socklen_t(MemoryLayout<Int32>.size)) < 0 {
            _ = setsockopt(fileDescriptor, SOL_SOCKET, SO_RCVBUF, &size, socklen_t(MemoryLayout<Int32>.size))
        }
    }

    func send(_ buffer: MessageBuffer, operation: @autoclosure () -> String) throws(NetlinkError) {
        while true {
            let sent = mnl_socket_sendto(handle, buffer.base, buffer.length)
            if sent >= 0 { return }
            let code = Glibc.errno
            if code == EINTR { continue }
            throw NetlinkError(operation: operation(), errno: Errno(rawValue: code))
        }
    }

    /// Waits up to `milliseconds` (-1: forever) for something to read.
    func waitReadable(milliseconds: Int32) throws(NetlinkError) -> Bool {
        var entry = pollfd(fd: fileDescriptor, events: Int16(POLLIN), revents: 0)
        while true {
            let ready = poll(&entry, 1, milliseconds)
            if ready >= 0 { return ready > 0 }
            let code = Glibc.errno
            if code == EINTR { continue }
            throw NetlinkError(operation: "poll netlink socket", errno: Errno(rawValue: code))
        }
    }

    /// Receives one datagram and splits it into messages.
    func receive(into scratch: ReceiveBuffer, operation: @autoclosure () -> String) throws(NetlinkError) -> [RawMessage] {
        var received: Int
        while true {
            received = mnl_socket_recvfrom(handle, scratch.base, scratch.capacity)
            if received >= 0 { break }
            let code = Glibc.errno
            if code == EINTR { continue }
            throw NetlinkError(operation: operation(), errno: Errno(rawValue: code))
        }
        var messages: [RawMessage] = []
        var remaining = Int32(received)
        var header: UnsafeMutablePointer<nlmsghdr>? = scratch.base.assumingMemoryBound(to: nlmsghdr.self)
        while let current = header, mnl_nlmsg_ok(current, remaining) {
            let payloadLength = Int(current.pointee.nlmsg_len) - MemoryLayout<nlmsghdr>.size
            let payloadStart = UnsafeRawPointer(current) + MemoryLayout<nlmsghdr>.size
            let payload = [UInt8](UnsafeRawBufferPointer(start: payloadStart, count: max(0, payloadLength)))
            messages.append(RawMessage(
                type: current.pointee.nlmsg_type, flags: current.pointee.nlmsg_flags,
                sequence: current.pointee.nlmsg_seq, portID: current.pointee.nlmsg_pid, payload: payload))
            header = mnl_nlmsg_next(current, &remaining)
        }
        return messages
    }
}

/// Scratch memory for `recvfrom`, reused across calls.
final class ReceiveBuffer {
    let base: UnsafeMutableRawPointer
    let capacity: Int
    init(capacity: Int) {
        self.capacity = capacity
        base = UnsafeMutableRawPointer.allocate(byteCount: capacity, alignment: 8)
    }
    deinit { base.deallocate() }
}

/// Memory holding one or more requests back to back, sent with one `sendmsg`.
final class MessageBuffer {
    let base: UnsafeMutableRawPointer
    let capacity: Int
    private(set) var length = 0
    private(set) var count = 0

    init(capacity: Int) {
        self.capacity = capacity
        // Straight from the kernel, zeroed page by page as requests reach it: a hook sending one
        // request touches one page instead of sixteen (allocate + memset faulted in all of them,
        // and in the test bed each page fault costs about a quarter of a millisecond).
        let memory = mmap(nil, capacity, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0)
        guard let memory, memory != MAP_FAILED else { fatalError("netlink: out of memory for a \(capacity)-byte request buffer") }
        base = memory
    }
    deinit { munmap(base, capacity) }

    var remaining: Int { capacity - length }

    /// Empties the buffer. Zeroes what was used, since libmnl leaves attribute padding as it finds it.
    func reset() {
        base.initializeMemory(as: UInt8.self, repeating: 0, count: length)
        length = 0
        count = 0
    }

    /// Appends one message; if `build` throws or runs out of room the buffer is left as it was.
    func append(
        type: UInt16, flags: UInt16, sequence: UInt32,
        _ build: (inout MessageWriter) throws(NetlinkError) -> Void
    ) throws(NetlinkError) {
        guard remaining >= MemoryLayout<nlmsghdr>.size else { throw .noRoom }
        let header = mnl_nlmsg_put_header(base + length)!
        header.pointee.nlmsg_type = type
        header.pointee.nlmsg_flags = flags
        header.pointee.nlmsg_seq = sequence
        var writer = MessageWriter(header: header, limit: remaining)
        try build(&writer)
        length += Int(header.pointee.nlmsg_len)
        count += 1
    }

    /// The bytes built so far, for tests that compare with iproute2's requests.
    var bytes: [UInt8] { [UInt8](UnsafeRawBufferPointer(start: base, count: length)) }
}

/// Appends a fixed header and attributes to one message. Lent to encoders inside `MessageBuffer.append`.
struct MessageWriter {
    fileprivate let header: UnsafeMutablePointer<nlmsghdr>
    fileprivate let limit: Int

    /// Appends a C struct (`rtmsg`, `ifinfomsg`, ...) right after the netlink header.
    func putFixed<Fixed>(_ value: Fixed) throws(NetlinkError) {
        let size = MemoryLayout<Fixed>.size
        guard Int(header.pointee.nlmsg_len) + Int(vtictl_nlmsg_align(UInt32(size))) <= limit else { throw .noRoom }
        let destination = mnl_nlmsg_put_extra_header(header, size)!
        withUnsafeBytes(of: value) { source in
            destination.copyMemory(from: source.baseAddress!, byteCount: size)
        }
    }

    func put(_ type: UInt16, bytes: [UInt8]) throws(NetlinkError) {
        let ok = bytes.withUnsafeBytes { raw in
            mnl_attr_put_check(header, limit, type, raw.count, raw.baseAddress)
        }
        guard ok else { throw .noRoom }
    }

    func put<Integer: FixedWidthInteger>(_ type: UInt16, _ value: Integer) throws(NetlinkError) {
        let ok = withUnsafeBytes(of: value) { raw in
            mnl_attr_put_check(header, limit, type, raw.count, raw.baseAddress)
        }
        guard ok else { throw .noRoom }
    }

    /// A NUL-terminated string attribute, as `IFLA_IFNAME` and `IFLA_INFO_KIND` want.
    func put(_ type: UInt16, string: String) throws(NetlinkError) {
        guard string.withCString({ mnl_attr_put_strz_check(header, limit, type, $0) }) else { throw .noRoom }
    }

    func putFlag(_ type: UInt16) throws(NetlinkError) {
        guard mnl_attr_put_check(header, limit, type, 0, nil) else { throw .noRoom }
    }

    /// Opens a nested attribute, lets `body` fill it, and closes it.
    func nest(_ type: UInt16, _ body: (inout MessageWriter) throws(NetlinkError) -> Void) throws(NetlinkError) {
        guard let start = mnl_attr_nest_start_check(header, limit, type) else { throw .noRoom }
        var inner = self
        try body(&inner)
        mnl_attr_nest_end(header, start)
        // libmnl marks nests with NLA_F_NESTED; iproute2 does not, and the kernel takes both.
        // Match iproute2, whose requests every kernel has accepted.
        start.pointee.nla_type &= ~UInt16(NLA_F_NESTED)
    }
}

extension NetlinkError {
    /// Internal: the message did not fit its buffer; `NetlinkSocket` flushes and retries.
    static var noRoom: NetlinkError { NetlinkError(operation: "build netlink message", errno: .messageTooLong) }
}
