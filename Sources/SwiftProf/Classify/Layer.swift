// The four layers a frame can belong to, from the application down to the kernel.

public enum Layer: String, Sendable, CaseIterable, Comparable {
    /// The program's own code.
    case app
    /// Language and system runtimes: libc, ld.so, libstdc++, the Swift and Go runtimes, Rust std.
    case runtime
    /// The user frame that issued the system call, and the libc/runtime wrappers around it.
    case syscall
    /// Frames of the kernel stack.
    case kernel

    public static func < (lhs: Layer, rhs: Layer) -> Bool {
        allCases.firstIndex(of: lhs)! < allCases.firstIndex(of: rhs)!
    }
}
