// What a request to /debug/pprof/ asks for, decided as Go's net/http/pprof
// decides it, so that `go tool pprof`, Parca and Pyroscope ask the same way:
// `goroutine?debug=0|1|2` a snapshot (gzipped pprof, text, traceback),
// `profile?seconds=N` a CPU profile (30 s when not said), and ours beside them:
// `wallclock?seconds=N`, every thread at every tick.
import FoundationEssentials

/// Which stacks a snapshot lists.
public enum SnapshotView: String, Sendable, CaseIterable {
    case threads, goroutines, tasks
}

/// A snapshot's encoding, as Go's `debug` parameter chooses it.
public enum SnapshotEncoding: Int, Sendable {
    /// Gzipped pprof (debug=0, Go's default).
    case pprof = 0
    /// The goroutine profile's text, grouped (debug=1).
    case text = 1
    /// One traceback a thread (debug=2).
    case traceback = 2
}

public enum ProfileClock: String, Sendable {
    /// Only threads on a CPU at the tick: Go's CPU profile.
    case cpu
    /// Every thread at every tick: where the time goes.
    case wall
    /// The time threads wait for another thread: Go's block profile.
    case block
    /// The time threads wait for a lock, under its holder's stack: Go's mutex profile.
    case mutex

    /// The route's name: profile, wallclock, block.
    public var routeName: String {
        switch self {
        case .cpu: "profile"
        case .wall: "wallclock"
        case .block: "block"
        case .mutex: "mutex"
        }
    }
}

public enum PprofRoute: Equatable, Sendable {
    case index
    /// nil view: the server's default for the target (goroutines for a Go program).
    case snapshot(SnapshotEncoding, view: SnapshotView?)
    case profile(seconds: Int, clock: ProfileClock)

    /// Go's default when `seconds` is not given.
    public static let defaultSeconds = 30
    /// The longest profile served: a request for more is refused, as Go refuses one
    /// longer than its server's write timeout.
    public static let maximumSeconds = 600

    /// Refused requests: the status and the one line said in the body.
    public struct Refusal: Error, Equatable, Sendable {
        public let status: Int
        public let message: String
    }

    /// The route of a request target ("/debug/pprof/profile?seconds=5").
    public static func parse(_ target: String) -> Result<PprofRoute, Refusal> {
        guard let components = URLComponents(string: target) else {
            return .failure(Refusal(status: 400, message: "the request target is not a URL path"))
        }
        var query: [String: String] = [:]
        for item in components.queryItems ?? [] where query[item.name] == nil { query[item.name] = item.value ?? "" }
        let path = components.path
        guard path.hasPrefix("/debug/pprof") else {
            return .failure(Refusal(status: 404, message: "not found: profiles are under /debug/pprof/"))
        }
        let name = path.dropFirst("/debug/pprof".count).drop { $0 == "/" }
        switch name {
        case "":
            return .success(.index)
        case "goroutine":
            let debug = query["debug"] ?? "0"
            guard let number = Int(debug), number >= 0 else {
                return .failure(Refusal(status: 400, message: "debug must be 0 (pprof), 1 (text) or 2 (traceback), not \(quoted(debug))"))
            }
            var view: SnapshotView?
            if let asked = query["view"] {
                guard let known = SnapshotView(rawValue: asked) else {
                    return .failure(Refusal(status: 400, message: "view must be threads, goroutines or tasks, not \(quoted(asked))"))
                }
                view = known
            }
            // As Go: any debug above 2 is the traceback.
            return .success(.snapshot(SnapshotEncoding(rawValue: min(number, 2))!, view: view))
        case "profile", "wallclock", "block", "mutex":
            let clock: ProfileClock = switch name {
            case "profile": .cpu
            case "block": .block
            case "mutex": .mutex
            default: .wall
            }
            guard let text = query["seconds"] else { return .success(.profile(seconds: defaultSeconds, clock: clock)) }
            guard let seconds = Int(text), seconds > 0, seconds <= maximumSeconds else {
                return .failure(Refusal(status: 400, message: "seconds must be a whole number from 1 to \(maximumSeconds), not \(quoted(text))"))
            }
            return .success(.profile(seconds: seconds, clock: clock))
        default:
            return .failure(Refusal(status: 404, message: "unknown profile \(quoted(String(name))): swiftprof serves goroutine, profile, wallclock, block and mutex"))
        }
    }

    /// A value the client chose, said so that it cannot pass for more of the message.
    private static func quoted(_ text: String) -> String {
        let shown = text.prefix(64).unicodeScalars.map { $0.isASCII && $0.value >= 0x20 && $0.value < 0x7f && $0 != "\"" ? String($0) : "?" }
        return "\"" + shown.joined() + (text.count > 64 ? "…" : "") + "\""
    }

    /// Text as HTML shows it literally (a --name glob may hold '<' or '&').
    static func htmlEscaped(_ text: String) -> String {
        var escaped = ""
        for character in text {
            switch character {
            case "&": escaped += "&amp;"
            case "<": escaped += "&lt;"
            case ">": escaped += "&gt;"
            case "\"": escaped += "&quot;"
            default: escaped.append(character)
            }
        }
        return escaped
    }

    /// The index page: what can be asked for, as Go's lists its profiles.
    public static func indexPage(served: String, defaultView: SnapshotView) -> String {
        """
        <html>
        <head><title>/debug/pprof/</title></head>
        <body>
        /debug/pprof/ of \(htmlEscaped(served)), served by swiftprof<br>
        <br>
        Types of profiles available:
        <table>
        <thead><td>Profile</td><td>Description</td></thead>
        <tr><td><a href="goroutine?debug=1">goroutine</a></td><td>Stack traces of all current \(defaultView.rawValue) (view=threads|goroutines|tasks; debug=0 pprof, 1 text, 2 traceback)</td></tr>
        <tr><td><a href="profile">profile</a></td><td>CPU profile: only threads on a CPU are sampled, 100 times a second (seconds=N, default \(defaultSeconds), at most \(maximumSeconds))</td></tr>
        <tr><td><a href="wallclock">wallclock</a></td><td>Wall-clock profile: every thread, blocked or not, 100 times a second (seconds=N)</td></tr>
        <tr><td><a href="block">block</a></td><td>Stack traces that led to waiting for another thread (a lock, condition variable, semaphore, join, futex, file lock), sampled 100 times a second (seconds=N)</td></tr>
        <tr><td><a href="mutex">mutex</a></td><td>Stack traces of holders of contended mutexes, charged the time others waited for them (seconds=N)</td></tr>
        </table>
        <p>
        Profile descriptions:
        <ul>
        <li><div class=profile-name>goroutine: </div> Stack traces of all current \(defaultView.rawValue), grouped by identical stacks.</li>
        <li><div class=profile-name>profile: </div> CPU profile. You can specify the duration in the seconds GET parameter. After you get the profile file, use the go tool pprof command to investigate the profile.</li>
        </ul>
        </p>
        </body>
        </html>

        """
    }
}
