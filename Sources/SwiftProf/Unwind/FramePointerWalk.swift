// Frame-pointer steps over a copied stack, for code without CFI (JIT code,
// hand-written assembly, Go). Every step is validated: the frame pointer must
// lie in the copy, above the previous one and 8-aligned, and the return address
// must point into executable memory. A chain ending in fp == 0 is complete.

struct FramePointerWalk {
    let stack: StackCopy
    let isCode: (UInt64) -> Bool

    struct Result {
        var returnAddresses: [UInt64] = []
        /// nil when the chain ended with a zero frame pointer.
        var stopReason: String?
        /// Where `until` stopped the walk: the frame of its last return address.
        var exit: (returnAddress: UInt64, sp: UInt64, fp: UInt64)?
    }

    /// `until`: stop after the first return address it accepts (code another
    /// unwinder knows), with that frame's sp and fp in `exit`.
    func walk(from fp: UInt64, above sp: UInt64, limit: Int, until: ((UInt64) -> Bool)? = nil) -> Result {
        var result = Result()
        var fp = fp
        var floor = sp
        while true {
            if fp == 0 { return result }
            if result.returnAddresses.count >= limit {
                result.stopReason = "depth limit reached"
                return result
            }
            guard fp % 8 == 0, fp >= floor else {
                result.stopReason = "frame pointer \(hex(fp)) is not above the stack pointer"
                return result
            }
            guard let next = stack.word(at: fp), let returnAddress = stack.word(at: fp + 8) else {
                result.stopReason = "frame pointer \(hex(fp)) is outside the copied stack"
                return result
            }
            if returnAddress == 0 { return result }
            guard isCode(returnAddress) else {
                result.stopReason = "return address \(hex(returnAddress)) is not in executable memory"
                return result
            }
            result.returnAddresses.append(returnAddress)
            if let until, until(returnAddress) {
                result.exit = (returnAddress, fp + 16, next)
                return result
            }
            floor = fp + 16
            fp = next
        }
    }
}
