// What the sampler takes from a stopped thread: everything the unwinder needs,
// so that unwinding happens after the target runs again.

/// A copy of a thread's stack from its stack pointer upwards.
public struct StackCopy: Equatable, Sendable {
    /// Target address of `bytes[0]`.
    public let start: UInt64
    public let bytes: [UInt8]

    public init(start: UInt64, bytes: [UInt8]) {
        self.start = start
        self.bytes = bytes
    }

    public var end: UInt64 { start + UInt64(bytes.count) }

    /// The little-endian word at `address`, if the copy holds all of its bytes.
    public func word(at address: UInt64) -> UInt64? {
        guard address >= start, address &+ 8 <= end, address &+ 8 > address else { return nil }
        return littleEndianWord(bytes, at: Int(address - start))
    }
}

/// The little-endian 64-bit word at `offset` of `bytes` (which must hold it).
func littleEndianWord(_ bytes: [UInt8], at offset: Int) -> UInt64 {
    (0..<8).reversed().reduce(UInt64(0)) { $0 << 8 | UInt64(bytes[offset + $1]) }
}

public struct CapturedThread: Equatable, Sendable {
    public let tid: Int32
    public let name: String
    public let registers: RegisterSet
    public let stack: StackCopy
    /// Why the stack copy is shorter than asked (unreadable memory, no mapping at sp), if it is.
    public let stackNote: String?
    /// /proc's view of the thread, read just before the stop (or the copy).
    public let procInfo: ThreadProcInfo?
    /// false when copied while blocked, without a ptrace stop: the registers are then
    /// only the pc and sp /proc gives, and /proc's view was checked unchanged after.
    public let stoppedForCapture: Bool

    public init(tid: Int32, name: String, registers: RegisterSet, stack: StackCopy, stackNote: String? = nil,
                procInfo: ThreadProcInfo? = nil, stoppedForCapture: Bool = true) {
        self.tid = tid
        self.name = name
        self.registers = registers
        self.stack = stack
        self.stackNote = stackNote
        self.procInfo = procInfo
        self.stoppedForCapture = stoppedForCapture
    }
}

extension CapturedThread {
    /// The same capture under another name (read after the capture, when reading it first would delay it).
    func renamed(_ name: String) -> CapturedThread {
        CapturedThread(tid: tid, name: name, registers: registers, stack: stack, stackNote: stackNote, procInfo: procInfo,
                       stoppedForCapture: stoppedForCapture)
    }
}

/// A thread that was listed but could not be captured, and why.
public struct ThreadFailure: Error, Equatable, Sendable {
    public let tid: Int32
    public let reason: String

    public init(tid: Int32, reason: String) {
        self.tid = tid
        self.reason = reason
    }
}

/// One stop-the-world capture of a process.
public struct Capture: Sendable {
    public let pid: Int32
    public let threads: [CapturedThread]
    public let failures: [ThreadFailure]
    public let memoryMap: MemoryMap
    /// From the first interrupt to the last detach: the longest pause any thread felt.
    public let stopWindowNanoseconds: UInt64
    /// The process was in a group-stop (SIGSTOP, ^Z) when captured; it stays stopped.
    public let wasStopped: Bool
}
