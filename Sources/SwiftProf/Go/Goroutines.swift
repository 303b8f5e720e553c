// A Go program's goroutines, read from its memory while every thread is stopped:
// runtime.allgs, each g's status and saved registers, and the bytes of each
// goroutine's stack, so the walks run after the program goes on.

/// A goroutine as copied while the process was stopped.
struct CapturedGoroutine {
    let id: UInt64
    let pc: UInt64
    let sp: UInt64
    /// A parked goroutine's saved pc was pushed by a call; a running one's is where it stopped.
    let leafIsReturnAddress: Bool
    let stack: StackCopy
    /// Why its stack could not be copied, when it could not.
    let note: String?
    /// What Go's tracebacks print in brackets: "chan receive", "syscall", "running"...
    var state = ""
}

struct GoroutineList {
    var goroutines: [CapturedGoroutine] = []
    /// Goroutines of the runtime itself, which Go's own profile leaves out too.
    var systemGoroutines = 0
    /// Entries of runtime.allgs not read: the stop window reached its bound first.
    var unread = 0
}

struct GoroutineReader {
    let pid: Int32
    let layout: GoRuntimeLayout
    let module: GoModule
    let stackLimit: Int
    /// runtime.waitReasonStrings, read from the binary (empty when it is not there).
    var waitReasons: [String] = []
    /// How long the process may stay stopped while goroutines are read (--stop-timeout):
    /// past it, the rest of the list is left unread and said so.
    var budgetNanoseconds: UInt64 = .max

    // runtime2.go: _Gidle, _Grunning, _Gdead, _Gdeadextra (Go 1.26 and later: a dead g
    // kept for a C thread that may call into Go); _Gscan is a bit over them.
    private static let idle: UInt32 = 0, running: UInt32 = 2, dead: UInt32 = 6, deadExtra: UInt32 = 11
    private static let scanBit: UInt32 = 0x1000
    /// A corrupt allgs must not make us read forever.
    private static let maximumGoroutines = 10_000_000

    func read(threads: [CapturedThread]) -> Result<GoroutineList, TargetError> {
        guard let slice = bytes(layout.allgs &+ module.bias, 16) else { return .failure(.noGoroutines(pid: pid, reason: "runtime.allgs is unreadable")) }
        let array = word(slice, 0), count = Int(clamping: word(slice, 8))
        guard count <= GoroutineReader.maximumGoroutines, let pointers = bytes(array, count * 8) else {
            return .failure(.noGoroutines(pid: pid, reason: "runtime.allgs does not hold a readable list (\(count) entries)"))
        }
        var list = GoroutineList()
        let start = monotonicNanoseconds()
        for index in 0..<count {
            // Looked at every 256 goroutines: a clock read costs more than a small g.
            if index & 255 == 255, monotonicNanoseconds() - start > budgetNanoseconds {
                list.unread = count - index
                break
            }
            guard let g = bytes(word(pointers, index * 8), layout.gSize) else { continue }
            let status = UInt32(truncatingIfNeeded: word(g, layout.status)) & ~GoroutineReader.scanBit
            if [GoroutineReader.dead, GoroutineReader.deadExtra, GoroutineReader.idle].contains(status) { continue }
            if isSystem(startPC: word(g, layout.startPC)) {
                list.systemGoroutines += 1
                continue
            }
            var goroutine = capture(g, status: status, threads: threads)
            goroutine.state = stateName(status: status, waitReason: Int(g[layout.waitReason]))
            list.goroutines.append(goroutine)
        }
        return .success(list)
    }

    /// The way Go's traceback starts: from the system call it entered, else from the
    /// registers saved when it parked; a running one from its thread's registers.
    private func capture(_ g: [UInt8], status: UInt32, threads: [CapturedThread]) -> CapturedGoroutine {
        let id = word(g, layout.goid), stackHi = word(g, layout.stackHi), stackLo = word(g, layout.stackHi - 8)
        var pc = word(g, layout.schedPC), sp = word(g, layout.schedSP), isReturnAddress = true
        if word(g, layout.syscallSP) != 0 {
            pc = word(g, layout.syscallPC)
            sp = word(g, layout.syscallSP)
        } else if status == GoroutineReader.running {
            let m = word(g, layout.m)
            let tid = bytes(m &+ UInt64(layout.mProcID), 8).map { word($0, 0) }
            guard let thread = threads.first(where: { UInt64($0.tid) == tid }), thread.registers.sp >= stackLo,
                  thread.registers.sp < stackHi else {
                return CapturedGoroutine(id: id, pc: pc, sp: sp, leafIsReturnAddress: true, stack: StackCopy(start: sp, bytes: []),
                                         note: "running outside its own stack")
            }
            (pc, sp, isReturnAddress) = (thread.registers.pc, thread.registers.sp, false)
        }
        guard sp != 0, sp < stackHi else {
            return CapturedGoroutine(id: id, pc: pc, sp: sp, leafIsReturnAddress: isReturnAddress,
                                     stack: StackCopy(start: sp, bytes: []), note: "saved sp is outside its stack")
        }
        let length = Int(min(stackHi - sp, UInt64(stackLimit)))
        let copy = bytes(sp, length)
        return CapturedGoroutine(id: id, pc: pc, sp: sp, leafIsReturnAddress: isReturnAddress,
                                 stack: StackCopy(start: sp, bytes: copy ?? []),
                                 note: copy == nil ? "its stack is unreadable" : nil)
    }

    /// goroutineheader's words: the status, or for a waiting goroutine its reason.
    private func stateName(status: UInt32, waitReason: Int) -> String {
        switch status {
        case 1: return "runnable"
        case 2: return "running"
        case 3: return "syscall"
        case 4: return waitReason > 0 && waitReason < waitReasons.count ? waitReasons[waitReason] : "waiting"
        case 8: return "copystack"
        case 9: return "preempted"
        default: return "status \(status)"
        }
    }

    /// Go's isSystemGoroutine: started by a runtime function other than runtime.main.
    /// (The finalizer goroutine counts as the runtime's, as Go counts it while idle.)
    private func isSystem(startPC: UInt64) -> Bool {
        guard let function = module.function(at: startPC) else { return false }
        let name = module.table.name(of: function)
        return name.hasPrefix("runtime.") && name != "runtime.main"
    }

    private func bytes(_ address: UInt64, _ count: Int) -> [UInt8]? { Ptrace.readMemory(pid: pid, at: address, count: count) }

    private func word(_ bytes: [UInt8], _ offset: Int) -> UInt64 {
        offset >= 0 && offset + 8 <= bytes.count ? littleEndianWord(bytes, at: offset) : 0
    }
}

extension CapturedGoroutine {
    /// Walked with Go's table and recorded the way Go's runtime records it.
    func stack(in module: GoModule, maxFrames: Int) -> ThreadStack {
        let walk = GoStackWalk(module: module, word: { stack.word(at: $0) }, threadStack: false)
            .walk(pc: pc, sp: sp, leafIsReturnAddress: leafIsReturnAddress, limit: maxFrames)
        // Go records a leaf that is not a return address as pc + 1, so that every pc - 1 is inside its instruction.
        var physical = walk.pcs
        if !leafIsReturnAddress, !physical.isEmpty { physical[0] += 1 }
        let locations = module.runtimePCs(physical).map(module.runtimeFrame)
        var truncation: String?
        switch walk.end {
        case .outermost: truncation = nil
        case .truncated(let reason): truncation = reason
        case .leftGoCode(let next, _): truncation = "returns into non-Go code at \(hex(next))"
        }
        if let note { truncation = note }
        return ThreadStack(tid: Int32(truncatingIfNeeded: id), name: state, locations: locations, truncation: truncation)
    }
}
