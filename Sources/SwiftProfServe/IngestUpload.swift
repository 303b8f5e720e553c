// One profile sent to a Pyroscope-style ingest endpoint:
// POST BASE/ingest?name=APP{labels}&from=S&until=S&format=pprof, the profile in a
// multipart field named `profile`. HTTP/1 over SwiftNIO's client codecs; plain
// http only (TLS would bring a TLS library into the build: a local agent such as
// Alloy forwards to an https backend).
import Foundation
import NIOCore
import NIOHTTP1
import NIOPosix

public struct IngestEndpoint: Sendable, Equatable {
    public let host: String
    public let port: Int
    /// The base path, without its trailing slash ("" or "/pyroscope").
    public let basePath: String

    /// nil and why, for a URL that is not http://HOST[:PORT][/PATH].
    public static func parse(_ url: String) -> Result<IngestEndpoint, IngestError> {
        guard let components = URLComponents(string: url), let scheme = components.scheme?.lowercased(),
              let host = components.host, !host.isEmpty else {
            return .failure(IngestError("\(url) is not a URL (http://HOST:PORT)"))
        }
        guard scheme == "http" else {
            return .failure(IngestError("\(url): only http:// is spoken (for https, push to a local agent such as Grafana Alloy)"))
        }
        guard components.query == nil, components.fragment == nil else {
            return .failure(IngestError("\(url): give the server's base URL, without a query (/ingest and its query are added)"))
        }
        var path = components.path
        while path.hasSuffix("/") { path.removeLast() }
        return .success(IngestEndpoint(host: host, port: components.port ?? 80, basePath: path))
    }
}

public struct IngestError: Error, Sendable, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}

/// What one upload says of its profile.
public struct IngestUpload: Sendable {
    /// Pyroscope's application name, labels in braces: `server{region=eu}`.
    public var name: String
    public var fromUnixSeconds: Int64
    public var untilUnixSeconds: Int64
    public var sampleRate: Int
    /// The gzipped pprof profile.
    public var profile: [UInt8]

    public init(name: String, fromUnixSeconds: Int64, untilUnixSeconds: Int64, sampleRate: Int, profile: [UInt8]) {
        self.name = name
        self.fromUnixSeconds = fromUnixSeconds
        self.untilUnixSeconds = untilUnixSeconds
        self.sampleRate = sampleRate
        self.profile = profile
    }

    /// The request target: /ingest under the base path, with the query Pyroscope reads.
    func target(under basePath: String) -> String {
        var components = URLComponents()
        components.path = basePath + "/ingest"
        components.queryItems = [
            URLQueryItem(name: "name", value: name), URLQueryItem(name: "from", value: String(fromUnixSeconds)),
            URLQueryItem(name: "until", value: String(untilUnixSeconds)), URLQueryItem(name: "format", value: "pprof"),
            URLQueryItem(name: "sampleRate", value: String(sampleRate)), URLQueryItem(name: "spyName", value: "swiftprof"),
        ]
        // Braces and '=' inside the name are sent escaped; Pyroscope decodes them.
        components.percentEncodedQuery = components.percentEncodedQuery?
            .replacingOccurrences(of: "{", with: "%7B").replacingOccurrences(of: "}", with: "%7D")
        return components.string ?? basePath + "/ingest"
    }

    /// The multipart/form-data body and its boundary: one part, `profile`.
    func multipartBody() -> (boundary: String, body: [UInt8]) {
        var generator = SystemRandomNumberGenerator()
        let boundary = "swiftprof-" + String(generator.next() as UInt64, radix: 16) + String(generator.next() as UInt64, radix: 16)
        let head = "--\(boundary)\r\nContent-Disposition: form-data; name=\"profile\"; filename=\"profile.pb.gz\"\r\n"
            + "Content-Type: application/octet-stream\r\n\r\n"
        return (boundary, Array(head.utf8) + profile + Array("\r\n--\(boundary)--\r\n".utf8))
    }
}

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
