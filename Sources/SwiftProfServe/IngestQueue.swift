// The uploads of one run, sent one after another on a queue of their own, so
// that a slow or failing server never delays a tick; each is retried with
// backoff, and each failed try is said.
import Dispatch
import NIOPosix
import SwiftProfHTTP
import Synchronization

public final class IngestQueue: Sendable {
    /// The waits before each retry of a failed upload.
    public static let backoffMilliseconds = [500, 1_000, 2_000]

    private let endpoint: IngestEndpoint
    private let report: @Sendable (String) -> Void
    private let queue = DispatchQueue(label: "swiftprof.push")
    private let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
    private let failed = Atomic<Int>(0)

    /// `report`: one line for each failed try.
    public init(endpoint: IngestEndpoint, report: @escaping @Sendable (String) -> Void) {
        self.endpoint = endpoint
        self.report = report
    }

    public func enqueue(_ upload: IngestUpload) {
        queue.async { [self] in send(upload) }
    }

    private func send(_ upload: IngestUpload) {
        let stretch = "\(upload.fromUnixSeconds)-\(upload.untilUnixSeconds)"
        let server = "\(endpoint.host):\(endpoint.port)"
        for attempt in 0...Self.backoffMilliseconds.count {
            let problem: String
            switch IngestClient.send(upload, to: endpoint, group: group) {
            case .success(let status) where (200..<300).contains(status):
                return
            case .success(let status):
                problem = "answered \(status)"
            case .failure(let error):
                problem = error.description
            }
            guard attempt < Self.backoffMilliseconds.count else {
                report("push of \(stretch) to \(server) failed: \(problem); given up after \(attempt + 1) tries")
                failed.add(1, ordering: .relaxed)
                return
            }
            let wait = Self.backoffMilliseconds[attempt]
            report("push of \(stretch) to \(server): \(problem); retrying in \(Double(wait) / 1000) s")
            usleep(UInt32(wait) * 1000)
        }
    }

    /// Waits for every upload and its retries; how many failed after them.
    public func finish() -> Int {
        queue.sync {}
        try? group.syncShutdownGracefully()
        return failed.load(ordering: .relaxed)
    }
}
