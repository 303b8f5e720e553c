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
    }

    func walk(from fp: UInt64, above sp: UInt64, limit: Int) -> Result {
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
            floor = fp + 16
            fp = next
        }
    }
}
