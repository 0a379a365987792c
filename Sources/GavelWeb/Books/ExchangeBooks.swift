import Foundation
import GavelCore
import GavelExchange
import GavelStore

/// The pages' books and keys, answered by the exchange's books (`Exchange+Books.swift`): the
/// config's buyer and operator keys, the buyer's purchases, returns and the P&L (UTC days).
public struct ExchangeBooks: WebBooks, WebKeys {
    let exchange: Exchange

    public init(exchange: Exchange) {
        self.exchange = exchange
    }

    public func buyerID(forKey key: String) -> String? { exchange.buyer(apiKey: key)?.id }

    public func operatorID(forKey key: String) -> String? { exchange.operator(apiKey: key)?.id }

    public func keyDigest(for principal: WebPrincipal) -> String? {
        let config = exchange.config
        switch principal {
        case .buyer(let id): return config.buyer(id: id)?.apiKey.map(WebKeyDigest.of)
        case .operator(let id): return config.operators.first { $0.id == id }.map { WebKeyDigest.of($0.apiKey) }
        }
    }

    public func purchases(buyerID: String, fromMs: Int64, toMs: Int64, limit: Int) async throws -> [WebPurchase] {
        guard let buyer = exchange.config.buyer(id: buyerID) else { return [] }
        let page = try await exchange.purchases(of: buyer, range: ExchangeBooks.range(fromMs: fromMs, toMs: toMs), limit: limit)
        return page.purchases.map { purchase in
            var contact: [(name: String, value: String)] = []
            if let text = purchase.contactJSON, case .object(let fields)? = try? JSONValue.parse(text) {
                contact = fields.map { (name: $0.key, value: $0.value.stringValue ?? $0.value.serialized) }
            }
            let sale = purchase.sale
            return WebPurchase(auctionID: sale.roundID, campaignID: sale.campaignID, kind: sale.kind.rawValue, soldAtMs: sale.soldAtMs,
                               price: sale.price, contact: contact, returnedReason: sale.returned?.reason)
        }
    }

    public func returnLead(buyerID: String, auctionID: String, reason: String, note: String?) async throws(WebReturnRefusal) -> Money {
        guard let buyer = exchange.config.buyer(id: buyerID) else {
            throw WebReturnRefusal(code: "not_found", message: "your account is no longer in the exchange's config")
        }
        guard let reason = ReturnReason(rawValue: reason) else {
            throw WebReturnRefusal(code: "invalid_reason", message: "choose one of the listed reasons")
        }
        do {
            return try await exchange.returnSale(auctionID: auctionID, buyer: buyer, reason: reason, note: note).credited
        } catch {
            throw WebReturnRefusal(code: error.code, message: error.message)
        }
    }

    public func profitAndLoss(fromMs: Int64, toMs: Int64) async throws -> WebProfitAndLoss {
        let totals = try await exchange.profitAndLoss(ExchangeBooks.range(fromMs: fromMs, toMs: toMs), groupBy: []).totals
        return WebProfitAndLoss(rounds: Int(totals.rounds), sold: Int(totals.sold), revenue: totals.revenue, payout: totals.payout,
                                returned: totals.returned, payoutReversed: totals.payoutReversed, margin: totals.margin)
    }

    /// The UTC days from `fromMs` to the day before `toMs` (the pages ask for whole UTC days).
    static func range(fromMs: Int64, toMs: Int64) -> ReportRange {
        let utc = TimeZone(identifier: "UTC")!
        func date(_ ms: Int64) -> LocalDate {
            LocalDate(Formatting.day(ms: ms)) ?? LocalDate(year: 1970, month: 1, day: 1)
        }
        return ReportRange(from: date(fromMs), to: date(max(fromMs, toMs - 1)), timeZone: utc)
    }
}
