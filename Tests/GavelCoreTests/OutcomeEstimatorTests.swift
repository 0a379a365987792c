import Testing
@testable import GavelCore

/// The per-buyer outcome estimates behind expected-value ranking, and the exact chance type.
struct OutcomeEstimatorTests {
    let prior = OutcomePrior(rate: Probability(ppm: 500_000), weight: 20)

    @Test func aBuyerWithNoOutcomesHasThePriorRate() {
        let estimator = OutcomeEstimator()
        #expect(estimator.estimate(buyerID: "new", kind: .lead, prior: prior) == Probability(ppm: 500_000))
        #expect(estimator.estimate(buyerID: "new", kind: .call, prior: OutcomePrior(rate: Probability(ppm: 123_456), weight: 5))
                == Probability(ppm: 123_456))
        // No prior weight and no outcomes: still the prior's rate, never a division by zero.
        #expect(OutcomeCounts().estimate(prior: OutcomePrior(rate: .one, weight: 0)) == .one)
    }

    @Test func theEstimateIsSuccessesPlusPriorOverTrialsPlusWeight() {
        var estimator = OutcomeEstimator()
        for _ in 0..<3 { estimator.record(.success, buyerID: "b", kind: .lead) }
        for _ in 0..<7 { estimator.record(.failure, buyerID: "b", kind: .lead) }
        #expect(estimator.counts(buyerID: "b", kind: .lead) == OutcomeCounts(trials: 10, successes: 3))
        // (3 + 0.5 × 20) / (10 + 20) = 13/30 = 0.4333333…, rounded to the nearest millionth.
        #expect(estimator.estimate(buyerID: "b", kind: .lead, prior: prior) == Probability(ppm: 433_333))
        // (3 + 0.5 × 4) / (10 + 4) = 5/14 = 0.3571428…
        #expect(estimator.estimate(buyerID: "b", kind: .lead, prior: OutcomePrior(rate: Probability(ppm: 500_000), weight: 4))
                == Probability(ppm: 357_143))
        // Without a prior it is the plain rate.
        #expect(estimator.estimate(buyerID: "b", kind: .lead, prior: OutcomePrior(rate: .zero, weight: 0)) == Probability(ppm: 300_000))
    }

    @Test func buyersAndKindsAreCountedApart() {
        var estimator = OutcomeEstimator()
        estimator.record(.success, buyerID: "a", kind: .lead)
        estimator.record(.failure, buyerID: "a", kind: .call)
        estimator.record(.failure, buyerID: "b", kind: .lead)
        #expect(estimator.counts(buyerID: "a", kind: .lead) == OutcomeCounts(trials: 1, successes: 1))
        #expect(estimator.counts(buyerID: "a", kind: .call) == OutcomeCounts(trials: 1, successes: 0))
        #expect(estimator.counts(buyerID: "b", kind: .lead) == OutcomeCounts(trials: 1, successes: 0))
        #expect(estimator.counts(buyerID: "b", kind: .call) == OutcomeCounts())
    }

    @Test func moreOutcomesMoveTheEstimateFromThePriorToTheBuyersOwnRate() {
        var estimator = OutcomeEstimator()
        var previous = estimator.estimate(buyerID: "r", kind: .lead, prior: prior)
        for _ in 0..<200 {
            estimator.record(.failure, buyerID: "r", kind: .lead)
            let next = estimator.estimate(buyerID: "r", kind: .lead, prior: prior)
            #expect(next < previous)
            previous = next
        }
        // 10 / 220
        #expect(previous == Probability(ppm: 45_455))
    }

    @Test func aReturnTurnsASuccessIntoAFailure() {
        var estimator = OutcomeEstimator()
        for _ in 0..<4 { estimator.record(.success, buyerID: "b", kind: .lead) }
        estimator.record(.returned, buyerID: "b", kind: .lead)
        #expect(estimator.counts(buyerID: "b", kind: .lead) == OutcomeCounts(trials: 4, successes: 3))
        // A return never takes the count below zero (its sale may be older than what is counted).
        var fresh = OutcomeEstimator()
        fresh.record(.returned, buyerID: "b", kind: .lead)
        fresh.record(.failure, buyerID: "b", kind: .lead)
        #expect(fresh.counts(buyerID: "b", kind: .lead) == OutcomeCounts(trials: 1, successes: 0))
    }

    @Test func restoredCountsAddToThoseCountedSince() {
        var estimator = OutcomeEstimator()
        estimator.record(.success, buyerID: "a", kind: .call)
        estimator.restore([
            .init(buyerID: "a", kind: .call): OutcomeCounts(trials: 9, successes: 2),
            .init(buyerID: "z", kind: .lead): OutcomeCounts(trials: 5, successes: 5),
        ])
        #expect(estimator.counts(buyerID: "a", kind: .call) == OutcomeCounts(trials: 10, successes: 3))
        #expect(estimator.counts(buyerID: "z", kind: .lead) == OutcomeCounts(trials: 5, successes: 5))
    }

    @Test func pastItsMemoryTheCountsAreHalvedSoNewOutcomesWeighMore() {
        var estimator = OutcomeEstimator(memory: 100)
        for _ in 0..<100 { estimator.record(.success, buyerID: "b", kind: .lead) }
        #expect(estimator.counts(buyerID: "b", kind: .lead) == OutcomeCounts(trials: 100, successes: 100))
        estimator.record(.failure, buyerID: "b", kind: .lead)
        #expect(estimator.counts(buyerID: "b", kind: .lead) == OutcomeCounts(trials: 50, successes: 50))
        // The buyer turns bad: within a memory's worth of outcomes the estimate says so (25/99;
        // without forgetting it would still be 100/201).
        for _ in 0..<100 { estimator.record(.failure, buyerID: "b", kind: .lead) }
        #expect(estimator.counts(buyerID: "b", kind: .lead) == OutcomeCounts(trials: 99, successes: 25))
        // Restored counts beyond the memory are halved too.
        estimator.restore([.init(buyerID: "c", kind: .call): OutcomeCounts(trials: 1_000, successes: 900)])
        let restored = estimator.counts(buyerID: "c", kind: .call)
        #expect(restored.trials <= 100 && restored.trials > 50)
        #expect(restored == OutcomeCounts(trials: 62, successes: 56))
    }

    // MARK: Probability

    @Test func probabilityParsesAndPrintsDecimalText() {
        #expect(Probability(decimal: "0.5") == Probability(ppm: 500_000))
        #expect(Probability(decimal: "1") == .one)
        #expect(Probability(decimal: "1.000000") == .one)
        #expect(Probability(decimal: "0") == .zero)
        #expect(Probability(decimal: "0.000001") == Probability(ppm: 1))
        for bad in ["", "1.5", "2", "-0.1", "0.1234567", ".5", "5.", "0.5x", "1e-3", "10"] {
            #expect(Probability(decimal: bad) == nil, "\(bad)")
        }
        #expect(Probability(ppm: 500_000).description == "0.5")
        #expect(Probability(ppm: 12_345).description == "0.012345")
        #expect(Probability.one.description == "1")
        #expect(Probability.zero.description == "0")
        // Out-of-range values are clamped.
        #expect(Probability(ppm: -5) == .zero)
        #expect(Probability(ppm: 2_000_000) == .one)
    }
}
