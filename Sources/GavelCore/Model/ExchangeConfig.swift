/// Everything the exchange runs on, read from the config directory. Immutable: a reload builds a
/// new value and swaps it in, so an auction in flight keeps the snapshot it started with.
public struct ExchangeConfig: Sendable {
    /// Campaign owning each tracking number, for attributing calls by the number dialed.
    public let campaignByTrackingNumber: [String: String]
    public var campaigns: [String: Campaign]
    public var sellers: [Seller]
    public var buyers: [Buyer]
    /// Telephony provider accounts and the public URL their webhooks are signed for (`telephony.yaml`).
    public var telephony = TelephonySettings()

    /// Sellers by API key, for the bearer check on every request.
    public let sellersByKey: [String: Seller]
    /// Buyers with an `api_key`, by that key (the buyer API and portal).
    public let buyersByKey: [String: Buyer]
    /// Operators (`operators.yaml`): the reports and the dashboard.
    public var operators: [Operator] = []
    /// Buyers considered for each campaign, in config order (sorted by id).
    public let buyersByCampaign: [String: [Buyer]]
    private let buyersByID: [String: Buyer]
    /// The priors of the buyers' outcome estimates by kind (`ev_prior` in `campaigns.yaml`);
    /// `OutcomePrior.default` for a kind not set.
    public var outcomePriors: [AuctionKind: OutcomePrior]

    public init(campaigns: [Campaign], sellers: [Seller], buyers: [Buyer], outcomePriors: [AuctionKind: OutcomePrior] = [:]) {
        self.outcomePriors = outcomePriors
        self.campaigns = Dictionary(campaigns.map { ($0.id, $0) }, uniquingKeysWith: { first, _ in first })
        self.sellers = sellers
        self.buyers = buyers.sorted { $0.id < $1.id }
        self.sellersByKey = Dictionary(sellers.map { ($0.apiKey, $0) }, uniquingKeysWith: { first, _ in first })
        var byCampaign: [String: [Buyer]] = [:]
        for buyer in self.buyers {
            for campaign in buyer.campaigns { byCampaign[campaign, default: []].append(buyer) }
        }
        self.buyersByCampaign = byCampaign
        self.buyersByID = Dictionary(self.buyers.map { ($0.id, $0) }, uniquingKeysWith: { first, _ in first })
        self.buyersByKey = Dictionary(self.buyers.compactMap { buyer in buyer.apiKey.map { ($0, buyer) } }, uniquingKeysWith: { first, _ in first })
        var byNumber: [String: String] = [:]
        for campaign in campaigns {
            guard let tracking = campaign.tracking else { continue }
            for number in tracking.pools.values.joined() { byNumber[number] = campaign.id }
            for number in tracking.fallbacks.values { byNumber[number] = campaign.id }
        }
        self.campaignByTrackingNumber = byNumber
    }

    public func buyer(id: String) -> Buyer? { buyersByID[id] }

    /// The prior of the outcome estimates of this kind (lead: post accepted; call: converted).
    public func outcomePrior(_ kind: AuctionKind) -> OutcomePrior { outcomePriors[kind] ?? .default }

    /// The campaign (and the seller paid) a caller reached by dialling `number`: a campaign's
    /// `inbound_numbers` first, then its tracking numbers (paid to `tracking.seller`).
    public func phoneLine(dialled number: String) -> PhoneLine? {
        for campaign in campaigns.values.sorted(by: { $0.id < $1.id }) where campaign.kind == .call {
            if let seller = campaign.phoneLines.inboundNumbers[number] { return PhoneLine(campaignID: campaign.id, sellerID: seller) }
        }
        guard let campaignID = campaignByTrackingNumber[number], let campaign = campaigns[campaignID] else { return nil }
        return PhoneLine(campaignID: campaignID, sellerID: campaign.phoneLines.trackingSeller)
    }
}

/// Lead or call.
public enum AuctionKind: String, Sendable, Hashable, CaseIterable {
    case lead
    case call
}

/// How a campaign picks among the buyers that bid.
public enum DistributionMethod: String, Sendable, Hashable, CaseIterable {
    /// Highest bid first.
    case auction
    /// Buyers' configured `priority` first (a ping tree), bid as the tie-break.
    case priority
    /// Rotate the first choice among the bidders, round after round.
    case roundRobin = "round_robin"
    /// Random first choice, weighted by the buyers' `weight`.
    case weighted
    /// A ping tree: buyers of equal `priority` form a tier, highest first. A tier is pinged only
    /// when the tiers above it produced no acceptable bid or every post to them failed, with the
    /// time then left of the round's one budget; within a tier, highest bid first.
    case waterfall
}

/// What the seller earns when a lead or call sells.
public enum PayoutRule: Sendable, Hashable, Codable {
    /// A share of the buyer's price, in basis points (7000 = 70%).
    case share(basisPoints: Int64)
    /// A fixed amount per sale, capped at the buyer's price so the exchange never pays out more than it earns.
    case fixed(Money)

    public func payout(forPrice price: Money) -> Money {
        switch self {
        case .share(let basisPoints): return price.share(basisPoints: basisPoints)
        case .fixed(let amount): return min(amount, price)
        }
    }
}

public struct Campaign: Sendable, Hashable {
    /// `max_bid` when a campaign sets none: 10,000.00.
    public static let defaultMaxBid = Money(10_000)
    /// The largest `max_bid` a config may set, so that sums of bids stay far inside `Int64`.
    public static let maxBidLimit = Money(1_000_000)
    public var id: String
    public var kind: AuctionKind
    public var vertical: String
    public var distribution: DistributionMethod
    /// How bids are ordered within the distribution method (`rank_by`, with `ev_fallback`): by
    /// price (the default) or by expected revenue from the buyers' outcome estimates.
    public var rankBy: RankBy
    /// The whole budget of a round, from request arrival to the answer.
    public var tmaxMs: Int
    /// How much of the budget the ping phase may use; the rest is for posts.
    public var pingTimeoutMs: Int
    public var floor: Money
    /// The highest bid a buyer may send (CONTRACT v2): anything above is `bad_response`.
    public var maxBid: Money
    public var payout: PayoutRule
    /// Lead fields a seller must send.
    public var requiredFields: [String]
    /// How long a bid from `/v1/pings` is held for the post when the buyer gives no expiry.
    public var bidHoldS: Int
    /// Calls: a buyer's live-call slot is released after this long when no `completed` arrives.
    public var maxCallS: Int
    /// Calls: tracking numbers for dynamic number insertion.
    public var tracking: TrackingNumbers?
    /// Days after a sale within which its buyer may return it (`return_window_days`).
    public var returnWindowDays: Int = Campaign.defaultReturnWindowDays
    /// What a return does to the seller's payout (`return_policy`).
    public var returnPolicy: ReturnPolicy = .reversePayout
    /// Calls: inbound numbers, fallback and dial options for the telephony webhooks.
    public var phoneLines = CampaignPhoneLines()

    public init(
        id: String, kind: AuctionKind = .lead, vertical: String, distribution: DistributionMethod = .auction,
        tmaxMs: Int = 1000, pingTimeoutMs: Int? = nil, floor: Money = .zero, payout: PayoutRule = .share(basisPoints: 7000),
        requiredFields: [String] = [], bidHoldS: Int = 60, maxCallS: Int = 3600, tracking: TrackingNumbers? = nil,
        maxBid: Money = Campaign.defaultMaxBid, rankBy: RankBy = .price
    ) {
        self.id = id
        self.kind = kind
        self.vertical = vertical
        self.distribution = distribution
        self.rankBy = rankBy
        self.tmaxMs = tmaxMs
        self.pingTimeoutMs = pingTimeoutMs ?? max(1, tmaxMs * 6 / 10)
        self.floor = floor
        self.maxBid = maxBid
        self.payout = payout
        self.requiredFields = requiredFields
        self.bidHoldS = bidHoldS
        self.maxCallS = maxCallS
        self.tracking = tracking
    }
}

/// A campaign's tracking numbers: pools by traffic source, and a fallback number per source
/// for when its pool is all reserved.
public struct TrackingNumbers: Sendable, Hashable {
    /// Source (`google`, `facebook`, `default`) -> numbers handed out one per visitor session.
    public var pools: [String: [String]]
    /// Source -> the number shown when the pool is exhausted; `default` for any other source.
    public var fallbacks: [String: String]
    /// How long a number stays reserved for a session.
    public var reservationS: Int
    /// The CSS selector the snippet swaps numbers in.
    public var selector: String

    public init(pools: [String: [String]], fallbacks: [String: String], reservationS: Int = 1800, selector: String = ".gavel-phone") {
        self.pools = pools
        self.fallbacks = fallbacks
        self.reservationS = reservationS
        self.selector = selector
    }
}

public struct Seller: Sendable, Hashable {
    public var id: String
    public var apiKey: String
    public var campaigns: Set<String>
    /// Requests per second (leads, pings, posts, calls) before 429; nil for no limit.
    public var rateLimit: RateLimit?

    public init(id: String, apiKey: String, campaigns: Set<String>, rateLimit: RateLimit? = nil) {
        self.id = id
        self.apiKey = apiKey
        self.campaigns = campaigns
        self.rateLimit = rateLimit
    }
}

/// An average rate with a burst allowance.
public struct RateLimit: Sendable, Hashable {
    public var perSecond: Double
    public var burst: Int

    public init(perSecond: Double, burst: Int) {
        self.perSecond = perSecond
        self.burst = burst
    }
}
