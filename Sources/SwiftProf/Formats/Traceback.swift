// `--format traceback`: every thread on its own, like Go's debug=2 goroutine
// dump, for reading one thread at a time rather than groups:
//
//   thread 1234 "poller" [sleeping, epoll_wait]:
//   epoll_wait(...)
//   	../sysdeps/unix/sysv/linux/epoll_wait.c:30 +0x56
//   poll_forever(...)
//   	/src/parked.c:38 +0x23
//
// Goroutines (`dump --goroutines`) are headed as Go heads them:
//   goroutine 18 [chan receive]:

public struct TracebackWriter: Sendable {
    public init() {}

    public func write(_ document: ProfileDocument) -> String {
        let threads = document.threadStacks.enumerated().sorted { lhs, rhs in
            lhs.element.tid != rhs.element.tid ? lhs.element.tid < rhs.element.tid : lhs.offset < rhs.offset
        }.map(\.element)
        let goroutines = document.profileName == "goroutine"
        return threads.map { goroutines ? goroutineBlock($0) : block($0) }.joined(separator: "\n")
    }

    /// A goroutine's name is its state, as the reader gave it.
    private func goroutineBlock(_ goroutine: ThreadStack) -> String {
        "goroutine \(goroutine.tid) [\(goroutine.name.filter { !$0.isNewline })]:\n" + frames(goroutine)
    }

    private func block(_ thread: ThreadStack) -> String {
        var status: [String] = []
        if let state = thread.state {
            status.append(state.codeName)
            if let call = state.systemCall { status.append(call.name) }
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
                let file = line.file.isEmpty ? "??" : line.file
                text += "\(Location.displayName(line, of: location))(...)\n\t\(file):\(line.line) +\(hex(line.offset))\n"
            }
        }
        if let truncation = thread.truncation { text += "...truncated: \(truncation)\n" }
        return text
    }
}
