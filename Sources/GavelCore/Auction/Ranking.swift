/// A bid that may win: at or above the floor.
public struct RankedBid: Sendable, Hashable, Codable {
    public var buyerID: String
    public var price: Money
    public var bidID: String?
    public var priority: Int
    public var weight: Int
    /// Seconds the buyer holds its bid; nil when it did not say.
    public var expiresInS: Int?
    /// Call bids: where to send the caller, and the least billable duration.
    public var destination: String?
    public var minDurationS: Int?
    /// The buyer's chance of paying when it wins (`OutcomeEstimator`); nil counts as certain.
    public var estimate: Probability?

    public init(
        buyerID: String, price: Money, bidID: String? = nil, priority: Int = 0, weight: Int = 1,
        expiresInS: Int? = nil, destination: String? = nil, minDurationS: Int? = nil, estimate: Probability? = nil
    ) {
        self.buyerID = buyerID
        self.price = price
        self.bidID = bidID
        self.priority = priority
        self.weight = weight
        self.expiresInS = expiresInS
        self.destination = destination
        self.minDurationS = minDurationS
        self.estimate = estimate
    }

    /// When the bid expires (ms since the epoch), counted from when bidding closed. Saturating:
    /// no hold time, however large, can trap.
    public func expiresAtMs(closedAtMs: Int64, defaultHoldS: Int) -> Int64 {
        RankedBid.expiry(closedAtMs: closedAtMs, holdS: expiresInS ?? defaultHoldS)
    }

    /// `closedAtMs + holdS × 1000`, saturating at `Int64.max`.
    public static func expiry(closedAtMs: Int64, holdS: Int) -> Int64 {
        let (holdMs, overflow) = Int64(clamping: holdS).multipliedReportingOverflow(by: 1000)
        guard !overflow else { return .max }
        let (sum, sumOverflow) = closedAtMs.addingReportingOverflow(holdMs)
        return sumOverflow ? .max : sum
    }
}

/// Orders bids into the waterfall the post phase walks down.
public enum Ranking {
    /// Highest price first; ties by priority (higher first), then buyer id, so a ranking never
    /// depends on which answer arrived first.
    static func byPrice(_ lhs: RankedBid, _ rhs: RankedBid) -> Bool {
        if lhs.price != rhs.price { return lhs.price > rhs.price }
        if lhs.priority != rhs.priority { return lhs.priority > rhs.priority }
        return lhs.buyerID < rhs.buyerID
    }

    /// - Parameters:
    ///   - rankBy: the order of the bids that the method does not place itself (all of them for
    ///     `auction`, ties of priority, the bidders after the round-robin or weighted first choice).
    ///   - rotation: round-robin counter of the campaign; which bidder goes first.
    ///   - randomUnit: a number in `0..<1` for the weighted draw.
    public static func rank(
        _ bids: [RankedBid], method: DistributionMethod, rankBy: RankBy = .price, rotation: Int = 0, randomUnit: Double = 0
    ) -> [RankedBid] {
        let order = ordering(rankBy)
        let ordered = bids.sorted(by: order)
        switch method {
        case .auction:
            return ordered
        // A waterfall round ranks one tier (equal priority) at a time; given several, tiers go first.
        case .priority, .waterfall:
            return bids.sorted { lhs, rhs in
                lhs.priority != rhs.priority ? lhs.priority > rhs.priority : order(lhs, rhs)
            }
        case .roundRobin:
            // Rotate over buyer ids so that the turn order does not depend on the prices bid.
            let byID = bids.sorted { $0.buyerID < $1.buyerID }
            guard !byID.isEmpty else { return [] }
            let first = byID[((rotation % byID.count) + byID.count) % byID.count]
            return [first] + ordered.filter { $0.buyerID != first.buyerID }
        case .weighted:
            let byID = bids.sorted { $0.buyerID < $1.buyerID }
            let total = byID.reduce(0) { $0 + max(0, $1.weight) }
            guard total > 0 else { return ordered }
            var target = Int(Double(total) * min(max(randomUnit, 0), 0.999_999_999))
            for bid in byID {
                target -= max(0, bid.weight)
                if target < 0 { return [bid] + ordered.filter { $0.buyerID != bid.buyerID } }
            }
            return ordered
        }
    }
}
