import Foundation
import GavelCore
import GavelExchange
import GavelStore
import Hummingbird
import NIOCore

/// The seller endpoints of CONTRACT.md: leads, pings, posts, and the round read-back.
struct SellerAPI: Sendable {
    let exchange: Exchange
    /// Requests larger than this are refused with 413 before they are parsed.
    static let maxBodyBytes = 256 * 1024

    func register(on router: Router<BasicRequestContext>) {
        router.post("/v1/leads") { request, _ in await self.leads(request) }
        router.post("/v1/pings") { request, _ in await self.pings(request) }
        router.post("/v1/posts") { request, _ in await self.posts(request) }
        router.get("/v1/auctions/:id") { request, context in await self.auction(request, id: context.parameters.get("id") ?? "") }
    }

    // MARK: Handlers

    func leads(_ request: Request) async -> Response {
        let arrival = ContinuousClock.now
        let config = exchange.config
        do {
            let seller = try authenticate(request, config: config)
            let body = try await collect(request)
            let submission = try LeadSubmission.parse(body, shape: .fullLead, seller: seller, config: config)
            do {
                let result = try await exchange.runLead(submission, seller: seller, arrival: arrival)
                return JSONResponses.ok(leadResultJSON(result))
            } catch {
                return JSONResponses.unavailable(error)
            }
        } catch {
            return JSONResponses.error(error)
        }
    }

    func pings(_ request: Request) async -> Response {
        let arrival = ContinuousClock.now
        let config = exchange.config
        do {
            let seller = try authenticate(request, config: config)
            let body = try await collect(request)
            let submission = try LeadSubmission.parse(body, shape: .pingOnly, seller: seller, config: config)
            do {
                let result = try await exchange.runPing(submission, seller: seller, arrival: arrival)
                return JSONResponses.ok([
                    "ping_id": .string(result.pingID),
                    "status": .string(result.hasBid ? "bid" : "no_bid"),
                    "payout": JSONValue(result.payout),
                    "expires_at": .string(Timestamps.rfc3339(ms: result.expiresAtMs)),
                ])
            } catch {
                return JSONResponses.unavailable(error)
            }
        } catch {
            return JSONResponses.error(error)
        }
    }

    func posts(_ request: Request) async -> Response {
        let arrival = ContinuousClock.now
        let config = exchange.config
        do {
            let seller = try authenticate(request, config: config)
            let body = try await collect(request)
            let post = try PostSubmission.parse(body, config: config)
            do {
                let result = try await exchange.runPost(pingID: post.pingID, lead: post.lead, contact: post.contact, seller: seller, arrival: arrival)
                return JSONResponses.ok(leadResultJSON(result))
            } catch {
                switch error {
                case .request(let requestError): return JSONResponses.error(requestError)
                case .exchange(let exchangeError): return JSONResponses.unavailable(exchangeError)
                }
            }
        } catch {
            return JSONResponses.error(error)
        }
    }

    func auction(_ request: Request, id: String) async -> Response {
        do throws(RequestError) {
            let seller = try authenticate(request, config: exchange.config)
            let stored: StoredRound?
            do { stored = try await exchange.store.round(id: id) } catch {
                return JSONResponses.unavailable(.storage("\(error)"))
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

    func leadResultJSON(_ result: LeadResult) -> JSONValue {
        [
            "auction_id": .string(result.auctionID),
            "status": .string(result.sold ? "sold" : "unsold"),
            "payout": JSONValue(result.payout),
        ]
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

enum Timestamps {
    /// RFC 3339 in UTC with milliseconds.
    static func rfc3339(ms: Int64) -> String {
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        return formatter.string(from: Date(timeIntervalSince1970: Double(ms) / 1000))
    }
}
