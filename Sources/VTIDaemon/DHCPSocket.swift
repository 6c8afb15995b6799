internal import CDHCPSocket
import Glibc
import SystemPackage
import VTIModel

/// A UDP socket on port 67 that hears only one device (SO_BINDTODEVICE), for vtid's DHCPINFORM
/// answers: no raw socket, no capture. Datagrams come with the address they were sent to and the
/// interface they arrived on (IP_PKTINFO); answers leave from a chosen local address. One owner
/// at a time (the responder's thread).
final class DHCPSocket {
    let descriptor: Int32
    let device: String

    /// What one receive brought.
    struct Datagram {
        var bytes: [UInt8]
        var source: IPv4Address
        var sourcePort: UInt16
        /// The destination address: one of this host's, or a broadcast.
        var destination: IPv4Address
        var interfaceIndex: Int32
    }

    init(device: String, port: UInt16 = 67) throws(DHCPSocketError) {
        let descriptor = vtictl_dhcp_socket(device, port)
        guard descriptor >= 0 else { throw DHCPSocketError(operation: "open a DHCP socket on \(device)", errno: Errno(rawValue: errno)) }
        self.descriptor = descriptor
        self.device = device
    }

    deinit { Glibc.close(descriptor) }

    /// The next waiting datagram, nil when none waits. A datagram over 2048 bytes comes cut to
    /// 2048 (the parser calls anything over 1500 too long).
    func receive() throws(DHCPSocketError) -> Datagram? {
        var buffer = [UInt8](repeating: 0, count: 2048)
        var source: UInt32 = 0
        var port: UInt16 = 0
        var destination: UInt32 = 0
        var index: Int32 = 0
        var truncated: Int32 = 0
        while true {
            let count = buffer.withUnsafeMutableBufferPointer {
                vtictl_dhcp_receive(descriptor, $0.baseAddress, $0.count, &source, &port, &destination, &index, &truncated)
            }
            if count >= 0 {
                return Datagram(bytes: Array(buffer.prefix(count)), source: IPv4Address(rawValue: source), sourcePort: port,
                                destination: IPv4Address(rawValue: destination), interfaceIndex: index)
            }
            switch errno {
            case EINTR: continue
            case EAGAIN: return nil
            case let code: throw DHCPSocketError(operation: "receive on \(device)", errno: Errno(rawValue: code))
            }
        }
    }

    /// Sends `bytes` to `destination`, port 68, from `source` (a local address), out of this device.
    func send(_ bytes: [UInt8], to destination: IPv4Address, from source: IPv4Address, port: UInt16 = 68) throws(DHCPSocketError) {
        while true {
            let count = bytes.withUnsafeBufferPointer {
                vtictl_dhcp_send(descriptor, $0.baseAddress, $0.count, destination.rawValue, port, source.rawValue)
            }
            if count == bytes.count { return }
            if count < 0 && errno == EINTR { continue }
            throw DHCPSocketError(operation: "send to \(destination) from \(source) on \(device)", errno: count < 0 ? Errno(rawValue: errno) : .messageTooLong)
        }
    }
}

struct DHCPSocketError: Error, CustomStringConvertible {
    var operation: String
    var errno: Errno
    var description: String { "\(operation): \(errno)" }
}
