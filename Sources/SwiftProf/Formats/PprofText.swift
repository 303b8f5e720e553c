// Go's runtime/pprof debug=1 text ("goroutine profile" layout), written and read.
//
//   thread profile: total 7
//   3 @ 0x7f..b 0x55..c
//   #	0x7f..a	__GI___clock_nanosleep+0x1a	./time/../sysdeps/unix/sysv/linux/clock_nanosleep.c:78
//   #	0x55..b	park+0x2f			/src/park.c:12
//   <blank line>
//
// The "@" line holds return addresses (pprof subtracts 1 when it reads them);
// "#" lines show the call site (return address - 1) and repeat it for each
// inlined frame. `go tool pprof` treats "#" lines as comments.

public struct PprofTextWriter: Sendable {
    public var profileName: String
    public var addresses: AddressMode
    /// Appended as `--- Memory map: ---` so that pprof can map addresses to binaries.
    public var memoryMapLines: [String]?

    public init(profileName: String = "thread", addresses: AddressMode = .absolute, memoryMapLines: [String]? = nil) {
        self.profileName = profileName
        self.addresses = addresses
        self.memoryMapLines = memoryMapLines
    }

    public func write(_ records: [Record]) -> String {
        let total = records.reduce(0) { $0 + $1.count }
        var text = "\(profileName) profile: total \(total)\n"
        let tabs = TabWriter()
        for record in records {
            text += "\(record.count) \(Grouper.atKey(record, addresses: addresses))\n"
            var frameLines: [String] = []
            for location in record.locations {
                let address = hex(Grouper.printedAddress(location, addresses))
                for frame in location.lines {
                    if frame.function.isEmpty {
                        frameLines.append("#\t\(address)")
                    } else {
                        let file = frame.file.isEmpty ? "??" : frame.file
                        frameLines.append("#\t\(address)\t\(frame.function)+\(hex(frame.offset))\t\(file):\(frame.line)")
                    }
                }
            }
            text += tabs.format(frameLines)
            if let truncation = record.truncation { text += "# truncated: \(truncation)\n" }
            text += "\n"
        }
        if let memoryMapLines {
            text += "--- Memory map: ---\n"
            for line in memoryMapLines { text += line + "\n" }
        }
        return text
    }
}

public struct PprofTextProfile: Equatable, Sendable {
    public var profileName: String
    public var records: [Record]
    public var memoryMapLines: [String]?
}

public struct FormatError: Error, Equatable, CustomStringConvertible {
    public let line: Int
    public let reason: String

    public init(line: Int, reason: String) {
        self.line = line
        self.reason = reason
    }

    public var description: String { "line \(line): \(reason)" }
}

public enum PprofTextReader {
    public static func read(_ text: String) throws(FormatError) -> PprofTextProfile {
        let lines = text.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        guard let header = lines.first, let name = parseHeader(header) else {
            throw FormatError(line: 1, reason: "expected \"NAME profile: total N\"")
        }
        var profile = PprofTextProfile(profileName: name.name, records: [], memoryMapLines: nil)
        var index = 1
        var current: (record: Record, atLine: Int, addresses: [UInt64], frames: [(UInt64, FrameLine)])?

        func finish() throws(FormatError) {
            guard let open = current else { return }
            var record = open.record
            record.locations = try locations(open.addresses, open.frames, line: open.atLine)
            profile.records.append(record)
            current = nil
        }

        while index < lines.count {
            let line = lines[index]
            let number = index + 1
            index += 1
            if line.hasPrefix("--- Memory map: ---") {
                try finish()
                profile.memoryMapLines = lines[index...].filter { !$0.isEmpty }
                break
            }
            if line.isEmpty {
                try finish()
                continue
            }
            if line.hasPrefix("# truncated: ") {
                guard current != nil else { throw FormatError(line: number, reason: "truncation note outside a record") }
                current!.record.truncation = String(line.dropFirst("# truncated: ".count))
            } else if line.hasPrefix("#") {
                guard current != nil else { throw FormatError(line: number, reason: "frame line outside a record") }
                current!.frames.append(try parseFrame(line, number: number))
            } else {
                try finish()
                let (count, addresses) = try parseRecordLine(line, number: number)
                current = (Record(count: count, locations: [], truncation: nil), number, addresses, [])
            }
        }
        try finish()
        let sum = profile.records.reduce(0) { $0 + $1.count }
        guard sum == name.total else {
            throw FormatError(line: 1, reason: "header total \(name.total) but the records count \(sum)")
        }
        return profile
    }

    private static func parseHeader(_ line: String) -> (name: String, total: Int)? {
        let parts = line.split(separator: " ", omittingEmptySubsequences: false)
        guard parts.count == 4, !parts[0].isEmpty, parts[1] == "profile:", parts[2] == "total",
              let total = Int(parts[3]), total >= 0 else { return nil }
        return (String(parts[0]), total)
    }

    private static func parseRecordLine(_ line: String, number: Int) throws(FormatError) -> (Int, [UInt64]) {
        let parts = line.split(separator: " ", omittingEmptySubsequences: false)
        guard parts.count >= 3, let count = Int(parts[0]), count > 0, parts[1] == "@" else {
            throw FormatError(line: number, reason: "expected \"N @ 0x...\"")
        }
        var addresses: [UInt64] = []
        for part in parts[2...] {
            guard let address = parseHex(part), address > 0 else {
                throw FormatError(line: number, reason: "bad address \"\(part)\"")
            }
            addresses.append(address)
        }
        return (count, addresses)
    }

    private static func parseFrame(_ line: String, number: Int) throws(FormatError) -> (UInt64, FrameLine) {
        let fields = line.split(separator: "\t", omittingEmptySubsequences: true)
        guard fields.first == "#", fields.count == 2 || fields.count == 4, let address = parseHex(fields[1]) else {
            throw FormatError(line: number, reason: "expected \"#<tab>0x..<tab>func+0x..<tab>file:line\"")
        }
        if fields.count == 2 { return (address, FrameLine(function: "", offset: 0, file: "", line: 0)) }
        guard let plus = lastOffsetMarker(in: fields[2]), let offset = parseHex(fields[2][plus...].dropFirst()),
              let colon = fields[3].lastIndex(of: ":"), let lineNumber = Int(fields[3][fields[3].index(after: colon)...]) else {
            throw FormatError(line: number, reason: "expected \"func+0xOFFSET\" and \"file:line\"")
        }
        let file = String(fields[3][..<colon])
        return (address, FrameLine(function: String(fields[2][..<plus]), offset: offset,
                                   file: file == "??" ? "" : file, line: lineNumber))
    }

    /// Splits the frame lines among the "@" addresses. A location's lines all show
    /// its call site (address - 1). Go hides leading runtime frames, so an address
    /// may have no lines. A run of equal addresses (recursion) shares its run of
    /// lines evenly, since equal addresses symbolize alike.
    private static func locations(_ addresses: [UInt64], _ frames: [(UInt64, FrameLine)], line: Int) throws(FormatError) -> [Location] {
        var result: [Location] = []
        var frameIndex = 0
        var addressIndex = 0
        while addressIndex < addresses.count {
            let site = addresses[addressIndex] - 1
            var run = 1
            while addressIndex + run < addresses.count, addresses[addressIndex + run] == addresses[addressIndex] { run += 1 }
            var lineCount = 0
            while frameIndex + lineCount < frames.count, frames[frameIndex + lineCount].0 == site { lineCount += 1 }
            let perLocation = lineCount % run == 0 ? lineCount / run : lineCount
            for copy in 0..<run {
                let start = min(frameIndex + copy * perLocation, frameIndex + lineCount)
                let end = min(start + perLocation, frameIndex + lineCount)
                result.append(Location(address: site, lines: frames[start..<end].map(\.1)))
            }
            frameIndex += lineCount
            addressIndex += run
        }
        guard frameIndex == frames.count else {
            throw FormatError(line: line, reason: "frame line for \(hex(frames[frameIndex].0)) matches no address of the record")
        }
        return result
    }

    /// Where "+0x" last occurs: function names may contain "+" (C++ operator+).
    private static func lastOffsetMarker(in text: Substring) -> Substring.Index? {
        var index = text.endIndex
        while index > text.startIndex {
            index = text.index(before: index)
            if text[index...].hasPrefix("+0x") { return index }
        }
        return nil
    }

    private static func parseHex<S: StringProtocol>(_ text: S) -> UInt64? {
        guard text.hasPrefix("0x"), text.count > 2 else { return nil }
        return UInt64(text.dropFirst(2), radix: 16)
    }
}
