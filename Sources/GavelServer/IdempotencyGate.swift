import GavelCore
import GavelExchange
import GavelStore
import HTTPTypes
import Hummingbird
import NIOCore
import Synchronization

/// What a write endpoint answers, before it becomes an HTTP response.
enum EdgeAnswer: Sendable {
    case ok(JSONValue)
    case failed(RequestError)
    case unavailable(ExchangeError)

    var response: Response {
        switch self {
        case .ok(let json): return JSONResponses.ok(json)
        case .failed(let error): return JSONResponses.error(error)
        case .unavailable(let error): return JSONResponses.unavailable(error)
        }
    }
}

/// The `Idempotency-Key` rules of CONTRACT v2 at the edge: a repeat with the same key and body
/// gets the first final answer byte for byte; a different body gets 422; a repeat while the first
/// runs gets 409. 200 answers are stored by the exchange in the round's own transaction; final 4xx
/// answers (all but 409 and 429) are stored here; 503s are never stored.
final class IdempotencyGate: Sendable {
    static let header = HTTPField.Name("Idempotency-Key")!

    private let exchange: Exchange
    /// Keys whose first request is still running. Bounded by the requests in flight.
    private let running = Mutex<Set<String>>([])

    init(exchange: Exchange) { self.exchange = exchange }

    func run(_ ticket: IdempotencyTicket?, _ operation: () async -> EdgeAnswer) async -> Response {
        guard let ticket else { return await operation().response }
        let inProgress = RequestError(
            status: 409, code: "request_in_progress", message: "a request with this Idempotency-Key is still running; retry shortly",
            field: "Idempotency-Key", retryAfterS: 1)
        guard running.withLock({ $0.insert(ticket.scope).inserted }) else { return JSONResponses.error(inProgress) }
        defer { _ = running.withLock { $0.remove(ticket.scope) } }
        // On a cluster the same key may be running on another node.
        do {
            guard try await exchange.beginKeyedRequest(scope: ticket.scope) else { return JSONResponses.error(inProgress) }
        } catch {
            return JSONResponses.unavailable(error)
        }
        let (response, mayStillCommit) = await answer(ticket, operation)
        // A round whose commit was late may still land (or is kept and retried on this node): a
        // repeat on another node must not run it again, so the mark stays until it lapses.
        if !mayStillCommit { await exchange.endKeyedRequest(scope: ticket.scope) }
        return response
    }

    private func answer(_ ticket: IdempotencyTicket, _ operation: () async -> EdgeAnswer) async -> (Response, mayStillCommit: Bool) {
        do {
            if let previous = try await exchange.previousAnswer(for: ticket) {
                guard previous.bodyHash == ticket.bodyHash else {
                    return (JSONResponses.error(RequestError(
                        status: 422, code: "idempotency_key_reused",
                        message: "this Idempotency-Key was used with a different request body", field: "Idempotency-Key")), false)
                }
                return (IdempotencyGate.replay(previous), false)
            }
        } catch {
            return (JSONResponses.unavailable(error), false)
        }
        let answer = await operation()
        if case .failed(let error) = answer, (400..<500).contains(error.status), error.status != 409, error.status != 429 {
            await exchange.storeAnswer(ticket, status: error.status, body: JSONResponses.errorText(error))
        }
        if case .unavailable(let error) = answer { return (answer.response, error.mayStillCommit) }
        return (answer.response, false)
    }

    /// The stored answer, as first sent.
    static func replay(_ answer: StoredAnswer) -> Response {
        Response(
            status: HTTPResponse.Status(code: answer.status),
            headers: [.contentType: "application/json", HTTPField.Name("Idempotent-Replayed")!: "true"],
            body: ResponseBody(byteBuffer: ByteBuffer(string: answer.response))
        )
    }
}
