import BuyerFleet
import Foundation
import GavelCore
import GavelExchange
import GavelStore
import Testing

/// Lead auctions end to end: real buyers over HTTP on loopback, a real SQLite file.
@Suite(.serialized)
struct LeadAuctionTests {
    @Test func highestBidWinsAndSellerGetsItsShare() async throws {
        let harness = try await TestExchange(buyers: [
            bidder("low", bid: "10.00"), bidder("high", bid: "20.50"), bidder("mid", bid: "15.00"),
        ])
        let result = try await harness.runLead()
        #expect(result.sold)
        #expect(result.payout == Money(units: 102_500))  // 50% of 20.50
        let round = try await harness.round(result.auctionID)
        #expect(round.winnerID == "high")
        #expect(round.price == Money(units: 205_000))
        #expect(round.reason(of: "high") == "sold")
        #expect(round.reason(of: "mid") == "outbid")
        #expect(round.reason(of: "low") == "outbid")
        #expect(round.posts.count == 1)
        #expect(harness.fleet.stats(for: "high").posts == 1)
        #expect(harness.fleet.stats(for: "mid").posts == 0)
        await harness.shutdown()
    }

    @Test func rejectedPostFallsBackToTheNextBidder() async throws {
        let harness = try await TestExchange(buyers: [
            bidder("picky", bid: "30.00", accept: 0), bidder("steady", bid: "12.00"), bidder("cheap", bid: "5.00"),
        ])
        let result = try await harness.runLead()
        #expect(result.sold)
        let round = try await harness.round(result.auctionID)
        #expect(round.winnerID == "steady")
        #expect(round.reason(of: "picky") == "post_rejected")
        #expect(round.reason(of: "steady") == "sold")
        #expect(round.reason(of: "cheap") == "outbid")
        #expect(round.posts.map(\.buyerID) == ["picky", "steady"])
        #expect(round.posts.map(\.result) == ["post_rejected", "sold"])
        // Exactly one buyer ends up with the lead.
        #expect(harness.fleet.stats(for: "picky").accepted + harness.fleet.stats(for: "steady").accepted
            + harness.fleet.stats(for: "cheap").accepted == 1)
        await harness.shutdown()
    }

    @Test func hungBuyerDoesNotHoldTheAnswerPastTheBudget() async throws {
        var hung = BuyerBehavior(latency: .fixed(ms: 1))
        hung.fault = .hang
        let harness = try await TestExchange(buyers: [
            TestExchange.BuyerSpec(id: "hangs", behavior: hung), bidder("quick", bid: "9.00"),
        ])
        let started = ContinuousClock.now
        let result = try await harness.runLead(TestExchange.lead(tmax: 1500))
        let elapsed = started.duration(to: .now)
        // Budget 1.5 s (ping phase 0.9 s): a generous margin for a loaded CI machine, yet far below
        // the 2 s the buyer's own timeout would allow, and the hung buyer never answers at all.
        #expect(elapsed < .milliseconds(2500))
        #expect(result.sold)
        let round = try await harness.round(result.auctionID)
        #expect(round.reason(of: "hangs") == "timeout")
        #expect(round.reason(of: "quick") == "sold")
        // The buyer was told the time it really had: the ping share (3/5) of the 1.5 s request budget.
        let tmax = try #require(round.buyers.first { $0.buyerID == "hangs" }?.tmaxMs)
        #expect(tmax <= 900)
        await harness.shutdown()
    }

    @Test func brokenBuyersBecomeReasonCodes() async throws {
        func faulty(_ fault: BuyerBehavior.Fault) -> BuyerBehavior {
            var behavior = BuyerBehavior(latency: .fixed(ms: 1))
            behavior.fault = fault
            return behavior
        }
        let refused = try BuyerFleet.refusedURL()
        let harness = try await TestExchange(buyers: [
            TestExchange.BuyerSpec(id: "garbage", behavior: faulty(.garbage)),
            TestExchange.BuyerSpec(id: "errors", behavior: faulty(.http500)),
            TestExchange.BuyerSpec(id: "resets", behavior: faulty(.reset)),
            TestExchange.BuyerSpec(id: "huge", behavior: faulty(.oversized)),
            TestExchange.BuyerSpec(id: "gone", behavior: nil, pingURL: refused),
            bidder("fine", bid: "7.00"),
        ])
        let result = try await harness.runLead()
        let round = try await harness.round(result.auctionID)
        #expect(round.reason(of: "garbage") == "bad_response")
        #expect(round.reason(of: "errors") == "http_error")
        #expect(round.reason(of: "resets") == "unreachable")
        #expect(round.reason(of: "huge") == "bad_response")
        #expect(round.reason(of: "gone") == "unreachable")
        #expect(round.reason(of: "fine") == "sold")
        await harness.shutdown()
    }

    @Test func aBuyerThatKeepsFailingIsBackedOffButAnOverloadedRoundBlamesNoOne() async throws {
        var hung = BuyerBehavior(latency: .fixed(ms: 1))
        hung.fault = .hang
        let harness = try await TestExchange(buyers: [
            TestExchange.BuyerSpec(id: "hangs", behavior: hung, campaign: "tiny"),
            TestExchange.BuyerSpec(id: "fine-1", behavior: BuyerBehavior(latency: .fixed(ms: 1)), campaign: "tiny"),
            TestExchange.BuyerSpec(id: "fine-2", behavior: BuyerBehavior(latency: .fixed(ms: 1)), campaign: "tiny"),
        ])
        var reasons: [String?] = []
        for index in 0..<6 {
            let result = try await harness.runLead(TestExchange.lead(email: "h\(index)@example.com", campaign: "tiny"))
            reasons.append(try await harness.round(result.auctionID).reason(of: "hangs"))
        }
        // Five timeouts in a row, then the exchange stops pinging it for a while.
        #expect(reasons.prefix(5).allSatisfy { $0 == "timeout" })
        #expect(reasons.last == "unhealthy")
        await harness.shutdown()

        // Every buyer of the round timing out at once points at the exchange: nobody is backed off.
        let stalled = try await TestExchange(buyers: ["a", "b", "c"].map { TestExchange.BuyerSpec(id: $0, behavior: hung, campaign: "tiny") })
        for index in 0..<6 {
            let result = try await stalled.runLead(TestExchange.lead(email: "s\(index)@example.com", campaign: "tiny"))
            #expect(try await stalled.round(result.auctionID).reason(of: "a") == "timeout")
        }
        await stalled.shutdown()
    }

    @Test func belowFloorBidsDoNotWin() async throws {
        let harness = try await TestExchange(buyers: [
            bidder("under", bid: "0.50"),
            bidder("own-floor", bid: "8.00", yaml: "floor: 9.00"),
        ])
        let result = try await harness.runLead()
        #expect(!result.sold)
        #expect(result.payout == .zero)
        let round = try await harness.round(result.auctionID)
        #expect(round.reason(of: "under") == "below_floor")
        #expect(round.reason(of: "own-floor") == "below_floor")
        #expect(round.posts.isEmpty)
        await harness.shutdown()
    }

    @Test func filteredBuyersAreNeverPinged() async throws {
        let harness = try await TestExchange(buyers: [
            bidder("texas-only", bid: "9.00", yaml: "filters: {states: [TX]}"),
            bidder("adults", bid: "9.00", yaml: "filters: {rules: [{field: age, min: 40}]}"),
            bidder("off", bid: "9.00", yaml: "paused: true"),
            bidder("legal-only", bid: "9.00", yaml: "verticals: [legal]"),
            bidder("open", bid: "3.00"),
        ])
        let result = try await harness.runLead()
        let round = try await harness.round(result.auctionID)
        #expect(round.reason(of: "texas-only") == "filtered_geo")
        #expect(round.reason(of: "adults") == "filtered_rule")
        #expect(round.reason(of: "off") == "paused")
        #expect(round.reason(of: "legal-only") == "filtered_vertical")
        #expect(round.reason(of: "open") == "sold")
        for id in ["texas-only", "adults", "off", "legal-only"] { #expect(harness.fleet.stats(for: id).pings == 0) }
        await harness.shutdown()
    }

    @Test func pingsCarryNoPersonalDataButTheWinnersPostDoes() async throws {
        let harness = try await TestExchange(buyers: [bidder("a", bid: "9.00"), bidder("b", bid: "8.00")])
        for index in 0..<5 { _ = try await harness.runLead(TestExchange.lead(email: "p\(index)@example.com")) }
        for id in ["a", "b"] {
            #expect(harness.fleet.stats(for: id).pings == 5)
            #expect(harness.fleet.stats(for: id).piiViolations == 0)
            for ping in harness.fleet.recentPings(buyer: id) {
                let text = String(decoding: ping, as: UTF8.self)
                #expect(!text.contains("example.com"))
                #expect(!text.contains("5551234567"))
                #expect(!text.contains("Main St"))
                #expect(text.contains("\"tmax_ms\":"))
            }
        }
        let post = String(decoding: try #require(harness.fleet.recentPosts(buyer: "a").last), as: UTF8.self)
        #expect(post.contains("p4@example.com"))
        #expect(post.contains("\"price\":9"))
        await harness.shutdown()
    }

    @Test func capsHoldUnderAThousandConcurrentAuctions() async throws {
        let harness = try await TestExchange(buyers: [
            bidder("capped", bid: "20.00", latencyMs: 2, yaml: "caps: {daily: 50}"),
            bidder("budget", bid: "10.00", latencyMs: 2, yaml: "caps: {daily_budget: 100.00}"),
        ])
        let results = try await withThrowingTaskGroup(of: LeadResult.self) { group in
            for index in 0..<1000 {
                group.addTask { try await harness.runLead(TestExchange.lead(email: "c\(index)@example.com", tmax: 10_000)) }
            }
            return try await group.reduce(into: []) { $0.append($1) }
        }
        #expect(results.count == 1000)
        #expect(harness.fleet.stats(for: "capped").accepted == 50)
        #expect(harness.fleet.stats(for: "budget").accepted == 10)  // 10 x 10.00 = the 100.00 budget
        #expect(results.filter(\.sold).count == 60)
        let counts = try await harness.store.counts()
        #expect(counts.rounds == 1000)
        #expect(counts.sales == 60)
        await harness.shutdown()
    }

    @Test func sameContactIsNotSoldTwiceToABuyerWithADuplicateWindow() async throws {
        let harness = try await TestExchange(buyers: [
            bidder("dedupes", bid: "20.00", yaml: "duplicate_window_days: 30"), bidder("any", bid: "5.00"),
        ])
        let first = try await harness.runLead(TestExchange.lead(email: "same@example.com"))
        let second = try await harness.runLead(TestExchange.lead(email: "SAME@example.com"))
        #expect(try await harness.round(first.auctionID).winnerID == "dedupes")
        let round = try await harness.round(second.auctionID)
        #expect(round.reason(of: "dedupes") == "duplicate")
        #expect(round.winnerID == "any")
        await harness.shutdown()
    }

    @Test func aRestartKeepsCapCountersAndRecordedRounds() async throws {
        let harness = try await TestExchange(buyers: [
            bidder("capped", bid: "20.00", yaml: "caps: {hourly: 3}\nduplicate_window_days: 1"), bidder("backup", bid: "5.00"),
        ])
        var ids: [String] = []
        for index in 0..<3 { ids.append(try await harness.runLead(TestExchange.lead(email: "r\(index)@example.com")).auctionID) }
        await harness.stopServer()
        try await harness.openServer()
        let after = try await harness.runLead(TestExchange.lead(email: "new@example.com"))
        let round = try await harness.round(after.auctionID)
        #expect(round.reason(of: "capped") == "capped")
        #expect(round.winnerID == "backup")
        for id in ids { #expect(try await harness.round(id).winnerID == "capped") }
        // Duplicate windows survive too.
        let repeatContact = try await harness.runLead(TestExchange.lead(email: "r0@example.com"))
        #expect(try await harness.round(repeatContact.auctionID).reason(of: "capped") == "duplicate")
        await harness.shutdown()
    }
}
