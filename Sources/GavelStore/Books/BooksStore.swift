import Foundation
import GavelCore

/// The books as the exchange and the reports need them: sales (written with their rounds by the
/// round writer), returns, adjustments, and the sums reports are made of. `RoundStore` implements
/// it over SQLite; a second database backend implements this protocol, and nothing above it changes.
///
/// The ledger is append-only: every money event is a row that is never updated or deleted, and
/// every figure a report shows is a sum over those rows and the rounds they belong to.
public protocol BooksStore: Sendable {
    /// The sale of round `roundID`, with its return if it has one; nil when the round did not sell.
    func sale(roundID: String) async throws(StoreError) -> BookedSale?
    /// Books a return and credits the buyer's budget window, in one transaction; a round returned
    /// already is not booked twice.
    func record(_ entry: ReturnEntry) async throws(StoreError) -> ReturnOutcome
    /// Books an operator's adjustment.
    func record(_ adjustment: Adjustment) async throws(StoreError)
    /// The books from `startMs` (inclusive) to `endMs` (exclusive), summed per 15-minute slot and
    /// campaign, seller, buyer and source: rounds and their sales by when the round ran, returns
    /// and adjustments by when they were made.
    func bookSlices(startMs: Int64, endMs: Int64) async throws(StoreError) -> [BookSlice]
    /// Each buyer's part in the rounds that ran in the range; its returns made in the range.
    func buyerActivity(startMs: Int64, endMs: Int64) async throws(StoreError) -> [BuyerActivity]
    /// Each seller's rounds in the range (one seller's alone with `sellerID`).
    func sellerActivity(startMs: Int64, endMs: Int64, sellerID: String?) async throws(StoreError) -> [SellerActivity]
    /// What `buyerID` bought in rounds that ran in the range, newest first, after `cursor`.
    func purchases(buyerID: String, startMs: Int64, endMs: Int64, after cursor: PurchaseCursor?, limit: Int) async throws(StoreError) -> [Purchase]
}

/// A sale on the books.
public struct BookedSale: Sendable, Hashable {
    public var roundID: String
    public var kind: AuctionKind
    public var campaignID: String
    public var sellerID: String
    public var buyerID: String
    public var source: String?
    /// What the buyer paid.
    public var price: Money
    /// What the seller earned.
    public var payout: Money
    /// When the round ran (and sold).
    public var soldAtMs: Int64
    public var returned: BookedReturn?

    public init(roundID: String, kind: AuctionKind, campaignID: String, sellerID: String, buyerID: String, source: String?,
                price: Money, payout: Money, soldAtMs: Int64, returned: BookedReturn? = nil) {
        self.roundID = roundID
        self.kind = kind
        self.campaignID = campaignID
        self.sellerID = sellerID
        self.buyerID = buyerID
        self.source = source
        self.price = price
        self.payout = payout
        self.soldAtMs = soldAtMs
        self.returned = returned
    }
}

/// A return on the books.
public struct BookedReturn: Sendable, Hashable {
    public var returnID: String
    public var reason: String
    public var note: String?
    public var atMs: Int64
    /// Credited back to the buyer: the price it paid.
    public var credited: Money
    /// Taken back from the seller (zero under `keep_payout`).
    public var payoutReversed: Money

    public init(returnID: String, reason: String, note: String?, atMs: Int64, credited: Money, payoutReversed: Money) {
        self.returnID = returnID
        self.reason = reason
        self.note = note
        self.atMs = atMs
        self.credited = credited
        self.payoutReversed = payoutReversed
    }
}

/// A return to book: the sale, what is credited and reversed, and the buyer's budget window the
/// price goes back to (a negative spend, no count).
public struct ReturnEntry: Sendable, Hashable {
    public var sale: BookedSale
    public var booked: BookedReturn
    public var budgetCredit: CapIncrement?
    /// The request's idempotent answer, stored in the same transaction as the return.
    public var answer: StoredAnswer?

    public init(sale: BookedSale, booked: BookedReturn, budgetCredit: CapIncrement?) {
        self.sale = sale
        self.booked = booked
        self.budgetCredit = budgetCredit
    }
}

public enum ReturnOutcome: Sendable, Hashable {
    case recorded
    /// The round was returned before: nothing was booked.
    case alreadyReturned(BookedReturn)
}

/// An operator's correction: signed amounts added to revenue (what buyers paid) and payout (what
/// sellers earned), on the day it is made.
public struct Adjustment: Sendable, Hashable {
    public var adjustmentID: String
    public var operatorID: String
    public var atMs: Int64
    public var campaignID: String?
    public var sellerID: String?
    public var buyerID: String?
    public var revenue: Money
    public var payout: Money
    public var note: String

    public init(adjustmentID: String, operatorID: String, atMs: Int64, campaignID: String?, sellerID: String?, buyerID: String?,
                revenue: Money, payout: Money, note: String) {
        self.adjustmentID = adjustmentID
        self.operatorID = operatorID
        self.atMs = atMs
        self.campaignID = campaignID
        self.sellerID = sellerID
        self.buyerID = buyerID
        self.revenue = revenue
        self.payout = payout
        self.note = note
    }
}

/// One buyer's part in a range's rounds.
public struct BuyerActivity: Sendable, Hashable {
    public var buyerID: String
    /// Rounds the buyer was considered in, by reason code.
    public var reasons: [String: Int64] = [:]
    /// Pings sent (answered, timed out or failed).
    public var pings: Int64 = 0
    /// Bids received.
    public var bids: Int64 = 0
    public var bidTotal = Money.zero
    /// Posts sent whose answer counts (accepted, rejected, failed, timed out), and those accepted.
    public var posts: Int64 = 0
    public var postsAccepted: Int64 = 0
    /// Sales to the buyer and what it paid.
    public var wins: Int64 = 0
    public var spend = Money.zero
    /// Returns the buyer made in the range, and what they credited.
    public var returns: Int64 = 0
    public var returned = Money.zero
    /// Ping latency percentiles (nearest rank), microseconds; nil without pings.
    public var latencyP50Us: Int64?
    public var latencyP99Us: Int64?

    public init(buyerID: String) { self.buyerID = buyerID }
}

/// One seller's rounds in a range.
public struct SellerActivity: Sendable, Hashable {
    public var sellerID: String
    /// Rounds by their status (`sold`, `unsold`, `converted`, `bid`, ...).
    public var statuses: [String: Int64] = [:]
    /// Buyers' reason codes over the seller's rounds: why they did or did not buy.
    public var reasons: [String: Int64] = [:]
    /// Rounds, sales and money (returns by when they were made).
    public var figures = BookFigures()

    public init(sellerID: String) { self.sellerID = sellerID }
}

/// A purchase as its buyer sees it: the sale, the contact it paid for, the lead's fields.
public struct Purchase: Sendable, Hashable {
    public var sale: BookedSale
    /// The contact (PII) as JSON text; nil for a call.
    public var contactJSON: String?
    /// The lead's fields (no PII) as JSON text.
    public var leadJSON: String

    public init(sale: BookedSale, contactJSON: String?, leadJSON: String) {
        self.sale = sale
        self.contactJSON = contactJSON
        self.leadJSON = leadJSON
    }

    public var cursor: PurchaseCursor { PurchaseCursor(soldAtMs: sale.soldAtMs, roundID: sale.roundID) }
}

/// Where a page of purchases ended: `<sold_at_ms>.<round id>` as text.
public struct PurchaseCursor: Sendable, Hashable, CustomStringConvertible {
    public var soldAtMs: Int64
    public var roundID: String

    public init(soldAtMs: Int64, roundID: String) {
        self.soldAtMs = soldAtMs
        self.roundID = roundID
    }

    public init?(_ text: some StringProtocol) {
        guard let dot = text.firstIndex(of: "."), let ms = Int64(text[..<dot]) else { return nil }
        let id = String(text[text.index(after: dot)...])
        guard !id.isEmpty, id.count <= 64, id.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "_") }) else { return nil }
        soldAtMs = ms
        roundID = id
    }

    public var description: String { "\(soldAtMs).\(roundID)" }
}
