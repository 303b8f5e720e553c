import CSwiftProf
import Glibc

/// Whether the target has ended, asked at every sixteenth tick. A pidfd answers
/// with one poll (it holds no state that changes: safe from any thread); reading the leader's /proc stat instead measured a fortieth of
/// the sampler's CPU at 100 Hz. Kernels before 5.3 have no pidfd: /proc then.
public final class ProcessExitWatch: @unchecked Sendable {
    public let pid: Int32
    private let descriptor: Int32

    public init(pid: Int32) {
        self.pid = pid
        descriptor = sp_pidfd_open(pid)
    }

    deinit { if descriptor >= 0 { close(descriptor) } }

    /// Every thread gone, or the leader a zombie with none left (as `Profiler.processIsGone`).
    public var hasExited: Bool {
        descriptor >= 0 ? sp_pidfd_exited(descriptor) == 1 : Profiler.processIsGone(pid)
    }
}
