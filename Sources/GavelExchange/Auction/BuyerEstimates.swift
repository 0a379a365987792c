import GavelCore
import GavelStore
import Metrics
import Synchronization

/// The buyers' outcome estimates while the exchange runs: an `OutcomeEstimator` behind a lock,
/// fed as outcomes happen (lead posts answered, calls completed) and restored from the store at
/// start-up, read once per round when bidding closes.
///
/// A lock, not an actor: a round takes it once to read its buyers' estimates and once per outcome,
/// each time for a dictionary lookup, with no suspension on the auction's path.
/// Each buyer's estimate is a gauge, `gavel_buyer_outcome_rate{buyer, kind}` (0 to 1, under the
/// config's prior), beside `gavel_buyer_outcome_trials{buyer, kind}` (outcomes counted);
/// `kind` is `lead` (post accepted) or `call` (converted). Buyer ids come from the config.
public final class BuyerEstimates: Sendable {
    private struct Gauges {
        let rate: Gauge
        let trials: Gauge
    }

    private struct State {
        var estimator = OutcomeEstimator()
        var gauges: [OutcomeEstimator.Key: Gauges] = [:]
    }

    private let state = Mutex(State())
    private let factory: any MetricsFactory

    /// - Parameter factory: where the gauges go; the bootstrapped metrics system by default.
    public init(factory: (any MetricsFactory)? = nil) {
        self.factory = factory ?? MetricsSystem.factory
    }

    /// The estimates of these buyers for a round of this kind, under `prior`.
    public func estimates(for buyerIDs: some Sequence<String>, kind: AuctionKind, prior: OutcomePrior) -> [String: Probability] {
        state.withLock { state in
            var estimates: [String: Probability] = [:]
            for buyerID in buyerIDs {
                estimates[buyerID] = state.estimator.estimate(buyerID: buyerID, kind: kind, prior: prior)
            }
            return estimates
        }
    }

    public func estimate(buyerID: String, kind: AuctionKind, prior: OutcomePrior) -> Probability {
        state.withLock { $0.estimator.estimate(buyerID: buyerID, kind: kind, prior: prior) }
    }

    public func counts(buyerID: String, kind: AuctionKind) -> OutcomeCounts {
        state.withLock { $0.estimator.counts(buyerID: buyerID, kind: kind) }
    }

    /// Counts an outcome: a lead post's answer (`success` when accepted), a completed call's
    /// conversion, or `returned` for a sale taken back (the returns endpoint of a later issue calls
    /// `recordReturn`). Updates the buyer's gauges.
    public func record(_ outcome: OutcomeEstimator.Outcome, buyerID: String, kind: AuctionKind, prior: OutcomePrior) {
        let key = OutcomeEstimator.Key(buyerID: buyerID, kind: kind)
        let (published, counts) = state.withLock { state -> (Gauges, OutcomeCounts) in
            let counts = state.estimator.record(outcome, buyerID: buyerID, kind: kind)
            return (Self.gauges(for: key, in: &state, factory: factory), counts)
        }
        publish(counts, to: published, prior: prior)
    }

    /// A lead (or call) the buyer paid for and returned: its success no longer counts.
    public func recordReturn(buyerID: String, kind: AuctionKind = .lead, prior: OutcomePrior) {
        record(.returned, buyerID: buyerID, kind: kind, prior: prior)
    }

    /// Adds outcomes read from the store (start-up) and publishes every buyer's gauges.
    public func restore(_ tallies: [OutcomeTally], prior: (AuctionKind) -> OutcomePrior) {
        var restored: [OutcomeEstimator.Key: OutcomeCounts] = [:]
        for tally in tallies {
            let key = OutcomeEstimator.Key(buyerID: tally.buyerID, kind: tally.kind)
            let previous = restored[key] ?? OutcomeCounts()
            restored[key] = OutcomeCounts(trials: previous.trials + tally.trials, successes: previous.successes + tally.successes)
        }
        let factory = factory
        let published = state.withLock { state -> [(OutcomeEstimator.Key, Gauges, OutcomeCounts)] in
            state.estimator.restore(restored)
            var published: [(OutcomeEstimator.Key, Gauges, OutcomeCounts)] = []
            for key in restored.keys {
                published.append((key, Self.gauges(for: key, in: &state, factory: factory),
                                  state.estimator.counts(buyerID: key.buyerID, kind: key.kind)))
            }
            return published
        }
        for (key, gauges, counts) in published { publish(counts, to: gauges, prior: prior(key.kind)) }
    }

    /// Publishes every buyer's estimate again under new priors (a config reload).
    public func republish(prior: (AuctionKind) -> OutcomePrior) {
        let published = state.withLock { state in
            state.gauges.map { key, gauges in (key, gauges, state.estimator.counts(buyerID: key.buyerID, kind: key.kind)) }
        }
        for (key, gauges, counts) in published { publish(counts, to: gauges, prior: prior(key.kind)) }
    }

    private static func gauges(for key: OutcomeEstimator.Key, in state: inout State, factory: any MetricsFactory) -> Gauges {
        if let gauges = state.gauges[key] { return gauges }
        let dimensions = [("buyer", key.buyerID), ("kind", key.kind.rawValue)]
        let gauges = Gauges(
            rate: Gauge(label: "gavel_buyer_outcome_rate", dimensions: dimensions, factory: factory),
            trials: Gauge(label: "gavel_buyer_outcome_trials", dimensions: dimensions, factory: factory)
        )
        state.gauges[key] = gauges
        return gauges
    }

    private func publish(_ counts: OutcomeCounts, to gauges: Gauges, prior: OutcomePrior) {
        gauges.rate.record(counts.estimate(prior: prior).doubleValue)
        gauges.trials.record(counts.trials)
    }
}
