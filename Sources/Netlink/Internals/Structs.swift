// Reading the kernel's fixed C structs (rtmsg, ifinfomsg, xfrm_usersa_info, ...) out of received
// bytes, with a bounds check first.

/// Reads a C struct at `offset`; throws if the message is too short for it.
func loadFixed<Fixed>(_ type: Fixed.Type, from bytes: [UInt8], at offset: Int = 0, what: String) throws(NetlinkDecodingError) -> Fixed {
    let size = MemoryLayout<Fixed>.size
    guard offset >= 0, bytes.count >= offset + size else {
        throw NetlinkDecodingError(what: "\(what): \(bytes.count - offset) bytes, need \(size)", offset: offset)
    }
    return bytes.withUnsafeBytes { $0.loadUnaligned(fromByteOffset: offset, as: Fixed.self) }
}

/// The size of a fixed header rounded up to netlink's 4-byte alignment: where attributes start.
func alignedSize<Fixed>(of type: Fixed.Type) -> Int {
    (MemoryLayout<Fixed>.size + 3) & ~3
}

/// Copies `count` bytes of a C array field (e.g. `xfrm_address_t`) into a Swift array.
func bytesOf<Value>(_ value: Value, count: Int) -> [UInt8] {
    withUnsafeBytes(of: value) { Array($0.prefix(count)) }
}
