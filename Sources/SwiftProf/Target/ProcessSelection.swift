// Which processes a command looks at when it is given more than one PID: a
// process and its descendants (/proc/PID/task/TID/children), processes by name,
// the processes of a cgroup v2 directory, or every process swiftprof may trace.
// Each process is named as ps names it: the argv it wrote (PostgreSQL's backends
// rewrite theirs), else its name in brackets.
#if canImport(Glibc)
import Glibc
#endif

public enum ProcessSelector: Sendable, Equatable {
    /// These processes, as given.
    case pids([Int32])
    /// The process and all its descendants.
    case children(of: Int32)
    /// Processes whose name (comm) or executable's base name matches a glob.
    case name(String)
    /// Every process of a cgroup v2 directory and of the cgroups below it.
    case cgroup(String)
    /// Every process but the kernel's threads and swiftprof itself.
    case all

    /// Whether a run lists its processes again from /proc (a tree is followed through
    /// its children lists at every tick instead; given pids are only those).
    var isListedAgain: Bool {
        switch self {
        case .name, .cgroup, .all: true
        case .pids, .children: false
        }
    }

    /// Whether a process started by one of its processes is one of them too (it is in
    /// the tree, the cgroup, or is a process) until /proc says otherwise.
    var followsForks: Bool {
        switch self {
        case .children, .cgroup, .all: true
        case .pids, .name: false
        }
    }
}

/// A process as a record names it.
public struct ProcessIdentity: Hashable, Sendable, Comparable {
    public var pid: Int32
    /// What ps shows: its argv joined by spaces, else its name in brackets.
    public var commandLine: String
    /// Its name (comm), as the kernel keeps it (15 bytes at most).
    public var name: String
    /// The pid it sees itself by, in a PID namespace of its own; nil when the same.
    public var namespacePID: Int32?

    public init(pid: Int32, commandLine: String, name: String, namespacePID: Int32? = nil) {
        self.pid = pid
        self.commandLine = commandLine
        self.name = name
        self.namespacePID = namespacePID
    }

    public static func < (lhs: ProcessIdentity, rhs: ProcessIdentity) -> Bool { lhs.pid < rhs.pid }

    /// Read from /proc; nil when the process is gone. Its name from comm; the kernel's
    /// status (generated line by line, a tenth of a millisecond) only for a process in
    /// another PID namespace than ours, for the pid it sees itself by.
    public static func read(pid: Int32) -> ProcessIdentity? {
        guard var comm = try? ProcFile.readBytes("/proc/\(pid)/comm") else { return nil }
        if comm.last == UInt8(ascii: "\n") { comm.removeLast() }
        let name = RawBytes.decode(comm)
        var namespacePID: Int32?
        if namespaceLink(pid) != ownNamespace, let status = try? ProcFile.read("/proc/\(pid)/status") {
            for line in status.split(separator: "\n") where line.hasPrefix("NSpid:") {
                // Outermost first: the last one is the pid in its own namespace.
                let pids = line.dropFirst(6).split(whereSeparator: { $0 == " " || $0 == "\t" }).compactMap { Int32($0) }
                if pids.count > 1, let own = pids.last, own != pid { namespacePID = own }
            }
        }
        let argv = (try? ProcFile.readBytes("/proc/\(pid)/cmdline")) ?? []
        // ps: NUL-separated arguments shown with spaces; a trailing NUL is no argument.
        var words = argv.split(separator: 0, omittingEmptySubsequences: false)
        while words.last?.isEmpty == true { words.removeLast() }
        let commandLine = words.isEmpty ? "[\(name)]" : words.map { RawBytes.decode(Array($0)) }.joined(separator: " ")
        return ProcessIdentity(pid: pid, commandLine: commandLine, name: name, namespacePID: namespacePID)
    }
}

extension ProcessIdentity {
    /// Our own PID namespace ("pid:[4026531836]").
    private static let ownNamespace = namespaceLink(getpid())

    /// A process's PID namespace; nil when it cannot be read (another user's process).
    private static func namespaceLink(_ pid: Int32) -> String? {
        var buffer = [UInt8](repeating: 0, count: 64)
        let length = readlink("/proc/\(pid)/ns/pid", &buffer, buffer.count)
        return length > 0 ? String(decoding: buffer[..<length], as: UTF8.self) : nil
    }
}

/// The processes a selector found.
public struct ProcessSelection: Sendable, Equatable {
    /// Ascending.
    public var pids: [Int32]
    /// Found but not to be traced by us (another user's, without CAP_SYS_PTRACE).
    public var notPermitted: [ProcessIdentity]

    public init(pids: [Int32], notPermitted: [ProcessIdentity]) {
        self.pids = pids
        self.notPermitted = notPermitted
    }

    /// One line for what was left out, or nil: "not permitted to trace 3 processes: 812 (sshd), …".
    public var notPermittedLine: String? {
        guard !notPermitted.isEmpty else { return nil }
        let shown = notPermitted.prefix(10).map { "\($0.pid) (\(NameQuoting.quoted($0.name)))" }
        return "not permitted to trace \(notPermitted.count) \(notPermitted.count == 1 ? "process" : "processes"): "
            + shown.joined(separator: ", ") + (notPermitted.count > shown.count ? ", …" : "")
    }

    /// The processes `selector` names now. Throws when the process named by pid is not there,
    /// or a cgroup directory cannot be read.
    /// `skipping`: processes known already (a run listing again): not looked at.
    public static func resolve(_ selector: ProcessSelector, skipping known: Set<Int32> = []) throws(TargetError) -> ProcessSelection {
        let me = getpid()
        var candidates: [Int32]
        switch selector {
        case .pids(let pids):
            for pid in pids where !isProcess(pid) { throw TargetError.noSuchProcess(pid: pid) }
            candidates = pids
        case .children(let root):
            guard isProcess(root) else { throw TargetError.noSuchProcess(pid: root) }
            candidates = descendants(of: root)
        case .name(let glob):
            // Its comm from stat: what ps would show is not needed to match (nor its cmdline read).
            candidates = allProcesses().filter { pid in
                guard !known.contains(pid) else { return false }
                let names = [(try? TaskStatus.read(pid: pid))?.name, executableBaseName(pid)].compactMap { $0 }
                return names.contains { fnmatch(glob, $0, 0) == 0 }
            }
        case .cgroup(let path):
            candidates = try cgroupProcesses(path)
        case .all:
            candidates = allProcesses().filter { !known.contains($0) && !isKernelThread($0) }
        }
        var selection = ProcessSelection(pids: [], notPermitted: [])
        for pid in Set(candidates).subtracting(known).sorted() where pid != me {
            if mayTrace(pid) {
                selection.pids.append(pid)
            } else if let identity = ProcessIdentity.read(pid: pid) {
                selection.notPermitted.append(identity)
            }
        }
        return selection
    }

    /// A process, not a thread (/proc/TID is there for a thread too, though not listed).
    static func isProcess(_ pid: Int32) -> Bool {
        guard pid > 0, let status = try? ProcFile.read("/proc/\(pid)/status") else { return false }
        return status.contains("\nTgid:\t\(pid)\n")
    }

    /// Every pid /proc lists (processes only: threads are under task/).
    static func allProcesses() -> [Int32] {
        (try? ProcFile.numericEntries("/proc")) ?? []
    }

    /// The process and every descendant, by the kernel's children lists of each of its threads.
    static func descendants(of root: Int32) -> [Int32] {
        var found: [Int32] = [root]
        var seen: Set<Int32> = [root]
        var next = 0
        while next < found.count {
            let pid = found[next]
            next += 1
            for tid in (try? ProcFile.numericEntries("/proc/\(pid)/task")) ?? [] {
                let text = (try? ProcFile.read("/proc/\(pid)/task/\(tid)/children")) ?? ""
                for child in text.split(separator: " ").compactMap({ Int32($0) }) where seen.insert(child).inserted {
                    found.append(child)
                }
            }
        }
        return found
    }

    /// The processes of a cgroup v2 directory (absolute, or under the cgroup2 mount) and its sub-cgroups.
    static func cgroupProcesses(_ path: String) throws(TargetError) -> [Int32] {
        let directory = path.hasPrefix("/") ? path : (cgroup2Mount() ?? "/sys/fs/cgroup") + "/" + path
        var pids: [Int32] = []
        var pending = [directory]
        var first = true
        while let next = pending.popLast() {
            do {
                let text = try ProcFile.read(next + "/cgroup.procs")
                pids += text.split(separator: "\n").compactMap { Int32($0) }
            } catch {
                if first { throw TargetError.system(error) }
                continue
            }
            first = false
            pending += ProcFile.subdirectories(next).map { next + "/" + $0 }
        }
        return pids
    }

    /// Where the cgroup v2 hierarchy is mounted (/sys/fs/cgroup, or .../unified on a hybrid system).
    static func cgroup2Mount() -> String? {
        guard let text = try? ProcFile.read("/proc/self/mountinfo") else { return nil }
        for line in text.split(separator: "\n") {
            // ... mount-point ... - fstype source options
            let halves = line.split(separator: " - ", maxSplits: 1)
            guard halves.count == 2, halves[1].hasPrefix("cgroup2 ") else { continue }
            let fields = halves[0].split(separator: " ")
            if fields.count > 4 { return String(fields[4]) }
        }
        return nil
    }

    /// A kernel thread has no memory of its own (PF_KTHREAD).
    static func isKernelThread(_ pid: Int32) -> Bool {
        (try? TaskStatus.read(pid: pid))?.isKernelThread ?? true
    }

    /// Whether the kernel lets us read the process as ptrace would: its exe link is
    /// refused otherwise (the same PTRACE_MODE_READ check), without touching it.
    static func mayTrace(_ pid: Int32) -> Bool {
        var buffer = [CChar](repeating: 0, count: 8)
        if readlink("/proc/\(pid)/exe", &buffer, buffer.count) >= 0 { return true }
        return errno != EACCES && errno != EPERM
    }

    private static func executableBaseName(_ pid: Int32) -> String? {
        guard let target = ProcFile.linkTarget("/proc/\(pid)/exe") else { return nil }
        var path = String(decoding: target, as: UTF8.self)
        if path.hasSuffix(" (deleted)") { path.removeLast(10) }
        return path.split(separator: "/").last.map(String.init)
    }
}
