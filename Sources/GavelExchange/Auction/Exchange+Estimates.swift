import GavelCore
import GavelStore
import Logging

/// Expected-value ranking: the buyers' outcome estimates, fed by the rounds as outcomes happen.
///
/// What counts: for leads, every post a buyer was sent: accepted is a success; rejected, failed
/// (an error or a bad answer) and timed out are not, since none of them sells the lead and each
/// costs the round the time of a post. Posts never sent (cap reached, duplicate, the write-ahead
/// failed) do not count. For calls, every call that completed: converted (it reached the bid's
/// minimum duration) or not. A failed transfer falls back to the next bid, and an abandoned call
/// (no `completed` within `max_call_s`) has no known outcome: neither counts.
extension Exchange {
    /// Outcomes of rounds younger than this are read back at start-up.
    public static let outcomeWindowDays = 30

    /// Rebuilds the estimates from the rounds of the last `outcomeWindowDays` days.
    func restoreEstimates() async throws(StoreError) {
        let sinceMs = nowMs - Int64(Exchange.outcomeWindowDays) * 86_400_000
        let tallies = try await store.outcomeTallies(sinceMs: sinceMs)
        let config = config
        estimates.restore(tallies, prior: config.outcomePrior)
        logger.debug("outcome estimates restored", metadata: [
            "buyers": "\(Set(tallies.map(\.buyerID)).count)", "since_ms": "\(sinceMs)",
        ])
    }

    /// The estimates of a round's buyers when its bidding closes: recorded with the round, and
    /// ranked by when the campaign says `rank_by: expected_value`.
    func closingEstimates(_ round: AuctionRound, context: RoundContext) -> [String: Probability] {
        let kind = context.campaign.kind
        return estimates.estimates(for: round.entries.lazy.map(\.buyerID), kind: kind, prior: context.config.outcomePrior(kind))
    }

    /// Counts a lead post's answer.
    func recordOutcome(of result: AuctionRound.PostResult, buyerID: String, context: RoundContext) {
        let outcome: OutcomeEstimator.Outcome
        switch result {
        case .accepted: outcome = .success
        case .rejected, .failed, .timedOut: outcome = .failure
        }
        estimates.record(outcome, buyerID: buyerID, kind: context.campaign.kind, prior: context.config.outcomePrior(context.campaign.kind))
    }

    /// Counts a completed call: converted or not.
    func recordCallOutcome(converted: Bool, buyerID: String, context: RoundContext) {
        estimates.record(converted ? .success : .failure, buyerID: buyerID, kind: .call, prior: context.config.outcomePrior(.call))
    }
}
