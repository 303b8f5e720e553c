// What `serve` answers, apart from how: the reply to a route, and the line of
// captures waiting for the one tracer a process can have.

/// What the server answers: a status, the body and its type.
public struct PprofReply: Sendable {
    public var status: Int
    public var contentType: String
    public var body: [UInt8]
    public var headers: [(String, String)] = []

    public init(status: Int, contentType: String, body: [UInt8], headers: [(String, String)] = []) {
        self.status = status
        self.contentType = contentType
        self.body = body
        self.headers = headers
    }

    /// A refusal as Go's pprof handlers write one: plain text, one line.
    public static func error(_ status: Int, _ message: String, headers: [(String, String)] = []) -> PprofReply {
        PprofReply(status: status, contentType: "text/plain; charset=utf-8", body: Array((message + "\n").utf8),
                   headers: [("X-Go-Pprof", "1")] + headers)
    }

    /// A profile to download, with the headers Go's handlers give it.
    public static func download(_ body: [UInt8], filename: String) -> PprofReply {
        PprofReply(status: 200, contentType: "application/octet-stream", body: body,
                   headers: [("Content-Disposition", "attachment; filename=\"\(filename)\"")])
    }
}

/// Who waits for the tracer. Snapshots take a fraction of a second: they wait in
/// line, also behind a profile under way (a scraper asks for goroutines while its
/// CPU profile is taken, as it would of a Go service), unless that would take more
/// than `longestWait`. A profile while another is taken or waits is refused, as Go
/// refuses a second CPU profile; so is anything past `longestLine` waiting.
public struct CaptureLine: Sendable {
    static let longestWait = 30.0
    static let longestLine = 16
    /// When the profile taken or waiting is expected to end (monotonic seconds).
    private(set) var profileEnd: Double?
    private(set) var waiting = 0

    /// nil: take it (it is counted until `done`); else the seconds to retry after.
    public init() {}

    public mutating func admit(_ route: PprofRoute, now: Double) -> Int? {
        let profileLeft = profileEnd.map { max($0 - now, 1) }
        if case .profile(let seconds, _) = route {
            if let profileLeft { return Int(profileLeft.rounded(.up)) }
            guard waiting < Self.longestLine else { return 1 }
            // Behind the snapshots already waiting, a second or so each at most.
            profileEnd = now + Double(waiting) + Double(seconds)
        } else {
            if let profileLeft, profileLeft > Self.longestWait { return Int(profileLeft.rounded(.up)) }
            guard waiting < Self.longestLine else { return 1 }
        }
        waiting += 1
        return nil
    }

    public mutating func done(_ route: PprofRoute) {
        waiting -= 1
        if case .profile = route { profileEnd = nil }
    }
}

