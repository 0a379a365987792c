/// One outgoing HTTP request: a ping or a post to a buyer.
public struct HTTPRequest: Sendable {
    public enum Method: String, Sendable { case get = "GET", post = "POST" }

    public var url: String
    public var method: Method
    public var headers: [(name: String, value: String)]
    public var body: [UInt8]
    /// The whole transfer's deadline, connect included (`CURLOPT_TIMEOUT_MS`).
    public var timeoutMs: Int
    /// Sent at most once (posts): on a fresh connection, because libcurl sends a request again
    /// when the kept-alive connection it reused dies before any answer, and a buyer must never get
    /// the same lead twice.
    public var sendOnce = false

    public init(url: String, method: Method = .post, headers: [(name: String, value: String)] = [],
                body: [UInt8] = [], timeoutMs: Int) {
        self.url = url
        self.method = method
        self.headers = headers
        self.body = body
        self.timeoutMs = timeoutMs
    }

    /// A JSON POST.
    public static func json(url: String, body: String, headers: [String: String] = [:], timeoutMs: Int) -> HTTPRequest {
        var allHeaders: [(name: String, value: String)] = [("Content-Type", "application/json")]
        for (name, value) in headers.sorted(by: { $0.key < $1.key }) { allHeaders.append((name, value)) }
        return HTTPRequest(url: url, method: .post, headers: allHeaders, body: Array(body.utf8), timeoutMs: timeoutMs)
    }
}

/// A complete HTTP answer, whatever its status.
public struct HTTPResponse: Sendable {
    public var status: Int
    public var body: [UInt8]
    /// From `send` to the last byte, in microseconds.
    public var latencyUs: Int
    /// Connections libcurl had to open for this transfer: 0 when a kept-alive one was reused.
    public var newConnections: Int

    public init(status: Int, body: [UInt8], latencyUs: Int, newConnections: Int = 0) {
        self.status = status
        self.body = body
        self.latencyUs = latencyUs
        self.newConnections = newConnections
    }
}

/// Why a transfer produced no HTTP answer.
public struct HTTPTransferError: Error, Hashable, Sendable, CustomStringConvertible {
    private enum Code: Hashable, Sendable {
        case timeout, notSent, refused, dns, connectionLost, tooLarge, protocolError, badURL, shutdown, other
    }

    private let code: Code
    /// libcurl's words, for logs and the round record.
    public let detail: String
    /// From `send` to the failure, in microseconds.
    public let latencyUs: Int

    private init(_ code: Code, detail: String, latencyUs: Int) {
        self.code = code
        self.detail = detail
        self.latencyUs = latencyUs
    }

    /// The deadline passed before the answer was complete.
    public static func timeout(_ detail: String, latencyUs: Int) -> Self { .init(.timeout, detail: detail, latencyUs: latencyUs) }
    /// The deadline passed while the request still waited in the engine's queue: the peer never saw it.
    public static func notSent(_ detail: String, latencyUs: Int) -> Self { .init(.notSent, detail: detail, latencyUs: latencyUs) }
    /// Nothing listens, or the connection attempt failed.
    public static func refused(_ detail: String, latencyUs: Int) -> Self { .init(.refused, detail: detail, latencyUs: latencyUs) }
    /// The host name did not resolve.
    public static func dns(_ detail: String, latencyUs: Int) -> Self { .init(.dns, detail: detail, latencyUs: latencyUs) }
    /// The peer reset or closed the connection mid-answer.
    public static func connectionLost(_ detail: String, latencyUs: Int) -> Self { .init(.connectionLost, detail: detail, latencyUs: latencyUs) }
    /// The answer was larger than the engine accepts.
    public static func tooLarge(_ detail: String, latencyUs: Int) -> Self { .init(.tooLarge, detail: detail, latencyUs: latencyUs) }
    /// The peer did not speak valid HTTP.
    public static func protocolError(_ detail: String, latencyUs: Int) -> Self { .init(.protocolError, detail: detail, latencyUs: latencyUs) }
    /// The URL is malformed or not http/https.
    public static func badURL(_ detail: String, latencyUs: Int) -> Self { .init(.badURL, detail: detail, latencyUs: latencyUs) }
    /// The engine is shutting down and takes no new transfers.
    public static func shutdown() -> Self { .init(.shutdown, detail: "engine is shutting down", latencyUs: 0) }
    static func other(_ detail: String, latencyUs: Int) -> Self { .init(.other, detail: detail, latencyUs: latencyUs) }

    public var isTimeout: Bool { code == .timeout || code == .notSent }
    /// The failure is the sender's (overloaded, shutting down), not the peer's: it says nothing of the peer's health.
    public var isLocal: Bool { code == .notSent || code == .shutdown }
    public var isTooLarge: Bool { code == .tooLarge }
    public var isProtocolError: Bool { code == .protocolError }
    /// Refused, unresolvable, reset: the buyer could not be reached.
    public var isUnreachable: Bool { code == .refused || code == .dns || code == .connectionLost || code == .badURL }

    /// A bounded label, safe for metrics.
    public var shortDescription: String {
        switch code {
        case .timeout: return "timeout"
        case .notSent: return "not_sent"
        case .refused: return "refused"
        case .dns: return "dns"
        case .connectionLost: return "connection_lost"
        case .tooLarge: return "too_large"
        case .protocolError: return "protocol_error"
        case .badURL: return "bad_url"
        case .shutdown: return "shutdown"
        case .other: return "other"
        }
    }

    public var description: String { "\(shortDescription): \(detail)" }
}

public typealias HTTPResult = Result<HTTPResponse, HTTPTransferError>
