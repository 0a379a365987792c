import Foundation
import GavelCore
import GavelExchange
import Hummingbird
import NIOCore

/// The buyer portal, `/portal/`: purchases with the contact paid for, search, CSV, returns,
/// spend against caps and budget today, pause and resume.
struct PortalRoutes: Sendable {
    let area: WebArea
    let exchange: Exchange
    let books: any WebBooks
    /// Purchases shown (and put in a CSV) at most.
    static let purchaseLimit = 1_000

    func register<Context: RequestContext>(on router: Router<Context>) {
        router.get("/portal/") { request, _ in await self.home(request) }
        router.post("/portal/signin") { request, _ in await self.area.signIn(request) }
        router.post("/portal/signout") { request, _ in await self.area.signOut(request) }
        router.get("/portal/purchases.csv") { request, _ in await self.csv(request) }
        router.post("/portal/returns") { request, _ in await self.returnLead(request) }
        router.post("/portal/pause") { request, _ in await self.pause(request, paused: true) }
        router.post("/portal/resume") { request, _ in await self.pause(request, paused: false) }
        router.get("/portal/static/:name") { _, context in self.area.renderer.asset(context.parameters.get("name") ?? "") }
    }

    // MARK: Pages

    func home(_ request: Request) async -> Response {
        guard let session = area.session(request) else { return area.signInPage() }
        let buyerID = session.principal.id
        let filter = PurchaseFilter(request, nowMs: nowMs)
        let purchases: [WebPurchase]
        var problem: String?
        do {
            purchases = try await filteredPurchases(buyerID: buyerID, filter: filter)
        } catch {
            purchases = []
            problem = "Purchases could not be read just now; try again in a moment."
        }
        let buyer = exchange.config.buyer(id: buyerID)
        var usage: BuyerLedger.CapUsage?
        if let buyer { usage = exchange.ledger.capUsage(buyer: buyer, at: area.now()) }
        let view = PortalView(
            session: session, notice: area.sessions.takeNotice(sessionID: session.id) ?? problem, buyer: buyer, buyerID: buyerID,
            portalPaused: exchange.isPortalPaused(buyerID), usage: usage, filter: filter, purchases: purchases,
            limit: PortalRoutes.purchaseLimit)
        return area.renderer.page("portal", view)
    }

    /// `GET /portal/purchases.csv?from&to&q`: the purchases shown, as CSV, one contact field a column.
    func csv(_ request: Request) async -> Response {
        guard let session = area.session(request) else { return area.signInPage(status: .unauthorized) }
        let filter = PurchaseFilter(request, nowMs: nowMs)
        guard let purchases = try? await filteredPurchases(buyerID: session.principal.id, filter: filter) else {
            return Response(status: .serviceUnavailable, headers: [.contentType: "text/plain", .retryAfter: "1"],
                            body: ResponseBody(byteBuffer: ByteBuffer(string: "purchases could not be read; try again\n")))
        }
        var headers = PageRenderer.pageHeaders(contentType: "text/csv; charset=utf-8")
        headers[.contentDisposition] = "attachment; filename=\"purchases-\(filter.from)-to-\(filter.to).csv\""
        return Response(status: .ok, headers: headers, body: ResponseBody(byteBuffer: ByteBuffer(string: PurchaseCSV.text(purchases))))
    }

    // MARK: Forms

    /// `POST /portal/returns` (`auction_id`, `reason`, `note`): returns a lead through the books.
    func returnLead(_ request: Request) async -> Response {
        switch await area.authorizedForm(request) {
        case .failure(let failure): return failure.response
        case .success(let (session, form)):
            let auctionID = form["auction_id"] ?? ""
            let reason = form["reason"] ?? ""
            let note = form["note"].flatMap { $0.isEmpty ? nil : String($0.prefix(500)) }
            let notice: String
            if !ReturnReason.allCases.map(\.rawValue).contains(reason) {
                notice = "Choose a reason to return \(auctionID)."
            } else {
                do {
                    let credited = try await books.returnLead(buyerID: session.principal.id, auctionID: auctionID, reason: reason, note: note)
                    notice = "Returned \(auctionID): \(Formatting.money(credited)) credited."
                } catch {
                    notice = "\(auctionID) was not returned: \(error.message)"
                }
            }
            area.sessions.setNotice(notice, sessionID: session.id)
            return WebArea.redirect(returnLocation(form))
        }
    }

    /// `POST /portal/pause` and `/portal/resume`: stored before the answer; holds until undone.
    func pause(_ request: Request, paused: Bool) async -> Response {
        switch await area.authorizedForm(request) {
        case .failure(let failure): return failure.response
        case .success(let (session, _)):
            do {
                try await exchange.setPortalPause(buyerID: session.principal.id, paused: paused)
                area.sessions.setNotice(paused ? "Paused: you get no pings or leads until you resume." : "Resumed: you are buying again.",
                                        sessionID: session.id)
            } catch {
                area.sessions.setNotice("The change could not be saved just now; nothing changed. Try again.", sessionID: session.id)
            }
            return WebArea.redirect("/portal/")
        }
    }

    // MARK: Helpers

    private var nowMs: Int64 { Int64(area.now().timeIntervalSince1970 * 1000) }

    private func filteredPurchases(buyerID: String, filter: PurchaseFilter) async throws -> [WebPurchase] {
        let all = try await books.purchases(buyerID: buyerID, fromMs: filter.fromMs, toMs: filter.toMs, limit: PortalRoutes.purchaseLimit)
        return filter.query.isEmpty ? all : all.filter { filter.matches($0) }
    }

    /// Back to the list the form was posted from (only the portal's own page, never elsewhere).
    private func returnLocation(_ form: [String: String]) -> String {
        var components = URLComponents()
        components.path = "/portal/"
        let items = ["from", "to", "q"].compactMap { name in form[name].flatMap { $0.isEmpty ? nil : URLQueryItem(name: name, value: $0) } }
        components.queryItems = items.isEmpty ? nil : items
        return components.string ?? "/portal/"
    }
}

/// The purchases asked for: a range of UTC days (`from`, `to` inclusive; the last 7 days by
/// default) and a search text matched against the round, campaign and contact.
struct PurchaseFilter {
    var from: String
    var to: String
    var fromMs: Int64
    var toMs: Int64
    var query: String

    init(_ request: Request, nowMs: Int64) {
        let parameters = request.uri.queryParameters
        let today = Formatting.dayStart(ms: nowMs)
        let defaultFrom = today - 6 * 86_400_000
        let fromText = parameters["from"].map(String.init) ?? ""
        let toText = parameters["to"].map(String.init) ?? ""
        fromMs = Formatting.dayStart(fromText) ?? defaultFrom
        let toStart = Formatting.dayStart(toText) ?? today
        toMs = max(toStart, fromMs) + 86_400_000
        from = Formatting.day(ms: fromMs)
        to = Formatting.day(ms: toMs - 86_400_000)
        query = String((parameters["q"].map(String.init) ?? "").trimmingCharacters(in: .whitespaces).prefix(200))
    }

    func matches(_ purchase: WebPurchase) -> Bool {
        let needle = query.lowercased()
        if purchase.auctionID.lowercased().contains(needle) || purchase.campaignID.lowercased().contains(needle) { return true }
        return purchase.contact.contains { $0.value.lowercased().contains(needle) }
    }
}

/// Purchases as CSV (RFC 4180): fixed columns, then one column per contact field seen.
enum PurchaseCSV {
    static func text(_ purchases: [WebPurchase]) -> String {
        var fields: [String] = []
        for purchase in purchases {
            for (name, _) in purchase.contact where !fields.contains(name) { fields.append(name) }
        }
        var lines = [(["auction_id", "sold_at", "campaign", "kind", "price", "returned"] + fields).map(cell).joined(separator: ",")]
        for purchase in purchases {
            let contact = Dictionary(purchase.contact.map { ($0.name, $0.value) }, uniquingKeysWith: { first, _ in first })
            let row = [purchase.auctionID, Timestamps.rfc3339(ms: purchase.soldAtMs), purchase.campaignID, purchase.kind,
                       purchase.price.description, purchase.returnedReason ?? ""] + fields.map { contact[$0] ?? "" }
            lines.append(row.map(cell).joined(separator: ","))
        }
        return lines.joined(separator: "\r\n") + "\r\n"
    }

    /// A quoted cell when needed; a leading `=`, `+`, `-` or `@` is prefixed with `'` so a
    /// spreadsheet does not run a contact's text as a formula (a number or phone number is kept).
    static func cell(_ value: String) -> String {
        var text = value
        if let first = text.first, "=+-@\t\r".contains(first),
           !(text.count > 1 && text.dropFirst().allSatisfy { $0.isASCII && ($0.isNumber || " .-()".contains($0)) }) {
            text = "'" + text
        }
        guard text.contains(where: { $0 == "," || $0 == "\"" || $0 == "\n" || $0 == "\r" }) else { return text }
        return "\"" + text.replacingOccurrences(of: "\"", with: "\"\"") + "\""
    }
}
