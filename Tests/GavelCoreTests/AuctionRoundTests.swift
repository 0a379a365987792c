import Testing
@testable import GavelCore

struct AuctionRoundTests {
    typealias Round = AuctionRound

    static let closedAt: Int64 = 1_720_612_800_000

    func pinged(_ id: String, floor: Money = .zero, priority: Int = 0, tmax: Int = 300) -> Round.Consideration {
        .pinged(Round.Participant(buyerID: id, floor: floor, priority: priority), tmaxMs: tmax)
    }

    func bid(_ price: Money, id: String? = nil, expiresInS: Int? = nil) -> Round.PingAnswer {
        .bid(price: price, bidID: id, expiresInS: expiresInS, destination: nil, minDurationS: nil)
    }

    /// A round with buyers a, b, c pinged and answered 30, 20, 10; bidding closed.
    func closedRound(payout: PayoutRule = .share(basisPoints: 7000), defaultHoldS: Int = 60,
                     expires: [String: Int] = [:]) -> Round {
        var round = Round(id: "r1", payoutRule: payout, defaultHoldS: defaultHoldS,
                          considered: [pinged("a"), pinged("b"), pinged("c")])
        _ = round.receive(bid(Money(30), id: "bid-a", expiresInS: expires["a"]), from: "a", latencyUs: 1_000)
        _ = round.receive(bid(Money(20), id: "bid-b", expiresInS: expires["b"]), from: "b", latencyUs: 2_000)
        _ = round.receive(bid(Money(10), id: "bid-c", expiresInS: expires["c"]), from: "c", latencyUs: 3_000)
        _ = round.closeBidding(atMs: Self.closedAt, method: .auction)
        return round
    }

    func postedBuyer(_ action: Round.Action) -> String? {
        if case .post(let bid) = action { return bid.buyerID }
        return nil
    }

    func expectEveryEntryHasAReason(_ round: Round, sourceLocation: SourceLocation = #_sourceLocation) {
        for entry in round.entries {
            #expect(entry.reason != nil, "\(entry.buyerID) has no reason", sourceLocation: sourceLocation)
        }
        #expect(Set(round.entries.map(\.buyerID)).count == round.entries.count, "one entry per buyer", sourceLocation: sourceLocation)
    }

    // MARK: Bidding

    @Test func excludedBuyersKeepTheirReason() {
        var round = Round(id: "r1", payoutRule: .share(basisPoints: 7000), considered: [
            .excluded(buyerID: "paused-one", reason: .paused), pinged("a"),
            .excluded(buyerID: "capped-one", reason: .capped),
        ])
        #expect(round.entries.map(\.buyerID) == ["paused-one", "a", "capped-one"])
        #expect(round.entry(for: "paused-one")?.reason == .paused)
        #expect(round.pendingBuyers == ["a"])
        // An excluded buyer never becomes a bidder: an answer from it is ignored.
        #expect(round.receive(bid(Money(50)), from: "paused-one", latencyUs: 10) == .waitForBids)
        #expect(round.entry(for: "paused-one")?.bid == nil)
        #expect(round.receive(bid(Money(5)), from: "a", latencyUs: 10) == .closeBidding)
        _ = round.closeBidding(atMs: Self.closedAt, method: .auction)
        #expect(postedBuyer(round.nextPost(atMs: Self.closedAt, remainingMs: 500, minimumPostMs: 50)) == "a")
        _ = round.recordPost(.accepted(reference: nil), latencyUs: 1)
        #expect(round.entry(for: "paused-one")?.reason == .paused)
        #expect(round.entry(for: "capped-one")?.reason == .capped)
        #expect(round.entry(for: "a")?.reason == .sold)
        expectEveryEntryHasAReason(round)
    }

    @Test func duplicateConsiderationsKeepTheFirstEntry() {
        let round = Round(id: "r1", payoutRule: .share(basisPoints: 7000), considered: [
            .excluded(buyerID: "a", reason: .duplicate), .excluded(buyerID: "a", reason: .capped),
        ])
        #expect(round.entries.count == 1)
        #expect(round.entry(for: "a")?.reason == .duplicate)
    }

    @Test func receiveClosesBiddingAfterTheLastAnswer() {
        var round = Round(id: "r1", payoutRule: .share(basisPoints: 7000), considered: [pinged("a", tmax: 250), pinged("b")])
        #expect(round.entry(for: "a")?.tmaxMs == 250)
        #expect(round.pendingBuyers == ["a", "b"])
        #expect(round.receive(bid(Money(4)), from: "a", latencyUs: 1_500) == .waitForBids)
        #expect(round.pendingBuyers == ["b"])
        // A second answer from the same buyer, or one from a stranger, changes nothing.
        #expect(round.receive(.noBid, from: "a", latencyUs: 9) == .waitForBids)
        #expect(round.receive(bid(Money(99)), from: "stranger", latencyUs: 9) == .waitForBids)
        #expect(round.entry(for: "a")?.bid == Money(4))
        #expect(round.entry(for: "a")?.latencyUs == 1_500)
        #expect(round.entry(for: "stranger") == nil)
        #expect(round.receive(.noBid, from: "b", latencyUs: 2_000) == .closeBidding)
        #expect(round.pendingBuyers.isEmpty)
        #expect(round.entry(for: "b")?.reason == .noBid)
        #expect(round.entry(for: "a")?.reason == nil)  // a valid bid has no reason until the round ends
    }

    @Test func bidDetailsAreRecorded() {
        var round = Round(id: "r1", payoutRule: .share(basisPoints: 7000), considered: [pinged("a")])
        _ = round.receive(.bid(price: Money(8), bidID: "x", expiresInS: 15, destination: "+18005550101", minDurationS: 60),
                          from: "a", latencyUs: 777)
        let entry = round.entry(for: "a")
        #expect(entry?.bid == Money(8))
        #expect(entry?.bidID == "x")
        #expect(entry?.expiresInS == 15)
        #expect(entry?.destination == "+18005550101")
        #expect(entry?.latencyUs == 777)
        let ranking = round.closeBidding(atMs: Self.closedAt, method: .auction)
        #expect(ranking == [RankedBid(buyerID: "a", price: Money(8), bidID: "x", expiresInS: 15,
                                      destination: "+18005550101", minDurationS: 60)])
    }

    @Test func belowFloor() {
        var round = Round(id: "r1", payoutRule: .share(basisPoints: 7000), considered: [
            pinged("low", floor: Money(5)), pinged("exact", floor: Money(5)), pinged("zero"),
        ])
        _ = round.receive(bid(Money(decimal: "4.9999")!), from: "low", latencyUs: 1)
        _ = round.receive(bid(Money(5)), from: "exact", latencyUs: 1)
        _ = round.receive(bid(.zero), from: "zero", latencyUs: 1)
        #expect(round.entry(for: "low")?.reason == .belowFloor)
        #expect(round.entry(for: "low")?.detail == "floor 5")
        #expect(round.entry(for: "low")?.bid == Money(decimal: "4.9999"))
        #expect(round.entry(for: "exact")?.reason == nil)
        #expect(round.entry(for: "zero")?.reason == .noBid)
        let ranking = round.closeBidding(atMs: Self.closedAt, method: .auction)
        #expect(ranking.map(\.buyerID) == ["exact"])
    }

    @Test func failedAnswersKeepReasonAndDetail() {
        var round = Round(id: "r1", payoutRule: .share(basisPoints: 7000), considered: [pinged("a"), pinged("b")])
        _ = round.receive(.failed(.httpError, detail: "HTTP 500"), from: "a", latencyUs: 1)
        _ = round.receive(.failed(.badResponse, detail: "not json"), from: "b", latencyUs: 1)
        #expect(round.closeBidding(atMs: Self.closedAt, method: .auction).isEmpty)
        #expect(round.entry(for: "a")?.reason == .httpError)
        #expect(round.entry(for: "a")?.detail == "HTTP 500")
        #expect(round.entry(for: "b")?.reason == .badResponse)
        #expect(round.nextPost(atMs: Self.closedAt, remainingMs: 500, minimumPostMs: 50) == .finish(.unsold))
        #expect(round.outcome == .unsold)
        expectEveryEntryHasAReason(round)
    }

    @Test func closeBiddingMarksMissingAnswersTimeout() {
        var round = Round(id: "r1", payoutRule: .share(basisPoints: 7000), considered: [pinged("fast"), pinged("slow"), pinged("slower")])
        _ = round.receive(bid(Money(10)), from: "fast", latencyUs: 1)
        let ranking = round.closeBidding(atMs: Self.closedAt, method: .auction)
        #expect(ranking.map(\.buyerID) == ["fast"])
        #expect(round.closedAtMs == Self.closedAt)
        #expect(round.ranking == ranking)
        #expect(round.pendingBuyers.isEmpty)
        for id in ["slow", "slower"] {
            #expect(round.entry(for: id)?.reason == .timeout)
            #expect(round.entry(for: id)?.detail == "no answer before bidding closed")
            #expect(round.entry(for: id)?.latencyUs == nil)
        }
        // A late answer is ignored.
        _ = round.receive(bid(Money(100)), from: "slow", latencyUs: 5)
        #expect(round.entry(for: "slow")?.reason == .timeout)
        #expect(round.entry(for: "slow")?.bid == nil)
        // Closing again changes nothing.
        #expect(round.closeBidding(atMs: Self.closedAt + 50, method: .auction) == ranking)
        #expect(round.closedAtMs == Self.closedAt)
    }

    @Test func closeBiddingUsesTheDistributionMethod() {
        var round = Round(id: "r1", payoutRule: .share(basisPoints: 7000), considered: [
            pinged("rich"), pinged("vip", priority: 10),
        ])
        _ = round.receive(bid(Money(50)), from: "rich", latencyUs: 1)
        _ = round.receive(bid(Money(20)), from: "vip", latencyUs: 1)
        #expect(round.closeBidding(atMs: Self.closedAt, method: .priority).map(\.buyerID) == ["vip", "rich"])
    }

    // MARK: Waterfall

    @Test func nextPostOffersTheHighestBid() {
        var round = closedRound()
        let action = round.nextPost(atMs: Self.closedAt + 10, remainingMs: 500, minimumPostMs: 50)
        guard case .post(let first) = action else {
            Issue.record("expected a post, got \(action)")
            return
        }
        #expect(first.buyerID == "a")
        #expect(first.price == Money(30))
        #expect(first.bidID == "bid-a")
        #expect(first.expiresInS == 60)  // the default hold
    }

    @Test func rejectionFallsBackToTheNextBid() {
        var round = closedRound()
        #expect(postedBuyer(round.nextPost(atMs: Self.closedAt, remainingMs: 500, minimumPostMs: 50)) == "a")
        #expect(round.recordPost(.rejected(reason: "duplicate lead"), latencyUs: 11_000) == nil)
        #expect(round.entry(for: "a")?.reason == .postRejected)
        #expect(round.entry(for: "a")?.detail == "duplicate lead")
        #expect(round.outcome == nil)
        #expect(postedBuyer(round.nextPost(atMs: Self.closedAt + 20, remainingMs: 400, minimumPostMs: 50)) == "b")
    }

    @Test func acceptedSellsWithPayoutAndOutbidsTheRest() {
        var round = closedRound(payout: .share(basisPoints: 6500))
        _ = round.nextPost(atMs: Self.closedAt, remainingMs: 500, minimumPostMs: 50)
        _ = round.recordPost(.failed(detail: "HTTP 502"), latencyUs: 5_000)
        _ = round.nextPost(atMs: Self.closedAt, remainingMs: 450, minimumPostMs: 50)
        let outcome = round.recordPost(.accepted(reference: "REF-9"), latencyUs: 7_000)
        guard case .sold(let sale)? = outcome else {
            Issue.record("expected a sale, got \(String(describing: outcome))")
            return
        }
        #expect(sale.bid.buyerID == "b")
        #expect(sale.price == Money(20))
        #expect(sale.payout == Money(13))
        #expect(sale.reference == "REF-9")
        #expect(round.outcome == outcome)
        #expect(round.outcome?.sale == sale)
        #expect(round.entry(for: "a")?.reason == .postFailed)
        #expect(round.entry(for: "a")?.detail == "HTTP 502")
        #expect(round.entry(for: "b")?.reason == .sold)
        #expect(round.entry(for: "c")?.reason == .outbid)
        expectEveryEntryHasAReason(round)
        // Once finished, nextPost repeats the outcome and recordPost changes nothing.
        #expect(round.nextPost(atMs: Self.closedAt, remainingMs: 500, minimumPostMs: 50) == .finish(outcome!))
        #expect(round.recordPost(.rejected(reason: nil), latencyUs: 1) == outcome)
        #expect(round.posts.count == 2)
    }

    @Test func fixedPayoutIsCappedAtThePrice() {
        var round = closedRound(payout: .fixed(Money(25)))
        _ = round.nextPost(atMs: Self.closedAt, remainingMs: 500, minimumPostMs: 50)
        #expect(round.recordPost(.accepted(reference: nil), latencyUs: 1)?.sale?.payout == Money(25))  // price 30
        var cheaper = closedRound(payout: .fixed(Money(25)))
        _ = cheaper.nextPost(atMs: Self.closedAt, remainingMs: 500, minimumPostMs: 50)
        _ = cheaper.recordPost(.rejected(reason: nil), latencyUs: 1)
        _ = cheaper.nextPost(atMs: Self.closedAt, remainingMs: 500, minimumPostMs: 50)
        #expect(cheaper.recordPost(.accepted(reference: nil), latencyUs: 1)?.sale?.payout == Money(20))  // price 20
    }

    @Test func postsAreRecordedInOrder() {
        var round = closedRound()
        _ = round.nextPost(atMs: Self.closedAt, remainingMs: 500, minimumPostMs: 50)
        _ = round.recordPost(.rejected(reason: "no"), latencyUs: 100)
        _ = round.nextPost(atMs: Self.closedAt, remainingMs: 500, minimumPostMs: 50)
        _ = round.recordPost(.timedOut, latencyUs: 200)
        _ = round.nextPost(atMs: Self.closedAt, remainingMs: 500, minimumPostMs: 50)
        _ = round.recordPost(.accepted(reference: "R"), latencyUs: 300)
        #expect(round.posts.map(\.buyerID) == ["a", "b", "c"])
        #expect(round.posts.map(\.result) == [.postRejected, .postTimeout, .sold])
        #expect(round.posts.map(\.price) == [Money(30), Money(20), Money(10)])
        #expect(round.posts.map(\.latencyUs) == [100, 200, 300])
        #expect(round.posts.map(\.detail) == ["no", nil, nil])
        #expect(round.posts.map(\.reference) == [nil, nil, "R"])
        #expect(round.entry(for: "b")?.reason == .postTimeout)
        expectEveryEntryHasAReason(round)
    }

    @Test func allPostsFailingEndsUnsold() {
        var round = closedRound()
        for _ in 0..<3 {
            #expect(postedBuyer(round.nextPost(atMs: Self.closedAt, remainingMs: 500, minimumPostMs: 50)) != nil)
            #expect(round.recordPost(.rejected(reason: nil), latencyUs: 1) == nil)
        }
        #expect(round.nextPost(atMs: Self.closedAt, remainingMs: 500, minimumPostMs: 50) == .finish(.unsold))
        #expect(round.outcome == .unsold)
        #expect(round.entries.map(\.reason) == [.postRejected, .postRejected, .postRejected])
    }

    @Test func budgetExhaustionMarksUntriedBids() {
        var round = closedRound()
        _ = round.nextPost(atMs: Self.closedAt, remainingMs: 500, minimumPostMs: 50)
        _ = round.recordPost(.timedOut, latencyUs: 400_000)
        let action = round.nextPost(atMs: Self.closedAt + 450, remainingMs: 49, minimumPostMs: 50)
        #expect(action == .finish(.unsold))
        #expect(round.entry(for: "a")?.reason == .postTimeout)
        #expect(round.entry(for: "b")?.reason == .budgetExhausted)
        #expect(round.entry(for: "c")?.reason == .budgetExhausted)
        #expect(round.entry(for: "b")?.detail == "49 ms left in the round")
        #expect(round.posts.count == 1)
        expectEveryEntryHasAReason(round)
    }

    @Test func budgetExactlyAtTheMinimumStillPosts() {
        var round = closedRound()
        #expect(postedBuyer(round.nextPost(atMs: Self.closedAt, remainingMs: 50, minimumPostMs: 50)) == "a")
    }

    @Test func budgetExhaustedBeforeAnyPost() {
        var round = closedRound()
        #expect(round.nextPost(atMs: Self.closedAt, remainingMs: 0, minimumPostMs: 1) == .finish(.unsold))
        #expect(round.entries.map(\.reason) == [.budgetExhausted, .budgetExhausted, .budgetExhausted])
        #expect(round.posts.isEmpty)
    }

    @Test func expiredBidsAreSkipped() {
        // a holds its bid 1 s, b 5 s, c the default 60 s.
        var round = closedRound(expires: ["a": 1, "b": 5])
        // 999 ms after closing a is still valid.
        var early = round
        #expect(postedBuyer(early.nextPost(atMs: Self.closedAt + 999, remainingMs: 500, minimumPostMs: 50)) == "a")
        // At exactly 1 s a has expired.
        #expect(postedBuyer(round.nextPost(atMs: Self.closedAt + 1_000, remainingMs: 500, minimumPostMs: 50)) == "b")
        #expect(round.entry(for: "a")?.reason == .expired)
        #expect(round.entry(for: "a")?.detail == "bid expired before the post")
        _ = round.recordPost(.rejected(reason: nil), latencyUs: 1)
        // Long after, c (default hold 60 s) is still fine at 59.999 s and expired at 60 s.
        var late = round
        #expect(postedBuyer(late.nextPost(atMs: Self.closedAt + 59_999, remainingMs: 500, minimumPostMs: 50)) == "c")
        #expect(round.nextPost(atMs: Self.closedAt + 60_000, remainingMs: 500, minimumPostMs: 50) == .finish(.unsold))
        #expect(round.entry(for: "c")?.reason == .expired)
        #expect(round.posts.map(\.buyerID) == ["b"])
        expectEveryEntryHasAReason(round)
    }

    @Test func defaultHoldIsTheRoundsSetting() {
        var round = closedRound(defaultHoldS: 2)
        #expect(round.ranking.allSatisfy { $0.expiresInS == 2 })
        #expect(round.nextPost(atMs: Self.closedAt + 2_000, remainingMs: 500, minimumPostMs: 50) == .finish(.unsold))
        #expect(round.entries.map(\.reason) == [.expired, .expired, .expired])
    }

    @Test func skipPostMovesOn() {
        var round = closedRound()
        #expect(postedBuyer(round.nextPost(atMs: Self.closedAt, remainingMs: 500, minimumPostMs: 50)) == "a")
        round.skipPost(reason: .capped, detail: "daily cap")
        #expect(round.entry(for: "a")?.reason == .capped)
        #expect(round.entry(for: "a")?.detail == "daily cap")
        #expect(round.posts.isEmpty)
        #expect(postedBuyer(round.nextPost(atMs: Self.closedAt, remainingMs: 500, minimumPostMs: 50)) == "b")
        round.skipPost(reason: .duplicate)
        #expect(postedBuyer(round.nextPost(atMs: Self.closedAt, remainingMs: 500, minimumPostMs: 50)) == "c")
        _ = round.recordPost(.accepted(reference: nil), latencyUs: 1)
        #expect(round.entries.map(\.reason) == [.capped, .duplicate, .sold])
    }

    @Test func skipPostOutsideTheWaterfallDoesNothing() {
        var round = closedRound()
        round.skipPost(reason: .capped)
        #expect(round.entries.allSatisfy { $0.reason == nil })
    }

    @Test func fixedPriceParticipantsBidWithoutAPing() {
        var round = Round(id: "r1", payoutRule: .fixed(Money(35)), considered: [
            .fixedPrice(Round.Participant(buyerID: "fixed", priority: 1), price: Money(45)),
            pinged("bidder", priority: 5),
        ])
        #expect(round.pendingBuyers == ["bidder"])
        #expect(round.entry(for: "fixed")?.bid == Money(45))
        #expect(round.entry(for: "fixed")?.latencyUs == 0)
        #expect(round.entry(for: "fixed")?.tmaxMs == nil)
        #expect(round.receive(bid(Money(60)), from: "bidder", latencyUs: 5) == .closeBidding)
        let ranking = round.closeBidding(atMs: Self.closedAt, method: .priority)
        #expect(ranking.map(\.buyerID) == ["bidder", "fixed"])
        #expect(ranking.last?.price == Money(45))
        _ = round.nextPost(atMs: Self.closedAt, remainingMs: 500, minimumPostMs: 50)
        _ = round.recordPost(.rejected(reason: nil), latencyUs: 1)
        #expect(postedBuyer(round.nextPost(atMs: Self.closedAt, remainingMs: 500, minimumPostMs: 50)) == "fixed")
        let sale = round.recordPost(.accepted(reference: nil), latencyUs: 1)?.sale
        #expect(sale?.price == Money(45))
        #expect(sale?.payout == Money(35))
    }

    @Test func onlyFixedPriceBuyersNeedNoAnswers() {
        var round = Round(id: "r1", payoutRule: .share(basisPoints: 5000), considered: [
            .fixedPrice(Round.Participant(buyerID: "f1"), price: Money(10)),
            .fixedPrice(Round.Participant(buyerID: "f2"), price: Money(12)),
        ])
        #expect(round.pendingBuyers.isEmpty)
        #expect(round.closeBidding(atMs: Self.closedAt, method: .auction).map(\.buyerID) == ["f2", "f1"])
        _ = round.nextPost(atMs: Self.closedAt, remainingMs: 500, minimumPostMs: 50)
        #expect(round.recordPost(.accepted(reference: nil), latencyUs: 1)?.sale?.payout == Money(6))
        #expect(round.entries.map(\.reason) == [.outbid, .sold])
    }

    @Test func everyEntryEndsWithOneReasonInAMixedRound() {
        var round = Round(id: "r1", payoutRule: .share(basisPoints: 7000), considered: [
            .excluded(buyerID: "geo", reason: .filteredGeo),
            pinged("winner"), pinged("rejecter"), pinged("lower"), pinged("floored", floor: Money(100)),
            pinged("nobid"), pinged("broken"), pinged("silent"),
            .fixedPrice(Round.Participant(buyerID: "fixed"), price: Money(1)),
        ])
        _ = round.receive(bid(Money(40)), from: "rejecter", latencyUs: 1)
        _ = round.receive(bid(Money(30)), from: "winner", latencyUs: 1)
        _ = round.receive(bid(Money(20)), from: "lower", latencyUs: 1)
        _ = round.receive(bid(Money(50)), from: "floored", latencyUs: 1)
        _ = round.receive(.noBid, from: "nobid", latencyUs: 1)
        _ = round.receive(.failed(.unreachable, detail: "refused"), from: "broken", latencyUs: 1)
        _ = round.closeBidding(atMs: Self.closedAt, method: .auction)
        _ = round.nextPost(atMs: Self.closedAt, remainingMs: 500, minimumPostMs: 50)
        _ = round.recordPost(.rejected(reason: nil), latencyUs: 1)
        _ = round.nextPost(atMs: Self.closedAt, remainingMs: 500, minimumPostMs: 50)
        _ = round.recordPost(.accepted(reference: nil), latencyUs: 1)
        expectEveryEntryHasAReason(round)
        let reasons = Dictionary(uniqueKeysWithValues: round.entries.map { ($0.buyerID, $0.reason!) })
        #expect(reasons == [
            "geo": .filteredGeo, "winner": .sold, "rejecter": .postRejected, "lower": .outbid, "floored": .belowFloor,
            "nobid": .noBid, "broken": .unreachable, "silent": .timeout, "fixed": .outbid,
        ])
        #expect(round.entries.filter { $0.reason == .sold }.count == 1)
    }

    @Test func abandonEndsUnsold() {
        var round = Round(id: "r1", payoutRule: .share(basisPoints: 7000), considered: [pinged("a"), pinged("b")])
        _ = round.receive(bid(Money(9)), from: "a", latencyUs: 1)
        #expect(round.abandon(detail: "shutting down") == .unsold)
        #expect(round.entry(for: "a")?.reason == .budgetExhausted)
        #expect(round.entry(for: "a")?.detail == "shutting down")
        #expect(round.entry(for: "b")?.reason == .timeout)
        #expect(round.outcome == .unsold)
        expectEveryEntryHasAReason(round)
    }

    @Test func abandonAfterASaleKeepsTheSale() {
        var round = closedRound()
        _ = round.nextPost(atMs: Self.closedAt, remainingMs: 500, minimumPostMs: 50)
        let outcome = round.recordPost(.accepted(reference: nil), latencyUs: 1)
        #expect(round.abandon(detail: "late") == outcome)
        #expect(round.entry(for: "a")?.reason == .sold)
    }

    @Test func reusingBidsStartsAFreshWaterfall() {
        var round = closedRound()
        _ = round.nextPost(atMs: Self.closedAt, remainingMs: 500, minimumPostMs: 50)
        _ = round.recordPost(.rejected(reason: "no"), latencyUs: 1)
        var reused = round.reusingBids(newID: "r2", detail: "bid reused from r1")
        #expect(reused.id == "r2")
        #expect(reused.posts.isEmpty)
        #expect(reused.entries.allSatisfy { $0.reason == nil && $0.detail == "bid reused from r1" })
        #expect(reused.closedAtMs == Self.closedAt)
        #expect(postedBuyer(reused.nextPost(atMs: Self.closedAt, remainingMs: 500, minimumPostMs: 50)) == "a")
        // The original is untouched.
        #expect(round.entry(for: "a")?.reason == .postRejected)
        #expect(round.id == "r1")
    }
}
