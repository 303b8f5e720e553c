// Which kernel subsystem a blocked thread waits in, and the hardware it
// ultimately waits on, from the names of its kernel frames: the innermost
// frame that a rule knows decides (scheduler and entry frames say nothing).

public struct KernelPath: Hashable, Sendable {
    public var subsystem: String
    public var hardware: String

    public init(subsystem: String, hardware: String) {
        self.subsystem = subsystem
        self.hardware = hardware
    }

    public static let unknown = KernelPath(subsystem: "—", hardware: "—")
}

public enum KernelSubsystem {
    /// Glob → path, tried in order on each frame from the innermost.
    static let rules: [(pattern: String, path: KernelPath)] = [
        (["inet_csk_accept", "inet_accept", "tcp_*", "inet_*", "sk_wait_data", "sk_stream_wait_*", "__inet_stream_connect"], "TCP/IP", "NIC"),
        (["udp*", "__skb_wait_for_more_packets", "__skb_recv_*", "skb_recv_*"], "UDP", "NIC"),
        (["unix_*"], "Unix sockets", "none"),
        (["sock_*", "__sys_accept*", "__sys_recv*", "__sys_send*", "do_accept"], "sockets", "NIC"),
        (["anon_pipe_*", "pipe_*", "wait_for_partner"], "pipe", "none"),
        (["ep_*", "do_epoll_*"], "eventpoll", "none"),
        (["futex_*", "__futex_*", "do_futex"], "futex", "none"),
        (["hrtimer_*", "do_nanosleep", "common_nsleep", "schedule_hrtimeout*", "timerfd_*", "do_timerfd_*", "msleep*"], "hrtimer", "timer"),
        (["do_sigtimedwait", "sigsuspend", "__x64_sys_rt_sigsuspend", "sys_pause", "__x64_sys_pause", "do_signal_stop"], "signals", "none"),
        (["do_select", "core_sys_select", "do_sys_poll", "do_poll", "poll_schedule_timeout"], "poll/select", "none"),
        (["n_tty_*", "tty_*", "pty_*"], "tty", "terminal"),
        (["io_uring_*", "io_cqring_wait*"], "io_uring", "none"),
        (["blk_*", "io_schedule*", "submit_bio*", "bio_*", "folio_wait_*", "wait_on_page_bit*", "__lock_page*", "bit_wait_io"], "block I/O", "block device"),
        (["ext4_*", "xfs_*", "btrfs_*", "jbd2_*", "nfs_*", "fuse_*", "vfs_*", "filemap_*", "generic_file_*", "do_sys_open*", "path_openat"], "VFS", "block device"),
        (["do_wait", "kernel_wait4", "kernel_waitid"], "process wait", "none"),
        (["do_msgrcv", "do_semtimedop", "ipc_*", "mq_*"], "System V IPC", "none"),
        (["do_sched_yield", "__x64_sys_sched_yield"], "scheduler", "CPU"),
        (["ptrace_*", "do_jobctl_trap"], "ptrace", "none"),
        (["do_exit", "do_group_exit", "get_signal"], "signals", "none"),
    ].flatMap { patterns, subsystem, hardware in patterns.map { ($0, KernelPath(subsystem: subsystem, hardware: hardware)) } }

    /// What a system call waits on when no kernel frame is readable (not root).
    static let bySyscall: [String: KernelPath] = [
        "epoll_wait": KernelPath(subsystem: "eventpoll", hardware: "none"),
        "epoll_pwait": KernelPath(subsystem: "eventpoll", hardware: "none"),
        "epoll_pwait2": KernelPath(subsystem: "eventpoll", hardware: "none"),
        "futex": KernelPath(subsystem: "futex", hardware: "none"),
        "clock_nanosleep": KernelPath(subsystem: "hrtimer", hardware: "timer"),
        "nanosleep": KernelPath(subsystem: "hrtimer", hardware: "timer"),
        "accept": KernelPath(subsystem: "sockets", hardware: "NIC"),
        "accept4": KernelPath(subsystem: "sockets", hardware: "NIC"),
        "recvfrom": KernelPath(subsystem: "sockets", hardware: "NIC"),
        "recvmsg": KernelPath(subsystem: "sockets", hardware: "NIC"),
        "connect": KernelPath(subsystem: "sockets", hardware: "NIC"),
        "poll": KernelPath(subsystem: "poll/select", hardware: "none"),
        "ppoll": KernelPath(subsystem: "poll/select", hardware: "none"),
        "select": KernelPath(subsystem: "poll/select", hardware: "none"),
        "pselect6": KernelPath(subsystem: "poll/select", hardware: "none"),
        "wait4": KernelPath(subsystem: "process wait", hardware: "none"),
        "waitid": KernelPath(subsystem: "process wait", hardware: "none"),
        "pause": KernelPath(subsystem: "signals", hardware: "none"),
        "rt_sigsuspend": KernelPath(subsystem: "signals", hardware: "none"),
        "rt_sigtimedwait": KernelPath(subsystem: "signals", hardware: "none"),
        "io_uring_enter": KernelPath(subsystem: "io_uring", hardware: "none"),
    ]

    /// From the kernel frames (innermost first), else wchan, else the system call's name.
    public static func path(kernelFunctions: [String], wchan: String, syscall: String?) -> KernelPath {
        for function in kernelFunctions + [wchan] where !function.isEmpty {
            if let rule = rules.first(where: { LayerRule.glob($0.pattern, function) }) { return rule.path }
        }
        return syscall.flatMap { bySyscall[$0] } ?? .unknown
    }

    public static func path(of record: Record) -> KernelPath {
        let kernel = record.locations.filter(\.isKernel).flatMap { $0.lines.map(\.function) }
        return path(kernelFunctions: kernel, wchan: record.state?.wchan ?? "", syscall: record.state?.systemCall?.name)
    }
}
