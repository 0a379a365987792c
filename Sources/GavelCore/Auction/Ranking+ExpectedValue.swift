/// How a campaign orders bids within its distribution method (`rank_by`).
public enum RankBy: Sendable, Hashable {
    /// Highest bid first.
    case price
    /// Highest expected revenue first, from each bid's estimate `P` (the buyer's chance of paying:
    /// a lead post accepted, a call converted) and `fallback`, the chance that after a buyer does
    /// not pay the round can still try the next bid. The score is
    /// `price × P / (1 − fallback + fallback × P)`: with `fallback` 0 it is `price × P` (calls: a
    /// connected caller cannot fall back; leads whose budget leaves room for one post), with 1 it
    /// is the price (free fallback: the bid order already maximises expected revenue).
    ///
    /// Trying bids in descending order of this score maximises the expected revenue of the round
    /// when each try pays independently with chance `P` and, after one that does not, the next is
    /// tried with chance `fallback` (swapping two neighbours changes the revenue by the difference
    /// of their scores times a positive factor). The price charged stays the bid; the score only orders.
    case expectedValue(fallback: Probability)

    /// The `rank_by` names in `campaigns.yaml`.
    public enum Name: String, Sendable, CaseIterable {
        case price
        case expectedValue = "expected_value"
    }

    public var name: Name {
        if case .price = self { return .price }
        return .expectedValue
    }
}

extension Ranking {
    static func ordering(_ rankBy: RankBy) -> (RankedBid, RankedBid) -> Bool {
        switch rankBy {
        case .price:
            return byPrice
        case .expectedValue(let fallback):
            return { lhs, rhs in
                let order = compareExpectedValue(lhs, rhs, fallback: fallback)
                return order != 0 ? order > 0 : byPrice(lhs, rhs)
            }
        }
    }

    /// Compares the expected-value scores of two bids exactly: 1 when `lhs` scores higher, -1 when
    /// lower, 0 when equal. Integer arithmetic throughout (prices in units, chances in millionths,
    /// the cross products in 128 bits), so equal scores are equal and a ranking never depends on
    /// floating-point rounding. A bid without an estimate counts as certain to pay.
    public static func compareExpectedValue(_ lhs: RankedBid, _ rhs: RankedBid, fallback: Probability) -> Int {
        let left = score(lhs, fallback: fallback)
        let right = score(rhs, fallback: fallback)
        // A bid that cannot pay scores zero, whatever the fallback (its fraction would be 0/0 at fallback 1).
        if left.numerator == 0 || right.numerator == 0 { return compare((0, left.numerator), (0, right.numerator)) }
        // left.n / left.d  vs  right.n / right.d, with both denominators positive.
        return compare(left.numerator.multipliedFullWidth(by: right.denominator),
                       right.numerator.multipliedFullWidth(by: left.denominator))
    }

    /// The score as a fraction: `price × P` over `(1 − fallback) + fallback × P`, both scaled by 10^6 (10^12 below).
    private static func score(_ bid: RankedBid, fallback: Probability) -> (numerator: UInt64, denominator: UInt64) {
        let chance = UInt64((bid.estimate ?? .one).ppm)
        let price = UInt64(max(0, bid.price.units))
        // Bids are at most `max_bid` (10^10 units): the product stays far below 2^64; saturate past it.
        let (numerator, overflow) = price.multipliedReportingOverflow(by: chance)
        let scale = UInt64(Probability.scale)
        let keep = UInt64(fallback.ppm)
        let denominator = (scale - keep) * scale + keep * chance
        return (overflow ? .max : numerator, denominator)
    }

    private static func compare(_ lhs: (high: UInt64, low: UInt64), _ rhs: (high: UInt64, low: UInt64)) -> Int {
        if lhs.high != rhs.high { return lhs.high > rhs.high ? 1 : -1 }
        if lhs.low != rhs.low { return lhs.low > rhs.low ? 1 : -1 }
        return 0
    }
}
