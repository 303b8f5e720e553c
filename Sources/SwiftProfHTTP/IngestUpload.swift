// One profile sent to a Pyroscope-style ingest endpoint:
// POST BASE/ingest?name=APP{labels}&from=S&until=S&format=pprof, the profile in a
// multipart field named `profile` (sent by SwiftProfServe.IngestClient); plain
// http only (TLS would bring a TLS library into the build: a local agent such as
// Alloy forwards to an https backend).
import FoundationEssentials

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
    public func target(under basePath: String) -> String {
        var components = URLComponents()
        components.path = basePath + "/ingest"
        components.queryItems = [
            URLQueryItem(name: "name", value: name), URLQueryItem(name: "from", value: String(fromUnixSeconds)),
            URLQueryItem(name: "until", value: String(untilUnixSeconds)), URLQueryItem(name: "format", value: "pprof"),
            URLQueryItem(name: "sampleRate", value: String(sampleRate)), URLQueryItem(name: "spyName", value: "swiftprof"),
        ]
        // Braces and '=' inside the name are sent escaped; Pyroscope decodes them.
        components.percentEncodedQuery = components.percentEncodedQuery.map { query in
            query.map { $0 == "{" ? "%7B" : $0 == "}" ? "%7D" : String($0) }.joined()
        }
        return components.string ?? basePath + "/ingest"
    }

    /// The multipart/form-data body and its boundary: one part, `profile`.
    public func multipartBody() -> (boundary: String, body: [UInt8]) {
        var generator = SystemRandomNumberGenerator()
        let boundary = "swiftprof-" + String(generator.next() as UInt64, radix: 16) + String(generator.next() as UInt64, radix: 16)
        let head = "--\(boundary)\r\nContent-Disposition: form-data; name=\"profile\"; filename=\"profile.pb.gz\"\r\n"
            + "Content-Type: application/octet-stream\r\n\r\n"
        return (boundary, Array(head.utf8) + profile + Array("\r\n--\(boundary)--\r\n".utf8))
    }
}
