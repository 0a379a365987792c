import Foundation
import Testing
@testable import GavelCore

/// The `waterfall` distribution (a ping tree) in the round state machine, without I/O: tiers of
/// equal priority, entered one at a time, highest first, only while nothing has sold.
struct WaterfallRoundTests {
    typealias Round = AuctionRound

    static let now: Int64 = 1_720_612_800_000

    func pinged(_ id: String, priority: Int, floor: Money = .zero, tmax: Int = 800) -> Round.Consideration {
        .pinged(Round.Participant(buyerID: id, floor: floor, priority: priority), tmaxMs: tmax)
    }

    func fixed(_ id: String, priority: Int, price: Money) -> Round.Consideration {
        .fixedPrice(Round.Participant(buyerID: id, priority: priority), price: price)
    }

    func bid(_ price: Money) -> Round.PingAnswer {
        .bid(price: price, bidID: nil, expiresInS: nil, destination: nil, minDurationS: nil)
    }

    /// Three tiers: gold (priority 10: g1, g2), silver (5: s1 and fixed-price s2), bronze (1: b1).
    func tieredRound() -> Round {
        Round(id: "r1", payoutRule: .share(basisPoints: 5000), considered: [
            pinged("b1", priority: 1), pinged("g1", priority: 10), .excluded(buyerID: "off", reason: .paused),
            pinged("s1", priority: 5, tmax: 300), fixed("s2", priority: 5, price: Money(7)), pinged("g2", priority: 10),
        ], tiered: true)
    }

    func reason(_ round: Round, _ id: String) -> ReasonCode? { round.entry(for: id)?.reason }

    func expectEveryEntryHasAReason(_ round: Round, sourceLocation: SourceLocation = #_sourceLocation) {
        for entry in round.entries {
            #expect(entry.reason != nil, "\(entry.buyerID) has no reason", sourceLocation: sourceLocation)
        }
    }

    /// Asks for the next step and expects it to be a tier; enters it.
    func enterTier(_ round: inout Round, pingMs: Int, remainingMs: Int = 900,
                            withhold: (String) -> ReasonCode? = { _ in nil },
                            sourceLocation: SourceLocation = #_sourceLocation) -> [String: Int] {
        let action = round.nextPost(atMs: Self.now, remainingMs: remainingMs, minimumPostMs: 10)
        #expect(action == .pingNextTier, sourceLocation: sourceLocation)
        return Dictionary(uniqueKeysWithValues: round.startNextTier(pingMs: pingMs, withhold: withhold).map { ($0.buyerID, $0.tmaxMs) })
    }

    @Test func theTopTierIsPingedFirstAndASaleLeavesTheOthersNotPinged() {
        var round = tieredRound()
        // Nothing is pinged before the runner asks for the first tier; the tiers wait, saying why.
        #expect(round.pendingBuyers.isEmpty)
        #expect(round.waitingBuyers == ["g1", "g2", "s1", "s2", "b1"])
        #expect(reason(round, "s1") == .notPinged)
        #expect(reason(round, "off") == .paused)

        let gold = enterTier(&round, pingMs: 600)
        #expect(gold == ["g1": 600, "g2": 600])
        #expect(round.pendingBuyers == ["g1", "g2"])
        #expect(round.entry(for: "g1")?.reason == nil)
        #expect(round.entry(for: "g1")?.tmaxMs == 600)
        #expect(round.waitingBuyers == ["s1", "s2", "b1"])
        _ = round.receive(bid(Money(12)), from: "g1", latencyUs: 1)
        #expect(round.receive(bid(Money(15)), from: "g2", latencyUs: 1) == .closeBidding)
        // Within a tier, the highest bid first.
        #expect(round.closeBidding(atMs: Self.now, method: .waterfall).map(\.buyerID) == ["g2", "g1"])
        #expect(round.entry(for: "s1")?.detail?.contains("a higher tier bid") == true)

        guard case .post(let first) = round.nextPost(atMs: Self.now, remainingMs: 800, minimumPostMs: 10) else {
            Issue.record("expected a post")
            return
        }
        #expect(first.buyerID == "g2")
        #expect(round.recordPost(.accepted(reference: "ok"), latencyUs: 1)?.sale?.price == Money(15))
        #expect(reason(round, "g2") == .sold)
        #expect(reason(round, "g1") == .outbid)
        for id in ["s1", "s2", "b1"] {
            #expect(reason(round, id) == .notPinged)
            #expect(round.entry(for: id)?.detail == "a higher tier sold")
            #expect(round.entry(for: id)?.tmaxMs == nil)
        }
        #expect(round.waitingBuyers.isEmpty)
        expectEveryEntryHasAReason(round)
    }

    @Test func aTierWithoutAnAcceptableBidHandsOnToTheNextWithLessTime() {
        var round = tieredRound()
        _ = enterTier(&round, pingMs: 600)
        _ = round.receive(.noBid, from: "g1", latencyUs: 1)
        _ = round.receive(.failed(.timeout, detail: "late"), from: "g2", latencyUs: 1)
        #expect(round.closeBidding(atMs: Self.now, method: .waterfall).isEmpty)

        // The next tier: each buyer gets the lesser of the tier's time and its own limit; the
        // fixed-price buyer bids its price without a ping.
        let silver = enterTier(&round, pingMs: 450, remainingMs: 700)
        #expect(silver == ["s1": 300])
        #expect(round.entry(for: "s2")?.bid == Money(7))
        #expect(round.entry(for: "s2")?.reason == nil)
        _ = round.receive(bid(Money(5)), from: "s1", latencyUs: 1)
        #expect(round.closeBidding(atMs: Self.now, method: .waterfall).map(\.buyerID) == ["s2", "s1"])
        #expect(postBuyer(round.nextPost(atMs: Self.now, remainingMs: 600, minimumPostMs: 10)) == "s2")
        _ = round.recordPost(.accepted(reference: nil), latencyUs: 1)
        #expect(reason(round, "g1") == .noBid)
        #expect(reason(round, "g2") == .timeout)
        #expect(reason(round, "s1") == .outbid)
        #expect(reason(round, "b1") == .notPinged)
        expectEveryEntryHasAReason(round)
    }

    @Test func failedPostsOfATierReachTheNextTierAndTheWalkGoesOnFromItsBids() {
        var round = tieredRound()
        _ = enterTier(&round, pingMs: 600)
        _ = round.receive(bid(Money(20)), from: "g1", latencyUs: 1)
        _ = round.receive(bid(Money(18)), from: "g2", latencyUs: 1)
        _ = round.closeBidding(atMs: Self.now, method: .waterfall)
        #expect(postBuyer(round.nextPost(atMs: Self.now, remainingMs: 800, minimumPostMs: 10)) == "g1")
        #expect(round.recordPost(.rejected(reason: "duplicate"), latencyUs: 1) == nil)
        #expect(postBuyer(round.nextPost(atMs: Self.now, remainingMs: 700, minimumPostMs: 10)) == "g2")
        #expect(round.recordPost(.timedOut, latencyUs: 1) == nil)

        _ = enterTier(&round, pingMs: 300, remainingMs: 600)
        _ = round.receive(.noBid, from: "s1", latencyUs: 1)
        // The new tier's bids are ranked behind the ones tried; the walk resumes with them.
        #expect(round.closeBidding(atMs: Self.now + 5, method: .waterfall).map(\.buyerID) == ["g1", "g2", "s2"])
        #expect(postBuyer(round.nextPost(atMs: Self.now + 5, remainingMs: 500, minimumPostMs: 10)) == "s2")
        #expect(round.recordPost(.failed(detail: "HTTP 500"), latencyUs: 1) == nil)

        let bronze = enterTier(&round, pingMs: 200, remainingMs: 400)
        #expect(bronze == ["b1": 200])
        _ = round.receive(bid(Money(3)), from: "b1", latencyUs: 1)
        _ = round.closeBidding(atMs: Self.now + 9, method: .waterfall)
        #expect(postBuyer(round.nextPost(atMs: Self.now + 9, remainingMs: 300, minimumPostMs: 10)) == "b1")
        #expect(round.recordPost(.accepted(reference: "B"), latencyUs: 1)?.sale?.bid.buyerID == "b1")
        #expect(round.posts.map(\.buyerID) == ["g1", "g2", "s2", "b1"])
        #expect(round.posts.map(\.result) == [.postRejected, .postTimeout, .postFailed, .sold])
        #expect(reason(round, "s1") == .noBid)
        expectEveryEntryHasAReason(round)
    }

    @Test func noTierIsEnteredWithoutTimeForAPingAndAPost() {
        var round = tieredRound()
        _ = enterTier(&round, pingMs: 600)
        _ = round.receive(.noBid, from: "g1", latencyUs: 1)
        _ = round.receive(.noBid, from: "g2", latencyUs: 1)
        _ = round.closeBidding(atMs: Self.now, method: .waterfall)
        // 19 ms left, 10 ms the least a post needs: no room to ping a tier and post after it.
        #expect(round.nextPost(atMs: Self.now, remainingMs: 19, minimumPostMs: 10) == .finish(.unsold))
        for id in ["s1", "s2", "b1"] {
            #expect(reason(round, id) == .notPinged)
            #expect(round.entry(for: id)?.detail == "not reached: 19 ms left in the round")
        }
        #expect(round.startNextTier(pingMs: 100).isEmpty)
        expectEveryEntryHasAReason(round)
    }

    @Test func aBudgetThatRunsOutInATierLeavesTheLowerTiersNotPinged() {
        var round = tieredRound()
        _ = enterTier(&round, pingMs: 600)
        _ = round.receive(bid(Money(9)), from: "g1", latencyUs: 1)
        _ = round.receive(.noBid, from: "g2", latencyUs: 1)
        _ = round.closeBidding(atMs: Self.now, method: .waterfall)
        #expect(round.nextPost(atMs: Self.now, remainingMs: 4, minimumPostMs: 10) == .finish(.unsold))
        #expect(reason(round, "g1") == .budgetExhausted)
        #expect(reason(round, "b1") == .notPinged)
        #expect(round.entry(for: "b1")?.detail == "not reached: 4 ms left in the round")
    }

    @Test func aWithheldBuyerIsNotPingedAndKeepsItsReason() {
        var round = tieredRound()
        let gold = enterTier(&round, pingMs: 600) { $0 == "g1" ? .capped : nil }
        #expect(gold == ["g2": 600])
        #expect(round.pendingBuyers == ["g2"])
        #expect(reason(round, "g1") == .capped)
        #expect(round.entry(for: "g1")?.tmaxMs == nil)
        #expect(round.entry(for: "g1")?.detail == nil)
        // An answer from it is ignored.
        _ = round.receive(bid(Money(99)), from: "g1", latencyUs: 1)
        #expect(round.receive(.noBid, from: "g2", latencyUs: 1) == .closeBidding)
        #expect(round.closeBidding(atMs: Self.now, method: .waterfall).isEmpty)
        #expect(reason(round, "g1") == .capped)
    }

    @Test func aTierIsEnteredOnlyWhenAskedFor() {
        var round = tieredRound()
        _ = enterTier(&round, pingMs: 600)
        // While a tier is bidding, no other tier can be entered.
        #expect(round.startNextTier(pingMs: 600).isEmpty)
        _ = round.receive(bid(Money(4)), from: "g1", latencyUs: 1)
        _ = round.closeBidding(atMs: Self.now, method: .waterfall)
        #expect(reason(round, "g2") == .timeout)
        #expect(postBuyer(round.nextPost(atMs: Self.now, remainingMs: 800, minimumPostMs: 10)) == "g1")
        _ = round.recordPost(.accepted(reference: nil), latencyUs: 1)
        #expect(round.startNextTier(pingMs: 600).isEmpty)
        #expect(reason(round, "s1") == .notPinged)
    }

    @Test func abandoningSaysWhyTheTiersWereNotReached() {
        var round = tieredRound()
        _ = enterTier(&round, pingMs: 600)
        #expect(round.abandon(detail: "shutting down") == .unsold)
        #expect(reason(round, "g1") == .timeout)
        #expect(round.entry(for: "b1")?.detail == "not reached: shutting down")
        expectEveryEntryHasAReason(round)
    }

    @Test func aHeldTieredRoundKeepsItsTiersThroughASnapshot() throws {
        var round = tieredRound()
        _ = enterTier(&round, pingMs: 600)
        _ = round.receive(bid(Money(11)), from: "g1", latencyUs: 1)
        _ = round.receive(.noBid, from: "g2", latencyUs: 1)
        _ = round.closeBidding(atMs: Self.now, method: .waterfall)
        // A ping round is held (and written through) here; after a restart its post goes on.
        var restored = try JSONDecoder().decode(Round.self, from: JSONEncoder().encode(round))
        #expect(restored.waitingBuyers == ["s1", "s2", "b1"])
        #expect(postBuyer(restored.nextPost(atMs: Self.now, remainingMs: 800, minimumPostMs: 10)) == "g1")
        _ = restored.recordPost(.rejected(reason: nil), latencyUs: 1)
        let silver = enterTier(&restored, pingMs: 300)
        #expect(silver == ["s1": 300])
    }

    @Test func roundsOfOtherMethodsHaveNoTiers() {
        var round = Round(id: "r1", payoutRule: .share(basisPoints: 5000), considered: [
            pinged("low", priority: 1), pinged("high", priority: 10),
        ])
        #expect(round.pendingBuyers == ["low", "high"])
        #expect(round.waitingBuyers.isEmpty)
        _ = round.receive(bid(Money(30)), from: "low", latencyUs: 1)
        _ = round.receive(bid(Money(10)), from: "high", latencyUs: 1)
        #expect(round.closeBidding(atMs: Self.now, method: .priority).map(\.buyerID) == ["high", "low"])
        #expect(round.startNextTier(pingMs: 100).isEmpty)
        _ = round.nextPost(atMs: Self.now, remainingMs: 500, minimumPostMs: 10)
        _ = round.recordPost(.rejected(reason: nil), latencyUs: 1)
        _ = round.nextPost(atMs: Self.now, remainingMs: 500, minimumPostMs: 10)
        _ = round.recordPost(.rejected(reason: nil), latencyUs: 1)
        #expect(round.nextPost(atMs: Self.now, remainingMs: 500, minimumPostMs: 10) == .finish(.unsold))
    }

    @Test func rankingAWaterfallTierIsByPriceThenID() {
        let bids = [RankedBid(buyerID: "b", price: Money(5), priority: 3), RankedBid(buyerID: "a", price: Money(5), priority: 3),
                    RankedBid(buyerID: "c", price: Money(9), priority: 3)]
        #expect(Ranking.rank(bids, method: .waterfall).map(\.buyerID) == ["c", "a", "b"])
        // Given bids of several tiers, the higher tier comes first, as for `priority`.
        let mixed = bids + [RankedBid(buyerID: "top", price: Money(1), priority: 9)]
        #expect(Ranking.rank(mixed, method: .waterfall).map(\.buyerID) == ["top", "c", "a", "b"])
        #expect(DistributionMethod(rawValue: "waterfall") == .waterfall)
    }

    func postBuyer(_ action: Round.Action) -> String? {
        if case .post(let bid) = action { return bid.buyerID }
        return nil
    }
}
