/// The prior of an outcome estimate: what is assumed of a buyer before its own outcomes are known,
/// and how many outcomes that assumption is worth (`ev_prior` in `campaigns.yaml`).
public struct OutcomePrior: Sendable, Hashable {
    /// A buyer with no recorded outcomes is taken at its bid (rate 1), an assumption worth 10
    /// outcomes. Optimistic on purpose: a new buyer ranks as it would by price, so it gets the
    /// rounds that teach the exchange its real rate (about 10 of them to halve the gap), and a
    /// campaign switched to expected value ranks as before until there is evidence.
    public static let `default` = OutcomePrior(rate: .one, weight: 10)
    /// The largest `weight` a config may set.
    public static let maxWeight = 1_000_000

    /// The chance assumed for a buyer with no outcomes yet.
    public var rate: Probability
    /// Pseudo-outcomes the prior counts for: after this many real ones, the buyer's own rate weighs as much.
    public var weight: Int

    public init(rate: Probability, weight: Int) {
        self.rate = rate
        self.weight = min(max(weight, 0), OutcomePrior.maxWeight)
    }
}

/// A buyer's recorded outcomes of one kind.
public struct OutcomeCounts: Sendable, Hashable {
    /// Outcomes counted: posts answered (leads), calls completed (calls).
    public var trials: Int64
    /// Of those, accepted and not returned (leads), converted (calls).
    public var successes: Int64

    public init(trials: Int64 = 0, successes: Int64 = 0) {
        self.trials = max(0, trials)
        self.successes = min(max(0, successes), self.trials)
    }

    /// The smoothed chance of success under a Beta prior:
    /// `(successes + rate × weight) / (trials + weight)`, rounded to the nearest millionth.
    /// With no trials and no weight it is the prior's rate.
    public func estimate(prior: OutcomePrior) -> Probability {
        let weight = Int64(prior.weight)
        let denominator = trials + weight
        guard denominator > 0 else { return prior.rate }
        // successes ≤ trials ≤ OutcomeEstimator.memory and weight ≤ 10^6: far inside Int64.
        let numerator = successes * Probability.scale + prior.rate.ppm * weight
        return Probability(ppm: (numerator + denominator / 2) / denominator)
    }
}

/// Per buyer and kind, how often what the exchange routes to the buyer pays: a lead post accepted
/// (and not returned), a routed call converted (it lasted the bid's minimum duration).
///
/// A pure value: the exchange feeds it outcomes as they happen and counts restored from recorded
/// rounds at start-up; ranking asks it for smoothed estimates (`OutcomeCounts.estimate(prior:)`).
/// Counts are kept to the last `memory` outcomes or so: past that they are halved, so an estimate
/// follows a buyer whose behaviour changes.
public struct OutcomeEstimator: Sendable {
    /// Trials kept per buyer and kind before the counts are halved.
    public static let defaultMemory: Int64 = 10_000

    public struct Key: Hashable, Sendable {
        public var buyerID: String
        /// `lead`: post acceptance; `call`: conversion.
        public var kind: AuctionKind

        public init(buyerID: String, kind: AuctionKind) {
            self.buyerID = buyerID
            self.kind = kind
        }
    }

    /// What happened to something routed to a buyer.
    public enum Outcome: Sendable, Hashable {
        /// A lead post accepted; a call that converted.
        case success
        /// A lead post rejected, failed or timed out; a call that completed below its minimum duration.
        case failure
        /// A success taken back later (a returned lead): it counts as a failure from now on.
        case returned
    }

    public let memory: Int64
    public private(set) var counts: [Key: OutcomeCounts] = [:]

    public init(memory: Int64 = OutcomeEstimator.defaultMemory) {
        self.memory = max(2, memory)
    }

    /// Counts one outcome. Returns the buyer's counts after it.
    @discardableResult
    public mutating func record(_ outcome: Outcome, buyerID: String, kind: AuctionKind) -> OutcomeCounts {
        let key = Key(buyerID: buyerID, kind: kind)
        var current = counts[key] ?? OutcomeCounts()
        switch outcome {
        case .success:
            current.trials += 1
            current.successes += 1
        case .failure:
            current.trials += 1
        case .returned:
            // The trial stays; its success goes. A return of an outcome no longer counted (halved
            // away, or before the restored window) still lowers the rate, never below zero.
            current.successes = max(0, current.successes - 1)
        }
        current = forgetting(current)
        counts[key] = current
        return current
    }

    /// Adds counts read from recorded rounds (start-up), to whatever was counted since.
    public mutating func restore(_ restored: [Key: OutcomeCounts]) {
        for (key, extra) in restored {
            let current = counts[key] ?? OutcomeCounts()
            counts[key] = forgetting(OutcomeCounts(trials: current.trials + extra.trials, successes: current.successes + extra.successes))
        }
    }

    /// The buyer's counts of this kind; zero when none are recorded.
    public func counts(buyerID: String, kind: AuctionKind) -> OutcomeCounts {
        counts[Key(buyerID: buyerID, kind: kind)] ?? OutcomeCounts()
    }

    /// The buyer's smoothed chance of success; the prior's rate when nothing is recorded.
    public func estimate(buyerID: String, kind: AuctionKind, prior: OutcomePrior) -> Probability {
        counts(buyerID: buyerID, kind: kind).estimate(prior: prior)
    }

    /// Halves the counts until they are within `memory` trials: the rate stays (to a rounding),
    /// and new outcomes weigh more than old ones.
    private func forgetting(_ counts: OutcomeCounts) -> OutcomeCounts {
        var counts = counts
        while counts.trials > memory {
            counts = OutcomeCounts(trials: counts.trials / 2, successes: counts.successes / 2)
        }
        return counts
    }
}
