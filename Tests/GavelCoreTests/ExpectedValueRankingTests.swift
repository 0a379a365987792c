import Testing
@testable import GavelCore

/// `rank_by: expected_value`: bids ordered by `price × P / (1 − fallback + fallback × P)`.
struct ExpectedValueRankingTests {
    func bid(_ id: String, _ price: String, chance: String?, priority: Int = 0) -> RankedBid {
        RankedBid(buyerID: id, price: Money(decimal: price)!, priority: priority, estimate: chance.map { Probability(decimal: $0)! })
    }

    func ids(_ bids: [RankedBid]) -> [String] { bids.map(\.buyerID) }

    let noFallback = RankBy.expectedValue(fallback: .zero)

    @Test func aCertainLowerBidBeatsAnUnlikelyHigherOne() {
        // The issue's example: 40 × 0.3 = 12 is worth less than 25 × 0.9 = 22.5.
        let bids = [bid("big", "40", chance: "0.3"), bid("steady", "25", chance: "0.9")]
        #expect(ids(Ranking.rank(bids, method: .auction)) == ["big", "steady"])
        #expect(ids(Ranking.rank(bids, method: .auction, rankBy: noFallback)) == ["steady", "big"])
        // The prices stay the bids: the score only orders.
        #expect(Ranking.rank(bids, method: .auction, rankBy: noFallback).map(\.price) == [Money(25), Money(40)])
    }

    @Test func equalExpectedValuesTieBreakByPriceThenPriorityThenID() {
        // 20 × 0.6 = 12 = 40 × 0.3 = 24 × 0.5: exactly equal in integers, so price decides.
        let bids = [bid("c", "20", chance: "0.6"), bid("a", "40", chance: "0.3"), bid("b", "24", chance: "0.5"),
                    bid("d", "24", chance: "0.5", priority: 2), bid("e", "24", chance: "0.5")]
        #expect(ids(Ranking.rank(bids, method: .auction, rankBy: noFallback)) == ["a", "d", "b", "e", "c"])
        #expect(ids(Ranking.rank(bids.reversed(), method: .auction, rankBy: noFallback)) == ["a", "d", "b", "e", "c"])
    }

    @Test func valuesThatADoubleWouldMisorderAreComparedExactly() {
        // 1000 × 0.999999 is exactly 999.999; in binary floating point it comes out just below.
        let flat = bid("flat", "999.999", chance: "1")
        let edge = bid("edge", "1000", chance: "0.999999")
        #expect(Ranking.compareExpectedValue(edge, flat, fallback: .zero) == 0)
        // An exact tie: the higher price goes first.
        #expect(ids(Ranking.rank([flat, edge], method: .auction, rankBy: noFallback)) == ["edge", "flat"])
        // One unit (0.0001) more and the certain bid is ahead.
        let above = bid("above", "999.9991", chance: "1")
        #expect(Ranking.compareExpectedValue(edge, above, fallback: .zero) == -1)
        #expect(ids(Ranking.rank([edge, above], method: .auction, rankBy: noFallback)) == ["above", "edge"])
    }

    @Test func aBidWithoutAnEstimateCountsAsCertain() {
        let bids = [bid("unknown", "20", chance: nil), bid("likely", "25", chance: "0.9")]
        // 20 × 1 = 20 < 25 × 0.9 = 22.5
        #expect(ids(Ranking.rank(bids, method: .auction, rankBy: noFallback)) == ["likely", "unknown"])
        let cheaper = [bid("unknown", "23", chance: nil), bid("likely", "25", chance: "0.9")]
        #expect(ids(Ranking.rank(cheaper, method: .auction, rankBy: noFallback)) == ["unknown", "likely"])
    }

    @Test func aBuyerThatNeverPaysGoesLastWhateverTheFallback() {
        for fallback in ["0", "0.5", "1"] {
            let bids = [bid("never", "90", chance: "0"), bid("cheap", "1", chance: "0.1"), bid("also-never", "50", chance: "0")]
            #expect(ids(Ranking.rank(bids, method: .auction, rankBy: .expectedValue(fallback: Probability(decimal: fallback)!)))
                    == ["cheap", "never", "also-never"], "fallback \(fallback)")
        }
    }

    @Test func freeFallbackKeepsTheBidOrder() {
        // With a certain fallback the score is the price: trying the highest bid first loses nothing.
        let bids = [bid("big", "40", chance: "0.3"), bid("steady", "25", chance: "0.9"), bid("mid", "30", chance: "0.6"),
                    bid("tie", "30", chance: "0.1", priority: 1)]
        let free = Ranking.rank(bids, method: .auction, rankBy: .expectedValue(fallback: .one))
        #expect(ids(free) == ids(Ranking.rank(bids, method: .auction)))
        #expect(ids(free) == ["big", "tie", "mid", "steady"])
    }

    @Test func aPartialFallbackSitsBetweenPriceAndBidTimesChance() {
        // Scores with fallback 0.5: big 12 / 0.65 = 18.46, steady 22.5 / 0.95 = 23.68, mid 18 / 0.8 = 22.5.
        let bids = [bid("big", "40", chance: "0.3"), bid("steady", "25", chance: "0.9"), bid("mid", "30", chance: "0.6")]
        #expect(ids(Ranking.rank(bids, method: .auction, rankBy: .expectedValue(fallback: Probability(decimal: "0.5")!)))
                == ["steady", "mid", "big"])
        // With fallback 0.9: big 12 / 0.37 = 32.4, steady 22.5 / 0.91 = 24.7, mid 18 / 0.64 = 28.1.
        #expect(ids(Ranking.rank(bids, method: .auction, rankBy: .expectedValue(fallback: Probability(decimal: "0.9")!)))
                == ["big", "mid", "steady"])
    }

    @Test func otherMethodsOrderTheirRestByExpectedValue() {
        let bids = [bid("big", "40", chance: "0.3"), bid("steady", "25", chance: "0.9"), bid("vip", "10", chance: "1", priority: 5)]
        // Priority first, then expected value within a priority.
        #expect(ids(Ranking.rank(bids, method: .priority, rankBy: noFallback)) == ["vip", "steady", "big"])
        // Round robin picks the first by turn (by id: big, steady, vip); the rest follow by expected value.
        #expect(ids(Ranking.rank(bids, method: .roundRobin, rankBy: noFallback, rotation: 2)) == ["vip", "steady", "big"])
        #expect(ids(Ranking.rank(bids, method: .roundRobin, rankBy: noFallback, rotation: 0)) == ["big", "steady", "vip"])
        // Weighted: the draw picks the first, the rest by expected value.
        #expect(ids(Ranking.rank(bids, method: .weighted, rankBy: noFallback, randomUnit: 0.99)) == ["vip", "steady", "big"])
    }

    @Test func closingBiddingRanksByTheEstimatesPassedInAndRecordsThem() {
        var round = AuctionRound(id: "r1", payoutRule: .share(basisPoints: 5000), considered: [
            .pinged(.init(buyerID: "big"), tmaxMs: 100), .pinged(.init(buyerID: "steady"), tmaxMs: 100),
            .excluded(buyerID: "paused", reason: .paused),
        ])
        _ = round.receive(.bid(price: Money(40), bidID: nil, expiresInS: nil, destination: nil, minDurationS: nil), from: "big", latencyUs: 1)
        _ = round.receive(.bid(price: Money(25), bidID: nil, expiresInS: nil, destination: nil, minDurationS: nil), from: "steady", latencyUs: 1)
        let estimates = ["big": Probability(ppm: 300_000), "steady": Probability(ppm: 900_000), "paused": Probability(ppm: 1)]
        let ranking = round.closeBidding(atMs: 1_000, method: .auction, rankBy: noFallback, estimates: estimates)
        #expect(ids(ranking) == ["steady", "big"])
        #expect(ranking.map(\.estimate) == [Probability(ppm: 900_000), Probability(ppm: 300_000)])
        #expect(round.entry(for: "big")?.estimate == Probability(ppm: 300_000))
        #expect(round.entry(for: "steady")?.estimate == Probability(ppm: 900_000))
        // A buyer that took no part gets no estimate in the record.
        #expect(round.entry(for: "paused")?.estimate == nil)
        // The winner is charged its bid.
        guard case .post(let first) = round.nextPost(atMs: 1_000, remainingMs: 1_000, minimumPostMs: 1) else {
            Issue.record("expected a post")
            return
        }
        #expect(first.buyerID == "steady")
        #expect(round.recordPost(.accepted(reference: nil), latencyUs: 1)?.sale?.price == Money(25))
    }

    @Test func closingBiddingByPriceIgnoresTheEstimatesButRecordsThem() {
        var round = AuctionRound(id: "r1", payoutRule: .share(basisPoints: 5000), considered: [
            .pinged(.init(buyerID: "big"), tmaxMs: 100), .pinged(.init(buyerID: "steady"), tmaxMs: 100),
        ])
        _ = round.receive(.bid(price: Money(40), bidID: nil, expiresInS: nil, destination: nil, minDurationS: nil), from: "big", latencyUs: 1)
        _ = round.receive(.bid(price: Money(25), bidID: nil, expiresInS: nil, destination: nil, minDurationS: nil), from: "steady", latencyUs: 1)
        let ranking = round.closeBidding(atMs: 1_000, method: .auction, estimates: ["big": Probability(ppm: 300_000)])
        #expect(ids(ranking) == ["big", "steady"])
        #expect(round.entry(for: "big")?.estimate == Probability(ppm: 300_000))
    }
}
