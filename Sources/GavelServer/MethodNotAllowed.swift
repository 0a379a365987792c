import Foundation
import GavelExchange
import Hummingbird
import NIOCore

/// A path the server serves, asked with a method it does not serve, answers
/// `405 method_not_allowed` in the JSON error shape with an `Allow` header listing the methods it
/// does serve (RFC 9110 §15.5.6); only a path no route serves is `404 not_found`. Like a 404, it
/// needs no authentication: nothing runs.
///
/// Register it once, right after `JSONErrorMiddleware` and before any route, so that it wraps every
/// route's chain. It learns a path's methods from the router itself, so routes added later need no
/// table kept in step with them.
///
/// How: Hummingbird answers an unmatched (path, method) through the router's not-found responder,
/// which throws `HTTPError(.notFound)` after marking the request's endpoint path `NotFound`. This
/// middleware then asks a responder built from the same router about each other method, in a probe
/// mode (a task-local) in which it ends every chain at itself: a route's chain reaches it with the
/// endpoint path already set (the router sets it before running the chain), the not-found chain
/// without one. No handler runs for a probe, and neither does any middleware registered after this one.
struct MethodNotAllowedMiddleware<Context: RequestContext>: RouterMiddleware {
    /// The methods probed, in the order `Allow` lists them.
    static var candidates: [HTTPRequest.Method] { [.get, .head, .post, .put, .patch, .delete, .options] }

    private let routes: RouterProbe<Context>

    init(router: Router<Context>) {
        routes = RouterProbe(router: router)
    }

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        if MethodProbe.active {
            throw context.endpointPath == nil ? MethodProbe.Outcome.notServed : MethodProbe.Outcome.served
        }
        do {
            return try await next(request, context)
        } catch let error as HTTPError where error.status == .notFound && context.endpointPath == "NotFound" {
            let allowed = await allowedMethods(for: request, context: context)
            guard !allowed.isEmpty else { throw error }
            let list = allowed.map(\.rawValue).joined(separator: ", ")
            var response = JSONResponses.error(RequestError(
                status: 405, code: "method_not_allowed",
                message: "\(request.method.rawValue) is not allowed on \(request.uri.path); allowed: \(list)"
            ))
            response.headers[.allow] = list
            return response
        }
    }

    /// The methods other than the request's that a route serves at the request's path.
    func allowedMethods(for request: Request, context: Context) async -> [HTTPRequest.Method] {
        let responder = routes.responder()
        var allowed: [HTTPRequest.Method] = []
        for method in Self.candidates where method != request.method {
            var head = request.head
            head.method = method
            let probe = Request(head: head, body: RequestBody(buffer: ByteBuffer()))
            var probeContext = context
            // A fresh box: the request's own one already says `NotFound`.
            probeContext.coreContext.endpointPath = EndpointPath()
            do {
                _ = try await MethodProbe.$active.withValue(true) {
                    try await responder.respond(to: probe, context: probeContext)
                }
            } catch MethodProbe.Outcome.served {
                allowed.append(method)
            } catch {
                continue
            }
        }
        return allowed
    }
}

/// The probe mode of `MethodNotAllowedMiddleware`.
enum MethodProbe {
    @TaskLocal static var active = false

    enum Outcome: Error {
        /// A route serves the probed (path, method).
        case served
        /// Only the not-found responder does.
        case notServed
    }
}

/// The router's routes, as a responder built once, on the first unmatched request (when every route
/// is registered). Hummingbird's `Router` is a class that is not `Sendable`; it is only read here,
/// under the lock, after registration has ended.
final class RouterProbe<Context: RequestContext>: @unchecked Sendable {
    private let lock = NSLock()
    private let router: Router<Context>
    private var built: RouterResponder<Context>?

    init(router: Router<Context>) {
        self.router = router
    }

    func responder() -> RouterResponder<Context> {
        lock.withLock {
            if let built { return built }
            let responder = router.buildResponder()
            built = responder
            return responder
        }
    }
}
