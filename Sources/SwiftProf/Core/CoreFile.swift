// A core file as its notes and program headers describe it: the threads with
// their registers (NT_PRSTATUS), the process (NT_PRPSINFO), the signal that
// ended it (NT_SIGINFO), the files it had mapped (NT_FILE), its auxiliary
// vector (NT_AUXV) and its memory (PT_LOAD). Every number in it is the dead
// target's choice: each one is checked before it is used.
import CSwiftProf

/// A thread of the core, as NT_PRSTATUS records it.
struct CoreThread: Equatable {
    let tid: Int32
    let registers: RegisterSet
    /// The signal the thread was taking when the core was written (pr_cursig), 0 for none.
    let currentSignal: Int32
}

/// A file mapping, as NT_FILE lists it.
struct CoreFileMapping: Equatable {
    let start: UInt64
    let end: UInt64
    /// In bytes.
    let fileOffset: UInt64
    let path: String
}

/// The signal that ended the process, and the thread that took it.
public struct CoreSignal: Equatable, Sendable {
    public let number: Int32
    public let code: Int32
    /// The faulting address, for the signals that have one (SIGSEGV, SIGBUS, SIGILL, SIGFPE).
    public let address: UInt64?
    public let tid: Int32

    /// How the comment that tells it starts: it heads the formats for reading, as deadlocks do.
    public static let commentPrefix = "signal: "

    /// "SIGSEGV at 0x10 (SEGV_MAPERR)"
    public var description: String {
        var text = SignalNames.name(number)
        if let address { text += " at \(hex(address))" }
        if let code = SignalNames.codeName(signal: number, code: code) { text += " (\(code))" }
        return text
    }
}

struct CoreFile {
    let path: String
    let bytes: CoreBytes
    let processID: Int32
    /// The process's name (pr_fname: its main thread's comm), as the target chose it.
    let processName: String
    let threads: [CoreThread]
    let signal: CoreSignal?
    let mappings: [CoreFileMapping]
    let auxiliaryVector: [UInt64: UInt64]
    let segments: [CoreSegment]

    private static let prstatus: UInt32 = 1, prpsinfo: UInt32 = 3, auxvNote: UInt32 = 6
    private static let siginfo: UInt32 = 0x5349_4749, file: UInt32 = 0x4649_4c45
    private static let prstatusSize = 336, registersOffset = 112

    static func read(path: String) throws(CoreError) -> CoreFile {
        let bytes = try CoreBytes(path: path)
        let (allSegments, notes) = try bytes.headers(path: path)
        let segments = allSegments.filter { $0.type == 1 }.compactMap { segment in
            // A segment whose bytes lie past the end of the file was cut short: its
            // memory reads as missing, not as whatever follows.
            let available = segment.offset >= UInt64(bytes.count) ? 0 : min(segment.file_size, UInt64(bytes.count) - segment.offset)
            let (end, overflow) = segment.vaddr.addingReportingOverflow(segment.memory_size)
            return overflow || segment.memory_size == 0 ? nil
                : CoreSegment(start: segment.vaddr, end: end, flags: segment.flags, fileOffset: segment.offset,
                              bytesInFile: available, truncated: available < segment.file_size)
        }
        // A core cut short (a full disk when it was written, a partial copy) would
        // print stacks cut where its bytes end, as if the threads had been there.
        if let cut = segments.first(where: \.truncated) {
            throw CoreError(.malformed, "\(path): truncated: its memory at \(hex(cut.start)) lies past its end (\(bytes.count) bytes)")
        }
        func desc(_ note: CoreNote) -> [UInt8] {
            bytes.bytes(at: note.descriptionOffset, count: Int(clamping: note.descriptionSize)) ?? []
        }
        var threads: [CoreThread] = []
        var signalInfo: [Int32: [UInt8]] = [:]
        var processID: Int32 = 0, processName = "", mappings: [CoreFileMapping] = [], auxv: [UInt64: UInt64] = [:]
        for note in notes where note.name == "CORE" {
            let data = desc(note)
            switch note.type {
            case prstatus:
                guard data.count >= prstatusSize else { throw CoreError(.malformed, "\(path): an NT_PRSTATUS note is \(data.count) bytes, not \(prstatusSize)") }
                threads.append(thread(data))
            case prpsinfo where data.count >= 136:
                processID = int32(data, 24)
                processName = RawBytes.decode(data[40..<56].prefix { $0 != 0 })
            case siginfo where data.count >= 24:
                // It follows the NT_PRSTATUS of the thread it belongs to.
                if let tid = threads.last?.tid { signalInfo[tid] = data }
            case auxvNote:
                for at in stride(from: 0, to: data.count - 15, by: 16) {
                    auxv[word(data, at)] = word(data, at + 8)
                }
            case file:
                mappings = fileMappings(data)
            default:
                break
            }
        }
        guard !threads.isEmpty else { throw CoreError(.malformed, "\(path): no thread in it (no NT_PRSTATUS note)") }
        if processID == 0 { processID = threads[0].tid }
        return CoreFile(path: path, bytes: bytes, processID: processID, processName: processName, threads: threads,
                        signal: signal(threads: threads, info: signalInfo), mappings: mappings, auxiliaryVector: auxv,
                        segments: segments.sorted { $0.start < $1.start })
    }

    /// pr_pid at 32, pr_cursig at 12, pr_reg (user_regs_struct: r15 r14 r13 r12 rbp rbx r11 r10 r9 r8
    /// rax rcx rdx rsi rdi orig_rax rip cs eflags rsp ...) at 112.
    private static func thread(_ data: [UInt8]) -> CoreThread {
        func register(_ index: Int) -> UInt64 { word(data, registersOffset + 8 * index) }
        // In DWARF's order: rax rdx rcx rbx rsi rdi rbp rsp r8..r15 rip.
        let order = [10, 12, 11, 5, 13, 14, 4, 19, 9, 8, 7, 6, 3, 2, 1, 0, 16]
        let registers = RegisterSet(values: order.map(register), origRAX: register(15))
        let signal = Int32(data[12]) | Int32(data[13]) << 8
        return CoreThread(tid: int32(data, 32), registers: registers, currentSignal: signal)
    }

    /// count, page size, then (start, end, page offset) each, then the paths, NUL-terminated.
    private static func fileMappings(_ data: [UInt8]) -> [CoreFileMapping] {
        guard data.count >= 16 else { return [] }
        let count = Int(clamping: word(data, 0)), pageSize = word(data, 8)
        guard count <= (data.count - 16) / 24 else { return [] }
        var names = data[(16 + 24 * count)...].split(separator: 0, omittingEmptySubsequences: false).makeIterator()
        return (0..<count).compactMap { index in
            let at = 16 + 24 * index
            let (offset, overflow) = word(data, at + 16).multipliedReportingOverflow(by: pageSize)
            guard let name = names.next(), !overflow, word(data, at) < word(data, at + 8) else { return nil }
            return CoreFileMapping(start: word(data, at), end: word(data, at + 8), fileOffset: offset, path: RawBytes.decode(name))
        }
    }

    /// The thread that was taking a signal (the kernel writes it first), with its siginfo.
    private static func signal(threads: [CoreThread], info: [Int32: [UInt8]]) -> CoreSignal? {
        guard let thread = threads.first(where: { $0.currentSignal != 0 }) else { return nil }
        let data = info[thread.tid]
        let number = data.map { int32($0, 0) } ?? thread.currentSignal
        let code = data.map { int32($0, 8) } ?? 0
        // si_addr is at 16 for the faults; a signal sent by a process (si_code <= 0) has none.
        let hasAddress = [4, 7, 8, 11].contains(number) && code > 0 && data != nil
        return CoreSignal(number: number, code: code, address: hasAddress ? word(data!, 16) : nil, tid: thread.tid)
    }

    private static func word(_ data: [UInt8], _ offset: Int) -> UInt64 {
        offset >= 0 && offset + 8 <= data.count ? littleEndianWord(data, at: offset) : 0
    }

    private static func int32(_ data: [UInt8], _ offset: Int) -> Int32 {
        guard offset >= 0, offset + 4 <= data.count else { return 0 }
        return Int32(bitPattern: (0..<4).reduce(UInt32(0)) { $0 | UInt32(data[offset + $1]) << (8 * $1) })
    }

    /// AT_SYSINFO_EHDR: where the kernel put the vDSO.
    var vdsoAddress: UInt64? { auxiliaryVector[33] }
    /// AT_ENTRY: the executable's entry point, in its mapping.
    var entryAddress: UInt64? { auxiliaryVector[9] }
}

/// A PT_LOAD segment: memory of the process, whose first `bytesInFile` bytes the core holds.
struct CoreSegment: Equatable {
    let start: UInt64
    let end: UInt64
    let flags: UInt32
    let fileOffset: UInt64
    let bytesInFile: UInt64
    /// The core ends before this segment's bytes do.
    let truncated: Bool
}

/// Signal names and si_code names, as the kernel's headers spell them.
enum SignalNames {
    private static let names = ["HUP", "INT", "QUIT", "ILL", "TRAP", "ABRT", "BUS", "FPE", "KILL", "USR1", "SEGV", "USR2",
                                "PIPE", "ALRM", "TERM", "STKFLT", "CHLD", "CONT", "STOP", "TSTP", "TTIN", "TTOU", "URG",
                                "XCPU", "XFSZ", "VTALRM", "PROF", "WINCH", "IO", "PWR", "SYS"]

    static func name(_ number: Int32) -> String {
        (1...31).contains(number) ? "SIG" + names[Int(number) - 1] : "signal \(number)"
    }

    static func codeName(signal: Int32, code: Int32) -> String? {
        switch (signal, code) {
        case (_, 0): return "SI_USER"
        case (_, -6): return "SI_TKILL"
        case (_, -1): return "SI_QUEUE"
        case (_, 128): return "SI_KERNEL"
        case (11, 1): return "SEGV_MAPERR"
        case (11, 2): return "SEGV_ACCERR"
        case (7, 1): return "BUS_ADRALN"
        case (7, 2): return "BUS_ADRERR"
        case (4, 1): return "ILL_ILLOPC"
        case (4, 2): return "ILL_ILLOPN"
        case (8, 1): return "FPE_INTDIV"
        case (8, 2): return "FPE_INTOVF"
        default: return nil
        }
    }
}
