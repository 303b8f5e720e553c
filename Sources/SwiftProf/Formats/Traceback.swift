// `--format traceback`: every thread on its own, like Go's debug=2 goroutine
// dump, for reading one thread at a time rather than groups:
//
//   thread 1234 "poller" [sleeping, epoll_wait]:
//   epoll_wait(...)
//   	../sysdeps/unix/sysv/linux/epoll_wait.c:30 +0x56
//   poll_forever(...)
//   	/src/parked.c:38 +0x23

public struct TracebackWriter: Sendable {
    public init() {}

    public func write(_ document: ProfileDocument) -> String {
        let threads = document.threadStacks.enumerated().sorted { lhs, rhs in
            lhs.element.tid != rhs.element.tid ? lhs.element.tid < rhs.element.tid : lhs.offset < rhs.offset
        }.map(\.element)
        return threads.map(block).joined(separator: "\n")
    }

    private func block(_ thread: ThreadStack) -> String {
        var status: [String] = []
        if let state = thread.state {
            status.append(state.codeName)
            if let call = state.systemCall { status.append(call.name) }
        }
        let tid = thread.tid == 0 ? "?" : String(thread.tid)
        var text = "thread \(tid) \"\(thread.name)\"" + (status.isEmpty ? "" : " [\(status.joined(separator: ", "))]") + ":\n"
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
