// Go's own way up a stack: the pcsp table gives, at every pc, how far above sp
// the return address is. No frame pointer and no register but sp and pc, so a
// Go thread blocked in a system call unwinds from what /proc gives, without a
// stop. Every return address must land in Go code the table knows.

/// A Go binary loaded in the target: its table and where it was loaded.
struct GoModule {
    let table: GoPclntab
    let bias: UInt64
    let path: String

    /// The function holding runtime address `address`.
    func function(at address: UInt64) -> GoFunction? { table.function(at: address &- bias) }
}

struct GoStackWalk {
    enum End: Equatable {
        /// A function Go's traceback ends at (goexit, mstart, ...).
        case outermost
        /// A return address outside Go code (C that called into Go): where to go on.
        case leftGoCode(pc: UInt64, sp: UInt64)
        case truncated(String)
    }

    struct Result {
        /// Runtime addresses, leaf first.
        var pcs: [UInt64] = []
        var end: End = .outermost
    }

    let module: GoModule
    let word: (UInt64) -> UInt64?
    /// On a thread's own stack, C called through cgo returns into asmcgocall, on the
    /// thread's g0 stack; the Go frames that made the call are on the goroutine's
    /// stack, found through what asmcgocall saved (see `crossFromCgo`).
    var threadStack = true
    /// Reads the target's memory (the goroutine stack is not in the thread's copy);
    /// without it a walk ends at asmcgocall.
    var readTarget: ((UInt64, Int) -> [UInt8]?)?

    static let outermostFunctions: Set<String> = [
        "runtime.goexit", "runtime.mstart", "runtime.mcall", "runtime.morestack", "runtime.rt0_go",
    ]

    /// From `pc` and `sp`; `leafIsReturnAddress` when the first pc was pushed by a
    /// call (a parked goroutine's saved pc), not where the code stopped.
    func walk(pc: UInt64, sp: UInt64, leafIsReturnAddress: Bool = false, limit: Int) -> Result {
        var result = Result()
        var pc = pc, sp = sp
        var isReturnAddress = leafIsReturnAddress
        var goroutineStack: StackCopy?
        func load(_ address: UInt64) -> UInt64? { word(address) ?? goroutineStack?.word(at: address) }
        while true {
            // Go looks a return address up at itself, not at pc - 1 (its assembler pads a
            // trailing call so the address stays inside), which also holds for the pc
            // after runtime.asyncPreempt, where a signal, not a call, left it.
            let link = pc &- module.bias
            let lookup = module.table.function(at: link) != nil || !isReturnAddress ? link : link - 1
            guard let function = module.table.function(at: lookup) else {
                result.end = result.pcs.isEmpty ? .truncated("\(hex(pc)) is not in Go code") : .leftGoCode(pc: pc, sp: sp)
                return result
            }
            result.pcs.append(pc)
            let name = module.table.name(of: function)
            if threadStack && name == "runtime.asmcgocall" {
                guard goroutineStack == nil, let crossed = crossFromCgo(sp: sp, load: load) else {
                    result.end = .outermost
                    return result
                }
                goroutineStack = crossed
                guard let returnAddress = crossed.word(at: crossed.start) else { return result }
                pc = returnAddress
                sp = crossed.start + 8
                isReturnAddress = true
                continue
            }
            if GoStackWalk.outermostFunctions.contains(name) {
                result.end = .outermost
                return result
            }
            if result.pcs.count >= limit {
                result.end = .truncated("depth limit of \(limit) frames reached")
                return result
            }
            guard let delta = module.table.spDelta(function, at: lookup), delta >= 0 else {
                result.end = .truncated("no stack-pointer delta for \(hex(pc)) in \(name)")
                return result
            }
            guard let returnAddress = load(sp + UInt64(delta)) else {
                result.end = .truncated("return address of \(name) is outside the copied stack")
                return result
            }
            if returnAddress == 0 { return result }
            pc = returnAddress
            sp += UInt64(delta) + 8
            isReturnAddress = true
        }
    }

    /// asmcgocall (Go 1.17 and later, amd64) switched to the g0 stack and saved, at
    /// 48(SP), the g it came from (0 when it did not switch) and at 40(SP) its depth
    /// in that g's stack (stack.hi - SP, since the stack may move during a callback;
    /// the original SP itself when it did not switch). asmcgocall has no frame of
    /// its own, so the original SP points at the return address into runtime.cgocall.
    /// A goroutine in a cgo call cannot have its stack moved, so reading it live is sound.
    private func crossFromCgo(sp: UInt64, load: (UInt64) -> UInt64?) -> StackCopy? {
        guard let readTarget, let g = load(sp + 48), let saved = load(sp + 40) else { return nil }
        var originalSP = saved
        var stackEnd = saved &+ GoStackWalk.goroutineStackWindow
        if g != 0 {
            // runtime.g begins with stack{lo, hi}.
            guard let bytes = readTarget(g + 8, 8) else { return nil }
            let hi = bytes.withUnsafeBytes { $0.loadUnaligned(as: UInt64.self) }
            guard saved < hi else { return nil }
            originalSP = hi - saved
            stackEnd = min(hi, originalSP &+ GoStackWalk.goroutineStackWindow)
        }
        guard originalSP % 8 == 0, originalSP != 0, stackEnd > originalSP,
              let bytes = readTarget(originalSP, Int(stackEnd - originalSP)) ?? readTarget(originalSP, 4096) else { return nil }
        return StackCopy(start: originalSP, bytes: bytes)
    }

    static let goroutineStackWindow: UInt64 = 64 * 1024
}
