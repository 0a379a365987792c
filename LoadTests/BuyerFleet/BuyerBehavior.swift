/// How one mock buyer answers pings and posts.
///
/// Every field has a default, so a fleet file only spells out what makes a buyer different.
/// In JSON the keys are snake_case (`bid_probability`, `post_latency`, ...), and a latency is a
/// one-key object such as `{"log_normal": {"p50_ms": 40, "p99_ms": 200}}`.
public struct BuyerBehavior: Sendable, Codable, Equatable {
    /// Misbehaviour a buyer can show instead of a normal answer.
    public enum Fault: String, Sendable, Codable, CaseIterable {
        /// Never answer; the connection stays open until the client gives up and closes it.
        case hang
        /// Abort the connection with a TCP RST (SO_LINGER 0) instead of answering.
        case reset
        /// Answer 200 with a body that is not JSON.
        case garbage
        /// Answer 500 with a small error body.
        case http500
        /// Send a valid bid's response head, then its body one byte every 100 ms.
        case slowDrip
        /// Answer 200 with a body of ``BuyerBehavior/oversizedBytes`` (1 MiB unless set).
        case oversized
        /// The buyer is not served: its requests are closed unanswered. For a real
        /// connection-refused address use ``BuyerFleet/refusedURL()``.
        case refused
        /// Answer 307 Temporary Redirect (method and body kept if followed) to
        /// ``BuyerBehavior/redirectTo``; a client must not follow it.
        case redirect
    }

    /// Delay before a ping is answered.
    public var latency: Latency
    /// Chance (0...1) that a ping gets a bid; otherwise it gets 204 No Content.
    public var bidProbability: Double
    /// Lowest bid, as a decimal string such as `"12.50"`.
    public var bidMin: String
    /// Highest bid, as a decimal string. Bids are drawn uniformly in whole cents between the two.
    public var bidMax: String
    /// The `expires_in_s` each bid carries.
    public var expiresInS: Int
    /// Delay before a post is answered.
    public var postLatency: Latency
    /// Chance (0...1) that a post is accepted; otherwise it is rejected as a duplicate.
    public var postAcceptRate: Double
    /// Misbehaviour shown on pings and posts (posts show ``postFault`` instead when that is set),
    /// with probability ``faultRate``. Faults that answer
    /// (or reset) do so after the usual delay; `hang` and `refused` do not wait.
    public var fault: Fault?
    /// Chance (0...1) that ``fault`` applies to a given request.
    public var faultRate: Double
    /// When set, posts show this misbehaviour (with probability ``faultRate``) instead of ``fault``,
    /// so a buyer can bid normally and fail only its posts.
    public var postFault: Fault?
    /// Size in bytes of the `oversized` fault's body. Default 1 MiB.
    public var oversizedBytes: Int = 1 << 20
    /// The `Location` of the `redirect` fault: an absolute URL or a path on the fleet. Default
    /// `/redirected`, which the fleet answers 404.
    public var redirectTo: String = "/redirected"
    /// For call buyers: the `destination` (phone number or SIP URI) returned with each bid.
    public var destination: String?
    /// For call buyers: the `min_duration_s` returned with each bid.
    public var minDurationS: Int?
    /// When set, every ping is answered 200 with exactly this body (hostile-answer tests); not in fleet files.
    public var rawBid: String?

    /// Creates a behaviour; the defaults describe a fast buyer that always bids 10 and accepts every post.
    public init(
        latency: Latency = .fixed(ms: 10),
        bidProbability: Double = 1,
        bidMin: String = "10",
        bidMax: String = "10",
        expiresInS: Int = 60,
        postLatency: Latency = .fixed(ms: 0),
        postAcceptRate: Double = 1,
        fault: Fault? = nil,
        faultRate: Double = 1,
        destination: String? = nil,
        minDurationS: Int? = nil
    ) {
        self.latency = latency
        self.bidProbability = bidProbability
        self.bidMin = bidMin
        self.bidMax = bidMax
        self.expiresInS = expiresInS
        self.postLatency = postLatency
        self.postAcceptRate = postAcceptRate
        self.fault = fault
        self.faultRate = faultRate
        self.destination = destination
        self.minDurationS = minDurationS
    }

    private enum CodingKeys: String, CodingKey {
        case latency
        case bidProbability = "bid_probability"
        case bidMin = "bid_min"
        case bidMax = "bid_max"
        case expiresInS = "expires_in_s"
        case postLatency = "post_latency"
        case postAcceptRate = "post_accept_rate"
        case fault
        case faultRate = "fault_rate"
        case postFault = "post_fault"
        case oversizedBytes = "oversized_bytes"
        case redirectTo = "redirect_to"
        case destination
        case minDurationS = "min_duration_s"
    }

    public init(from decoder: any Decoder) throws {
        let defaults = BuyerBehavior()
        let c = try decoder.container(keyedBy: CodingKeys.self)
        latency = try c.decodeIfPresent(Latency.self, forKey: .latency) ?? defaults.latency
        bidProbability = try c.decodeIfPresent(Double.self, forKey: .bidProbability) ?? defaults.bidProbability
        bidMin = try c.decodeIfPresent(String.self, forKey: .bidMin) ?? defaults.bidMin
        bidMax = try c.decodeIfPresent(String.self, forKey: .bidMax) ?? defaults.bidMax
        expiresInS = try c.decodeIfPresent(Int.self, forKey: .expiresInS) ?? defaults.expiresInS
        postLatency = try c.decodeIfPresent(Latency.self, forKey: .postLatency) ?? defaults.postLatency
        postAcceptRate = try c.decodeIfPresent(Double.self, forKey: .postAcceptRate) ?? defaults.postAcceptRate
        fault = try c.decodeIfPresent(Fault.self, forKey: .fault)
        faultRate = try c.decodeIfPresent(Double.self, forKey: .faultRate) ?? defaults.faultRate
        postFault = try c.decodeIfPresent(Fault.self, forKey: .postFault)
        oversizedBytes = try c.decodeIfPresent(Int.self, forKey: .oversizedBytes) ?? defaults.oversizedBytes
        redirectTo = try c.decodeIfPresent(String.self, forKey: .redirectTo) ?? defaults.redirectTo
        destination = try c.decodeIfPresent(String.self, forKey: .destination)
        minDurationS = try c.decodeIfPresent(Int.self, forKey: .minDurationS)

        // Catch typos in a fleet file here rather than as odd traffic later.
        for (key, probability) in [
            (CodingKeys.bidProbability, bidProbability),
            (.postAcceptRate, postAcceptRate),
            (.faultRate, faultRate),
        ] where !(0...1).contains(probability) {
            throw DecodingError.dataCorruptedError(
                forKey: key, in: c, debugDescription: "must be between 0 and 1, got \(probability)")
        }
        if oversizedBytes < 0 {
            throw DecodingError.dataCorruptedError(
                forKey: .oversizedBytes, in: c, debugDescription: "must not be negative, got \(oversizedBytes)")
        }
        for (key, amount) in [(CodingKeys.bidMin, bidMin), (.bidMax, bidMax)] where Cents(decimal: amount) == nil {
            throw DecodingError.dataCorruptedError(
                forKey: key, in: c, debugDescription: "must be a decimal amount such as \"12.50\", got \"\(amount)\"")
        }
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(latency, forKey: .latency)
        try c.encode(bidProbability, forKey: .bidProbability)
        try c.encode(bidMin, forKey: .bidMin)
        try c.encode(bidMax, forKey: .bidMax)
        try c.encode(expiresInS, forKey: .expiresInS)
        try c.encode(postLatency, forKey: .postLatency)
        try c.encode(postAcceptRate, forKey: .postAcceptRate)
        try c.encodeIfPresent(fault, forKey: .fault)
        try c.encode(faultRate, forKey: .faultRate)
        try c.encodeIfPresent(postFault, forKey: .postFault)
        try c.encode(oversizedBytes, forKey: .oversizedBytes)
        try c.encode(redirectTo, forKey: .redirectTo)
        try c.encodeIfPresent(destination, forKey: .destination)
        try c.encodeIfPresent(minDurationS, forKey: .minDurationS)
    }
}
