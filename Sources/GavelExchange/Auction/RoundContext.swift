import Foundation
import GavelCore

/// What one round runs with: its config snapshot, its request, and its clock.
struct RoundContext: Sendable {
    let auctionID: String
    let config: ExchangeConfig
    let campaign: Campaign
    let seller: Seller
    let lead: JSONObject
    let contact: JSONObject?
    let consent: JSONObject?
    let contactHash: String?
    /// The seller's traffic source (`source` of the request), for buyers' templates and reports.
    let source: String?
    /// When the request arrived, and when its answer is due.
    let arrival: ContinuousClock.Instant
    /// When the exchange took the round up (the request read and checked): admission measures
    /// congestion from here, so a seller's slow upload is not taken for the exchange's overload.
    let started = ContinuousClock.now
    let deadline: ContinuousClock.Instant
    /// When bidding must close.
    let pingDeadline: ContinuousClock.Instant
    let createdAtMs: Int64
    let tmaxMs: Int
    /// The request's idempotency key: its answer is stored with the round.
    let ticket: IdempotencyTicket?

    init(auctionID: String, config: ExchangeConfig, campaign: Campaign, seller: Seller, lead: JSONObject,
         contact: JSONObject?, consent: JSONObject?, contactHash: String?, arrival: ContinuousClock.Instant, tmaxMs: Int,
         ticket: IdempotencyTicket? = nil, createdAtMs: Int64? = nil, source: String? = nil) {
        self.ticket = ticket
        self.source = source
        self.auctionID = auctionID
        self.config = config
        self.campaign = campaign
        self.seller = seller
        self.lead = lead
        self.contact = contact
        self.consent = consent
        self.contactHash = contactHash
        self.arrival = arrival
        self.tmaxMs = tmaxMs
        self.deadline = arrival + .milliseconds(tmaxMs)
        // A shorter request budget shrinks the ping phase in proportion, leaving room to post.
        let pingBudget = min(campaign.pingTimeoutMs, tmaxMs * campaign.pingTimeoutMs / max(campaign.tmaxMs, 1))
        self.pingDeadline = arrival + .milliseconds(max(1, pingBudget))
        self.createdAtMs = createdAtMs ?? Int64(Date().timeIntervalSince1970 * 1000)
    }

    /// Whole milliseconds from now until `instant`, never negative.
    static func milliseconds(until instant: ContinuousClock.Instant) -> Int {
        let remaining = ContinuousClock.now.duration(to: instant)
        let (seconds, attoseconds) = remaining.components
        return max(0, Int(seconds) * 1000 + Int(attoseconds / 1_000_000_000_000_000))
    }

    /// How long a commit may keep the seller waiting: what is left of the budget, plus a little.
    var storeWaitMs: Int { RoundContext.milliseconds(until: deadline) + RoundContext.storeGraceMs }

    /// Past the budget, the answer may be this late for a commit (CONTRACT: "plus a few milliseconds").
    static let storeGraceMs = 5

    /// Waterfall: how long a lower tier's pings may take when `remainingMs` are left: the
    /// campaign's ping share of it (`ping_timeout_ms` / `tmax_ms`, at most `ping_timeout_ms`), so
    /// each tier leaves its posts the same share, and never so much that no post would fit after.
    func tierPingMs(remainingMs: Int, minimumPostMs: Int) -> Int {
        let share = remainingMs * campaign.pingTimeoutMs / max(campaign.tmaxMs, 1)
        return max(1, min(campaign.pingTimeoutMs, share, remainingMs - minimumPostMs))
    }

    var elapsedUs: Int {
        let (seconds, attoseconds) = arrival.duration(to: .now).components
        return Int(seconds) * 1_000_000 + Int(attoseconds / 1_000_000_000_000)
    }
}
