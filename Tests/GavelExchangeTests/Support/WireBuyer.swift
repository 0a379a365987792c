import Foundation
import Hummingbird
import Logging
import NIOCore
import Synchronization

/// A real HTTP buyer on loopback that speaks whatever wire format a test gives it: it records
/// every request (method, path, query, headers, body) and answers with the test's closure.
final class WireBuyer: Sendable {
    struct Received: Sendable {
        var method: String
        var path: String
        var query: String
        var headers: [String: String]
        var body: String

        /// Form or query text as fields (`a=1&b=x+y`).
        static func fields(_ text: String) -> [String: String] {
            var fields: [String: String] = [:]
            for pair in text.split(separator: "&") {
                let parts = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
                func decode(_ text: Substring) -> String {
                    String(text).replacingOccurrences(of: "+", with: " ").removingPercentEncoding ?? String(text)
                }
                fields[decode(parts[0])] = parts.count > 1 ? decode(parts[1]) : ""
            }
            return fields
        }

        var form: [String: String] { Received.fields(body) }
        var queryFields: [String: String] { Received.fields(query) }
    }

    struct Answer: Sendable {
        var status: Int = 200
        var contentType = "application/json"
        var body: String
    }

    typealias Responder = @Sendable (Received) -> Answer

    private final class RequestLog: Sendable {
        let items = Mutex<[Received]>([])
    }

    private let received = RequestLog()
    private let task: Task<Void, any Error>
    let port: Int

    var requests: [Received] { received.items.withLock { $0 } }
    func requests(to path: String) -> [Received] { requests.filter { $0.path == path } }
    func url(_ path: String) -> String { "http://127.0.0.1:\(port)\(path)" }

    init(_ respond: @escaping Responder) async {
        let router = Router()
        let log = received
        let handler: @Sendable (Request, BasicRequestContext) async throws -> Response = { request, _ in
            let body = try await request.body.collect(upTo: 1 << 20)
            var headers: [String: String] = [:]
            // Names lowercased: HTTP header names are case-insensitive.
            for field in request.headers { headers[field.name.canonicalName.lowercased()] = field.value }
            let seen = Received(method: request.method.rawValue, path: request.uri.path, query: request.uri.query ?? "",
                                headers: headers, body: String(buffer: body))
            log.items.withLock { $0.append(seen) }
            let answer = respond(seen)
            return Response(status: .init(code: answer.status), headers: [.contentType: answer.contentType],
                            body: ResponseBody(byteBuffer: ByteBuffer(string: answer.body)))
        }
        for path in ["/ping", "/post", "/test-post"] {
            router.post(RouterPath(path), use: handler)
            router.get(RouterPath(path), use: handler)
        }
        let (ports, continuation) = AsyncStream<Int>.makeStream()
        var logger = Logger(label: "wire-buyer")
        logger.logLevel = .critical  // stopping by cancellation is not an error worth a line
        let app = Application(router: router, configuration: .init(address: .hostname("127.0.0.1", port: 0)),
                              onServerRunning: { channel in continuation.yield(channel.localAddress?.port ?? 0) }, logger: logger)
        task = Task { try await app.runService() }
        var bound = 0
        for await port in ports {
            bound = port
            break
        }
        port = bound
    }

    func stop() { task.cancel() }
}
