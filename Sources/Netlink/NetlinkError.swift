public import SystemPackage

/// A failed netlink operation: what we tried, the errno, and the kernel's own explanation when it
/// gave one (extended ACK), so that an operator reads "Unknown device type" rather than "EOPNOTSUPP".
///
/// Match with `catch let error as NetlinkError where error.errno == .fileExists`.
public struct NetlinkError: Error, Hashable, Sendable, CustomStringConvertible {
    /// What was being done, e.g. "add route 10.0.1.10/32 dev vti02".
    public var operation: String
    public var errno: Errno
    /// The kernel's extended-ACK text (`NLMSGERR_ATTR_MSG`), if any.
    public var kernelMessage: String?
    /// Byte offset of the offending attribute in our request (`NLMSGERR_ATTR_OFFS`), if any.
    public var offset: UInt32?
    public var file: String
    public var line: Int

    public init(
        operation: String, errno: Errno, kernelMessage: String? = nil, offset: UInt32? = nil,
        file: String = #fileID, line: Int = #line
    ) {
        self.operation = operation
        self.errno = errno
        self.kernelMessage = kernelMessage
        self.offset = offset
        self.file = file
        self.line = line
    }

    public var description: String {
        var text = "\(operation): \(errno)"
        if let kernelMessage, !kernelMessage.isEmpty { text += " (kernel: \(kernelMessage))" }
        return text
    }

    /// The receive queue overflowed and notifications were lost: the caller must resync from a dump.
    public var isOverrun: Bool { errno == .noBufferSpace }

    // Compare what happened, not where it was thrown from.
    public static func == (a: NetlinkError, b: NetlinkError) -> Bool {
        a.operation == b.operation && a.errno == b.errno && a.kernelMessage == b.kernelMessage && a.offset == b.offset
    }
    public func hash(into hasher: inout Hasher) {
        hasher.combine(operation)
        hasher.combine(errno)
        hasher.combine(kernelMessage)
    }
}

/// A message from the kernel that we could not decode: truncated or with a malformed attribute.
public struct NetlinkDecodingError: Error, Hashable, Sendable, CustomStringConvertible {
    public var what: String
    public var offset: Int
    public var description: String { "malformed netlink message: \(what) at byte \(offset)" }
}
