import GavelCore

/// Everything persisted about one round, written in one transaction.
public struct RoundRecord: Sendable {
    /// `pinged`: a `/v1/pings` round whose post has not come yet; `live`: a call in progress;
    /// `final`: the round is over.
    public enum Phase: String, Sendable { case pinged, live, final }

    public var id: String
    public var kind: AuctionKind
    public var sellerID: String
    public var campaignID: String
    public var phase: Phase
    /// `sold` / `unsold` when final; `bid` / `no_bid` while pinged.
    public var status: String
    public var createdAtMs: Int64
    public var tmaxMs: Int
    /// From request arrival to the decision, in microseconds.
    public var durationUs: Int
    public var winnerID: String?
    public var price: Money?
    public var payout: Money?
    /// Non-PII lead fields, as JSON text.
    public var leadJSON: String
    /// PII, as JSON text: stored in its own table, never logged.
    public var contactJSON: String?
    /// The seller's consent object, as JSON text: may hold PII, so it is stored with the contact.
    public var consentJSON: String?
    /// A keyed hash of the contact, for duplicate windows.
    public var contactHash: String?
    public var entries: [AuctionRound.BuyerEntry]
    public var posts: [AuctionRound.PostAttempt]
    /// Cap counters to add to in the same transaction as the sale.
    public var capIncrements: [CapIncrement]
    /// Whether this round is a sale on the books (a sold lead, a converted call).
    public var billable: Bool
    /// What to show for buyers whose reason is not final yet (`bid` while a ping is held, `routed` for a live call).
    public var openReasons: [String: String]
    /// Calls: the lifecycle events so far.
    public var events: [CallEventRecord]
    /// Calls: where the call came from (tracking number session, source, keyword), as JSON text.
    public var attributionJSON: String?
    /// The seller's traffic source.
    public var source: String?
    /// The answer to the request, kept for its idempotency key in the round's own transaction.
    public var answer: StoredAnswer?
    /// A second attempt at a commit that failed or timed out: written only if the first did not land.
    public var isRetry = false
    /// What is live of this round (a held ping's bids, a live call), written through for a restart.
    /// A final round clears it.
    public var liveState: LiveState?
    /// Round-robin campaigns: the campaign's rotation counter after this round, kept (the highest
    /// written wins) so that the rotation goes on after a restart.
    public var rotation: Int?

    public init(
        id: String, kind: AuctionKind, sellerID: String, campaignID: String, phase: Phase, status: String,
        createdAtMs: Int64, tmaxMs: Int, durationUs: Int, winnerID: String? = nil, price: Money? = nil, payout: Money? = nil,
        leadJSON: String, contactJSON: String? = nil, consentJSON: String? = nil, contactHash: String? = nil,
        entries: [AuctionRound.BuyerEntry], posts: [AuctionRound.PostAttempt], capIncrements: [CapIncrement] = [],
        billable: Bool = false, openReasons: [String: String] = [:], events: [CallEventRecord] = [], attributionJSON: String? = nil
    ) {
        self.id = id
        self.kind = kind
        self.sellerID = sellerID
        self.campaignID = campaignID
        self.phase = phase
        self.status = status
        self.createdAtMs = createdAtMs
        self.tmaxMs = tmaxMs
        self.durationUs = durationUs
        self.winnerID = winnerID
        self.price = price
        self.payout = payout
        self.leadJSON = leadJSON
        self.contactJSON = contactJSON
        self.consentJSON = consentJSON
        self.contactHash = contactHash
        self.entries = entries
        self.posts = posts
        self.capIncrements = capIncrements
        self.billable = billable
        self.openReasons = openReasons
        self.events = events
        self.attributionJSON = attributionJSON
    }
}

/// A snapshot of live in-memory state, restored at start-up.
public struct LiveState: Sendable, Hashable {
    public enum Kind: String, Sendable { case held, call }
    public var roundID: String
    public var kind: Kind
    /// JSON text of the exchange's own snapshot type.
    public var snapshot: String
    /// After this the state is of no use (a held bid expired, a call past its longest length).
    public var expiresAtMs: Int64
    /// Held pings: the consent stored with the contact, for the post.
    public var consentJSON: String?

    public init(roundID: String, kind: Kind, snapshot: String, expiresAtMs: Int64, consentJSON: String? = nil) {
        self.roundID = roundID
        self.kind = kind
        self.snapshot = snapshot
        self.expiresAtMs = expiresAtMs
        self.consentJSON = consentJSON
    }
}

/// A tracking number reserved for a visitor session.
public struct StoredDNISession: Sendable, Hashable {
    public var number: String
    public var sessionID: String
    public var campaignID: String
    public var visitJSON: String
    public var expiresAtMs: Int64

    public init(number: String, sessionID: String, campaignID: String, visitJSON: String, expiresAtMs: Int64) {
        self.number = number
        self.sessionID = sessionID
        self.campaignID = campaignID
        self.visitJSON = visitJSON
        self.expiresAtMs = expiresAtMs
    }
}

/// One cap window's counters for one buyer (`H:2026-11-29T14`, `D:2026-11-29`, `M:2026-11`).
public struct CapIncrement: Sendable, Hashable {
    public var buyerID: String
    public var window: String
    public var count: Int
    public var spend: Money

    public init(buyerID: String, window: String, count: Int, spend: Money) {
        self.buyerID = buyerID
        self.window = window
        self.count = count
        self.spend = spend
    }
}

/// A recorded sale, for rebuilding duplicate windows after a restart.
public struct SaleRecord: Sendable, Hashable {
    public var buyerID: String
    public var contactHash: String
    public var soldAtMs: Int64

    public init(buyerID: String, contactHash: String, soldAtMs: Int64) {
        self.buyerID = buyerID
        self.contactHash = contactHash
        self.soldAtMs = soldAtMs
    }
}

/// A round as read back for `GET /v1/auctions/{id}`.
public struct StoredRound: Sendable {
    public var id: String
    public var kind: String
    public var sellerID: String
    public var campaignID: String
    public var phase: String
    public var status: String
    public var createdAtMs: Int64
    public var tmaxMs: Int
    public var durationUs: Int
    public var winnerID: String?
    public var price: Money?
    public var payout: Money?
    public var leadJSON: String
    public var buyers: [StoredBuyer]
    public var posts: [StoredPost]
    public var events: [CallEventRecord]
    public var attributionJSON: String?
    public var source: String? = nil
    /// Calls: the recording the telephony provider reported.
    public var recordingURL: String? = nil

    public init(id: String, kind: String, sellerID: String, campaignID: String, phase: String, status: String, createdAtMs: Int64,
                tmaxMs: Int, durationUs: Int, winnerID: String?, price: Money?, payout: Money?, leadJSON: String, buyers: [StoredBuyer],
                posts: [StoredPost], events: [CallEventRecord], attributionJSON: String?, source: String? = nil, recordingURL: String? = nil) {
        self.id = id
        self.kind = kind
        self.sellerID = sellerID
        self.campaignID = campaignID
        self.phase = phase
        self.status = status
        self.createdAtMs = createdAtMs
        self.tmaxMs = tmaxMs
        self.durationUs = durationUs
        self.winnerID = winnerID
        self.price = price
        self.payout = payout
        self.leadJSON = leadJSON
        self.buyers = buyers
        self.posts = posts
        self.events = events
        self.attributionJSON = attributionJSON
        self.source = source
        self.recordingURL = recordingURL
    }

    public struct StoredBuyer: Sendable {
        public var buyerID: String
        public var reason: String
        public var bid: Money?
        public var bidID: String?
        public var latencyUs: Int?
        public var tmaxMs: Int?
        public var detail: String?
        public var destination: String?
        /// The buyer's own reason code and its configured category.
        public var buyerReason: String? = nil
        public var buyerReasonCategory: String? = nil
        /// The buyer's chance of paying as estimated when bidding closed; nil when it took no part.
        public var estimate: Probability? = nil

        public init(buyerID: String, reason: String, bid: Money?, bidID: String?, latencyUs: Int?, tmaxMs: Int?, detail: String?,
                    destination: String?, buyerReason: String? = nil, buyerReasonCategory: String? = nil, estimate: Probability? = nil) {
            self.buyerID = buyerID
            self.reason = reason
            self.bid = bid
            self.bidID = bidID
            self.latencyUs = latencyUs
            self.tmaxMs = tmaxMs
            self.detail = detail
            self.destination = destination
            self.buyerReason = buyerReason
            self.buyerReasonCategory = buyerReasonCategory
            self.estimate = estimate
        }
    }

    public struct StoredPost: Sendable {
        public var sequence: Int
        public var buyerID: String
        public var price: Money
        public var result: String
        public var latencyUs: Int
        public var reference: String?
        public var detail: String?
        public var buyerReason: String? = nil
        public var buyerReasonCategory: String? = nil

        public init(sequence: Int, buyerID: String, price: Money, result: String, latencyUs: Int, reference: String?, detail: String?,
                    buyerReason: String? = nil, buyerReasonCategory: String? = nil) {
            self.sequence = sequence
            self.buyerID = buyerID
            self.price = price
            self.result = result
            self.latencyUs = latencyUs
            self.reference = reference
            self.detail = detail
            self.buyerReason = buyerReason
            self.buyerReasonCategory = buyerReasonCategory
        }
    }
}
