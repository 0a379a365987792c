import Testing
@testable import GavelCore

struct RankingTests {
    func bid(_ id: String, _ price: Int, priority: Int = 0, weight: Int = 1) -> RankedBid {
        RankedBid(buyerID: id, price: Money(price), priority: priority, weight: weight)
    }

    func ids(_ bids: [RankedBid]) -> [String] { bids.map(\.buyerID) }

    @Test func auctionByPrice() {
        let ranked = Ranking.rank([bid("a", 10), bid("b", 30), bid("c", 20)], method: .auction)
        #expect(ids(ranked) == ["b", "c", "a"])
        #expect(ranked.first?.price == Money(30))
    }

    @Test func auctionTieBreakIsPriorityThenBuyerID() {
        let bids = [bid("zed", 20), bid("amy", 20), bid("mid", 20, priority: 5), bid("low", 10, priority: 99)]
        #expect(ids(Ranking.rank(bids, method: .auction)) == ["mid", "amy", "zed", "low"])
    }

    @Test func rankingDoesNotDependOnArrivalOrder() {
        let bids = [bid("c", 20), bid("a", 20), bid("b", 20), bid("d", 25), bid("e", 5, priority: 3)]
        let expected = ["d", "a", "b", "c", "e"]
        #expect(ids(Ranking.rank(bids, method: .auction)) == expected)
        #expect(ids(Ranking.rank(bids.reversed(), method: .auction)) == expected)
        #expect(ids(Ranking.rank([bids[2], bids[4], bids[0], bids[3], bids[1]], method: .auction)) == expected)
    }

    @Test func priorityMethod() {
        let bids = [bid("cheap-vip", 5, priority: 10), bid("rich", 50), bid("mid-vip", 30, priority: 10), bid("mid", 30, priority: 1)]
        #expect(ids(Ranking.rank(bids, method: .priority)) == ["mid-vip", "cheap-vip", "mid", "rich"])
    }

    @Test func priorityTieBreaksByPriceThenID() {
        let bids = [bid("b", 10, priority: 1), bid("a", 10, priority: 1), bid("c", 11, priority: 1)]
        #expect(ids(Ranking.rank(bids, method: .priority)) == ["c", "a", "b"])
    }

    @Test func roundRobinRotatesFirstChoiceByBuyerID() {
        let bids = [bid("c", 30), bid("a", 10), bid("b", 20)]
        #expect(ids(Ranking.rank(bids, method: .roundRobin, rotation: 0)) == ["a", "c", "b"])
        #expect(ids(Ranking.rank(bids, method: .roundRobin, rotation: 1)) == ["b", "c", "a"])
        #expect(ids(Ranking.rank(bids, method: .roundRobin, rotation: 2)) == ["c", "b", "a"])
        #expect(ids(Ranking.rank(bids, method: .roundRobin, rotation: 3)) == ["a", "c", "b"])
        #expect(ids(Ranking.rank(bids, method: .roundRobin, rotation: 100)) == ["b", "c", "a"])  // 100 % 3 == 1
        #expect(ids(Ranking.rank(bids, method: .roundRobin, rotation: -1)) == ["c", "b", "a"])
    }

    @Test func roundRobinGivesEachBidderATurn() {
        let bids = [bid("x", 1), bid("y", 2), bid("z", 3), bid("w", 4)]
        let firsts = (0..<4).map { Ranking.rank(bids, method: .roundRobin, rotation: $0).first!.buyerID }
        #expect(firsts == ["w", "x", "y", "z"])
    }

    @Test func weightedUsesRandomUnitOverCumulativeWeights() {
        // By id: a (weight 1), b (weight 3), c (weight 0); total 4.
        let bids = [bid("c", 30, weight: 0), bid("b", 10, weight: 3), bid("a", 20, weight: 1)]
        #expect(ids(Ranking.rank(bids, method: .weighted, randomUnit: 0)) == ["a", "c", "b"])
        #expect(ids(Ranking.rank(bids, method: .weighted, randomUnit: 0.24)) == ["a", "c", "b"])
        #expect(ids(Ranking.rank(bids, method: .weighted, randomUnit: 0.25)) == ["b", "c", "a"])
        #expect(ids(Ranking.rank(bids, method: .weighted, randomUnit: 0.99)) == ["b", "c", "a"])
        // Out-of-range draws are clamped, and a zero weight is never drawn first.
        #expect(ids(Ranking.rank(bids, method: .weighted, randomUnit: 1.0)) == ["b", "c", "a"])
        #expect(ids(Ranking.rank(bids, method: .weighted, randomUnit: 7)) == ["b", "c", "a"])
        #expect(ids(Ranking.rank(bids, method: .weighted, randomUnit: -3)) == ["a", "c", "b"])
    }

    @Test func weightedDistributionFollowsWeights() {
        let bids = [bid("a", 1, weight: 1), bid("b", 1, weight: 3)]
        var firstA = 0
        for step in 0..<1000 {
            if Ranking.rank(bids, method: .weighted, randomUnit: Double(step) / 1000).first?.buyerID == "a" { firstA += 1 }
        }
        #expect(firstA == 250)
    }

    @Test func weightedWithoutWeightsFallsBackToPrice() {
        let bids = [bid("a", 10, weight: 0), bid("b", 20, weight: 0)]
        #expect(ids(Ranking.rank(bids, method: .weighted, randomUnit: 0.5)) == ["b", "a"])
        let negative = [bid("a", 10, weight: -5), bid("b", 20, weight: -1)]
        #expect(ids(Ranking.rank(negative, method: .weighted, randomUnit: 0)) == ["b", "a"])
    }

    @Test func emptyAndSingle() {
        for method in DistributionMethod.allCases {
            #expect(Ranking.rank([], method: method).isEmpty)
            #expect(ids(Ranking.rank([bid("only", 3)], method: method, rotation: 5, randomUnit: 0.7)) == ["only"])
        }
    }

    @Test func distributionRawValues() {
        #expect(DistributionMethod(rawValue: "round_robin") == .roundRobin)
        #expect(DistributionMethod(rawValue: "weighted") == .weighted)
        #expect(DistributionMethod(rawValue: "roundRobin") == nil)
    }
}

/// The adaptive round limit, without I/O.
struct AdmissionLimitTests {
    @Test func admitsUpToTheLimitAndReleases() {
        var limit = AdmissionLimit(settings: .init(minLimit: 1, maxLimit: 2))
        let first = limit.admit(), second = limit.admit(), third = limit.admit()
        #expect(first && second && !third)
        limit.release()
        let again = limit.admit()
        #expect(again)
    }

    @Test func theLimitStartsSmallAndDoublesOnlyWhileInUse() {
        var limit = AdmissionLimit(settings: .init(minLimit: 8, maxLimit: 1_000, initialLimit: 64))
        #expect(limit.limit == 64)
        for _ in 0..<100 { limit.observe(startDelayMs: 0.5, budgetMs: 150, nowMs: 0) }
        #expect(limit.limit == 64)  // idle: a limit never used is not raised
        for _ in 0..<40 { _ = limit.admit() }
        for _ in 0..<10 { limit.observe(startDelayMs: 0.5, budgetMs: 150, nowMs: 0) }
        #expect(limit.limit == 74)  // slow start: +1 per prompt round while at least half is in flight
        for _ in 0..<100 { limit.observe(startDelayMs: 0.5, budgetMs: 150, nowMs: 0) }
        #expect(limit.limit == 81)  // stops once 40 in flight is under half of it
    }

    @Test func lateRoundsShrinkTheLimitAndPromptOnesGrowItBack() {
        var limit = AdmissionLimit(settings: .init(minLimit: 8, maxLimit: 1_000, cooldownMs: 10))
        var now: Int64 = 0
        for _ in 0..<100 {
            now += 10
            limit.observe(startDelayMs: 40, budgetMs: 150, nowMs: now)
        }
        #expect(limit.limit == 8)  // never below the minimum
        #expect(!limit.slowStart)
        for _ in 0..<2_000 {
            _ = limit.admit()  // in use: demand takes every place the limit gives
            limit.observe(startDelayMs: 0.5, budgetMs: 150, nowMs: now)
        }
        #expect(limit.limit > 50 && limit.limit < 70)  // additive after a congestion: about sqrt(2 × rounds)
        let before = limit.limit
        limit.observe(startDelayMs: 40, budgetMs: 150, nowMs: now + 20)
        limit.observe(startDelayMs: 40, budgetMs: 150, nowMs: now + 21)  // within the cooldown: one cut only
        #expect(abs(limit.limit - before * 0.9) < 0.001)
    }

    @Test func lateIsRelativeToTheBudget() {
        let limit = AdmissionLimit()
        #expect(!limit.isLate(startDelayMs: 4, budgetMs: 50))
        #expect(limit.isLate(startDelayMs: 6, budgetMs: 50))
        #expect(!limit.isLate(startDelayMs: 40, budgetMs: 1_000))  // 5% of 1 s is 50 ms
        #expect(limit.isLate(startDelayMs: 60, budgetMs: 1_000))
    }
}
