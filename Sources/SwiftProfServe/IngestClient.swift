// Sends an IngestUpload over HTTP/1 with SwiftNIO's client codecs.
import NIOCore
import NIOHTTP1
import NIOPosix
import SwiftProfHTTP

public enum IngestClient {
    /// Sends `upload` once; the response's status, or the error that prevented one.
    public static func send(_ upload: IngestUpload, to endpoint: IngestEndpoint, timeoutSeconds: Int64 = 30,
                            group: EventLoopGroup) -> Result<Int, IngestError> {
        let (boundary, body) = upload.multipartBody()
        var headers = HTTPHeaders()
        headers.add(name: "Host", value: endpoint.port == 80 ? endpoint.host : "\(endpoint.host):\(endpoint.port)")
        headers.add(name: "User-Agent", value: "swiftprof")
        headers.add(name: "Content-Type", value: "multipart/form-data; boundary=\(boundary)")
        headers.add(name: "Content-Length", value: String(body.count))
        headers.add(name: "Connection", value: "close")
        let head = HTTPRequestHead(version: .http1_1, method: .POST, uri: upload.target(under: endpoint.basePath), headers: headers)
        let eventLoop = group.next()
        let status = eventLoop.makePromise(of: Int.self)
        let bootstrap = ClientBootstrap(group: eventLoop)
            .connectTimeout(.seconds(min(timeoutSeconds, 10)))
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHTTPClientHandlers()
                    try channel.pipeline.syncOperations.addHandler(UploadHandler(head: head, body: body, status: status))
                }
            }
        let timeout = eventLoop.scheduleTask(in: .seconds(timeoutSeconds)) {
            status.fail(IngestError("no answer in \(timeoutSeconds) s"))
        }
        bootstrap.connect(host: endpoint.host, port: endpoint.port).whenComplete { result in
            switch result {
            case .success(let channel): status.futureResult.whenComplete { _ in channel.close(promise: nil) }
            case .failure(let error): status.fail(IngestError("cannot connect to \(endpoint.host):\(endpoint.port): \(error)"))
            }
        }
        defer { timeout.cancel() }
        do { return .success(try status.futureResult.wait()) } catch let error as IngestError { return .failure(error) } catch {
            return .failure(IngestError("\(error)"))
        }
    }
}

/// Writes the request once connected; fulfils the promise with the response's status
/// once the response has ended (or with the error that ended the connection first).
private final class UploadHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPClientResponsePart
    typealias OutboundOut = HTTPClientRequestPart

    private let head: HTTPRequestHead
    private let body: [UInt8]
    private let status: EventLoopPromise<Int>
    private var received: Int?

    init(head: HTTPRequestHead, body: [UInt8], status: EventLoopPromise<Int>) {
        self.head = head
        self.body = body
        self.status = status
    }

    func channelActive(context: ChannelHandlerContext) {
        context.write(wrapOutboundOut(.head(head)), promise: nil)
        context.write(wrapOutboundOut(.body(.byteBuffer(context.channel.allocator.buffer(bytes: body)))), promise: nil)
        context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)
        context.fireChannelActive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let response): received = Int(response.status.code)
        case .body: break
        case .end: if let received { status.succeed(received) }
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        status.fail(IngestError("\(error)"))
        context.close(promise: nil)
    }

    func channelInactive(context: ChannelHandlerContext) {
        status.fail(IngestError("the connection closed before a whole answer"))
        context.fireChannelInactive()
    }
}
