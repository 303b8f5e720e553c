// The HTTP/1 server of `swiftprof serve`, on SwiftNIO's codecs. It decides what
// a request may have (the token, the route, whether a capture is under way) and
// hands the capture itself to the caller, on a thread of its own: a capture
// blocks (a CPU profile for seconds), the event loop must not.
import Dispatch
import NIOCore
import NIOHTTP1
import NIOPosix
import SwiftProfHTTP
import Synchronization

public final class PprofServer: Sendable {
    public struct Settings: Sendable {
        public var host: String
        public var port: Int
        /// Requests must carry `Authorization: Bearer TOKEN` when set.
        public var token: String?

        public init(host: String, port: Int, token: String?) {
            self.host = host
            self.port = port
            self.token = token
        }
    }

    /// Takes what a route asks for; runs on the capture thread, one at a time.
    public typealias Capture = @Sendable (PprofRoute) -> PprofReply

    private let settings: Settings
    private let indexPage: String
    private let capture: Capture
    private let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
    private let captureQueue = DispatchQueue(label: "swiftprof.capture")
    /// The captures taken or waiting, one at a time (ptrace lets one tracer hold a thread).
    private let line = Mutex(CaptureLine())
    private let channel = Mutex<Channel?>(nil)

    public init(settings: Settings, indexPage: String, capture: @escaping Capture) {
        self.settings = settings
        self.indexPage = indexPage
        self.capture = capture
    }

    /// Listens; the port it listens on (the one asked for, or the kernel's choice for 0).
    public func start() throws -> Int {
        let bootstrap = ServerBootstrap(group: group)
            .serverChannelOption(ChannelOptions.backlog, value: 64)
            .serverChannelOption(ChannelOptions.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { [self] channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.configureHTTPServerPipeline(withErrorHandling: true)
                    try channel.pipeline.syncOperations.addHandler(RequestHandler(server: self))
                }
            }
        let bound = try bootstrap.bind(host: settings.host, port: settings.port).wait()
        channel.withLock { $0 = bound }
        return bound.localAddress?.port ?? settings.port
    }

    /// Stops listening, waits for a capture under way (the caller has told it to
    /// stop), and ends the event loop.
    public func stop() {
        let listening = channel.withLock { channel in
            defer { channel = nil }
            return channel
        }
        try? listening?.close().wait()
        captureQueue.sync {}
        try? group.syncShutdownGracefully()
    }

    // MARK: - Deciding

    fileprivate enum Decision {
        case now(PprofReply)
        case capture(PprofRoute)
    }

    fileprivate func decide(_ head: HTTPRequestHead) -> Decision {
        guard head.method == .GET || head.method == .HEAD else {
            return .now(.error(405, "method not allowed: profiles are read with GET", headers: [("Allow", "GET, HEAD")]))
        }
        if let token = settings.token {
            let given = head.headers["Authorization"].first ?? ""
            guard constantTimeEqual(Array(given.utf8), Array("Bearer \(token)".utf8)) else {
                return .now(.error(401, "unauthorized: give the token as Authorization: Bearer TOKEN",
                                   headers: [("WWW-Authenticate", "Bearer realm=\"swiftprof\"")]))
            }
        }
        switch PprofRoute.parse(head.uri) {
        case .failure(let refusal):
            return .now(.error(refusal.status, refusal.message))
        case .success(.index):
            return .now(PprofReply(status: 200, contentType: "text/html; charset=utf-8", body: Array(indexPage.utf8)))
        case .success(let route):
            switch line.withLock({ $0.admit(route, now: monotonicSeconds()) }) {
            case .some(let retryAfter):
                let what = if case .profile = route { "a profile" } else { "a snapshot" }
                return .now(.error(503, "busy: \(what) of this process is being taken or waits; retry in \(retryAfter) s",
                                   headers: [("Retry-After", String(retryAfter))]))
            case .none:
                return .capture(route)
            }
        }
    }

    fileprivate func run(_ route: PprofRoute, then reply: @escaping @Sendable (PprofReply) -> Void) {
        captureQueue.async { [self] in
            let answer = capture(route)
            line.withLock { $0.done(route) }
            reply(answer)
        }
    }

    private func constantTimeEqual(_ a: [UInt8], _ b: [UInt8]) -> Bool {
        guard a.count == b.count else { return false }
        return zip(a, b).reduce(UInt8(0)) { $0 | ($1.0 ^ $1.1) } == 0
    }

    private func monotonicSeconds() -> Double { Double(DispatchTime.now().uptimeNanoseconds) / 1e9 }
}

/// One connection's requests, answered in order.
private final class RequestHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    private let server: PprofServer
    private var head: HTTPRequestHead?

    init(server: PprofServer) { self.server = server }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let head): self.head = head
        case .body: break
        case .end:
            guard let head else { return }
            self.head = nil
            switch server.decide(head) {
            case .now(let reply):
                write(reply, for: head, context: context)
            case .capture(let route):
                let bound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
                server.run(route) { reply in
                    bound.eventLoop.execute {
                        let (handler, context) = bound.value
                        handler.write(reply, for: head, context: context)
                    }
                }
            }
        }
    }

    private func write(_ reply: PprofReply, for request: HTTPRequestHead, context: ChannelHandlerContext) {
        var headers = HTTPHeaders()
        headers.add(name: "Content-Type", value: reply.contentType)
        headers.add(name: "Content-Length", value: String(reply.body.count))
        headers.add(name: "X-Content-Type-Options", value: "nosniff")
        for (name, value) in reply.headers { headers.add(name: name, value: value) }
        let keepAlive = request.isKeepAlive
        if !keepAlive { headers.add(name: "Connection", value: "close") }
        let head = HTTPResponseHead(version: request.version, status: HTTPResponseStatus(statusCode: reply.status), headers: headers)
        context.write(wrapOutboundOut(.head(head)), promise: nil)
        if request.method != .HEAD {
            context.write(wrapOutboundOut(.body(.byteBuffer(context.channel.allocator.buffer(bytes: reply.body)))), promise: nil)
        }
        let channel = context.channel
        context.writeAndFlush(wrapOutboundOut(.end(nil))).whenComplete { _ in
            if !keepAlive { channel.close(promise: nil) }
        }
    }
}
