// libunwind's remote unwinder run over a copied stack. The accessors below are
// the whole interface: registers come from the capture, stack words from the
// copy, code and .eh_frame from local mmaps of the target's files. Nothing here
// touches the target, so it runs after the target has been resumed.
import CSwiftProf

/// What the walks of one sample read from its copy, for the memo.
private final class ReadLog {
    var reads = WalkReads()
}

/// What one walk reads; handed to libunwind as the accessors' `arg`.
private final class WalkSource {
    let stack: StackCopy
    let registers: RegisterSet
    let image: TargetImage
    let log: ReadLog

    init(stack: StackCopy, registers: RegisterSet, image: TargetImage, log: ReadLog) {
        self.stack = stack
        self.registers = registers
        self.image = image
        self.log = log
    }

    /// Words of the copy and of the target's writable memory are logged; the
    /// target's files are fixed while the walk's image lives.
    func word(at address: UInt64) -> UInt64? {
        if let word = stack.word(at: address) {
            log.reads.stackWords.append((address, word))
            return word
        }
        let liveReads = image.liveWordReads
        guard let word = image.word(at: address) else {
            log.reads.stackWords.append((address, nil))
            return nil
        }
        // Writable memory of a file, read from the target (in practice the
        // personality pointer each CIE of C code built with -fexceptions names).
        if image.liveWordReads != liveReads, !log.reads.liveWords.contains(where: { $0.address == address }) {
            log.reads.liveWords.append((address, word))
        }
        return word
    }

    func register(_ number: Int) -> UInt64? {
        let value = registers[dwarf: number]
        log.reads.registers.append((number, value))
        return value
    }
}

private func source(_ arg: UnsafeMutableRawPointer?) -> WalkSource {
    Unmanaged<WalkSource>.fromOpaque(arg!).takeUnretainedValue()
}

private func unwError(_ code: unw_error_t) -> Int32 { -Int32(code.rawValue) }

private func makeAccessors() -> unw_accessors_t {
    var accessors = unw_accessors_t()
    accessors.find_proc_info = { space, ip, info, needUnwindInfo, arg in
        let walk = source(arg)
        guard let module = walk.image.module(containing: ip), case .success(let table) = module.table else {
            return unwError(UNW_ENOINFO)
        }
        return sp_unw_search_remote_table(space, ip, module.start, module.end, module.bias &+ table.headerVaddr,
                                          module.bias &+ table.tableVaddr, table.entryCount, info, needUnwindInfo, arg)
    }
    accessors.put_unwind_info = { _, _, _ in }
    accessors.get_dyn_info_list_addr = { _, _, _ in unwError(UNW_ENOINFO) }
    accessors.access_mem = { _, address, value, write, arg in
        guard write == 0, let word = source(arg).word(at: address) else { return unwError(UNW_EINVAL) }
        value?.pointee = word
        return 0
    }
    accessors.access_reg = { _, register, value, write, arg in
        guard write == 0 else { return unwError(UNW_EREADONLYREG) }
        guard let word = source(arg).register(Int(register)) else { return unwError(UNW_EBADREG) }
        value?.pointee = word
        return 0
    }
    accessors.access_fpreg = { _, _, _, _, _ in unwError(UNW_EBADREG) }
    accessors.resume = { _, _, _ in unwError(UNW_EINVAL) }
    accessors.get_proc_name = { _, _, _, _, _, _ in unwError(UNW_EINVAL) }
    return accessors
}

/// One libunwind address space per target, caching on: unwind info found for a pc
/// is reused by every later walk through it, and whole walks by WalkMemo.
final class LibunwindUnwinder {
    let image: TargetImage
    private let space: unw_addr_space_t
    private var memo = WalkMemo()
    private let log = ReadLog()
    /// Walks answered by the memo.
    var memoHits: Int { memo.hits }

    init?(image: TargetImage) {
        var accessors = makeAccessors()
        guard let space = sp_unw_create_addr_space(&accessors) else { return nil }
        _ = sp_unw_enable_global_cache(space)
        self.image = image
        self.space = space
    }

    deinit { sp_unw_destroy_addr_space(space) }

    func unwind(_ thread: CapturedThread, options: UnwindOptions) -> UnwoundStack {
        memoizedUnwind(registers: thread.registers, stack: thread.stack, limit: options.maxFrames)
    }

    /// The walk of a copy taken without rbp (from /proc), with rbp known after all.
    func unwind(_ thread: CapturedThread, framePointer: UInt64, options: UnwindOptions) -> UnwoundStack {
        var registers = thread.registers
        registers.values[RegisterSet.rbp] = framePointer
        registers.known.insert(RegisterSet.rbp)
        return memoizedUnwind(registers: registers, stack: thread.stack, limit: options.maxFrames)
    }

    private func memoizedUnwind(registers: RegisterSet, stack: StackCopy, limit: Int) -> UnwoundStack {
        let key = WalkKey(pc: registers.pc, sp: registers.sp, limit: limit)
        if let known = memo.result(for: key, registers: registers, stack: stack, liveWord: image.word) { return known }
        log.reads.registers.removeAll(keepingCapacity: true)
        log.reads.stackWords.removeAll(keepingCapacity: true)
        log.reads.liveWords.removeAll(keepingCapacity: true)
        log.reads.isReplayable = true
        let result = unwind(registers: registers, stack: stack, limit: limit)
        memo.remember(result, for: key, reads: log.reads)
        return result
    }

    /// Go code has no CFI: from its first Go frame on, a walk goes on with Go's own
    /// table, and back to libunwind if it returns into C (a cgo callback).
    private func unwind(registers: RegisterSet, stack: StackCopy, limit: Int) -> UnwoundStack {
        if let go = image.goCode(containing: registers.pc) {
            return goWalk(go, pc: registers.pc, sp: registers.sp, stack: stack, limit: limit, leafIsReturnAddress: false)
        }
        if let caller = callerAtReturn(registers, stack: stack), limit > 1 {
            let rest = unwind(registers: caller, stack: stack, limit: limit - 1)
            var stack = UnwoundStack(pcs: [registers.pc] + rest.pcs, truncation: rest.truncation)
            if !rest.frameSlots.isEmpty {
                stack.frameSlots = [FrameSlots(asyncRegister: registers[dwarf: RegisterSet.swiftAsyncContext], cfa: caller.sp)]
                    + rest.frameSlots
            }
            return stack
        }
        let walk = WalkSource(stack: stack, registers: registers, image: image, log: log)
        return withExtendedLifetime(walk) {
            let arg = Unmanaged.passUnretained(walk).toOpaque()
            var cursor = unw_cursor_t()
            guard sp_unw_init_remote(&cursor, space, arg) == 0 else {
                return UnwoundStack(pcs: [registers.pc], truncation: "libunwind could not start the walk")
            }
            var pcs: [UInt64] = [registers.pc]
            var sp = registers.sp
            // The frames' slots for Swift async code (only where the runtime is: reading
            // r14 makes the memo compare it too).
            var slots: [FrameSlots] = []
            let recordsSlots = image.hasSwiftConcurrency
            func asyncRegister() -> UInt64? {
                var value: UInt64 = 0
                return sp_unw_get_reg(&cursor, Int32(RegisterSet.swiftAsyncContext), &value) == 0 ? value : nil
            }
            if recordsSlots { slots.append(FrameSlots(asyncRegister: asyncRegister(), cfa: 0)) }
            func walked(_ stack: UnwoundStack) -> UnwoundStack {
                var result = stack
                if recordsSlots { result.frameSlots = Array(slots.prefix(result.pcs.count)) }
                return result
            }
            while true {
                if pcs.count >= limit {
                    return walked(UnwoundStack(pcs: pcs, truncation: "depth limit of \(limit) frames reached"))
                }
                // JIT code has no CFI, and libunwind's guess there is not validated.
                let current = pcs.count == 1 ? pcs[0] : pcs[pcs.count - 1] - 1
                if let missing = image.missingFile(at: current) {
                    return UnwoundStack(pcs: pcs, truncation: "no unwind info at \(hex(current)): \(NameQuoting.quoted(missing)) is not available")
                }
                if isJITCode(current) {
                    let callers = jitWalk(cursor: &cursor, stack: stack, limit: limit - pcs.count, isLeaf: pcs.count == 1)
                    return UnwoundStack(pcs: pcs + callers.pcs, truncation: callers.truncation)
                }
                let wasSignalFrame = sp_unw_is_signal_frame(&cursor) > 0
                let step = sp_unw_step(&cursor)
                if step < 0 {
                    return UnwoundStack(pcs: pcs, truncation: "unwind error \(-step) at \(hex(pcs.last!))", lastFrameSP: sp)
                }
                if step == 0 {
                    return walked(finish(pcs, cursor: &cursor, walk: walk, limit: limit))
                }
                var pc: UInt64 = 0, nextSP: UInt64 = 0
                _ = sp_unw_get_reg(&cursor, Int32(RegisterSet.rip), &pc)
                _ = sp_unw_get_reg(&cursor, Int32(RegisterSet.rsp), &nextSP)
                if pc == 0 { return walked(UnwoundStack(pcs: pcs, truncation: nil)) }
                guard image.isExecutable(pc) else {
                    return UnwoundStack(pcs: pcs, truncation: "return address \(hex(pc)) is not in executable memory")
                }
                guard nextSP > sp || wasSignalFrame else {
                    return UnwoundStack(pcs: pcs, truncation: "stack pointer did not grow at \(hex(pc))")
                }
                if let go = image.goCode(containing: pc - 1) {
                    let rest = goWalk(go, pc: pc, sp: nextSP, stack: stack, limit: limit - pcs.count,
                                      leafIsReturnAddress: true)
                    return UnwoundStack(pcs: pcs + rest.pcs, truncation: rest.truncation)
                }
                pcs.append(pc)
                sp = nextSP
                if recordsSlots {
                    slots[slots.count - 1].cfa = nextSP
                    slots.append(FrameSlots(asyncRegister: asyncRegister(), cfa: 0))
                }
            }
        }
    }

    /// A leaf stopped at its return instruction has restored every register: its
    /// caller is the word at sp, with sp past it. CFI does not say so at every ret
    /// (LLVM's keeps "rbp at CFA-16" after the pop, a slot now below sp, which a
    /// kernel sample's copy of the stack, taken from sp up, does not hold).
    private func callerAtReturn(_ registers: RegisterSet, stack: StackCopy) -> RegisterSet? {
        guard let code = image.word(at: registers.pc),
              code & 0xff == 0xc3 || code & 0xffff == 0xc3f3,
              let returnAddress = stack.word(at: registers.sp), image.isExecutable(returnAddress) else { return nil }
        log.reads.stackWords.append((registers.sp, returnAddress))
        var caller = registers
        caller.values[RegisterSet.rip] = returnAddress
        caller.values[RegisterSet.rsp] = registers.sp + 8
        return caller
    }

    private func goWalk(_ go: GoModule, pc: UInt64, sp: UInt64, stack: StackCopy, limit: Int,
                        leafIsReturnAddress: Bool) -> UnwoundStack {
        log.reads.isReplayable = false  // Go's walk reads the copy and the target directly
        let memory = image.memory
        var goWalk = GoStackWalk(module: go, word: { stack.word(at: $0) })
        goWalk.readTarget = { Ptrace.readMemory(memory, at: $0, count: $1) }
        let walk = goWalk.walk(pc: pc, sp: sp, leafIsReturnAddress: leafIsReturnAddress, limit: limit)
        switch walk.end {
        case .outermost:
            return UnwoundStack(pcs: walk.pcs, truncation: nil)
        case .truncated(let reason):
            return UnwoundStack(pcs: walk.pcs, truncation: reason)
        case .leftGoCode(let next, let nextSP):
            guard image.isExecutable(next), walk.pcs.count < limit else {
                return UnwoundStack(pcs: walk.pcs, truncation: "return address \(hex(next)) is not in executable memory")
            }
            // Only pc and sp are known where C code called into Go.
            var registers = RegisterSet(pc: next, sp: nextSP, fp: 0)
            registers.known = [RegisterSet.rip, RegisterSet.rsp]
            let rest = unwind(registers: registers, stack: stack, limit: limit - walk.pcs.count)
            return UnwoundStack(pcs: walk.pcs + rest.pcs, truncation: rest.truncation)
        }
    }

    /// Code in anonymous executable memory: what a JIT (a JVM, V8) writes at run time.
    private func isJITCode(_ address: UInt64) -> Bool {
        image.isExecutable(address) && image.module(containing: address) == nil && image.goCode(containing: address) == nil
    }

    /// The callers of a frame in JIT code, which has no CFI: frame-pointer steps,
    /// each validated (FramePointerWalk), until a return address lands in code with
    /// unwind info, where libunwind goes on, as eu-stack does. The frame pointer is
    /// the cursor's: from the registers of a stop or a kernel sample, or restored by
    /// the CFI of the frames below; a copy without one stops here, marked truncated
    /// (the sampler then recovers rbp or stops the thread, as for any such walk).
    ///
    /// A leaf in JIT code may not have pushed its frame pointer yet (its first
    /// instruction, or a function with no frame of its own): rbp is then its
    /// caller's, and a frame-pointer walk would skip that caller (as eu-stack's
    /// does). When the word at sp is the address just after a call instruction, it
    /// is taken as the leaf's return address, with rbp left as it is.
    private func jitWalk(cursor: inout unw_cursor_t, stack: StackCopy, limit: Int, isLeaf: Bool) -> UnwoundStack {
        log.reads.isReplayable = false  // frame-pointer steps read the copy directly
        var fp: UInt64 = 0, sp: UInt64 = 0
        _ = sp_unw_get_reg(&cursor, Int32(RegisterSet.rbp), &fp)
        _ = sp_unw_get_reg(&cursor, Int32(RegisterSet.rsp), &sp)
        if isLeaf, limit > 0, let top = stack.word(at: sp), image.isExecutable(top), follows(callAt: top) {
            if isJITCode(top - 1) {
                let callers = FramePointerWalk(stack: stack, isCode: image.isExecutable)
                    .walk(from: fp, above: sp + 8, limit: limit - 1, until: { !self.isJITCode($0 - 1) })
                return finishJITWalk([top] + callers.returnAddresses, chain: callers, stack: stack, limit: limit)
            }
            let rest = unwind(registers: .frame(pc: top, sp: sp + 8, fp: fp), stack: stack, limit: limit)
            return UnwoundStack(pcs: rest.pcs, truncation: rest.truncation)
        }
        guard fp != 0 else { return UnwoundStack(pcs: [], truncation: "JIT code and no frame pointer to follow") }
        let chain = FramePointerWalk(stack: stack, isCode: image.isExecutable)
            .walk(from: fp, above: sp, limit: limit, until: { !self.isJITCode($0 - 1) })
        return finishJITWalk(chain.returnAddresses, chain: chain, stack: stack, limit: limit)
    }

    /// Back in code with CFI where the chain left JIT code: libunwind from that
    /// return address on (its first frame, already in `pcs`).
    private func finishJITWalk(_ pcs: [UInt64], chain: FramePointerWalk.Result, stack: StackCopy, limit: Int) -> UnwoundStack {
        guard let exit = chain.exit else { return UnwoundStack(pcs: pcs, truncation: chain.stopReason) }
        let rest = unwind(registers: .frame(pc: exit.returnAddress, sp: exit.sp, fp: exit.fp), stack: stack,
                          limit: limit - pcs.count + 1)
        return UnwoundStack(pcs: pcs + rest.pcs.dropFirst(), truncation: rest.truncation)
    }

    /// Whether the bytes before `address` end in a call: e8 rel32, or ff /2 (an
    /// indirect call through a register or memory, with 0, 1 or 4 bytes of
    /// displacement). A pointer to code that is not a return address rarely is.
    private func follows(callAt address: UInt64) -> Bool {
        guard address >= 8, let bytes = Ptrace.readMemory(image.memory, at: address - 8, count: 8), bytes.count == 8 else {
            return false
        }
        if bytes[3] == 0xe8 { return true }
        // ff, then a ModRM byte whose reg field is 2, ending 2, 3, 6 or 7 bytes before `address`.
        for length in [2, 3, 6, 7] where bytes[8 - length] == 0xff && (bytes[9 - length] >> 3) & 7 == 2 { return true }
        return false
    }

    /// libunwind reports the end both when CFI marks the outermost frame (the
    /// normal end of _start and of thread starts) and when it had no CFI and its
    /// frame-pointer guess failed. Only the first is a complete stack; for the
    /// second, validated frame-pointer steps may still go on.
    private func finish(_ pcs: [UInt64], cursor: inout unw_cursor_t, walk: WalkSource, limit: Int) -> UnwoundStack {
        let last = pcs.last!
        let lookup = pcs.count == 1 ? last : last - 1
        if hasUnwindInfo(at: lookup, walk: walk) { return UnwoundStack(pcs: pcs, truncation: nil) }
        log.reads.isReplayable = false  // frame-pointer steps read the copy directly
        var fp: UInt64 = 0, sp: UInt64 = 0
        _ = sp_unw_get_reg(&cursor, Int32(RegisterSet.rbp), &fp)
        _ = sp_unw_get_reg(&cursor, Int32(RegisterSet.rsp), &sp)
        let chain = FramePointerWalk(stack: walk.stack, isCode: image.isExecutable)
            .walk(from: fp, above: sp, limit: limit - pcs.count)
        let all = pcs + chain.returnAddresses
        if let reason = chain.stopReason {
            let truncation = chain.returnAddresses.isEmpty
                ? "no unwind info for \(hex(last)) and no frame pointer to follow (\(reason))" : reason
            return UnwoundStack(pcs: all, truncation: truncation)
        }
        return UnwoundStack(pcs: all, truncation: nil)
    }

    private func hasUnwindInfo(at pc: UInt64, walk: WalkSource) -> Bool { procedure(at: pc, walk: walk) != nil }

    /// The first address of the function holding `pc`, as its CFI says.
    func functionStart(containing pc: UInt64) -> UInt64? {
        let walk = WalkSource(stack: StackCopy(start: 0, bytes: []), registers: RegisterSet(pc: pc, sp: 0, fp: 0), image: image,
                              log: ReadLog())
        return procedure(at: pc, walk: walk)?.start_ip
    }

    private func procedure(at pc: UInt64, walk: WalkSource) -> unw_proc_info_t? {
        guard let module = image.module(containing: pc), case .success(let table) = module.table else { return nil }
        var info = unw_proc_info_t()
        let found = withExtendedLifetime(walk) {
            sp_unw_search_remote_table(space, pc, module.start, module.end, module.bias &+ table.headerVaddr,
                                       module.bias &+ table.tableVaddr, table.entryCount, &info, 0,
                                       Unmanaged.passUnretained(walk).toOpaque()) == 0
        }
        return found ? info : nil
    }
}
