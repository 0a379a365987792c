import GavelCore
import GavelExchange
import Hummingbird

/// Who holds a bearer key: a seller (`sellers.yaml`), a buyer (its file's `api_key`) or an
/// operator (`operators.yaml`). Keys are unique across the three (the config refuses a shared one).
enum Principal: Sendable {
    case seller(Seller)
    case buyer(Buyer)
    case `operator`(Operator)

    /// The principal holding `key` in `config`.
    init?(key: String, config: ExchangeConfig) {
        if let seller = config.sellersByKey[key] { self = .seller(seller) }
        else if let buyer = config.buyersByKey[key] { self = .buyer(buyer) }
        else if let holder = config.operator(apiKey: key) { self = .operator(holder) }
        else { return nil }
    }

    /// The key of `Authorization: Bearer <key>`, if the request sent one.
    static func bearerKey(of request: Request) -> String? {
        guard let header = request.headers[.authorization], header.hasPrefix("Bearer ") else { return nil }
        let key = header.dropFirst("Bearer ".count).trimmingCharacters(in: .whitespaces)
        return key.isEmpty ? nil : key
    }
}

/// Puts the request's principal in its context before the handler runs. It refuses nothing
/// itself: each route says which principal it takes (`GavelRequestContext.require...`), so a
/// missing, unknown or wrong key gets the route's 401.
struct PrincipalMiddleware: RouterMiddleware {
    typealias Context = GavelRequestContext
    let exchange: Exchange

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        var context = context
        if let key = Principal.bearerKey(of: request) { context.principal = Principal(key: key, config: exchange.config) }
        return try await next(request, context)
    }
}

extension GavelRequestContext {
    func requireOperator() throws(RequestError) -> Operator {
        guard case .operator(let holder)? = principal else { throw GavelRequestContext.unauthorized("operator") }
        return holder
    }

    func requireBuyer() throws(RequestError) -> Buyer {
        guard case .buyer(let buyer)? = principal else { throw GavelRequestContext.unauthorized("buyer") }
        return buyer
    }

    func requireSeller() throws(RequestError) -> Seller {
        guard case .seller(let seller)? = principal else { throw GavelRequestContext.unauthorized("seller") }
        return seller
    }

    static func unauthorized(_ role: String) -> RequestError {
        RequestError(status: 401, code: "unauthorized", message: "send Authorization: Bearer <\(role) API key>")
    }
}
