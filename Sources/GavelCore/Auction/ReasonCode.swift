/// Why a buyer ended a round the way it did: exactly one per buyer per round.
public enum ReasonCode: String, Sendable, Hashable, CaseIterable, Codable {
    /// Won and accepted the post.
    case sold
    /// Bid, but another buyer won.
    case outbid
    /// Answered without a bid (204, `{"bid": 0}` or `{"bid": null}`).
    case noBid = "no_bid"
    /// Bid below the campaign's or its own floor.
    case belowFloor = "below_floor"
    /// Did not answer the ping within the time it had.
    case timeout
    /// Connection refused, reset, or the name did not resolve.
    case unreachable
    /// Answered 2xx with a body that is not a valid bid, or too large.
    case badResponse = "bad_response"
    /// Answered with a non-2xx status.
    case httpError = "http_error"
    /// The lead's state or zip is outside the buyer's filters.
    case filteredGeo = "filtered_geo"
    /// Outside the buyer's schedule.
    case filteredSchedule = "filtered_schedule"
    /// The buyer does not buy this vertical.
    case filteredVertical = "filtered_vertical"
    /// A lead field failed one of the buyer's rules.
    case filteredRule = "filtered_rule"
    /// The same contact was sold to this buyer within its duplicate window.
    case duplicate
    /// A count or budget cap is reached.
    case capped
    /// The buyer is paused in its config.
    case paused
    /// Won, but the buyer rejected the post.
    case postRejected = "post_rejected"
    /// Won, but the post failed (transport error, non-2xx, unparsable answer).
    case postFailed = "post_failed"
    /// Won, but the post did not answer in time.
    case postTimeout = "post_timeout"
    /// Its held bid expired before the post.
    case expired
    /// Bid, but the round's budget ran out before the waterfall reached it.
    case budgetExhausted = "budget_exhausted"
    /// Held back by the exchange because it keeps failing; probed again after a back-off.
    case unhealthy
    /// Calls: routed and connected, but shorter than the buyer's minimum duration, so not billable.
    case shortCall = "short_call"
    /// Won, and the post was sent, but the exchange stopped before recording the buyer's answer:
    /// the buyer may have the lead, so the round is final and never sold again.
    case postUnknown = "post_unknown"
    /// Waterfall: its tier was never pinged, because a higher tier sold (or holds the bids of a
    /// ping), or too little of the budget was left; the detail says which.
    case notPinged = "not_pinged"

    /// Whether the buyer was excluded before any ping.
    public var isExclusion: Bool {
        switch self {
        case .filteredGeo, .filteredSchedule, .filteredVertical, .filteredRule, .duplicate, .capped, .paused, .unhealthy:
            return true
        default:
            return false
        }
    }
}
