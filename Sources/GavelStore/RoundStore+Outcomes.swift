import GavelCore
import GRDB

/// A buyer's recorded outcomes of one kind, for the outcome estimates at start-up.
public struct OutcomeTally: Sendable, Hashable {
    public var buyerID: String
    /// `lead`: post attempts; `call`: completed calls.
    public var kind: AuctionKind
    public var trials: Int64
    /// Accepted posts; converted calls.
    public var successes: Int64

    public init(buyerID: String, kind: AuctionKind, trials: Int64, successes: Int64) {
        self.buyerID = buyerID
        self.kind = kind
        self.trials = trials
        self.successes = successes
    }
}

extension RoundStore {
    /// Outcomes of rounds created since `sinceMs`, per buyer and kind: every lead post a buyer
    /// answered or failed to answer (`sold` is a success; `post_rejected`, `post_failed`,
    /// `post_timeout` are not; `post_unknown` is not counted, nor a post never sent), and every
    /// call that completed (`converted` or `not_converted`: a failed transfer fell back, an
    /// abandoned call has no known outcome, so neither counts). Read once at start-up; a scan of
    /// the window's rounds. Returns of the window's sales are taken off their buyers' successes.
    public func outcomeTallies(sinceMs: Int64) throws(StoreError) -> [OutcomeTally] {
        let counted = [ReasonCode.sold, .postRejected, .postFailed, .postTimeout].map { "'\($0.rawValue)'" }.joined(separator: ", ")
        let completed = [CallLifecycle.Ending.converted, .notConverted].map { "'\($0.rawValue)'" }.joined(separator: ", ")
        do {
            return try pool.read { db in
                let leads = try Row.fetchAll(db, sql: """
                    SELECT post_attempts.buyer_id AS buyer_id, COUNT(*) AS trials,
                           SUM(post_attempts.result = '\(ReasonCode.sold.rawValue)') AS successes
                    FROM post_attempts JOIN rounds ON rounds.id = post_attempts.round_id
                    WHERE rounds.kind = '\(AuctionKind.lead.rawValue)' AND rounds.created_at_ms >= ?
                      AND post_attempts.result IN (\(counted))
                    GROUP BY post_attempts.buyer_id
                    """, arguments: [sinceMs]).map { row in
                    OutcomeTally(buyerID: row["buyer_id"], kind: .lead, trials: row["trials"], successes: row["successes"])
                }
                let calls = try Row.fetchAll(db, sql: """
                    SELECT winner_id AS buyer_id, COUNT(*) AS trials,
                           SUM(status = '\(CallLifecycle.Ending.converted.rawValue)') AS successes
                    FROM rounds
                    WHERE kind = '\(AuctionKind.call.rawValue)' AND created_at_ms >= ? AND status IN (\(completed))
                      AND winner_id IS NOT NULL
                    GROUP BY winner_id
                    """, arguments: [sinceMs]).map { row in
                    OutcomeTally(buyerID: row["buyer_id"], kind: .call, trials: row["trials"], successes: row["successes"])
                }
                // A returned sale was a success and is no longer (`BuyerEstimates.recordReturn`).
                let returns = try returnTallies(sinceMs: sinceMs, in: db)
                return (leads + calls).map { tally in
                    var tally = tally
                    let returned = returns[OutcomeEstimator.Key(buyerID: tally.buyerID, kind: tally.kind)] ?? 0
                    tally.successes = max(0, tally.successes - returned)
                    return tally
                }
            }
        } catch {
            throw .read("\(error)")
        }
    }
}
