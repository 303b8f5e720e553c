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
    /// Adds `blocked: N.NNNs` to the state lines (off by default: it changes with time).
    public var showsBlockedTime: Bool
    /// "# " lines after the header, about the capture (pprof skips them).
    public var comments: [String]

    public init(profileName: String = "thread", addresses: AddressMode = .absolute, memoryMapLines: [String]? = nil,
                showsBlockedTime: Bool = false, comments: [String] = []) {
        self.profileName = profileName
        self.addresses = addresses
        self.memoryMapLines = memoryMapLines
        self.showsBlockedTime = showsBlockedTime
        self.comments = comments
    }

    /// Go's printStackRecord, for goroutine profiles: runtime.goexit never shows, nor
    /// the runtime.* frames before the first other one (gopark and the like), unless
    /// that would leave nothing. Indexed [location, line].
    static func goHiddenFrames(_ locations: [Location]) -> Set<[Int]> {
        var hidden: Set<[Int]> = []
        var showing = false
        for (index, location) in locations.enumerated() {
            for (lineIndex, frame) in location.lines.enumerated() {
                if frame.function.isEmpty { showing = true; continue }
                if frame.function == "runtime.goexit" || (!showing && frame.function.hasPrefix("runtime.")) {
                    hidden.insert([index, lineIndex])
                } else {
                    showing = true
                }
            }
        }
        return showing ? hidden : []
    }

    /// Where a kernel frame's file:line would go.
    static let kernelFile = "[kernel]"
    /// The widest frame cell (function+offset) that sets its column's width.
    static let widestAlignedName = 80

    public func write(_ records: [Record]) -> String {
        let total = records.reduce(0) { $0 + $1.count }
        var text = "\(profileName) profile: total \(total)\n"
        for comment in comments { text += "# \(comment)\n" }
        // Go's own goroutine text aligns every cell; elsewhere a very long name (C++
        // templates) overflows its column instead of padding its whole record.
        let tabs = TabWriter(widestAligned: profileName == "goroutine" ? nil : Self.widestAlignedName)
        // A system call's argument can be a thread id (pthread_join's futex waits on the
        // joined thread's id): as thread ids, left out of relative output.
        let threadIDs = addresses == .relative ? Set(records.flatMap(\.threadIDs).filter { $0 != 0 }.map(String.init)) : []
        for var record in records {
            // A kernel frame without an address cannot be written in this format.
            record.locations.removeAll { $0.address == 0 }
            text += "\(record.count) \(Grouper.atKey(record, addresses: addresses))\n"
            // Go's own line, where Go puts it: right after the "@" line.
            if !record.labels.isEmpty { text += GoLabels.prefix + GoLabels.format(record.labels) + "\n" }
            if !record.processes.isEmpty { text += ProcessLine.format(record.processes, withPIDs: addresses != .relative) + "\n" }
            if let state = record.state {
                // Relative addresses are for comparing runs: leave out what differs between
                // runs of the same program state (thread ids, pointer arguments).
                let stable = addresses == .relative
                text += StateLine.format(stable ? state.withoutRunDependentArguments(threadIDs: threadIDs) : state,
                                         threadIDs: stable ? [] : record.threadIDs, names: record.threadNames,
                                         showsBlockedTime: showsBlockedTime) + "\n"
                if let wait = state.wait { text += WaitLine.prefix + wait + "\n" }
            }
            if record.state == nil, let prefix = MembersLine.prefix(of: profileName), !record.threadNames.isEmpty {
                text += MembersLine.format(prefix: prefix, ids: addresses == .relative ? [] : record.threadIDs,
                                           states: record.threadNames) + "\n"
            }
            var frameLines: [String] = []
            let hidden = profileName == "goroutine" ? PprofTextWriter.goHiddenFrames(record.locations) : []
            for (index, location) in record.locations.enumerated() {
                let address = hex(Grouper.printedAddress(location, addresses))
                for (lineIndex, frame) in location.lines.enumerated() where !hidden.contains([index, lineIndex]) {
                    if frame.function.isEmpty {
                        // No symbol: the object and the offset in it, as pprof and perf name such
                        // frames ([/usr/bin/sleep+0x34ae], what addr2line -e takes).
                        frameLines.append("#\t\(address)" + (location.objectOffset(quoting: FieldQuoting.quoted).map { "\t" + $0 } ?? ""))
                    } else {
                        // A hostile symbol or file name is quoted: it cannot split the line or start another.
                        // A kernel frame has no file to name: it says it is the kernel's.
                        let file = location.isKernel ? Self.kernelFile
                            : (frame.file.isEmpty ? "??" : FieldQuoting.quoted(frame.file)) + ":\(frame.line)"
                        frameLines.append("#\t\(address)\t\(FieldQuoting.quoted(frame.function))+\(hex(frame.offset))\t\(file)")
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
    public var comments: [String] = []
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
        var current: (record: Record, atLine: Int, addresses: [UInt64], frames: [(UInt64, FrameLine, FrameOrigin)])?

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
            if line.hasPrefix(StateLine.prefix) {
                guard current != nil else { throw FormatError(line: number, reason: "state line outside a record") }
                guard let (state, threads, names) = StateLine.parse(line) else {
                    throw FormatError(line: number, reason: "expected \"# state: X (name) [syscall: ...] [wchan: ...] [threads: ...] [names: ...]\"")
                }
                current!.record.state = state
                current!.record.threadIDs = threads
                current!.record.threadNames = names
            } else if line.hasPrefix(WaitLine.prefix) {
                guard current?.record.state != nil, current!.frames.isEmpty else {
                    throw FormatError(line: number, reason: "a \"# waits: \" line goes right after a state line")
                }
                current!.record.state!.wait = String(line.dropFirst(WaitLine.prefix.count))
            } else if current != nil, let prefix = MembersLine.prefixes.first(where: line.hasPrefix) {
                // Inside a record only: before the first, "# goroutines: 7, and 4 of the
                // runtime not shown" is the profile's comment.
                guard let (ids, states) = MembersLine.parse(line.dropFirst(prefix.count)) else {
                    throw FormatError(line: number, reason: "expected \"\(prefix)ID,... states: STATE,...\" in a record")
                }
                current!.record.threadIDs = ids
                current!.record.threadNames = states
            } else if current != nil, let prefix = ProcessLine.prefixes.first(where: line.hasPrefix) {
                guard let processes = ProcessLine.parse(line.dropFirst(prefix.count)) else {
                    throw FormatError(line: number, reason: "expected \"\(prefix)PID \"COMMAND\"[, ...]\"")
                }
                current!.record.processes = processes
            } else if current != nil, line.hasPrefix(GoLabels.prefix) {
                guard let labels = GoLabels.parse(line.dropFirst(GoLabels.prefix.count)) else {
                    throw FormatError(line: number, reason: "expected \"# labels: {\"key\":\"value\", ...}\"")
                }
                current!.record.labels = labels
            } else if line.hasPrefix("# truncated: ") {
                guard current != nil else { throw FormatError(line: number, reason: "truncation note outside a record") }
                current!.record.truncation = String(line.dropFirst("# truncated: ".count))
            } else if line.hasPrefix("# ") && current == nil && profile.records.isEmpty {
                profile.comments.append(String(line.dropFirst(2)))
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
              let total = Int(parts[3]), total >= 0, total <= Int.max / 2 else { return nil }
        return (String(parts[0]), total)
    }

    private static func parseRecordLine(_ line: String, number: Int) throws(FormatError) -> (Int, [UInt64]) {
        let parts = line.split(separator: " ", omittingEmptySubsequences: false)
        guard parts.count >= 3, let count = Int(parts[0]), count > 0, parts[1] == "@" else {
            throw FormatError(line: number, reason: "expected \"N @ 0x...\"")
        }
        guard count <= Record.maximumCount else { throw FormatError(line: number, reason: "count \(count) is too large") }
        var addresses: [UInt64] = []
        for part in parts[2...] {
            guard let address = parseHex(part), address > 0 else {
                throw FormatError(line: number, reason: "bad address \"\(part)\"")
            }
            addresses.append(address)
        }
        return (count, addresses)
    }

    /// The frame's address, its line, and whether it is the kernel's (`[kernel]` where
    /// the file goes: a kernel frame has no file, and relative addresses of the kernel
    /// are not in the kernel's half of the address space).
    /// Where a frame line says its code is, beyond its address.
    enum FrameOrigin {
        case user
        case kernel
        /// No symbol: the object, and the offset of the address in it.
        case module(String, UInt64)
    }

    private static func parseFrame(_ line: String, number: Int) throws(FormatError) -> (UInt64, FrameLine, FrameOrigin) {
        let fields = line.split(separator: "\t", omittingEmptySubsequences: true)
        guard fields.first == "#", (2...4).contains(fields.count), let address = parseHex(fields[1]) else {
            throw FormatError(line: number, reason: "expected \"#<tab>0x..<tab>func+0x..<tab>file:line\"")
        }
        let unnamed = FrameLine(function: "", offset: 0, file: "", line: 0)
        if fields.count == 2 { return (address, unnamed, .user) }
        if fields.count == 3 {
            guard fields[2].hasPrefix("["), fields[2].hasSuffix("]"),
                  let (module, offsetText) = FieldQuoting.read(fields[2].dropFirst().dropLast(), bareUntil: { $0.lastRange(of: "+0x")?.lowerBound }),
                  offsetText.hasPrefix("+"), let offset = parseHex(offsetText.dropFirst()) else {
                throw FormatError(line: number, reason: "expected \"[object+0xOFFSET]\" for a frame without a symbol")
            }
            return (address, unnamed, .module(module, offset))
        }
        if fields[3] == PprofTextWriter.kernelFile {
            guard let (function, offsetText) = FieldQuoting.read(fields[2], bareUntil: { $0.lastRange(of: "+0x")?.lowerBound }),
                  offsetText.hasPrefix("+"), let offset = parseHex(offsetText.dropFirst()) else {
                throw FormatError(line: number, reason: "expected \"func+0xOFFSET\"")
            }
            return (address, FrameLine(function: function, offset: offset, file: "", line: 0), .kernel)
        }
        // Bare, up to the last "+0x" (function names may contain "+": C++ operator+) and
        // the last ":" (file names may contain ":"); or quoted (FieldQuoting).
        guard let (function, offsetText) = FieldQuoting.read(fields[2], bareUntil: { $0.lastRange(of: "+0x")?.lowerBound }),
              offsetText.hasPrefix("+"), let offset = parseHex(offsetText.dropFirst()),
              let (file, lineText) = FieldQuoting.read(fields[3], bareUntil: { $0.lastIndex(of: ":") }),
              lineText.hasPrefix(":"), let lineNumber = Int(lineText.dropFirst()) else {
            throw FormatError(line: number, reason: "expected \"func+0xOFFSET\" and \"file:line\"")
        }
        let quotedFile = fields[3].hasPrefix("\"")
        return (address, FrameLine(function: function, offset: offset,
                                   file: file == "??" && !quotedFile ? "" : file, line: lineNumber), .user)
    }

    /// Splits the frame lines among the "@" addresses. A location's lines all show
    /// its call site (address - 1). Go hides leading runtime frames, so an address
    /// may have no lines. A run of equal addresses (recursion) shares its run of
    /// lines evenly, since equal addresses symbolize alike.
    private static func locations(_ addresses: [UInt64], _ frames: [(UInt64, FrameLine, FrameOrigin)], line: Int) throws(FormatError) -> [Location] {
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
                var module = "", bias: UInt64 = 0
                if site >= kernelHalf || frames[start..<end].contains(where: { if case .kernel = $0.2 { true } else { false } }) {
                    module = Location.kernelModule
                } else if let first = frames[start..<end].first, case .module(let path, let offset) = first.2 {
                    (module, bias) = (path, site &- offset)
                }
                result.append(Location(address: site, moduleBias: bias, module: module, lines: frames[start..<end].map(\.1)))
            }
            frameIndex += lineCount
            addressIndex += run
        }
        guard frameIndex == frames.count else {
            throw FormatError(line: line, reason: "frame line for \(hex(frames[frameIndex].0)) matches no address of the record")
        }
        return result
    }

    /// x86_64 kernel addresses live in the upper canonical half.
    static let kernelHalf: UInt64 = 0xffff_8000_0000_0000
}

/// `# state: S (sleeping) syscall: epoll_wait(3, …) wchan: do_epoll_wait threads: 12529,12530 names: poller`,
/// the line after a record's "@" line. pprof ignores it like every "#" line.
extension ThreadState {
    /// Arguments that are addresses (hex) shown as "…".
    /// Without what differs between runs of the same program state: pointers, the
    /// ids of the process's threads, task ids.
    func withoutRunDependentArguments(threadIDs: Set<String>) -> ThreadState {
        var copy = self
        copy.systemCall?.arguments = systemCall?.arguments.map { $0.hasPrefix("0x") || threadIDs.contains($0) ? "…" : $0 } ?? []
        // Task ids, like thread ids, follow the order things happened in.
        copy.swiftTasks = []
        return copy
    }
}

/// `# process: 1234 "postgres: app db 127.0.0.1 UPDATE waiting"` after a record's
/// "@" line where a capture spans several processes: its pid and what ps shows for
/// it (always quoted: the process wrote it), then `pid-in-namespace: 7` when it sees
/// itself by another pid. A record merged from several (--merge-processes) lists each:
/// `# processes: 1234 "nginx: worker process", 1235 "nginx: worker process"`. Without
/// the pids in relative output, as without thread ids.
enum ProcessLine {
    static let prefixes = ["# process: ", "# processes: "]
    private static let namespaceMarker = " pid-in-namespace: "

    static func format(_ processes: [ProcessIdentity], withPIDs: Bool) -> String {
        (processes.count == 1 ? prefixes[0] : prefixes[1]) + processes.map { process in
            (withPIDs ? "\(process.pid) " : "") + NameQuoting.alwaysQuoted(process.commandLine)
                + (withPIDs ? process.namespacePID.map { namespaceMarker + String($0) } ?? "" : "")
        }.joined(separator: ", ")
    }

    static func parse(_ text: Substring) -> [ProcessIdentity]? {
        var processes: [ProcessIdentity] = []
        var rest = text
        while true {
            var pid: Int32 = 0
            if let space = rest.firstIndex(of: " "), rest.first != "\"" {
                guard let number = Int32(rest[..<space]), number > 0 else { return nil }
                pid = number
                rest = rest[rest.index(after: space)...]
            }
            guard let (command, after) = NameQuoting.readQuoted(rest) else { return nil }
            var process = ProcessIdentity(pid: pid, commandLine: command, name: "")
            rest = after
            if rest.hasPrefix(namespaceMarker) {
                rest = rest.dropFirst(namespaceMarker.count)
                let digits = rest.prefix { $0.isASCII && $0.isNumber }
                guard let own = Int32(digits) else { return nil }
                process.namespacePID = own
                rest = rest.dropFirst(digits.count)
            }
            processes.append(process)
            if rest.isEmpty { return processes }
            guard rest.hasPrefix(", ") else { return nil }
            rest = rest.dropFirst(2)
        }
    }
}

/// `# waits: mutex audit_lock held by auditor (26225)`, the line after a blocked
/// thread's state line where swiftprof knows what it waits for (ThreadWaits).
enum WaitLine {
    static let prefix = "# waits: "
}

enum StateLine {
    static let prefix = "# state: "
    private static let markers = [" syscall: ", " wchan: ", " blocked: ", " tasks: ", " threads: ", " names: "]

    static func format(_ state: ThreadState, threadIDs: [Int32], names: [String] = [], showsBlockedTime: Bool) -> String {
        var line = "\(prefix)\(state.code) (\(state.codeName))"
        if let call = state.systemCall { line += " syscall: \(call)" }
        if !state.wchan.isEmpty { line += " wchan: \(state.wchan)" }
        if showsBlockedTime, let blocked = state.blockedNanoseconds {
            let millis = blocked / 1_000_000
            let fraction = String(millis % 1000)
            line += " blocked: \(millis / 1000).\(String(repeating: "0", count: 3 - fraction.count))\(fraction)s"
        }
        if !state.swiftTasks.isEmpty { line += " tasks: " + state.swiftTasks.map(String.init).joined(separator: ",") }
        if !threadIDs.isEmpty { line += " threads: " + threadIDs.map(String.init).joined(separator: ",") }
        if !names.isEmpty { line += " names: " + names.map(NameQuoting.quoted).joined(separator: ",") }
        return line
    }

    static func parse(_ line: String) -> (ThreadState, [Int32], [String])? {
        var rest = Substring(line.dropFirst(prefix.count))
        guard let code = rest.first else { return nil }
        var fields: [String: Substring] = [:]
        // The names come last and are the target's to choose: they start at the first
        // marker (a quoted name may hold " names: " itself). The other fields are split
        // off from the end, in reverse order of appearance.
        if let range = rest.firstRange(of: " names: ") {
            fields[" names: "] = rest[range.upperBound...]
            rest = rest[..<range.lowerBound]
        }
        for marker in markers.reversed() where marker != " names: " {
            if let range = rest.lastRange(of: marker) {
                fields[marker] = rest[range.upperBound...]
                rest = rest[..<range.lowerBound]
            }
        }
        var state = ThreadState(code: code)
        guard rest == "\(code) (\(state.codeName))" else { return nil }
        if let call = fields[" syscall: "] {
            guard call.hasSuffix(")"), let open = call.firstIndex(of: "(") else { return nil }
            let inner = call[call.index(after: open)..<call.index(before: call.endIndex)]
            state.systemCall = SystemCall(name: String(call[..<open]),
                                          arguments: inner.isEmpty ? [] : inner.components(separatedBy: ", "))
        }
        state.wchan = fields[" wchan: "].map(String.init) ?? ""
        if let blocked = fields[" blocked: "] {
            guard blocked.hasSuffix("s"), let seconds = Double(blocked.dropLast()) else { return nil }
            state.blockedNanoseconds = UInt64((seconds * 1e9).rounded())
        }
        if let list = fields[" tasks: "] {
            for item in list.split(separator: ",") {
                guard let id = UInt64(item) else { return nil }
                state.swiftTasks.append(id)
            }
        }
        var threads: [Int32] = []
        if let list = fields[" threads: "] {
            for item in list.split(separator: ",") {
                guard let tid = Int32(item) else { return nil }
                threads.append(tid)
            }
        }
        var names: [String] = []
        if let list = fields[" names: "] {
            guard let read = NameQuoting.list(list) else { return nil }
            names = read
        }
        return (state, threads, names)
    }
}

/// `# tasks: 10,11,12,13 states: "suspended, task group child"` after a task
/// record's "@" line (dump --tasks), `# goroutines: 19,20 states: "chan receive"`
/// after a goroutine record's: the ids and their distinct states, as the runtime
/// says them (Go's wait reasons, as its debug=2 heads each goroutine).
enum MembersLine {
    static let prefixes = ["# tasks: ", "# goroutines: "]

    static func prefix(of profileName: String) -> String? {
        switch profileName {
        case "task": prefixes[0]
        case "goroutine": prefixes[1]
        default: nil
        }
    }

    static func format(prefix: String, ids: [Int32], states: [String]) -> String {
        let list = ids.map(String.init).joined(separator: ",")
        return prefix + (list.isEmpty ? "" : list + " ") + "states: " + states.map(NameQuoting.quoted).joined(separator: ",")
    }

    /// The line after its prefix.
    static func parse(_ rest: Substring) -> ([Int32], [String])? {
        // No ids (--addresses relative): the states follow the prefix at once.
        guard let marker = rest.firstRange(of: " states: ") ?? (rest.hasPrefix("states: ") ? rest.firstRange(of: "states: ") : nil)
        else { return nil }
        var ids: [Int32] = []
        for item in rest[..<marker.lowerBound].split(separator: ",") {
            guard let id = Int32(item) else { return nil }
            ids.append(id)
        }
        guard let states = NameQuoting.list(rest[marker.upperBound...]) else { return nil }
        return (ids, states)
    }
}

/// `# labels: {"job":"import", "shard":"1"}`: a goroutine record's profiler labels,
/// as Go's debug=1 writes them (each pair as "%q:%q", sorted, joined by ", ").
public enum GoLabels {
    static let prefix = "# labels: "

    public static func format(_ labels: [String: String]) -> String {
        guard !labels.isEmpty else { return "" }
        let pairs = labels.map { NameQuoting.alwaysQuoted($0.key) + ":" + NameQuoting.alwaysQuoted($0.value) }.sorted()
        return "{" + pairs.joined(separator: ", ") + "}"
    }

    static func parse(_ text: Substring) -> [String: String]? {
        guard text.hasPrefix("{"), text.hasSuffix("}") else { return nil }
        var rest = text.dropFirst().dropLast()
        var labels: [String: String] = [:]
        while !rest.isEmpty {
            guard let (key, afterKey) = NameQuoting.readQuoted(rest), afterKey.hasPrefix(":"),
                  let (value, afterValue) = NameQuoting.readQuoted(afterKey.dropFirst()) else { return nil }
            labels[key] = value
            rest = afterValue.hasPrefix(", ") ? afterValue.dropFirst(2) : afterValue
            if !afterValue.isEmpty && !afterValue.hasPrefix(", ") { return nil }
        }
        return labels
    }
}

private extension Substring {
    func components(separatedBy separator: String) -> [String] {
        var parts: [String] = []
        var rest = self
        while let range = rest.firstRange(of: separator) {
            parts.append(String(rest[..<range.lowerBound]))
            rest = rest[range.upperBound...]
        }
        parts.append(String(rest))
        return parts
    }
}
