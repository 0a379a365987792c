import Foundation
import GavelCore
import GavelExchange
import GavelStore
import Hummingbird
import NIOCore

/// The seller endpoints of CONTRACT.md: leads, pings, posts, and the round read-back.
struct SellerAPI: Sendable {
    let exchange: Exchange
    let idempotency: IdempotencyGate
    /// Requests larger than this are refused with 413 before they are parsed.
    static let maxBodyBytes = 256 * 1024

    func register(on router: Router<GavelRequestContext>) {
        router.post("/v1/leads") { request, _ in await self.leads(request) }
        router.post("/v1/pings") { request, _ in await self.pings(request) }
        router.post("/v1/posts") { request, _ in await self.posts(request) }
        router.get("/v1/auctions/:id") { request, context in await self.auction(request, id: context.parameters.get("id") ?? "") }
    }

    // MARK: Handlers

    func leads(_ request: Request) async -> Response {
        let arrival = ContinuousClock.now
        return await write(request, path: "/v1/leads", startsRound: true) { seller, body, config, ticket throws(RequestError) in
            let submission = try LeadSubmission.parse(body, shape: .fullLead, seller: seller, config: config)
            do throws(ExchangeError) {
                return .ok(try await exchange.runLead(submission, seller: seller, arrival: arrival, ticket: ticket).json)
            } catch {
                return .unavailable(error)
            }
        }
    }

    func pings(_ request: Request) async -> Response {
        let arrival = ContinuousClock.now
        return await write(request, path: "/v1/pings", startsRound: true) { seller, body, config, ticket throws(RequestError) in
            let submission = try LeadSubmission.parse(body, shape: .pingOnly, seller: seller, config: config)
            do throws(ExchangeError) {
                return .ok(try await exchange.runPing(submission, seller: seller, arrival: arrival, ticket: ticket).json)
            } catch {
                return .unavailable(error)
            }
        }
    }

    func posts(_ request: Request) async -> Response {
        let arrival = ContinuousClock.now
        return await write(request, path: "/v1/posts") { seller, body, config, ticket throws(RequestError) in
            let post = try PostSubmission.parse(body, config: config)
            do throws(Exchange.PostError) {
                let result = try await exchange.runPost(
                    pingID: post.pingID, lead: post.lead, contact: post.contact, seller: seller, arrival: arrival, ticket: ticket)
                return .ok(result.json)
            } catch {
                switch error {
                case .request(let requestError): return .failed(requestError)
                case .exchange(let exchangeError): return .unavailable(exchangeError)
                }
            }
        }
    }

    /// Every seller write: the key checked (401) before the body is read; the body read (413), the
    /// `Idempotency-Key` checked (400) and honoured (a repeat is answered from the store, never
    /// shed); then, for a request that starts a round, a place under the admission limit (503
    /// `overloaded`), then `operation`.
    func write(
        _ request: Request, path: String, startsRound: Bool = false,
        _ operation: @escaping @Sendable (Seller, [UInt8], ExchangeConfig, IdempotencyTicket?) async throws(RequestError) -> EdgeAnswer
    ) async -> Response {
        let config = exchange.config
        let seller: Seller
        let body: [UInt8]
        let ticket: IdempotencyTicket?
        do {
            seller = try authenticate(request, config: config)
            body = try await collect(request)
            ticket = try IdempotencyTicket.make(
                key: request.headers[IdempotencyGate.header], sellerID: seller.id, method: request.method.rawValue, path: path, body: body)
        } catch {
            return JSONResponses.error(error)
        }
        let exchange = self.exchange
        return await idempotency.run(ticket) {
            if startsRound {
                do throws(ExchangeError) { try exchange.admitRound() } catch { return .unavailable(error) }
            }
            defer { if startsRound { exchange.roundEnded() } }
            do throws(RequestError) {
                return try await operation(seller, body, config, ticket)
            } catch {
                return .failed(error)
            }
        }
    }

    func auction(_ request: Request, id: String) async -> Response {
        do throws(RequestError) {
            let seller = try authenticate(request, config: exchange.config)
            let stored: StoredRound?
            do { stored = try await exchange.round(id: id) } catch {
                return JSONResponses.unavailable(error)
            }
            guard let round = stored, round.sellerID == seller.id else {
                // Another seller's round is as invisible as one that does not exist.
                throw RequestError.notFound("auction \(id)")
            }
            return JSONResponses.ok(RoundView.json(round))
        } catch {
            return JSONResponses.error(error)
        }
    }

    // MARK: Shared steps

    /// The seller behind the bearer key, within its rate limit.
    func authenticate(_ request: Request, config: ExchangeConfig) throws(RequestError) -> Seller {
        let seller = try identify(request, config: config)
        try exchange.admit(seller)
        return seller
    }

    func identify(_ request: Request, config: ExchangeConfig) throws(RequestError) -> Seller {
        guard let header = request.headers[.authorization], header.hasPrefix("Bearer ") else { throw .unauthorized }
        let key = String(header.dropFirst("Bearer ".count)).trimmingCharacters(in: .whitespaces)
        guard let seller = config.sellersByKey[key] else {
            throw RequestError(status: 401, code: "unauthorized", message: "unknown API key")
        }
        return seller
    }

    func collect(_ request: Request) async throws(RequestError) -> [UInt8] {
        var request = request
        do {
            let buffer = try await request.collectBody(upTo: SellerAPI.maxBodyBytes)
            return Array(buffer.readableBytesView)
        } catch {
            throw RequestError(status: 413, code: "body_too_large", message: "request bodies are limited to \(SellerAPI.maxBodyBytes) bytes")
        }
    }
}

/// `POST /v1/posts`: `{"ping_id": "...", "lead": {...}, "contact": {...}}`.
struct PostSubmission {
    var pingID: String
    var lead: JSONObject?
    var contact: JSONObject

    static func parse(_ body: [UInt8], config: ExchangeConfig) throws(RequestError) -> PostSubmission {
        let object = try LeadSubmission.jsonObject(body)
        for key in object.keys where !["ping_id", "lead", "contact"].contains(key) {
            throw .invalid(key, "unknown field (allowed: contact, lead, ping_id)", code: "unknown_field")
        }
        guard let pingValue = object["ping_id"] else { throw .missing("ping_id") }
        guard let pingID = pingValue.stringValue, !pingID.isEmpty else { throw .invalid("ping_id", "must be the ping_id string from /v1/pings") }
        let lead = try object["lead"].map { value throws(RequestError) in try LeadSubmission.leadFieldsForPost(value) }
        let contact = try LeadSubmission.contactFields(object["contact"], field: "contact")
        return PostSubmission(pingID: pingID, lead: lead, contact: contact)
    }
}
