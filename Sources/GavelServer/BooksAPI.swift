import Foundation
import GavelCore
import GavelExchange
import GavelStore
import HTTPTypes
import Hummingbird
import NIOCore

/// The books' endpoints (CONTRACT v2 "Buyers, returns and the books"): reports for operators,
/// adjustments, returns and purchases for buyers, a summary for sellers. Authenticated by
/// `PrincipalMiddleware`; each route takes one kind of key and answers 401 to any other.
struct BooksAPI: Sendable {
    let exchange: Exchange
    let idempotency: IdempotencyGate
    /// Return and adjustment bodies are small.
    static let maxBodyBytes = 16 * 1024
    /// The longest `note` of a return or an adjustment.
    static let maxNoteLength = 1000

    func register(on router: Router<GavelRequestContext>) {
        let group = router.group().add(middleware: PrincipalMiddleware(exchange: exchange))
        group.get("/v1/reports/pnl") { request, context in await respond { () async throws(RequestError) in try await pnl(request, context) } }
        group.get("/v1/reports/buyers") { request, context in await respond { () async throws(RequestError) in try await buyers(request, context) } }
        group.get("/v1/reports/sellers") { request, context in await respond { () async throws(RequestError) in try await sellers(request, context) } }
        group.get("/v1/seller/summary") { request, context in await respond { () async throws(RequestError) in try await sellerSummary(request, context) } }
        group.get("/v1/buyer/purchases") { request, context in await respond { () async throws(RequestError) in try await purchases(request, context) } }
        group.post("/v1/returns") { request, context in await returns(request, context) }
        group.post("/v1/adjustments") { request, context in await respond { () async throws(RequestError) in try await adjustments(request, context) } }
    }

    /// Runs a handler; a `RequestError` becomes the standard error JSON.
    private func respond(_ handler: () async throws(RequestError) -> Response) async -> Response {
        do { return try await handler() } catch { return JSONResponses.error(error) }
    }

    // MARK: Reports (operator key)

    func pnl(_ request: Request, _ context: GavelRequestContext) async throws(RequestError) -> Response {
        _ = try context.requireOperator()
        let query = try ReportQuery(request, extra: ["group_by"])
        let groupBy = try ReportQuery.groupBy(request)
        let report: ProfitAndLoss
        do { report = try await exchange.profitAndLoss(query.range, groupBy: groupBy) } catch { return JSONResponses.unavailable(error) }
        return query.csv ? BooksAPI.csv(report.csv, name: "pnl") : JSONResponses.ok(report.json)
    }

    func buyers(_ request: Request, _ context: GavelRequestContext) async throws(RequestError) -> Response {
        _ = try context.requireOperator()
        let query = try ReportQuery(request)
        let report: [BuyerActivity]
        do { report = try await exchange.buyerReport(query.range) } catch { return JSONResponses.unavailable(error) }
        return query.csv ? BooksAPI.csv(BuyerActivity.csv(report), name: "buyers") : JSONResponses.ok(BuyerActivity.json(report))
    }

    func sellers(_ request: Request, _ context: GavelRequestContext) async throws(RequestError) -> Response {
        _ = try context.requireOperator()
        let query = try ReportQuery(request)
        let report: [SellerActivity]
        do { report = try await exchange.sellerReport(query.range) } catch { return JSONResponses.unavailable(error) }
        return query.csv ? BooksAPI.csv(SellerActivity.csv(report), name: "sellers") : JSONResponses.ok(SellerActivity.json(report))
    }

    // MARK: Seller key

    func sellerSummary(_ request: Request, _ context: GavelRequestContext) async throws(RequestError) -> Response {
        let seller = try context.requireSeller()
        try exchange.admit(seller)
        let query = try ReportQuery(request)
        let summary: SellerActivity
        do { summary = try await exchange.sellerSummary(seller, range: query.range) } catch { return JSONResponses.unavailable(error) }
        return query.csv ? BooksAPI.csv(summary.summaryCSV, name: "summary") : JSONResponses.ok(summary.summaryJSON)
    }

    // MARK: Buyer key

    func purchases(_ request: Request, _ context: GavelRequestContext) async throws(RequestError) -> Response {
        let buyer = try context.requireBuyer()
        let query = try ReportQuery(request, extra: ["limit", "cursor"])
        let parameters = request.uri.queryParameters
        var limit = 100
        if let text = parameters["limit"] {
            guard let value = Int(text), (1...1000).contains(value) else {
                throw ReportQuery.invalid("limit", "must be a whole number from 1 to 1000")
            }
            limit = value
        }
        var cursor: PurchaseCursor?
        if let text = parameters["cursor"] {
            guard let value = PurchaseCursor(text) else { throw ReportQuery.invalid("cursor", "must be a next_cursor from a previous page") }
            cursor = value
        }
        let page: PurchasePage
        do { page = try await exchange.purchases(of: buyer, range: query.range, after: cursor, limit: limit) } catch {
            return JSONResponses.unavailable(error)
        }
        if query.csv {
            var response = BooksAPI.csv(page.csv, name: "purchases")
            if let next = page.nextCursor { response.headers[BooksAPI.nextCursorHeader] = next.description }
            return response
        }
        return JSONResponses.ok(page.json(returnDeadlineMs: exchange.returnDeadlineMs(of:)))
    }

    /// CSV pages carry the next page's cursor in this header.
    static let nextCursorHeader = HTTPField.Name("Gavel-Next-Cursor")!

    func returns(_ request: Request, _ context: GavelRequestContext) async -> Response {
        let buyer: Buyer
        let body: [UInt8]
        let ticket: IdempotencyTicket?
        do {
            buyer = try context.requireBuyer()
            body = try await BooksAPI.collect(request)
            ticket = try IdempotencyTicket.make(
                key: request.headers[IdempotencyGate.header], sellerID: "buyer:\(buyer.id)", method: "POST", path: "/v1/returns", body: body)
        } catch {
            return JSONResponses.error(error)
        }
        let exchange = self.exchange
        return await idempotency.run(ticket) {
            let submission: ReturnSubmission
            do throws(RequestError) { submission = try ReturnSubmission.parse(body) } catch { return .failed(error) }
            do throws(ReturnError) {
                let receipt = try await exchange.returnSale(
                    auctionID: submission.auctionID, buyer: buyer, reason: submission.reason, note: submission.note, ticket: ticket)
                return .ok(receipt.json)
            } catch {
                return BooksAPI.answer(error)
            }
        }
    }

    static func answer(_ error: ReturnError) -> EdgeAnswer {
        if let exchangeError = error.exchangeError { return .unavailable(exchangeError) }
        switch error.code {
        case "return_window_closed": return .failed(RequestError(status: 422, code: error.code, message: error.message, field: "auction_id"))
        case "already_returned": return .failed(RequestError(status: 409, code: error.code, message: error.message, field: "auction_id"))
        default: return .failed(RequestError(status: 404, code: "not_found", message: error.message, field: "auction_id"))
        }
    }

    // MARK: Adjustments (operator key)

    func adjustments(_ request: Request, _ context: GavelRequestContext) async throws(RequestError) -> Response {
        let holder = try context.requireOperator()
        let body = try await BooksAPI.collect(request)
        let object = try LeadSubmission.jsonObject(body)
        let allowed = ["campaign", "seller", "buyer", "revenue", "payout", "note"]
        for key in object.keys where !allowed.contains(key) {
            throw .invalid(key, "unknown field (allowed: \(allowed.sorted().joined(separator: ", ")))", code: "unknown_field")
        }
        let config = exchange.config
        func identifier(_ name: String, known: (String) -> Bool) throws(RequestError) -> String? {
            guard let value = object[name], !value.isNull else { return nil }
            guard let text = value.stringValue, known(text) else { throw .invalid(name, "must be the id of a configured \(name)") }
            return text
        }
        let campaign = try identifier("campaign") { config.campaigns[$0] != nil }
        let seller = try identifier("seller") { id in config.sellers.contains { $0.id == id } }
        let buyer = try identifier("buyer") { config.buyer(id: $0) != nil }
        func amount(_ name: String) throws(RequestError) -> Money {
            guard let value = object[name], !value.isNull else { return .zero }
            guard case .number(let text) = value, let money = Money(decimal: text, allowNegative: true),
                  money.units.magnitude <= Campaign.maxBidLimit.units.magnitude * 1000 else {
                throw .invalid(name, "must be a signed amount with at most 4 decimals")
            }
            return money
        }
        let revenue = try amount("revenue")
        let payout = try amount("payout")
        guard revenue != .zero || payout != .zero else { throw .invalid("revenue", "an adjustment needs a revenue or payout amount other than 0") }
        guard let noteValue = object["note"] else { throw .missing("note") }
        guard let note = noteValue.stringValue, !note.trimmingCharacters(in: .whitespaces).isEmpty, note.count <= BooksAPI.maxNoteLength else {
            throw .invalid("note", "must be text of 1 to \(BooksAPI.maxNoteLength) characters saying why")
        }
        do {
            let adjustment = try await exchange.adjust(by: holder.id, campaignID: campaign, sellerID: seller, buyerID: buyer,
                                                       revenue: revenue, payout: payout, note: note)
            return JSONResponses.ok(adjustment.json)
        } catch {
            return JSONResponses.unavailable(error)
        }
    }

    // MARK: Shared steps

    static func collect(_ request: Request) async throws(RequestError) -> [UInt8] {
        var request = request
        do {
            return Array(try await request.collectBody(upTo: maxBodyBytes).readableBytesView)
        } catch {
            throw RequestError(status: 413, code: "body_too_large", message: "request bodies are limited to \(maxBodyBytes) bytes")
        }
    }

    static func csv(_ text: String, name: String) -> Response {
        Response(
            status: .ok,
            headers: [.contentType: "text/csv; charset=utf-8", .contentDisposition: "attachment; filename=\"\(name).csv\""],
            body: ResponseBody(byteBuffer: ByteBuffer(string: text)))
    }
}

/// `POST /v1/returns`: `{"auction_id": "...", "reason": "invalid_phone" | "duplicate" |
/// "not_interested" | "other", "note": "..."}`.
struct ReturnSubmission: Sendable {
    var auctionID: String
    var reason: ReturnReason
    var note: String?

    static func parse(_ body: [UInt8]) throws(RequestError) -> ReturnSubmission {
        let object = try LeadSubmission.jsonObject(body)
        for key in object.keys where !["auction_id", "reason", "note"].contains(key) {
            throw .invalid(key, "unknown field (allowed: auction_id, note, reason)", code: "unknown_field")
        }
        guard let idValue = object["auction_id"] else { throw .missing("auction_id") }
        guard let auctionID = idValue.stringValue, (1...64).contains(auctionID.count) else {
            throw .invalid("auction_id", "must be the auction_id of a purchase")
        }
        guard let reasonValue = object["reason"] else { throw .missing("reason") }
        guard let text = reasonValue.stringValue, let reason = ReturnReason(rawValue: text) else {
            throw .invalid("reason", "must be one of \(ReturnReason.allCases.map(\.rawValue).joined(separator: ", "))")
        }
        var note: String?
        if let noteValue = object["note"], !noteValue.isNull {
            guard let text = noteValue.stringValue, text.count <= BooksAPI.maxNoteLength else {
                throw .invalid("note", "must be text of at most \(BooksAPI.maxNoteLength) characters")
            }
            note = text.isEmpty ? nil : text
        }
        return ReturnSubmission(auctionID: auctionID, reason: reason, note: note)
    }
}

/// The query every report takes: `from`, `to` (inclusive dates), `tz` (IANA, default UTC),
/// `format` (json or csv). A bad parameter is a 400 naming it.
struct ReportQuery: Sendable {
    var range: ReportRange
    var csv: Bool
    /// The longest range a report covers.
    static let maxDays = 400

    init(_ request: Request, extra: Set<String> = []) throws(RequestError) {
        let parameters = request.uri.queryParameters
        let known: Set<String> = Set(["from", "to", "tz", "format"]).union(extra)
        for (key, _) in parameters where !known.contains(String(key)) {
            throw RequestError(status: 400, code: "unknown_parameter",
                               message: "unknown query parameter (known: \(known.sorted().joined(separator: ", ")))", field: String(key))
        }
        func date(_ name: String) throws(RequestError) -> LocalDate {
            guard let text = parameters[Substring(name)] else {
                throw RequestError(status: 400, code: "missing_parameter", message: "\(name) is required (YYYY-MM-DD)", field: name)
            }
            guard let date = LocalDate(text) else { throw ReportQuery.invalid(name, "must be a date YYYY-MM-DD") }
            return date
        }
        let from = try date("from")
        let to = try date("to")
        guard from <= to else { throw ReportQuery.invalid("to", "must not be before from") }
        var timeZone = TimeZone(identifier: "UTC")!
        if let name = parameters["tz"] {
            guard !name.isEmpty, let zone = TimeZone(identifier: String(name)) else {
                throw ReportQuery.invalid("tz", "must be an IANA time zone such as America/New_York")
            }
            timeZone = zone
        }
        switch parameters["format"] {
        case nil, "json": csv = false
        case "csv": csv = true
        default: throw ReportQuery.invalid("format", "must be json or csv")
        }
        range = ReportRange(from: from, to: to, timeZone: timeZone)
        guard range.endMs - range.startMs <= Int64(ReportQuery.maxDays + 1) * 86_400_000 else {
            throw ReportQuery.invalid("to", "a report covers at most \(ReportQuery.maxDays) days")
        }
    }

    /// `group_by`: a comma-separated subset of hour, day, campaign, buyer, seller, source (default day).
    static func groupBy(_ request: Request) throws(RequestError) -> Set<ReportDimension> {
        guard let text = request.uri.queryParameters["group_by"] else { return [.day] }
        var dimensions = Set<ReportDimension>()
        for name in text.split(separator: ",", omittingEmptySubsequences: false) {
            guard let dimension = ReportDimension(rawValue: name.trimmingCharacters(in: .whitespaces)) else {
                throw invalid("group_by", "must be a comma-separated list of \(ReportDimension.allCases.map(\.rawValue).joined(separator: ", "))")
            }
            dimensions.insert(dimension)
        }
        return dimensions
    }

    static func invalid(_ name: String, _ message: String) -> RequestError {
        RequestError(status: 400, code: "invalid_parameter", message: "\(name) \(message)", field: name)
    }
}
