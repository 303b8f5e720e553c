// /proc gives a blocked thread's sp and pc only. A walk that reaches a frame
// whose CFA is computed from rbp (code built with frame pointers: Foundation,
// Dispatch, much of Swift's runtime) cannot go on without it, and a stop to
// read it makes the thread run (so it is no longer idle at the next sample).
// rbp is recovered from the copied stack instead: in such a frame rbp points
// at the saved caller's rbp, right below the frame's return address. A
// candidate slot must hold, above it, a return address that follows a call
// instruction whose target is the very function the walk stopped in, it must
// lie in that frame (at or above its sp: below it are the dead frames of
// earlier calls, which pass the other checks), and the walk with it must then
// reach the outermost frame. A return address after an indirect call proves
// nothing about its target: measured, a stale one from thread start-up made a
// smashed stack look complete, so those slots are not candidates.

struct FramePointerRecovery {
    let unwinder: LibunwindUnwinder
    let image: TargetImage
    /// Candidates tried at most: each is one unwind (about 15 us warm).
    var maximumCandidates = 16

    /// The complete walk of `thread` with a recovered rbp, or nil. The slot the
    /// function's own prologue puts rbp at is tried first; then slots whose return
    /// address is a direct call to the function, lowest first.
    func recover(_ thread: CapturedThread, partial: UnwoundStack, options: UnwindOptions) -> UnwoundStack? {
        guard let stopped = partial.pcs.last, let frameSP = partial.lastFrameSP else { return nil }
        let lookup = partial.pcs.count > 1 ? stopped - 1 : stopped
        guard let function = unwinder.functionStart(containing: lookup) else { return nil }
        let stack = thread.stack
        var direct: [UInt64] = []
        var slot = (max(stack.start, frameSP) + 7) & ~7
        while slot + 16 <= stack.end && direct.count < maximumCandidates {
            defer { slot += 8 }
            guard let saved = stack.word(at: slot), let returnAddress = stack.word(at: slot + 8),
                  saved == 0 || saved > slot, callTarget(returningTo: returnAddress) == function else { continue }
            direct.append(slot)
        }
        let fromPrologue = prologueFrameSize(function).map { frameSP + $0 }
        let candidates = (fromPrologue.map { [$0] } ?? []) + direct.filter { $0 != fromPrologue }
        for rbp in candidates {
            let walk = unwinder.unwind(thread, framePointer: rbp, options: options)
            if walk.truncation == nil && walk.pcs.count > partial.pcs.count { return walk }
        }
        return nil
    }

    /// rbp - sp in the body of a function whose prologue is the usual
    /// `push rbp; mov rbp, rsp; push r15..rbx; sub rsp, N`, or a Swift async
    /// function's extended frame `push rbp; push r14; lea rbp, [rsp + 8]; ...` (rbp
    /// then points at the saved rbp, the context below it), when it is.
    func prologueFrameSize(_ function: UInt64) -> UInt64? {
        var bytes: [UInt8] = []
        for offset in stride(from: UInt64(0), to: 32, by: 8) {
            guard let word = image.word(at: function + offset) else { return nil }
            bytes += (0..<8).map { UInt8(truncatingIfNeeded: word >> (8 * $0)) }
        }
        var at = 0
        // endbr64, then push rbp; mov rbp, rsp.
        if bytes.starts(with: [0xf3, 0x0f, 0x1e, 0xfa]) { at = 4 }
        var size: UInt64 = 0
        if bytes[at...].starts(with: [0x55, 0x41, 0x56, 0x48, 0x8d, 0x6c, 0x24, 0x08]) {
            at += 8
            size = 8  // the pushed r14 (the async context) lies between rbp and the rest
        } else {
            guard bytes[at...].starts(with: [0x55, 0x48, 0x89, 0xe5]) else { return nil }
            at += 4
        }
        while at < bytes.count - 7 {
            if bytes[at] == 0x41, (0x54...0x57).contains(bytes[at + 1]) { size += 8; at += 2; continue }  // push r12..r15
            if bytes[at] == 0x53 { size += 8; at += 1; continue }  // push rbx
            if bytes[at...].starts(with: [0x48, 0x83, 0xec]) { return size + UInt64(bytes[at + 3]) }  // sub rsp, imm8
            if bytes[at...].starts(with: [0x48, 0x81, 0xec]) {  // sub rsp, imm32
                let immediate = UInt64(bytes[at + 3]) | UInt64(bytes[at + 4]) << 8 | UInt64(bytes[at + 5]) << 16
                    | UInt64(bytes[at + 6]) << 24
                return size + immediate
            }
            break
        }
        // No stack adjustment: the pushes are the frame.
        return size
    }

    /// The target of the call rel32 that `returnAddress` follows, if it follows one.
    private func callTarget(returningTo returnAddress: UInt64) -> UInt64? {
        guard returnAddress > 7, image.isExecutable(returnAddress), let before = image.word(at: returnAddress - 8),
              UInt8(truncatingIfNeeded: before >> 24) == 0xe8 else { return nil }
        let displacement = Int32(bitPattern: UInt32(truncatingIfNeeded: before >> 32))
        return returnAddress &+ UInt64(bitPattern: Int64(displacement))
    }
}
