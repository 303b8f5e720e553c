// The protobuf wire format, as much as profile.proto needs: varints,
// length-delimited fields, packed repeated integers. Hand-written, like Go's
// runtime/pprof encoder: the schema is small and fixed, and a generated
// swift-protobuf model would cost a protoc build for a dozen fields.

struct ProtobufWriter {
    private(set) var bytes: [UInt8] = []

    mutating func varint(_ value: UInt64) {
        var value = value
        while value >= 0x80 {
            bytes.append(UInt8(value & 0x7f) | 0x80)
            value >>= 7
        }
        bytes.append(UInt8(value))
    }

    private mutating func key(_ field: Int, _ wireType: UInt64) { varint(UInt64(field) << 3 | wireType) }

    /// A varint field; zero values are left out, as proto3 does.
    mutating func uint(_ field: Int, _ value: UInt64) {
        guard value != 0 else { return }
        key(field, 0)
        varint(value)
    }

    mutating func int(_ field: Int, _ value: Int64) { uint(field, UInt64(bitPattern: value)) }

    mutating func bool(_ field: Int, _ value: Bool) { uint(field, value ? 1 : 0) }

    mutating func packed(_ field: Int, _ values: [UInt64]) {
        guard !values.isEmpty else { return }
        var inner = ProtobufWriter()
        for value in values { inner.varint(value) }
        bytesField(field, inner.bytes)
    }

    mutating func bytesField(_ field: Int, _ value: [UInt8]) {
        key(field, 2)
        varint(UInt64(value.count))
        bytes += value
    }

    /// The bytes a name had in the target (RawBytes), as Go's strings keep any bytes.
    mutating func string(_ field: Int, _ value: String) { bytesField(field, RawBytes.encode(value)) }

    mutating func message(_ field: Int, _ build: (inout ProtobufWriter) -> Void) {
        var inner = ProtobufWriter()
        build(&inner)
        bytesField(field, inner.bytes)
    }
}

struct ProtobufError: Error {
    let offset: Int
    let reason: String
}

/// Reads one message's fields; every length is checked against what is left.
struct ProtobufReader {
    enum Value {
        case varint(UInt64)
        case bytes(ArraySlice<UInt8>)
        case fixed(UInt64)
    }

    private let bytes: ArraySlice<UInt8>
    private var position: Int
    /// Offset of `bytes` in the whole input, for error messages.
    let base: Int

    init(_ bytes: ArraySlice<UInt8>, base: Int = 0) {
        self.bytes = bytes
        self.position = bytes.startIndex
        self.base = base
    }

    var offset: Int { base + position - bytes.startIndex }

    mutating func next() throws(ProtobufError) -> (field: Int, value: Value)? {
        guard position < bytes.endIndex else { return nil }
        let key = try varint()
        let field = Int(truncatingIfNeeded: key >> 3)
        guard field > 0 else { throw ProtobufError(offset: offset, reason: "field number 0") }
        switch key & 7 {
        case 0:
            return (field, .varint(try varint()))
        case 1:
            return (field, .fixed(try fixed(8)))
        case 2:
            let length = try varint()
            guard length <= UInt64(bytes.endIndex - position) else {
                throw ProtobufError(offset: offset, reason: "a field of \(length) bytes runs past the end")
            }
            let start = position
            position += Int(length)
            return (field, .bytes(bytes[start..<position]))
        case 5:
            return (field, .fixed(try fixed(4)))
        default:
            throw ProtobufError(offset: offset, reason: "unsupported wire type \(key & 7)")
        }
    }

    mutating func varint() throws(ProtobufError) -> UInt64 {
        var value: UInt64 = 0
        var shift: UInt64 = 0
        while position < bytes.endIndex {
            let byte = bytes[position]
            position += 1
            guard shift < 64 else { throw ProtobufError(offset: offset, reason: "a varint longer than 10 bytes") }
            value |= UInt64(byte & 0x7f) << shift
            if byte < 0x80 { return value }
            shift += 7
        }
        throw ProtobufError(offset: offset, reason: "a varint runs past the end")
    }

    private mutating func fixed(_ size: Int) throws(ProtobufError) -> UInt64 {
        guard bytes.endIndex - position >= size else { throw ProtobufError(offset: offset, reason: "a fixed field runs past the end") }
        var value: UInt64 = 0
        for index in (0..<size).reversed() { value = value << 8 | UInt64(bytes[position + index]) }
        position += size
        return value
    }

    /// A repeated integer field, packed (bytes) or not (one varint).
    static func integers(_ value: Value, base: Int) throws(ProtobufError) -> [UInt64] {
        switch value {
        case .varint(let single): return [single]
        case .fixed(let single): return [single]
        case .bytes(let packed):
            var reader = ProtobufReader(packed, base: base)
            var values: [UInt64] = []
            while reader.offset - base < packed.count { values.append(try reader.varint()) }
            return values
        }
    }
}

extension ProtobufReader.Value {
    var integer: UInt64 {
        switch self {
        case .varint(let value), .fixed(let value): return value
        case .bytes: return 0
        }
    }
}
