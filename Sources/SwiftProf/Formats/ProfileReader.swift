// Reads any profile swiftprof can write back: pprof (gzipped or not), JSON,
// pprof-text (Go's too). The format is told by the first bytes.

public enum ProfileReader {
    public enum Kind: String, Sendable {
        case pprof, json, pprofText = "pprof-text"
    }

    public static func kind(of bytes: [UInt8]) -> Kind {
        if bytes.starts(with: [0x1f, 0x8b]) { return .pprof }
        let first = bytes.first { $0 != UInt8(ascii: " ") && $0 != UInt8(ascii: "\n") && $0 != UInt8(ascii: "\t") && $0 != UInt8(ascii: "\r") }
        if first == UInt8(ascii: "{") { return .json }
        // An uncompressed profile.proto starts with field 1 (sample_type) as bytes: 0x0a.
        if bytes.first == 0x0a { return .pprof }
        return .pprofText
    }

    public static func read(_ bytes: [UInt8]) throws(FormatError) -> ProfileDocument {
        switch kind(of: bytes) {
        case .pprof:
            return try PprofProto.read(bytes)
        case .json:
            return try JSONFormat.read(try text(bytes))
        case .pprofText:
            let profile = try PprofTextReader.read(try text(bytes))
            var document = ProfileDocument(profileName: profile.profileName, records: profile.records,
                                           memoryMapLines: profile.memoryMapLines)
            document.comments = profile.comments
            return document
        }
    }

    private static func text(_ bytes: [UInt8]) throws(FormatError) -> String {
        guard let text = String(validating: bytes, as: UTF8.self) else {
            throw FormatError(line: lineOfFirstInvalidByte(bytes), reason: "not UTF-8 text")
        }
        return text
    }

    private static func lineOfFirstInvalidByte(_ bytes: [UInt8]) -> Int {
        var line = 1, start = 0
        for (index, byte) in bytes.enumerated() where byte == UInt8(ascii: "\n") {
            if String(validating: bytes[start..<index], as: UTF8.self) == nil { return line }
            line += 1
            start = index + 1
        }
        return line
    }
}
