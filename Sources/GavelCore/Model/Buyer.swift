/// A buyer and every rule the exchange enforces for it.
public struct Buyer: Sendable, Hashable {
    public var id: String
    public var campaigns: [String]
    /// Verticals the buyer buys; empty means any.
    public var verticals: Set<String>
    /// Where to ping; nil for a fixed-price buyer that is posted to without a ping.
    public var ping: Endpoint?
    /// Where the winner's full lead goes; call buyers receive the caller by transfer instead.
    public var post: Endpoint?
    /// Calls: where a fixed-price buyer takes calls, or an RTB buyer's destination when its bid names none.
    public var destination: String?
    /// Calls: the least duration that makes a billable call, unless the bid says otherwise.
    public var minDurationS: Int?
    /// The price of a fixed-price buyer (no ping), or nil for a bidding buyer.
    public var fixedPrice: Money?
    public var filters: BuyerFilters
    public var caps: BuyerCaps
    /// The least this buyer may win at; bids below max(campaign floor, this) are `below_floor`.
    public var floor: Money
    public var priority: Int
    public var weight: Int
    public var paused: Bool
    /// Days within which the same contact is not sold to this buyer again; 0 disables.
    public var duplicateWindowDays: Int
    /// Native answers: where the JSON puts each value (the `response:` mapping).
    public var response: ResponseMapping {
        didSet { if codec.isNative { codec = .native(response) } }
    }
    /// Writes this buyer's requests and reads its answers; built once per config snapshot.
    public var codec: AnyBuyerCodec
    /// Signs every ping and post with `Gavel-Signature` (CONTRACT v2) when set.
    public var signingSecret: String?
    /// Pings per second this buyer takes (per-ping fees); over it the buyer is `capped` for the round.
    public var pingRateLimit: RateLimit?
    /// The buyer's own bearer key for the buyer API and portal (`api_key`); nil: no buyer access.
    public var apiKey: String? = nil

    public init(
        id: String, campaigns: [String], verticals: Set<String> = [], ping: Endpoint?, post: Endpoint?,
        destination: String? = nil, minDurationS: Int? = nil, fixedPrice: Money? = nil, filters: BuyerFilters = BuyerFilters(), caps: BuyerCaps = BuyerCaps(),
        floor: Money = .zero, priority: Int = 0, weight: Int = 1, paused: Bool = false, duplicateWindowDays: Int = 0,
        response: ResponseMapping = ResponseMapping(), pingRateLimit: RateLimit? = nil,
        codec: AnyBuyerCodec? = nil, signingSecret: String? = nil
    ) {
        self.codec = codec ?? .native(response)
        self.signingSecret = signingSecret
        self.id = id
        self.campaigns = campaigns
        self.verticals = verticals
        self.ping = ping
        self.post = post
        self.destination = destination
        self.minDurationS = minDurationS
        self.fixedPrice = fixedPrice
        self.filters = filters
        self.caps = caps
        self.floor = floor
        self.priority = priority
        self.weight = weight
        self.paused = paused
        self.duplicateWindowDays = duplicateWindowDays
        self.response = response
        self.pingRateLimit = pingRateLimit
    }
}

/// One HTTP endpoint of a buyer.
public struct Endpoint: Sendable, Hashable {
    public var url: String
    public var timeoutMs: Int
    /// Extra request headers, such as authentication; values already have `${ENV}` expanded.
    public var headers: [String: String]
    /// Posts only: the buyer's test endpoint, where `gavel try-buyer --post` sends a sample lead.
    public var testURL: String?

    public init(url: String, timeoutMs: Int = 1000, headers: [String: String] = [:], testURL: String? = nil) {
        self.url = url
        self.timeoutMs = timeoutMs
        self.headers = headers
        self.testURL = testURL
    }
}

/// Where a buyer that does not speak the native protocol puts its answers.
///
/// Paths are dot-separated keys into the JSON response (`result.price`). Defaults are the native protocol.
public struct ResponseMapping: Sendable, Hashable {
    public var bidPath: [String]
    public var bidIDPath: [String]
    public var expiresInPath: [String]
    public var acceptedPath: [String]
    /// Values of `acceptedPath` that mean accepted, compared as text (`true`, `success`, `Matched`).
    public var acceptedValues: Set<String>
    public var reasonPath: [String]
    public var referencePath: [String]

    public init(
        bidPath: [String] = ["bid"], bidIDPath: [String] = ["bid_id"], expiresInPath: [String] = ["expires_in_s"],
        acceptedPath: [String] = ["accepted"], acceptedValues: Set<String> = ["true"], reasonPath: [String] = ["reason"],
        referencePath: [String] = ["reference"]
    ) {
        self.bidPath = bidPath
        self.bidIDPath = bidIDPath
        self.expiresInPath = expiresInPath
        self.acceptedPath = acceptedPath
        self.acceptedValues = acceptedValues
        self.reasonPath = reasonPath
        self.referencePath = referencePath
    }
}

/// Volume and spend limits. Counted in the buyer's schedule time zone (UTC without one).
public struct BuyerCaps: Sendable, Hashable {
    public var hourly: Int?
    public var daily: Int?
    public var monthly: Int?
    public var dailyBudget: Money?
    /// Calls: live calls at once (agents available).
    public var concurrent: Int?
    /// Calls: whether count caps and budgets count conversions (true) or routed calls (false).
    public var countConversions: Bool

    public init(hourly: Int? = nil, daily: Int? = nil, monthly: Int? = nil, dailyBudget: Money? = nil,
                concurrent: Int? = nil, countConversions: Bool = false) {
        self.hourly = hourly
        self.daily = daily
        self.monthly = monthly
        self.dailyBudget = dailyBudget
        self.concurrent = concurrent
        self.countConversions = countConversions
    }

    public var isUnlimited: Bool { hourly == nil && daily == nil && monthly == nil && dailyBudget == nil }
}
