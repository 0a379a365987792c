import Crypto
import GavelCore

/// What the pages need from the books (ledger, returns, reports): a small protocol, so the portal
/// and dashboard do not depend on how the books are stored.
public protocol WebBooks: Sendable {
    /// The buyer's purchases sold in [fromMs, toMs), newest first, with the contact it paid for.
    func purchases(buyerID: String, fromMs: Int64, toMs: Int64, limit: Int) async throws -> [WebPurchase]
    /// Returns the lead of round `auctionID` for `buyerID`: the amount credited back, or why not.
    func returnLead(buyerID: String, auctionID: String, reason: String, note: String?) async throws(WebReturnRefusal) -> Money
    /// Profit and loss of the rounds (and returns) in [fromMs, toMs).
    func profitAndLoss(fromMs: Int64, toMs: Int64) async throws -> WebProfitAndLoss
}

/// One lead or call a buyer paid for.
public struct WebPurchase: Sendable, Hashable {
    public var auctionID: String
    public var campaignID: String
    public var kind: String
    public var soldAtMs: Int64
    public var price: Money
    /// The contact paid for, field by field (name, email, phone, ...), in the order sent.
    public var contact: [(name: String, value: String)]
    /// The return's reason when this purchase was returned.
    public var returnedReason: String?

    public init(auctionID: String, campaignID: String, kind: String, soldAtMs: Int64, price: Money,
                contact: [(name: String, value: String)], returnedReason: String? = nil) {
        self.auctionID = auctionID
        self.campaignID = campaignID
        self.kind = kind
        self.soldAtMs = soldAtMs
        self.price = price
        self.contact = contact
        self.returnedReason = returnedReason
    }

    public static func == (lhs: WebPurchase, rhs: WebPurchase) -> Bool {
        lhs.auctionID == rhs.auctionID && lhs.returnedReason == rhs.returnedReason && lhs.price == rhs.price
    }

    public func hash(into hasher: inout Hasher) { hasher.combine(auctionID) }
}

/// Figures of the P&L over a period (CONTRACT v2: margin = revenue − returned − payout + payout_reversed).
public struct WebProfitAndLoss: Sendable, Hashable {
    public var rounds: Int
    public var sold: Int
    public var revenue: Money
    public var payout: Money
    public var returned: Money
    public var payoutReversed: Money
    public var margin: Money

    public init(rounds: Int = 0, sold: Int = 0, revenue: Money = .zero, payout: Money = .zero, returned: Money = .zero,
                payoutReversed: Money = .zero, margin: Money = .zero) {
        self.rounds = rounds
        self.sold = sold
        self.revenue = revenue
        self.payout = payout
        self.returned = returned
        self.payoutReversed = payoutReversed
        self.margin = margin
    }
}

/// Why a return was refused, in words for the buyer (`already_returned`, `return_window_closed`, ...).
public struct WebReturnRefusal: Error, Sendable, Hashable {
    public var code: String
    public var message: String

    public init(code: String, message: String) {
        self.code = code
        self.message = message
    }
}

/// Who holds a sign-in key: the config's buyers (`api_key`) and operators (`operators.yaml`).
public protocol WebKeys: Sendable {
    func buyerID(forKey key: String) -> String?
    func operatorID(forKey key: String) -> String?
    /// `WebKeyDigest` of the principal's key in the config now; nil when it has none any more.
    /// A session signed in with another key (rotated since, or removed) ends.
    func keyDigest(for principal: WebPrincipal) -> String?
}

/// A key's SHA-256 (hex): what a session remembers of the key it signed in with, never the key.
public enum WebKeyDigest {
    public static func of(_ key: String) -> String {
        SHA256.hash(data: Array(key.utf8)).map { String(format: "%02x", $0) }.joined()
    }
}
