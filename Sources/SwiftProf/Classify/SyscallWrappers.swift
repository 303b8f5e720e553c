// Recognises the libc and runtime functions that wrap a system call
// (`__GI___libc_read`, `epoll_wait`, `__futex_abstimed_wait_common64`,
// Go's `syscall.Syscall6`), and the call they wrap when the name tells.

public enum SyscallWrappers {
    private static let prefixes = ["__GI___libc_", "__GI___", "__GI_", "__libc_", "___", "__", "_"]
    private static let suffixes = ["_nocancel", "_common64", "_common", "_time64", "64"]
    /// Families named by their first word: `__futex_abstimed_wait_common64` wraps futex.
    private static let families = ["futex", "epoll_wait", "epoll_pwait", "clock_nanosleep", "nanosleep"]
    private static let goWrappers = ["syscall.Syscall", "syscall.Syscall6", "syscall.RawSyscall", "syscall.RawSyscall6",
                                     "syscall.syscall", "syscall.rawsyscall", "internal/runtime/syscall.Syscall6",
                                     "runtime/internal/syscall.Syscall6", "syscall.read", "syscall.write"]
    private static let goRuntime = ["runtime.futex": "futex", "runtime.epollwait": "epoll_pwait", "runtime.read": "read",
                                    "runtime.write1": "write", "runtime.usleep": "nanosleep", "runtime.nanosleep": "nanosleep",
                                    "internal/runtime/syscall.EpollWait": "epoll_pwait", "runtime.netpoll": "epoll_pwait"]

    /// The system call a wrapper named `function` makes, if the name says it.
    public static func syscallName(ofWrapper function: String) -> String? {
        if let name = goRuntime[function] { return name }
        var name = Substring(function)
        if let open = name.firstIndex(of: "(") { name = name[..<open] }  // demangled C++ signatures
        for prefix in prefixes where name.hasPrefix(prefix) {
            name = name.dropFirst(prefix.count)
            break
        }
        if SyscallTable.number(String(name)) != nil { return String(name) }
        for suffix in suffixes where name.hasSuffix(suffix) {
            let stripped = String(name.dropLast(suffix.count))
            if SyscallTable.number(stripped) != nil { return stripped }
        }
        return families.first { name.hasPrefix($0) }
    }

    /// Whether `function` is a system call wrapper, named after its call or generic.
    public static func isWrapper(_ function: String) -> Bool {
        syscallName(ofWrapper: function) != nil || goWrappers.contains(function) || function == "syscall"
            || function.hasPrefix("__syscall_cancel") || function.hasPrefix("__internal_syscall_cancel")
    }
}
