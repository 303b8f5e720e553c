// Why a process cannot be profiled at all (exit status 2), each with one line for the user.
import Glibc

public enum TargetError: Error, Equatable, CustomStringConvertible {
    case noSuchProcess(pid: Int32)
    case zombie(pid: Int32)
    case mainThreadEnded(pid: Int32, threadsLeft: Int)
    case kernelThread(pid: Int32, name: String)
    case permissionDenied(pid: Int32, advice: String)
    case alreadyTraced(pid: Int32, tracer: Int32, tracerName: String)
    case exitedDuringCapture(pid: Int32)
    case system(SystemError)
    /// --goroutines on a process whose goroutines cannot be listed.
    case noGoroutines(pid: Int32, reason: String)
    /// --tasks on a process whose Swift tasks cannot be listed.
    case noTasks(pid: Int32, reason: String)

    public var description: String {
        switch self {
        case .noSuchProcess(let pid):
            return "no such process: \(pid)"
        case .zombie(let pid):
            return "process \(pid) is a zombie: it has exited and has no stacks left"
        case .mainThreadEnded(let pid, let threadsLeft):
            return "process \(pid) cannot be profiled: its main thread has ended, and with it the /proc entries its memory "
                + "is read through (\(threadsLeft) other thread\(threadsLeft == 1 ? " lives" : "s live") on)"
        case .kernelThread(let pid, let name):
            return "process \(pid) (\(name)) is a kernel thread: it has no user stack to profile"
        case .permissionDenied(let pid, let advice):
            return "permission denied tracing process \(pid): \(advice)"
        case .alreadyTraced(let pid, let tracer, let tracerName):
            return "process \(pid) is already traced by process \(tracer) (\(tracerName)); detach it first"
        case .exitedDuringCapture(let pid):
            return "process \(pid) exited before any thread could be captured"
        case .system(let error):
            return error.description
        case .noGoroutines(let pid, let reason):
            return "cannot list the goroutines of process \(pid): \(reason)"
        case .noTasks(let pid, let reason):
            return "cannot list the Swift tasks of process \(pid): \(reason)"
        }
    }
}

enum TargetPreflight {
    /// Checks what /proc tells before any ptrace call, so each cause gets its own message.
    static func check(pid: Int32) throws(TargetError) {
        let status: TaskStatus
        do { status = try TaskStatus.read(pid: pid) } catch {
            if error.errno == ENOENT || error.errno == ESRCH { throw .noSuchProcess(pid: pid) }
            throw .system(error)
        }
        if status.isKernelThread { throw .kernelThread(pid: pid, name: status.name) }
        if status.isZombie { try waitOutExec(pid: pid) }
        try checkTracer(pid: pid)
    }

    /// A zombie leader with threads left: another thread is in execve (which ends
    /// the leader and the others, then takes the leader's pid over), or the main
    /// thread has ended (pthread_exit) and the process lives on in the others.
    /// The first is waited out: for as long as a thread shows execve in /proc (up
    /// to 2 s; a loaded machine may take a while to end many threads), and at least
    /// 50 ms (/proc cannot show the system call of a thread while it runs). The
    /// second is refused by name: the process's memory, maps and files are read
    /// through its main thread's /proc entries, which are empty once it has ended
    /// (eu-stack and gdb refuse it too).
    private static func waitOutExec(pid: Int32) throws(TargetError) {
        let start = monotonicNanoseconds()
        while true {
            guard let status = try? TaskStatus.read(pid: pid) else { throw .noSuchProcess(pid: pid) }
            if !status.isZombie { return }
            let others = threadIDs(of: pid).filter { $0 != pid }
            if others.isEmpty { throw .zombie(pid: pid) }
            let waited = monotonicNanoseconds() - start
            let execing = others.contains { isInExecve(pid: pid, tid: $0) }
            if waited > 2_000_000_000 || (waited > 50_000_000 && !execing) {
                throw .mainThreadEnded(pid: pid, threadsLeft: others.count)
            }
            nanosleep(nanoseconds: 1_000_000)
        }
    }

    /// The thread is blocked in execve or execveat (x86_64 system calls 59 and 322).
    private static func isInExecve(pid: Int32, tid: Int32) -> Bool {
        guard let line = try? ProcFile.read("/proc/\(pid)/task/\(tid)/syscall"),
              let call = ThreadProcInfo.parseSyscall(line) else { return false }
        return call.number == 59 || call.number == 322
    }

    static func checkTracer(pid: Int32) throws(TargetError) {
        let tracer = tracerPID(of: pid)
        guard tracer != 0, tracer != getpid() else { return }
        let name = (try? TaskStatus.read(pid: tracer))?.name ?? "?"
        throw .alreadyTraced(pid: pid, tracer: tracer, tracerName: name)
    }

    /// Turns EPERM from PTRACE_SEIZE into the cause a user can act on.
    static func permissionError(pid: Int32) -> TargetError {
        if case .some(let error) = Result(catching: { () throws(TargetError) in try checkTracer(pid: pid) }).failure {
            return error
        }
        let owner = ownerUID(of: pid).map { "uid \($0)" } ?? "another user"
        if !hasCapability(sysPtrace) {
            return .permissionDenied(pid: pid, advice:
                "it belongs to \(owner) and swiftprof lacks CAP_SYS_PTRACE (run it as root or grant the capability)")
        }
        if let scope = try? ProcFile.read("/proc/sys/kernel/yama/ptrace_scope"),
           let level = Int(scope.trimmedWhitespace), level >= 3 {
            return .permissionDenied(pid: pid, advice: "kernel.yama.ptrace_scope=3 forbids all ptrace attaches")
        }
        return .permissionDenied(pid: pid, advice: unexplainedRefusal)
    }

    /// EPERM with none of the causes above: also what a process in the middle of
    /// execve gets (it is not dumpable for a moment), so worth another try.
    static let unexplainedRefusal = "the kernel refused PTRACE_SEIZE (a security module, or a process that is not dumpable)"


    private static let sysPtrace = 19

    private static func hasCapability(_ bit: Int) -> Bool {
        guard let text = try? ProcFile.read("/proc/self/status") else { return false }
        for line in text.split(separator: "\n") where line.hasPrefix("CapEff:") {
            let hex = line.dropFirst("CapEff:".count).trimmedWhitespace
            return (UInt64(hex, radix: 16) ?? 0) & (1 << UInt64(bit)) != 0
        }
        return false
    }

    private static func ownerUID(of pid: Int32) -> UInt32? {
        var info = stat()
        return stat("/proc/\(pid)", &info) == 0 ? info.st_uid : nil
    }
}

extension Result {
    var failure: Failure? {
        if case .failure(let error) = self { return error }
        return nil
    }
}
