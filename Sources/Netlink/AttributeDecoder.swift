#if !_endian(little)
#error("netlink is host byte order; this module decodes little-endian hosts only")
#endif

/// Walks the attributes (TLVs) of a received message with bounds checks on every read.
///
/// A truncated or oversized attribute stops the walk and is reported by `finish()`; it never traps.
/// Unknown attribute types are the caller's to skip.
struct AttributeDecoder {
    private let bytes: [UInt8]
    private var position: Int
    private let end: Int
    private(set) var error: NetlinkDecodingError?

    init(_ bytes: [UInt8], from start: Int = 0, to end: Int? = nil) {
        self.bytes = bytes
        self.position = start
        self.end = min(end ?? bytes.count, bytes.count)
    }

    struct Attribute {
        /// Type without the NESTED and NET_BYTEORDER flag bits.
        var type: UInt16
        var value: ArraySlice<UInt8>
    }

    mutating func next() -> Attribute? {
        guard error == nil, position + 4 <= end else { return nil }
        let length = Int(readUInt16(bytes, at: position))
        let type = readUInt16(bytes, at: position + 2) & 0x3fff
        guard length >= 4, position + length <= end else {
            error = NetlinkDecodingError(what: "attribute of type \(type) with length \(length)", offset: position)
            return nil
        }
        let value = bytes[(position + 4)..<(position + length)]
        position += (length + 3) & ~3
        return Attribute(type: type, value: value)
    }

    func finish() throws(NetlinkDecodingError) {
        if let error { throw error }
    }
}

extension AttributeDecoder.Attribute {
    func uint8() throws(NetlinkDecodingError) -> UInt8 { try integer() }
    func uint16() throws(NetlinkDecodingError) -> UInt16 { try integer() }
    func uint32() throws(NetlinkDecodingError) -> UInt32 { try integer() }
    func uint64() throws(NetlinkDecodingError) -> UInt64 { try integer() }

    /// A host-order (little-endian) integer; longer values are read from their first bytes.
    func integer<Integer: FixedWidthInteger>() throws(NetlinkDecodingError) -> Integer {
        let size = MemoryLayout<Integer>.size
        guard value.count >= size else {
            throw NetlinkDecodingError(what: "attribute \(type): \(value.count) bytes, need \(size)", offset: value.startIndex)
        }
        var result: Integer = 0
        for (index, byte) in value.prefix(size).enumerated() {
            result |= Integer(byte) << (8 * index)
        }
        return result
    }

    /// A NUL-terminated (or not) string.
    var string: String {
        let content = value.prefix { $0 != 0 }
        return String(decoding: content, as: UTF8.self)
    }

    var bytes: [UInt8] { Array(value) }

    func nested() -> AttributeDecoder {
        AttributeDecoder(Array(value))
    }
}

@inline(__always)
func readUInt16(_ bytes: [UInt8], at offset: Int) -> UInt16 {
    UInt16(bytes[offset]) | UInt16(bytes[offset + 1]) << 8
}
