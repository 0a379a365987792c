import GavelCore
import GavelExchange
import Hummingbird
import NIOCore

/// JSON answers and the error shape every seller endpoint shares:
/// `{"error": {"code": "...", "message": "...", "field": "lead.zip"}}`.
enum JSONResponses {
    static func ok(_ value: JSONValue, status: HTTPResponse.Status = .ok) -> Response {
        var text = value.serialized
        text.append("\n")
        return Response(
            status: status,
            headers: [.contentType: "application/json"],
            body: ResponseBody(byteBuffer: ByteBuffer(string: text))
        )
    }

    static func error(_ error: RequestError) -> Response {
        var response = Response(
            status: HTTPResponse.Status(code: error.status), headers: [.contentType: "application/json"],
            body: ResponseBody(byteBuffer: ByteBuffer(string: errorText(error)))
        )
        if error.status == 401 { response.headers[.wwwAuthenticate] = "Bearer" }
        if let seconds = error.retryAfterS { response.headers[.retryAfter] = String(seconds) }
        return response
    }

    /// The error body of `error`, as sent (and as stored for an idempotency key).
    static func errorText(_ error: RequestError) -> String {
        var body = JSONObject()
        body["code"] = .string(error.code)
        body["message"] = .string(error.message)
        if let field = error.field { body["field"] = .string(field) }
        return JSONText.body(.object(JSONObject(["error": .object(body)])))
    }

    /// The exchange itself failed (the database, overload): the only 5xx; its message says what
    /// the seller may assume and do.
    static func unavailable(_ error: ExchangeError) -> Response {
        let body: JSONValue = ["error": ["code": .string(error.shortDescription), "message": .string(error.message)]]
        var response = ok(body, status: .serviceUnavailable)
        response.headers[.retryAfter] = "1"
        return response
    }
}

/// Turns errors Hummingbird raises itself (unknown route, body too large) into the JSON error shape.
struct JSONErrorMiddleware<Context: RequestContext>: RouterMiddleware {
    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        do {
            return try await next(request, context)
        } catch let error as HTTPError {
            let code: String
            switch error.status {
            case .notFound: code = "not_found"
            case .contentTooLarge: code = "body_too_large"
            case .methodNotAllowed: code = "method_not_allowed"
            default: code = "bad_request"
            }
            let status = error.status.code >= 500 ? 400 : error.status.code
            return JSONResponses.error(RequestError(status: status, code: code, message: error.body ?? error.status.reasonPhrase))
        }
    }
}
