/// Writes an `Encodable` straight into compact JSON bytes, without Foundation and without an
/// intermediate tree. vtid answers `status` for 10,000 clients with it: Foundation's JSONEncoder
/// spent three quarters of that request building and sorting dictionaries.
///
/// Keys come in declaration order (JSON objects are unordered); `nil` optionals are left out, as
/// JSONEncoder does. Only what synthesized `Codable` conformances use is supported: a nested or
/// super encoder is an encoding error, not a crash.
public struct JSONLineEncoder {
    public init() {}

    /// One JSON document followed by a newline: one message on the control socket.
    public func encodeLine(_ value: some Encodable) throws -> [UInt8] {
        let output = JSONOutput()
        output.bytes.reserveCapacity(4096)
        try output.write(value, codingPath: [])
        output.bytes.append(UInt8(ascii: "\n"))
        return output.bytes
    }
}

/// The shared byte buffer every container of one document writes into.
final class JSONOutput {
    var bytes: [UInt8] = []
    var depth = 0

    func write(_ value: some Encodable, codingPath: [any CodingKey]) throws {
        // A scalar type without a case in `StreamingEncoder.write` would encode itself forever.
        guard depth < 64 else { throw JSONEncodingFailure("\(codingPath.map(\.stringValue)): nested over 64 deep, or \(type(of: value)) is not supported") }
        depth += 1
        defer { depth -= 1 }
        let encoder = StreamingEncoder(output: self, codingPath: codingPath)
        try value.encode(to: encoder)
        try encoder.finish()
    }

    func append(_ text: StaticString) {
        text.withUTF8Buffer { bytes.append(contentsOf: $0) }
    }

    func appendNumber(_ number: some BinaryInteger) {
        bytes.append(contentsOf: String(number).utf8)
    }

    func appendNumber(_ number: Double) throws {
        guard number.isFinite else { throw JSONEncodingFailure("\(number) has no JSON form") }
        if number == number.rounded(), abs(number) < 1e15 { appendNumber(Int64(number)) } else { bytes.append(contentsOf: "\(number)".utf8) }
    }

    /// Escapes into a local buffer and appends once: every access to `bytes` costs an
    /// exclusivity check, which per byte was most of the time.
    func appendString(_ string: String) {
        let utf8 = string.utf8
        guard utf8.contains(where: { $0 < 0x20 || $0 == 0x7f || $0 == UInt8(ascii: "\"") || $0 == UInt8(ascii: "\\") }) else {
            bytes.append(UInt8(ascii: "\""))
            bytes.append(contentsOf: utf8)
            bytes.append(UInt8(ascii: "\""))
            return
        }
        bytes.append(contentsOf: Self.escaped(utf8))
    }

    private static func escaped(_ utf8: String.UTF8View) -> [UInt8] {
        let hex = Array("0123456789abcdef".utf8)
        var out: [UInt8] = [UInt8(ascii: "\"")]
        out.reserveCapacity(utf8.count + 16)
        for byte in utf8 {
            switch byte {
            case UInt8(ascii: "\""): out += [UInt8(ascii: "\\"), byte]
            case UInt8(ascii: "\\"): out += [byte, byte]
            case UInt8(ascii: "\n"): out += [UInt8(ascii: "\\"), UInt8(ascii: "n")]
            case UInt8(ascii: "\r"): out += [UInt8(ascii: "\\"), UInt8(ascii: "r")]
            case UInt8(ascii: "\t"): out += [UInt8(ascii: "\\"), UInt8(ascii: "t")]
            case 0..<0x20, 0x7f: out += Array("\\u00".utf8) + [hex[Int(byte >> 4)], hex[Int(byte & 0xf)]]
            default: out.append(byte)
            }
        }
        out.append(UInt8(ascii: "\""))
        return out
    }
}

struct JSONEncodingFailure: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

/// The encoder handed to one value's `encode(to:)`: it opens the one container the value asks
/// for and closes it when the value is done.
private final class StreamingEncoder: Encoder {
    enum Opened { case none, object, array, single }

    let output: JSONOutput
    let codingPath: [any CodingKey]
    var userInfo: [CodingUserInfoKey: Any] { [:] }
    var opened = Opened.none
    var count = 0
    var failure: (any Error)?

    init(output: JSONOutput, codingPath: [any CodingKey]) {
        self.output = output
        self.codingPath = codingPath
    }

    func open(_ kind: Opened) {
        guard opened == .none else {
            if opened != kind { failure = JSONEncodingFailure("\(codingPath.map(\.stringValue)): a value asked for two kinds of container") }
            return
        }
        opened = kind
        switch kind {
        case .object: output.bytes.append(UInt8(ascii: "{"))
        case .array: output.bytes.append(UInt8(ascii: "["))
        case .single, .none: break
        }
    }

    func finish() throws {
        if let failure { throw failure }
        switch opened {
        case .object: output.bytes.append(UInt8(ascii: "}"))
        case .array: output.bytes.append(UInt8(ascii: "]"))
        case .none: output.append("{}")
        case .single: if count == 0 { output.append("null") }
        }
    }

    /// The separator before the next member or element.
    func next() {
        if count > 0 { output.bytes.append(UInt8(ascii: ",")) }
        count += 1
    }

    func unsupported(_ what: String) {
        failure = failure ?? JSONEncodingFailure("\(codingPath.map(\.stringValue)): \(what) is not supported by JSONLineEncoder")
    }

    func container<Key: CodingKey>(keyedBy type: Key.Type) -> KeyedEncodingContainer<Key> {
        open(.object)
        return KeyedEncodingContainer(KeyedWriter<Key>(encoder: self))
    }

    func unkeyedContainer() -> any UnkeyedEncodingContainer {
        open(.array)
        return UnkeyedWriter(encoder: self)
    }

    func singleValueContainer() -> any SingleValueEncodingContainer {
        open(.single)
        return SingleWriter(encoder: self)
    }

    /// Writes one value: scalars directly, anything else through its own `encode(to:)`.
    func write<T: Encodable>(_ value: T, at path: @autoclosure () -> [any CodingKey]) throws {
        switch value {
        case let text as String: output.appendString(text)
        case let flag as Bool: output.append(flag ? "true" : "false")
        case let number as Int: output.appendNumber(number)
        case let number as Int64: output.appendNumber(number)
        case let number as Int32: output.appendNumber(number)
        case let number as UInt64: output.appendNumber(number)
        case let number as UInt32: output.appendNumber(number)
        case let number as UInt16: output.appendNumber(number)
        case let number as UInt8: output.appendNumber(number)
        case let number as UInt: output.appendNumber(number)
        case let number as Int16: output.appendNumber(number)
        case let number as Int8: output.appendNumber(number)
        case let number as Double: try output.appendNumber(number)
        case let number as Float: try output.appendNumber(Double(number))
        default: try output.write(value, codingPath: path())
        }
    }
}

private struct KeyedWriter<Key: CodingKey>: KeyedEncodingContainerProtocol {
    let encoder: StreamingEncoder
    var codingPath: [any CodingKey] { encoder.codingPath }

    private func key(_ key: Key) {
        encoder.next()
        encoder.output.appendString(key.stringValue)
        encoder.output.bytes.append(UInt8(ascii: ":"))
    }

    mutating func encodeNil(forKey key: Key) throws {
        self.key(key)
        encoder.output.append("null")
    }

    mutating func encode<T: Encodable>(_ value: T, forKey key: Key) throws {
        self.key(key)
        try encoder.write(value, at: codingPath + [key])
    }

    // The scalar overloads spare each field the generic path's dynamic casts.
    mutating func encode(_ value: String, forKey key: Key) throws {
        self.key(key)
        encoder.output.appendString(value)
    }

    mutating func encode(_ value: Bool, forKey key: Key) throws {
        self.key(key)
        encoder.output.append(value ? "true" : "false")
    }

    mutating func encode(_ value: Int, forKey key: Key) throws { self.key(key); encoder.output.appendNumber(value) }
    mutating func encode(_ value: Int32, forKey key: Key) throws { self.key(key); encoder.output.appendNumber(value) }
    mutating func encode(_ value: Int64, forKey key: Key) throws { self.key(key); encoder.output.appendNumber(value) }
    mutating func encode(_ value: UInt8, forKey key: Key) throws { self.key(key); encoder.output.appendNumber(value) }
    mutating func encode(_ value: UInt16, forKey key: Key) throws { self.key(key); encoder.output.appendNumber(value) }
    mutating func encode(_ value: UInt32, forKey key: Key) throws { self.key(key); encoder.output.appendNumber(value) }
    mutating func encode(_ value: UInt64, forKey key: Key) throws { self.key(key); encoder.output.appendNumber(value) }
    mutating func encode(_ value: Double, forKey key: Key) throws { self.key(key); try encoder.output.appendNumber(value) }

    mutating func nestedContainer<NestedKey: CodingKey>(keyedBy keyType: NestedKey.Type, forKey key: Key) -> KeyedEncodingContainer<NestedKey> {
        encoder.unsupported("a nested keyed container")
        return KeyedEncodingContainer(KeyedWriter<NestedKey>(encoder: encoder))
    }

    mutating func nestedUnkeyedContainer(forKey key: Key) -> any UnkeyedEncodingContainer {
        encoder.unsupported("a nested unkeyed container")
        return UnkeyedWriter(encoder: encoder)
    }

    mutating func superEncoder() -> any Encoder {
        encoder.unsupported("a super encoder")
        return encoder
    }

    mutating func superEncoder(forKey key: Key) -> any Encoder {
        encoder.unsupported("a super encoder")
        return encoder
    }
}

private struct UnkeyedWriter: UnkeyedEncodingContainer {
    let encoder: StreamingEncoder
    var codingPath: [any CodingKey] { encoder.codingPath }
    var count: Int { encoder.count }

    mutating func encodeNil() throws {
        encoder.next()
        encoder.output.append("null")
    }

    mutating func encode<T: Encodable>(_ value: T) throws {
        encoder.next()
        try encoder.write(value, at: codingPath)
    }

    mutating func nestedContainer<NestedKey: CodingKey>(keyedBy keyType: NestedKey.Type) -> KeyedEncodingContainer<NestedKey> {
        encoder.unsupported("a nested keyed container")
        return KeyedEncodingContainer(KeyedWriter<NestedKey>(encoder: encoder))
    }

    mutating func nestedUnkeyedContainer() -> any UnkeyedEncodingContainer {
        encoder.unsupported("a nested unkeyed container")
        return self
    }

    mutating func superEncoder() -> any Encoder {
        encoder.unsupported("a super encoder")
        return encoder
    }
}

private struct SingleWriter: SingleValueEncodingContainer {
    let encoder: StreamingEncoder
    var codingPath: [any CodingKey] { encoder.codingPath }

    mutating func encodeNil() throws {
        encoder.count += 1
        encoder.output.append("null")
    }

    mutating func encode<T: Encodable>(_ value: T) throws {
        guard encoder.count == 0 else { throw JSONEncodingFailure("\(codingPath.map(\.stringValue)): two values in one single-value container") }
        encoder.count += 1
        try encoder.write(value, at: codingPath)
    }
}
