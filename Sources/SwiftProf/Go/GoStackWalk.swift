// Go's own way up a stack: the pcsp table gives, at every pc, how far above sp
// the return address is. No frame pointer and no register but sp and pc, so a
// Go thread blocked in a system call unwinds from what /proc gives, without a
// stop. Every return address must land in Go code the table knows.

/// A Go binary loaded in the target: its table and where it was loaded.
struct GoModule {
    let table: GoPclntab
    let bias: UInt64
    let path: String

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
    /// On a thread's own stack, asmcgocall also ends the walk (what runs above it is
    /// on a goroutine's stack, which Go reaches through the g, not the stack).
    var threadStack = true

    static let outermostFunctions: Set<String> = [
        "runtime.goexit", "runtime.mstart", "runtime.mcall", "runtime.morestack", "runtime.rt0_go",
    ]

    /// From `pc` and `sp`; `leafIsReturnAddress` when the first pc was pushed by a
    /// call (a parked goroutine's saved pc), not where the code stopped.
    func walk(pc: UInt64, sp: UInt64, leafIsReturnAddress: Bool = false, limit: Int) -> Result {
        var result = Result()
        var pc = pc, sp = sp
        var isReturnAddress = leafIsReturnAddress
        while true {
            let link = pc &- module.bias
            guard let function = module.table.function(at: isReturnAddress ? link - 1 : link) else {
                result.end = result.pcs.isEmpty ? .truncated("\(hex(pc)) is not in Go code") : .leftGoCode(pc: pc, sp: sp)
                return result
            }
            let lookup = isReturnAddress && link > function.entry ? link - 1 : link
            result.pcs.append(pc)
            let name = module.table.name(of: function)
            if GoStackWalk.outermostFunctions.contains(name) || (threadStack && name == "runtime.asmcgocall") {
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
            guard let returnAddress = word(sp + UInt64(delta)) else {
                result.end = .truncated("return address of \(name) is outside the copied stack")
                return result
            }
            if returnAddress == 0 { return result }
            pc = returnAddress
            sp += UInt64(delta) + 8
            isReturnAddress = true
        }
    }
}
