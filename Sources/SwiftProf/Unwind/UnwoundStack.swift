// The unwinder's answer for one thread.

public struct UnwoundStack: Equatable, Sendable {
    /// Leaf first: `pcs[0]` is where the thread was stopped, the rest are return addresses.
    public let pcs: [UInt64]
    /// Why the walk stopped before the outermost frame; nil when it reached it.
    public let truncation: String?
    /// The stack pointer of the last frame, when the walk failed to step from it.
    var lastFrameSP: UInt64?
    /// Per frame, where a Swift async function keeps its context (AsyncCallers):
    /// recorded by libunwind's walk of a process with Swift concurrency, else empty.
    var frameSlots: [FrameSlots] = []

    public init(pcs: [UInt64], truncation: String?) {
        self.pcs = pcs
        self.truncation = truncation
    }

    /// Complete, or cut only by the depth limit: a ptrace stop would give no more.
    var isAsGoodAsAStop: Bool { Self.isAsGoodAsAStop(truncation: truncation) }

    /// Whether a stack cut for `truncation` (nil: not cut) is all a stop would give.
    static func isAsGoodAsAStop(truncation: String?) -> Bool { truncation == nil || truncation!.hasPrefix("depth limit") }

    init(pcs: [UInt64], truncation: String, lastFrameSP: UInt64) {
        self.init(pcs: pcs, truncation: truncation)
        self.lastFrameSP = lastFrameSP
    }
}

/// A frame's swiftasync register (r14) as the walk restored it (nil: not known), and
/// its CFA (its caller's stack pointer; 0 for the last frame).
struct FrameSlots: Equatable, Sendable {
    var asyncRegister: UInt64?
    var cfa: UInt64
}

public struct UnwindOptions: Sendable {
    public var maxFrames: Int

    public init(maxFrames: Int = 256) { self.maxFrames = maxFrames }
}
