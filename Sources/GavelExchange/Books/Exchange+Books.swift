import Foundation
import GavelCore
import GavelStore

/// A return the books took: what the buyer got back and the seller lost.
public struct ReturnReceipt: Sendable, Hashable {
    public var returnID: String
    public var auctionID: String
    /// The price, credited back to the buyer (and to its daily budget of the sale's day).
    public var credited: Money
    /// The seller's payout taken back (zero under `keep_payout`).
    public var payoutReversed: Money
}

/// Why a return was not booked. A struct over a private code, so cases can be added; `code` is
/// the stable machine-readable name the edge answers with.
public struct ReturnError: Error, Sendable, CustomStringConvertible {
    private enum Code: Sendable { case notFound, windowClosed, alreadyReturned, unavailable }
    private let kind: Code
    public let message: String
    /// The exchange's own failure, when that is the cause.
    public let exchangeError: ExchangeError?

    private init(_ kind: Code, _ message: String, exchangeError: ExchangeError? = nil) {
        self.kind = kind
        self.message = message
        self.exchangeError = exchangeError
    }

    /// No sale of this round to this buyer (another buyer's round is as invisible as none).
    public static func notFound(_ auctionID: String) -> Self { .init(.notFound, "no purchase \(auctionID) for this buyer") }
    public static func windowClosed(_ auctionID: String, days: Int, deadlineMs: Int64) -> Self {
        .init(.windowClosed, "\(auctionID) can no longer be returned: the campaign's return window is \(days) days from the sale (closed \(Timestamps.rfc3339(ms: deadlineMs)))")
    }
    public static func alreadyReturned(_ auctionID: String, _ earlier: BookedReturn) -> Self {
        .init(.alreadyReturned, "\(auctionID) was returned already (\(earlier.returnID))")
    }
    public static func unavailable(_ error: ExchangeError) -> Self { .init(.unavailable, error.message, exchangeError: error) }

    /// `not_found`, `return_window_closed`, `already_returned` or the exchange error's own code.
    public var code: String {
        switch kind {
        case .notFound: return "not_found"
        case .windowClosed: return "return_window_closed"
        case .alreadyReturned: return "already_returned"
        case .unavailable: return exchangeError?.shortDescription ?? "storage"
        }
    }

    public var description: String { "\(code): \(message)" }
}

/// A page of a buyer's purchases and where the next one starts.
public struct PurchasePage: Sendable, Hashable {
    public var purchases: [Purchase]
    /// nil on the last page.
    public var nextCursor: PurchaseCursor?
}

/// The books: who holds a key, returns, adjustments and reports. Everything goes through
/// `books` (a `BooksStore`), never the SQLite store's own API, so a second backend only has to
/// implement that protocol. The web pages call these functions directly.
extension Exchange {
    /// The store's books.
    public var books: any BooksStore { store }

    /// The buyer whose `api_key` this is.
    public func buyer(apiKey: String) -> Buyer? { config.buyersByKey[apiKey] }

    /// The operator whose `api_key` this is.
    public func `operator`(apiKey: String) -> Operator? { config.operator(apiKey: apiKey) }

    /// Books `buyer`'s return of the lead (or call) of round `auctionID`: within the campaign's
    /// `return_window_days` of the sale, once. The price goes back to the buyer's daily budget of
    /// the sale's day (count caps are unchanged), the seller's payout is reversed per the
    /// campaign's `return_policy`, and the buyer's accept estimate counts the sale as a failure.
    /// With a `ticket` (an `Idempotency-Key`), the 200 answer is stored in the return's own
    /// transaction: a repeat after a crash gets it, not `already_returned`.
    public func returnSale(auctionID: String, buyer: Buyer, reason: ReturnReason, note: String?,
                           ticket: IdempotencyTicket? = nil) async throws(ReturnError) -> ReturnReceipt {
        let found: BookedSale?
        do { found = try await books.sale(roundID: auctionID) } catch { throw .unavailable(.storage("\(error)")) }
        guard let sale = found, sale.buyerID == buyer.id else { throw .notFound(auctionID) }
        if let earlier = sale.returned { throw .alreadyReturned(auctionID, earlier) }
        let config = config
        let campaign = config.campaigns[sale.campaignID]
        let days = campaign?.returnWindowDays ?? Campaign.defaultReturnWindowDays
        let policy = campaign?.returnPolicy ?? .reversePayout
        let nowMs = nowMs
        let deadlineMs = sale.soldAtMs + Int64(days) * 86_400_000
        guard nowMs < deadlineMs else { throw .windowClosed(auctionID, days: days, deadlineMs: deadlineMs) }
        let day = CapWindows(date: Date(timeIntervalSince1970: Double(sale.soldAtMs) / 1000), timeZone: buyer.capTimeZone).day
        let credit = CapIncrement(buyerID: buyer.id, window: day, count: 0, spend: .zero - sale.price)
        let booked = BookedReturn(
            returnID: AuctionID.make(prefix: "ret_", nowMs: nowMs), reason: reason.rawValue, note: note, atMs: nowMs,
            credited: sale.price, payoutReversed: policy.reversal(of: sale.payout))
        let receipt = ReturnReceipt(returnID: booked.returnID, auctionID: auctionID, credited: booked.credited, payoutReversed: booked.payoutReversed)
        var entry = ReturnEntry(sale: sale, booked: booked, budgetCredit: credit)
        entry.answer = ticket?.answer(receipt.json, roundID: auctionID, atMs: nowMs)
        let outcome: ReturnOutcome
        do { outcome = try await books.record(entry) } catch {
            logger.error("return not booked", metadata: ["auction_id": "\(auctionID)", "error": "\(error)"])
            throw .unavailable(.storage("\(error)"))
        }
        if case .alreadyReturned(let earlier) = outcome { throw .alreadyReturned(auctionID, earlier) }
        // Committed: the budget and the estimate follow.
        ledger.addCount(buyerID: buyer.id, window: day, count: 0, spend: .zero - sale.price)
        estimates.recordReturn(buyerID: buyer.id, kind: sale.kind, prior: config.outcomePrior(sale.kind))
        logger.debug("sale returned", metadata: [
            "auction_id": "\(auctionID)", "buyer": "\(buyer.id)", "return_id": "\(booked.returnID)", "reason": "\(reason.rawValue)",
        ])
        return receipt
    }

    /// Books an operator's adjustment of revenue and payout (signed amounts) on today's books.
    public func adjust(by operatorID: String, campaignID: String?, sellerID: String?, buyerID: String?, revenue: Money, payout: Money,
                       note: String) async throws(ExchangeError) -> Adjustment {
        let adjustment = Adjustment(
            adjustmentID: AuctionID.make(prefix: "adj_", nowMs: nowMs), operatorID: operatorID, atMs: nowMs, campaignID: campaignID,
            sellerID: sellerID, buyerID: buyerID, revenue: revenue, payout: payout, note: note)
        do { try await books.record(adjustment) } catch { throw .storage("\(error)") }
        return adjustment
    }

    /// The P&L of `range`, grouped by `groupBy`.
    public func profitAndLoss(_ range: ReportRange, groupBy: Set<ReportDimension>) async throws(ExchangeError) -> ProfitAndLoss {
        do {
            let slices = try await books.bookSlices(startMs: range.startMs, endMs: range.endMs)
            return ProfitAndLoss(slices: slices, range: range, groupBy: groupBy)
        } catch {
            throw .storage("\(error)")
        }
    }

    /// Each buyer's performance over the rounds of `range`.
    public func buyerReport(_ range: ReportRange) async throws(ExchangeError) -> [BuyerActivity] {
        do { return try await books.buyerActivity(startMs: range.startMs, endMs: range.endMs) } catch { throw .storage("\(error)") }
    }

    /// Each seller's rounds, sales and money over `range`.
    public func sellerReport(_ range: ReportRange) async throws(ExchangeError) -> [SellerActivity] {
        do { return try await books.sellerActivity(startMs: range.startMs, endMs: range.endMs, sellerID: nil) } catch { throw .storage("\(error)") }
    }

    /// One seller's own rounds over `range` (the seller summary shows no revenue or margin).
    public func sellerSummary(_ seller: Seller, range: ReportRange) async throws(ExchangeError) -> SellerActivity {
        do {
            return try await books.sellerActivity(startMs: range.startMs, endMs: range.endMs, sellerID: seller.id).first
                ?? SellerActivity(sellerID: seller.id)
        } catch {
            throw .storage("\(error)")
        }
    }

    /// What `buyer` bought in rounds of `range`, newest first, `limit` at a time.
    public func purchases(of buyer: Buyer, range: ReportRange, after cursor: PurchaseCursor? = nil, limit: Int = 100) async throws(ExchangeError) -> PurchasePage {
        do {
            let page = try await books.purchases(buyerID: buyer.id, startMs: range.startMs, endMs: range.endMs, after: cursor, limit: limit + 1)
            let more = page.count > limit
            let shown = Array(page.prefix(limit))
            return PurchasePage(purchases: shown, nextCursor: more ? shown.last?.cursor : nil)
        } catch {
            throw .storage("\(error)")
        }
    }

    /// The last day a sale may be returned, as epoch milliseconds (exclusive).
    public func returnDeadlineMs(of sale: BookedSale) -> Int64 {
        let days = config.campaigns[sale.campaignID]?.returnWindowDays ?? Campaign.defaultReturnWindowDays
        return sale.soldAtMs + Int64(days) * 86_400_000
    }
}
