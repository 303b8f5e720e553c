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
    /// What was worked out at each pc, kept across the walks of one snapshot.
    var steps: GoWalkSteps?

    static let outermostFunctions: Set<String> = [
        "runtime.goexit", "runtime.mstart", "runtime.mcall", "runtime.morestack", "runtime.rt0_go",
    ]

    /// From `pc` and `sp`; `leafIsReturnAddress` when the first pc was pushed by a
    /// call (a parked goroutine's saved pc), not where the code stopped.
    func walk(pc: UInt64, sp: UInt64, leafIsReturnAddress: Bool = false, limit: Int) -> Result {
        var result = Result()
        result.pcs.reserveCapacity(8)  // one allocation for most stacks, not one at each doubling
        var pc = pc, sp = sp
        var isReturnAddress = leafIsReturnAddress
        // Not a nested function reading it: that would box it on the heap, once a walk
        // (100,000 boxes for as many goroutines).
        var goroutineStack: StackCopy?
        while true {
            // Go looks a return address up at itself, not at pc - 1 (its assembler pads a
            // trailing call so the address stays inside), which also holds for the pc
            // after runtime.asyncPreempt, where a signal, not a call, left it.
            let step: GoWalkSteps.Step
            if let known = steps?.known[GoWalkSteps.key(pc, isReturnAddress)] {
                step = known
            } else {
                step = self.step(pc: pc, isReturnAddress: isReturnAddress)
                steps?.known[GoWalkSteps.key(pc, isReturnAddress)] = step
            }
            guard let function = step.function else {
                result.end = result.pcs.isEmpty ? .truncated("\(hex(pc)) is not in Go code") : .leftGoCode(pc: pc, sp: sp)
                return result
            }
            result.pcs.append(pc)
            if threadStack && step.isAsmcgocall {
                guard readTarget != nil else {
                    result.end = .outermost
                    return result
                }
                guard goroutineStack == nil, let crossed = crossFromCgo(sp: sp, load: word),
                      let returnAddress = crossed.stack.word(at: crossed.returnAddressAt) else {
                    result.end = .truncated("the goroutine stack runtime.asmcgocall came from is not found")
                    return result
                }
                goroutineStack = crossed.stack
                pc = returnAddress
                sp = crossed.returnAddressAt + 8
                isReturnAddress = true
                continue
            }
            if step.isOutermost {
                result.end = .outermost
                return result
            }
            if result.pcs.count >= limit {
                result.end = .truncated("depth limit of \(limit) frames reached")
                return result
            }
            guard let delta = step.delta, delta >= 0 else {
                result.end = .truncated("no stack-pointer delta for \(hex(pc)) in \(module.table.name(of: function))")
                return result
            }
            guard let returnAddress = word(sp + UInt64(delta)) ?? goroutineStack?.word(at: sp + UInt64(delta)) else {
                result.end = .truncated("return address of \(module.table.name(of: function)) is outside the copied stack")
                return result
            }
            if returnAddress == 0 { return result }
            pc = returnAddress
            sp += UInt64(delta) + 8
            isReturnAddress = true
        }
    }

    /// asmcgocall switched to the g0 stack and saved there the g it came from (0
    /// when it did not switch) and its depth in that g's stack (stack.hi - SP, since
    /// the stack may move during a callback; the original SP itself when it did not
    /// switch): at 48(SP) and 40(SP) in Go 1.17 to 1.2x, at 8(SP) and 0(SP) in later
    /// ones. The original SP points at the return address into runtime.cgocall (or
    /// at BP saved below it), which is what tells the layouts apart.
    /// A goroutine in a cgo call cannot have its stack moved, so reading it live is sound.
    private func crossFromCgo(sp: UInt64, load: (UInt64) -> UInt64?) -> (stack: StackCopy, returnAddressAt: UInt64)? {
        guard let readTarget else { return nil }
        for (gAt, depthAt) in [(UInt64(48), UInt64(40)), (8, 0)] {
            guard let g = load(sp + gAt), let saved = load(sp + depthAt) else { continue }
            var originalSP = saved
            var stackEnd = saved &+ GoStackWalk.goroutineStackWindow
            if g != 0 {
                // runtime.g begins with stack{lo, hi}.
                guard let bytes = readTarget(g + 8, 8), bytes.count == 8 else { continue }
                let hi = littleEndianWord(bytes, at: 0)
                guard saved < hi else { continue }
                originalSP = hi - saved
                stackEnd = min(hi, originalSP &+ GoStackWalk.goroutineStackWindow)
            }
            guard originalSP % 8 == 0, originalSP != 0, stackEnd > originalSP,
                  let bytes = readTarget(originalSP, Int(stackEnd - originalSP)) ?? readTarget(originalSP, 4096) else { continue }
            let copy = StackCopy(start: originalSP, bytes: bytes)
            // Newer assemblers save BP in asmcgocall's prologue, before it takes SP:
            // the return address is then one word higher.
            for at in [originalSP, originalSP + 8] {
                guard let returnAddress = copy.word(at: at), let caller = module.function(at: returnAddress),
                      module.table.name(of: caller) == "runtime.cgocall" else { continue }
                return (copy, at)
            }
        }
        return nil
    }

    static let goroutineStackWindow: UInt64 = 64 * 1024
}

extension GoStackWalk {
    /// The function at `pc`, its name and its frame size there.
    fileprivate func step(pc: UInt64, isReturnAddress: Bool) -> GoWalkSteps.Step {
        let link = pc &- module.bias
        let lookup = module.table.function(at: link) != nil || !isReturnAddress ? link : link - 1
        guard let function = module.table.function(at: lookup) else { return GoWalkSteps.Step(function: nil, name: "", delta: nil) }
        return GoWalkSteps.Step(function: function, name: module.table.name(of: function), delta: module.table.spDelta(function, at: lookup))
    }
}

/// Each pc's step of a walk, worked out once for a snapshot's walks: 100,000
/// goroutines park at a few pcs, and the table lookups were most of their walks.
final class GoWalkSteps {
    /// No name kept (a walk copies its step at every frame): what a walk asks of the
    /// name is asked here once; an error message looks it up again.
    struct Step {
        let function: GoFunction?
        let delta: Int?
        let isOutermost: Bool
        let isAsmcgocall: Bool

        init(function: GoFunction?, name: String, delta: Int?) {
            self.function = function
            self.delta = delta
            isOutermost = GoStackWalk.outermostFunctions.contains(name)
            isAsmcgocall = name == "runtime.asmcgocall"
        }
    }

    fileprivate var known: [UInt64: Step] = [:]

    /// A pc and whether it is a return address, in one key (pcs are below 2^63).
    fileprivate static func key(_ pc: UInt64, _ isReturnAddress: Bool) -> UInt64 { isReturnAddress ? pc : pc | 1 << 63 }
}
