/// Request counters for one buyer, as served by `GET /stats` (snake_case keys in JSON).
public struct BuyerStats: Sendable, Codable, Equatable {
    /// Pings received, whatever their answer.
    public var pings = 0
    /// Pings answered with a bid.
    public var bids = 0
    /// Pings answered 204 No Content.
    public var noBids = 0
    /// Posts received, whatever their answer.
    public var posts = 0
    /// Posts accepted.
    public var accepted = 0
    /// Posts rejected as duplicates.
    public var rejected = 0
    /// Pings and posts answered with the buyer's fault instead.
    public var faults = 0
    /// Pings whose body carried personal data (see ``PIIScanner``).
    public var piiViolations = 0

    /// All counters zero.
    public init() {}

    private enum CodingKeys: String, CodingKey {
        case pings, bids
        case noBids = "no_bids"
        case posts, accepted, rejected, faults
        case piiViolations = "pii_violations"
    }

    /// Counter-by-counter sum, for fleet-wide totals.
    public static func + (lhs: BuyerStats, rhs: BuyerStats) -> BuyerStats {
        var sum = lhs
        sum.pings += rhs.pings
        sum.bids += rhs.bids
        sum.noBids += rhs.noBids
        sum.posts += rhs.posts
        sum.accepted += rhs.accepted
        sum.rejected += rhs.rejected
        sum.faults += rhs.faults
        sum.piiViolations += rhs.piiViolations
        return sum
    }
}
