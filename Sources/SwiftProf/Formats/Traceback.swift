// `--format traceback`: every thread on its own, like Go's debug=2 goroutine
// dump, for reading one thread at a time rather than groups:
//
//   thread 1234 "poller" [sleeping, epoll_wait]:
//   epoll_wait(...)
//   	../sysdeps/unix/sysv/linux/epoll_wait.c:30 +0x56
//   poll_forever(...)
//   	/src/parked.c:38 +0x23
//
// Goroutines (`dump --goroutines`) are headed as Go heads them, tasks (`dump
// --tasks`) the same way:
//   goroutine 18 [chan receive]:
//   task 7 [suspended, task group child of task 5]:
//
// Where a capture spans several processes, each one's threads follow a heading:
//   process 1235 "nginx: worker process":
//
// A Swift async caller (read from its task's async context, not from the thread's
// stack) is marked as Swift's backtracer marks it:
//   handleSearch(_:)(...) [async]
//   	/src/main.swift:41 +0x0

public struct TracebackWriter: Sendable {
    public init() {}

    public func write(_ document: ProfileDocument) -> String {
        let leading = document.leadingThread
        let threads = document.threadStacks.enumerated().sorted { lhs, rhs in
            let (left, right) = (lhs.element.process?.pid ?? 0, rhs.element.process?.pid ?? 0)
            if left != right { return left < right }
            if (lhs.element.tid == leading) != (rhs.element.tid == leading) { return lhs.element.tid == leading }
            return lhs.element.tid != rhs.element.tid ? lhs.element.tid < rhs.element.tid : lhs.offset < rhs.offset
        }.map(\.element)
        // Goroutines and tasks are headed by their kind, id and state, as Go heads goroutines.
        let kind = ["goroutine", "task"].contains(document.profileName) ? document.profileName : nil
        var blocks: [String] = []
        var process: ProcessIdentity?
        for thread in threads {
            // Where a capture spans several processes, each one's threads under a heading of its own.
            if let own = thread.process, own.pid != process?.pid {
                process = own
                blocks.append(Self.heading(own))
            }
            blocks.append(kind.map { stateBlock($0, thread) } ?? block(thread))
        }
        return blocks.joined(separator: "\n")
    }

    /// `process 1234 "nginx: worker process":` (and `, pid 7 in its namespace`).
    static func heading(_ process: ProcessIdentity) -> String {
        "process \(process.pid) \(NameQuoting.alwaysQuoted(process.commandLine))"
            + (process.namespacePID.map { " [pid \($0) in its namespace]" } ?? "") + ":\n"
    }

    /// A goroutine's or task's name is its state, as the reader gave it; a named
    /// task's state starts with its quoted name, which goes before the brackets.
    private func stateBlock(_ kind: String, _ goroutine: ThreadStack) -> String {
        var state = Substring(goroutine.name)
        var name = ""
        if state.hasPrefix("\""), let (read, rest) = NameQuoting.readQuoted(state), rest.hasPrefix(" ") {
            name = NameQuoting.alwaysQuoted(read) + " "
            state = rest.dropFirst()
        }
        // As Go prints them (key: value, by key), each made printable: the target chose them.
        let labels = goroutine.headerShowsLabels && !goroutine.labels.isEmpty
            ? " {" + goroutine.labels.sorted { $0.key < $1.key }.map { printable($0.key) + ": " + printable($0.value) }
                .joined(separator: ", ") + "}"
            : ""
        return "\(kind) \(goroutine.tid) \(name)[\(printable(String(state) + goroutine.headerDetail))]\(labels):\n" + frames(goroutine)
    }

    private func block(_ thread: ThreadStack) -> String {
        var status: [String] = []
        if let state = thread.state {
            status.append(state.codeName)
            if let call = state.systemCall { status.append(call.name) }
            status += state.swiftTasks.map { "running task \($0)" }
            if let wait = state.wait { status.append("waiting for \(wait)") }
        }
        let tid = thread.tid == 0 ? "?" : String(thread.tid)
        // Always quoted, as Go's %q: a name cannot end the header or start a frame line.
        let name = NameQuoting.quoted(thread.name)
        return "thread \(tid) \(name.hasPrefix("\"") ? name : "\"\(name)\"")" + (status.isEmpty ? "" : " [\(status.joined(separator: ", "))]") + ":\n"
            + frames(thread)
    }

    private func frames(_ thread: ThreadStack) -> String {
        var text = ""
        for location in thread.locations {
            for line in location.lines {
                if line.function.isEmpty, let object = location.objectOffset(quoting: FieldQuoting.quoted) {
                    // No symbol: the object and the offset in it, as in pprof-text.
                    text += "\(hex(location.address))(...)\n\t\(object)\n"
                    continue
                }
                let file = location.isKernel ? PprofTextWriter.kernelFile
                    : (line.file.isEmpty ? "??" : FieldQuoting.quoted(line.file)) + ":\(line.line)"
                let marker = location.isAsyncCaller ? " [async]" : ""
                text += "\(FieldQuoting.quoted(Location.displayName(line, of: location)))(...)\(marker)\n\t\(file) +\(hex(line.offset))\n"
            }
        }
        if let truncation = thread.truncation { text += "...truncated: \(truncation)\n" }
        return text
    }
}
