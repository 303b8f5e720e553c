// Text put inside another language's syntax (XML, Mermaid labels): each
// character that would end or change the syntax replaced by its escape.

func escaping(_ text: String, _ replacements: [Character: String]) -> String {
    var escaped = ""
    for character in text {
        if let replacement = replacements[character] { escaped += replacement } else { escaped.append(character) }
    }
    return escaped
}

/// A target-chosen string (a function name from its symbol table, a file name
/// from its DWARF) shown where a control character would end a line, a table cell
/// or an XML text node (XML 1.0 has no escape for most of them): each one becomes
/// U+FFFD. For the human formats; the text formats that are read back quote instead.
public func printable(_ text: String) -> String {
    guard text.unicodeScalars.contains(where: NameQuoting.isControl) else { return text }
    return String(String.UnicodeScalarView(text.unicodeScalars.map { NameQuoting.isControl($0) ? "\u{FFFD}" : $0 }))
}

/// A frame's function or file field in pprof-text (`#\t0x…\tFUNCTION+0x…\tFILE:LINE`)
/// and traceback: bare unless it holds a control character or starts with `"`, then
/// quoted as NameQuoting quotes names. Spaces and commas stay bare (C++ and Swift
/// names are full of them): the fields are split by tabs, which a bare field cannot hold.
public enum FieldQuoting {
    public static func quoted(_ field: String) -> String {
        field.hasPrefix("\"") || field.unicodeScalars.contains(where: NameQuoting.isControl) ? NameQuoting.alwaysQuoted(field) : field
    }

    /// A field as `quoted` wrote it, at the start of `text`, and what follows it.
    static func read(_ text: Substring, bareUntil end: (Substring) -> Substring.Index?) -> (String, Substring)? {
        if text.first == "\"" { return NameQuoting.readQuoted(text) }
        guard let index = end(text) else { return nil }
        return (String(text[..<index]), text[index...])
    }
}

/// The one rule for a target-chosen name (a thread's comm, a goroutine's state)
/// in the text formats: written bare when it is plain (printable, and none of
/// space, `"`, `\`, `,`), else quoted as Go's %q does: `"…"` with `\"`, `\\`,
/// `\n`, `\t`, `\r` and `\xNN` for any other control character. A name can then
/// neither end its line, start a record, nor split a list; `list` reads them back.
public enum NameQuoting {
    public static func quoted(_ name: String) -> String {
        guard name.isEmpty || name.unicodeScalars.contains(where: needsQuotes) else { return name }
        return alwaysQuoted(name)
    }

    static func isControl(_ scalar: Unicode.Scalar) -> Bool {
        scalar.value < 0x20 || scalar.value == 0x7f || (scalar.value >= 0x80 && scalar.properties.generalCategory == .control)
    }

    /// Reads a quoted name at the start of `text`; the name and what follows it.
    static func readQuoted(_ text: Substring) -> (String, Substring)? {
        guard text.first == "\"" else { return nil }
        return one(text)
    }

    static func alwaysQuoted(_ name: String) -> String {
        var text = "\""
        for scalar in name.unicodeScalars {
            if let byte = RawBytes.byte(scalar) {
                text += "\\x" + String(byte, radix: 16)
                continue
            }
            switch scalar {
            case "\"": text += "\\\""
            case "\\": text += "\\\\"
            case "\n": text += "\\n"
            case "\t": text += "\\t"
            case "\r": text += "\\r"
            default:
                if scalar.value < 0x20 || scalar.value == 0x7f {
                    text += "\\x" + (scalar.value < 16 ? "0" : "") + String(scalar.value, radix: 16)
                } else {
                    text.unicodeScalars.append(scalar)
                }
            }
        }
        return text + "\""
    }

    private static func needsQuotes(_ scalar: Unicode.Scalar) -> Bool {
        scalar.value <= 0x20 || scalar.value == 0x7f || scalar == "\"" || scalar == "\\" || scalar == "," || RawBytes.byte(scalar) != nil
            || (scalar.value >= 0x80 && scalar.properties.generalCategory == .control)
    }

    /// Names as `quoted` wrote them, separated by commas; nil if malformed.
    public static func list(_ text: Substring) -> [String]? {
        var names: [String] = []
        var rest = text
        while !rest.isEmpty {
            guard let (name, after) = one(rest) else { return nil }
            names.append(name)
            rest = after
            if rest.isEmpty { break }
            guard rest.first == "," else { return nil }
            rest = rest.dropFirst()
            if rest.isEmpty { return nil }
        }
        return names
    }

    /// One name at the start of `text` (bare up to a comma, or quoted), and what follows.
    private static func one(_ text: Substring) -> (String, Substring)? {
        guard text.first == "\"" else {
            let end = text.firstIndex(of: ",") ?? text.endIndex
            let bare = text[..<end]
            guard !bare.isEmpty, !bare.unicodeScalars.contains(where: needsQuotes) else { return nil }
            return (String(bare), text[end...])
        }
        var name = String.UnicodeScalarView()
        var scalars = text.unicodeScalars.dropFirst()
        while let scalar = scalars.first {
            scalars = scalars.dropFirst()
            switch scalar {
            case "\"": return (String(name), Substring(scalars))
            case "\\":
                guard let escape = scalars.first else { return nil }
                scalars = scalars.dropFirst()
                switch escape {
                case "\"", "\\": name.append(escape)
                case "n": name.append("\n")
                case "t": name.append("\t")
                case "r": name.append("\r")
                case "x":
                    let digits = String(String.UnicodeScalarView(scalars.prefix(2)))
                    guard digits.count == 2, let value = UInt8(digits, radix: 16) else { return nil }
                    // \x80-\xff: a byte that was not UTF-8 in the target's name.
                    name.append(value < 0x80 ? Unicode.Scalar(value) : RawBytes.scalar(value))
                    scalars = scalars.dropFirst(2)
                default: return nil
                }
            default: name.append(scalar)
            }
        }
        return nil
    }
}

/// Names the target chooses are bytes, not always UTF-8 (`prctl(PR_SET_NAME)` takes
/// any). A byte that is not part of valid UTF-8 is kept as a private-use scalar
/// (U+10FE80 to U+10FEFF, plane 16), which quoting writes back as `\xNN`: the name
/// survives dump -> text -> --input to the same bytes, where U+FFFD would lose them.
public enum RawBytes {
    static let base: UInt32 = 0x10FE00

    /// `bytes` as text: UTF-8 where it is, each other byte kept as its scalar.
    public static func decode<Bytes: Collection>(_ bytes: Bytes) -> String where Bytes.Element == UInt8 {
        let bytes = Array(bytes)
        if let valid = String(validating: bytes, as: UTF8.self) { return valid }
        var scalars = String.UnicodeScalarView()
        var index = 0
        while index < bytes.count {
            let lead = bytes[index]
            let length = lead < 0x80 ? 1 : lead >= 0xc2 && lead <= 0xdf ? 2 : lead >= 0xe0 && lead <= 0xef ? 3
                : lead >= 0xf0 && lead <= 0xf4 ? 4 : 0
            if length > 0, index + length <= bytes.count,
               let one = String(validating: bytes[index..<(index + length)], as: UTF8.self) {
                scalars.append(contentsOf: one.unicodeScalars)
                index += length
            } else {
                scalars.append(scalar(lead))
                index += 1
            }
        }
        return String(scalars)
    }

    /// The bytes `decode` read: raw-byte scalars back to their bytes.
    public static func encode(_ text: String) -> [UInt8] {
        var bytes: [UInt8] = []
        for scalar in text.unicodeScalars {
            if let byte = byte(scalar) { bytes.append(byte) } else { bytes += Array(String(scalar).utf8) }
        }
        return bytes
    }

    static func scalar(_ byte: UInt8) -> Unicode.Scalar { Unicode.Scalar(base + UInt32(byte))! }

    static func byte(_ scalar: Unicode.Scalar) -> UInt8? {
        scalar.value >= base + 0x80 && scalar.value <= base + 0xff ? UInt8(scalar.value - base) : nil
    }
}
