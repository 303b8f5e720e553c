// /proc's per-thread files are short ASCII lines of fields. They are parsed a
// byte at a time here: String's Character-wise split and trim (grapheme
// breaking for every byte) cost a fifth of a first pass over 1,000 threads,
// measured; bytes make it a few percent. Names inside (comm, kernel functions)
// are decoded from their bytes by the callers.

enum ProcText {
    static func isSpace(_ byte: UInt8) -> Bool { byte == 0x20 || byte == 0x09 || byte == 0x0A || byte == 0x0D }

    /// The fields of `bytes` separated by runs of spaces, tabs and newlines.
    static func words(_ bytes: ArraySlice<UInt8>) -> [ArraySlice<UInt8>] {
        var words: [ArraySlice<UInt8>] = []
        var start: Int?
        for index in bytes.indices {
            if isSpace(bytes[index]) {
                if let begun = start { words.append(bytes[begun..<index]) }
                start = nil
            } else if start == nil {
                start = index
            }
        }
        if let begun = start { words.append(bytes[begun..<bytes.endIndex]) }
        return words
    }

    static func words(_ text: String) -> [ArraySlice<UInt8>] { words(ArraySlice(text.utf8)) }

    /// The lines of `bytes`, without their newlines; empty lines left out.
    static func lines(_ bytes: ArraySlice<UInt8>) -> [ArraySlice<UInt8>] {
        bytes.split(separator: 0x0A)
    }

    /// "0x" and hex digits, as the kernel prints addresses (nothing else: nil).
    static func hex(_ word: ArraySlice<UInt8>) -> UInt64? {
        guard word.count > 2, word.first == UInt8(ascii: "0"), word[word.startIndex + 1] == UInt8(ascii: "x") else {
            return nil
        }
        return digits(word.dropFirst(2), radix: 16)
    }

    /// Hex digits without "0x" (/proc/PID/maps).
    static func hexDigits(_ word: ArraySlice<UInt8>) -> UInt64? { digits(word, radix: 16) }

    /// Decimal digits only.
    static func decimal(_ word: ArraySlice<UInt8>) -> UInt64? { digits(word, radix: 10) }

    /// A decimal that may start with "-".
    static func signed(_ word: ArraySlice<UInt8>) -> Int? {
        if word.first == UInt8(ascii: "-") {
            guard let magnitude = decimal(word.dropFirst()), magnitude <= UInt64(Int.max) else { return nil }
            return -Int(magnitude)
        }
        guard let value = decimal(word), value <= UInt64(Int.max) else { return nil }
        return Int(value)
    }

    /// The leading decimal digits of `bytes` (0 when none).
    static func leadingDecimal(_ bytes: ArraySlice<UInt8>) -> UInt64 {
        var value: UInt64 = 0
        for byte in bytes {
            guard byte >= UInt8(ascii: "0"), byte <= UInt8(ascii: "9") else { break }
            value = value &* 10 &+ UInt64(byte - UInt8(ascii: "0"))
        }
        return value
    }

    static func string(_ bytes: ArraySlice<UInt8>) -> String { String(decoding: bytes, as: UTF8.self) }

    private static func digits(_ word: ArraySlice<UInt8>, radix: UInt64) -> UInt64? {
        guard !word.isEmpty else { return nil }
        var value: UInt64 = 0
        for byte in word {
            let digit: UInt64
            switch byte {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): digit = UInt64(byte - UInt8(ascii: "0"))
            case UInt8(ascii: "a")...UInt8(ascii: "f") where radix == 16: digit = UInt64(byte - UInt8(ascii: "a")) + 10
            case UInt8(ascii: "A")...UInt8(ascii: "F") where radix == 16: digit = UInt64(byte - UInt8(ascii: "A")) + 10
            default: return nil
            }
            let (shifted, overflow) = value.multipliedReportingOverflow(by: radix)
            guard !overflow else { return nil }
            let (sum, carry) = shifted.addingReportingOverflow(digit)
            guard !carry else { return nil }
            value = sum
        }
        return value
    }
}
