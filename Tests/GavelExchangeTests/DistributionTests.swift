import BuyerFleet
import Foundation
import GavelConfig
import GavelCore
import GavelExchange
import GavelStore
import Testing

/// The four distribution methods of a campaign, each run end to end: a real exchange, a real
/// SQLite file, and real buyers over HTTP on loopback.
@Suite(.serialized)
struct DistributionTests {
    /// The test campaigns, with `autos` distributed by `distribution`; `tmax`/`ping` in milliseconds.
    static func campaign(_ distribution: String, tmax: Int = 5000, ping: Int = 3000) -> String {
        let autos = "{id: autos, kind: lead, vertical: auto_insurance, tmax_ms: 5000, ping_timeout_ms: 3000,"
        precondition(TestExchange.defaultCampaign.contains(autos))
        return TestExchange.defaultCampaign.replacingOccurrences(
            of: autos, with: "{id: autos, kind: lead, vertical: auto_insurance, distribution: \(distribution), tmax_ms: \(tmax), ping_timeout_ms: \(ping),")
    }

    static func tier(_ priority: Int, _ yaml: String = "") -> String {
        (["priority: \(priority)"] + (yaml.isEmpty ? [] : [yaml])).joined(separator: "\n")
    }

    static func noBid(_ id: String, latencyMs: Double = 5, yaml: String = "") -> TestExchange.BuyerSpec {
        TestExchange.BuyerSpec(id: id, behavior: BuyerBehavior(latency: .fixed(ms: latencyMs), bidProbability: 0), yaml: yaml)
    }

    static func failingPosts(_ id: String, bid: String, yaml: String = "") -> TestExchange.BuyerSpec {
        var behavior = BuyerBehavior(latency: .fixed(ms: 5), bidMin: bid, bidMax: bid)
        behavior.postFault = .http500
        return TestExchange.BuyerSpec(id: id, behavior: behavior, yaml: yaml)
    }

    static func entry(_ round: StoredRound, _ id: String) -> StoredRound.StoredBuyer? {
        round.buyers.first { $0.buyerID == id }
    }

    // MARK: Auction and priority

    @Test func anAuctionSellsToTheHighestBid() async throws {
        let harness = try await TestExchange(campaignYAML: Self.campaign("auction"), buyers: [
            bidder("low", bid: "10.00", yaml: Self.tier(9)), bidder("high", bid: "20.00"), bidder("mid", bid: "15.00"),
        ])
        let result = try await harness.runLead()
        let round = try await harness.round(result.auctionID)
        #expect(round.winnerID == "high")
        #expect(result.payout == Money(10))
        #expect(round.reason(of: "mid") == "outbid")
        #expect(round.reason(of: "low") == "outbid")
        for id in ["low", "high", "mid"] { #expect(harness.fleet.stats(for: id).pings == 1) }
        await harness.shutdown()
    }

    @Test func priorityPingsEveryoneAtOnceAndPostsInPriorityOrder() async throws {
        let harness = try await TestExchange(campaignYAML: Self.campaign("priority"), buyers: [
            bidder("vip", bid: "5.00", accept: 0, yaml: Self.tier(10)), bidder("rich", bid: "40.00", yaml: Self.tier(1)),
            bidder("vip-2", bid: "3.00", yaml: Self.tier(10)),
        ])
        let result = try await harness.runLead()
        let round = try await harness.round(result.auctionID)
        // Every buyer is pinged in the one fan-out, whatever its priority ...
        for id in ["vip", "rich", "vip-2"] { #expect(harness.fleet.stats(for: id).pings == 1) }
        // ... and the higher priority goes first, the bid deciding within it.
        #expect(round.posts.map(\.buyerID) == ["vip", "vip-2"])
        #expect(round.winnerID == "vip-2")
        #expect(round.reason(of: "rich") == "outbid")
        #expect(round.buyers.allSatisfy { $0.reason != "not_pinged" })
        await harness.shutdown()
    }

    // MARK: Waterfall

    @Test func aWaterfallSellsInTheTopTierAndNeverPingsTheTiersBelow() async throws {
        let harness = try await TestExchange(campaignYAML: Self.campaign("waterfall"), buyers: [
            bidder("gold-high", bid: "12.00", yaml: Self.tier(10)), bidder("gold-low", bid: "8.00", yaml: Self.tier(10)),
            bidder("silver", bid: "50.00", yaml: Self.tier(5)),
            TestExchange.BuyerSpec(id: "bronze-fixed", behavior: BuyerBehavior(), yaml: Self.tier(1), fixedPrice: "30.00"),
        ])
        let result = try await harness.runLead()
        let round = try await harness.round(result.auctionID)
        #expect(result.sold)
        // The top tier sells, although a lower tier would have paid more: that is a ping tree.
        #expect(round.winnerID == "gold-high")
        #expect(result.payout == Money(6))
        #expect(round.reason(of: "gold-low") == "outbid")
        #expect(harness.fleet.stats(for: "silver").pings == 0)
        #expect(harness.fleet.stats(for: "bronze-fixed").posts == 0)
        for id in ["silver", "bronze-fixed"] {
            let entry = try #require(Self.entry(round, id))
            #expect(entry.reason == "not_pinged")
            #expect(entry.detail == "a higher tier sold")
            #expect(entry.tmaxMs == nil)
            #expect(entry.bid == nil)
        }
        await harness.shutdown()
    }

    @Test func aTierWithoutAnAcceptableBidHandsOnWithTheTimeLeft() async throws {
        // 3 s budget, pings 1.8 s; the top tier takes at least 100 ms to say no.
        let harness = try await TestExchange(campaignYAML: Self.campaign("waterfall", tmax: 3000, ping: 1800), buyers: [
            Self.noBid("gold-none", latencyMs: 100, yaml: Self.tier(10)),
            bidder("gold-under", bid: "0.50", latencyMs: 100, yaml: Self.tier(10)),
            bidder("silver", bid: "6.00", yaml: Self.tier(5)),
            TestExchange.BuyerSpec(id: "silver-fixed", behavior: BuyerBehavior(), yaml: Self.tier(5), fixedPrice: "4.00"),
            bidder("bronze", bid: "9.00", yaml: Self.tier(1)),
        ])
        let result = try await harness.runLead()
        let round = try await harness.round(result.auctionID)
        #expect(round.winnerID == "silver")
        #expect(round.reason(of: "gold-none") == "no_bid")
        #expect(round.reason(of: "gold-under") == "below_floor")
        #expect(round.reason(of: "silver-fixed") == "outbid")
        #expect(round.reason(of: "bronze") == "not_pinged")
        #expect(harness.fleet.stats(for: "bronze").pings == 0)
        // The budget does not start again for the second tier: it had the campaign's ping share
        // (1800/3000) of what the first tier left, at most (3000 - 100 - 10) × 0.6 = 1734 ms.
        let first = try #require(Self.entry(round, "gold-none")?.tmaxMs)
        let second = try #require(Self.entry(round, "silver")?.tmaxMs)
        #expect(first <= 1800)
        #expect(second <= 1734)
        // The ping told the buyer so.
        let ping = String(decoding: try #require(harness.fleet.recentPings(buyer: "silver").last), as: UTF8.self)
        #expect(ping.contains("\"tmax_ms\":\(second)"))
        await harness.shutdown()
    }

    @Test func aTierWhosePostsAllFailHandsOnToTheNextTier() async throws {
        let harness = try await TestExchange(campaignYAML: Self.campaign("waterfall"), buyers: [
            bidder("gold-picky", bid: "20.00", accept: 0, yaml: Self.tier(10)),
            Self.failingPosts("gold-broken", bid: "15.00", yaml: Self.tier(10)),
            bidder("silver", bid: "9.00", yaml: Self.tier(5)),
            bidder("bronze", bid: "30.00", yaml: Self.tier(1)),
        ])
        let result = try await harness.runLead()
        #expect(result.sold)
        let round = try await harness.round(result.auctionID)
        #expect(round.posts.map(\.buyerID) == ["gold-picky", "gold-broken", "silver"])
        #expect(round.posts.map(\.result) == ["post_rejected", "post_failed", "sold"])
        #expect(round.winnerID == "silver")
        #expect(harness.fleet.stats(for: "silver").pings == 1)
        #expect(round.reason(of: "bronze") == "not_pinged")
        #expect(Self.entry(round, "bronze")?.detail == "a higher tier sold")
        #expect(harness.fleet.stats(for: "bronze").pings == 0)
        // Exactly one buyer has the lead.
        let accepted = ["gold-picky", "gold-broken", "silver", "bronze"].map { harness.fleet.stats(for: $0).accepted }
        #expect(accepted.reduce(0, +) == 1)
        await harness.shutdown()
    }

    @Test func aTierIsNotPingedWithoutTimeLeftForItsPost() async throws {
        var hangs = BuyerBehavior(latency: .fixed(ms: 2), bidMin: "10.00", bidMax: "10.00")
        hangs.postFault = .hang
        let harness = try await TestExchange(campaignYAML: Self.campaign("waterfall", tmax: 600, ping: 300), buyers: [
            TestExchange.BuyerSpec(id: "gold", behavior: hangs, yaml: Self.tier(10)),
            bidder("silver", bid: "9.00", yaml: Self.tier(5)),
        ])
        // 300 ms of the budget kept back for recording: the hung post takes the rest, and the round
        // still has ample time to commit on a loaded machine.
        harness.configureSettings = { $0.exchange.recordReserveMs = 300 }
        await harness.stopServer()
        try await harness.openServer()
        let result = try await harness.runLead()
        #expect(!result.sold)
        let round = try await harness.round(result.auctionID)
        // The post used what was left of the budget: no time to ping another tier and post to it.
        #expect(round.reason(of: "gold") == "post_timeout")
        #expect(round.reason(of: "silver") == "not_pinged")
        let detail = try #require(Self.entry(round, "silver")?.detail)
        #expect(detail.hasPrefix("not reached: ") && detail.hasSuffix(" ms left in the round"))
        #expect(harness.fleet.stats(for: "silver").pings == 0)
        await harness.shutdown()
    }

    @Test func aTwoPhaseWaterfallHoldsTheFirstTierThatBidsAndItsPostWalksOn() async throws {
        let harness = try await TestExchange(campaignYAML: Self.campaign("waterfall"), buyers: [
            Self.noBid("gold", yaml: Self.tier(10)),
            bidder("silver", bid: "10.00", accept: 0, yaml: Self.tier(5)),
            bidder("bronze", bid: "4.00", yaml: Self.tier(1)),
        ])
        let pingJSON = #"{"campaign": "autos", "lead": {"zip": "94107", "state": "CA"}}"#
        let ping = try await harness.exchange.runPing(harness.submission(pingJSON, shape: .pingOnly), seller: harness.seller, arrival: .now)
        // The ping walked down to the first tier with a bid, and holds it.
        #expect(ping.hasBid)
        #expect(ping.payout == Money(5))
        let pinged = try await harness.round(ping.pingID)
        #expect(pinged.reason(of: "gold") == "no_bid")
        #expect(pinged.reason(of: "silver") == "bid")
        #expect(pinged.reason(of: "bronze") == "not_pinged")
        #expect(harness.fleet.stats(for: "bronze").pings == 0)

        // The held tiers survive a restart.
        await harness.stopServer()
        try await harness.openServer()

        // The post: silver rejects, so the post pings the next tier with its own time left.
        let result = try await harness.exchange.runPost(
            pingID: ping.pingID, lead: nil, contact: JSONObject(["email": "jo@example.com"]), seller: harness.seller, arrival: .now)
        #expect(result.sold)
        #expect(result.payout == Money(2))
        let round = try await harness.round(ping.pingID)
        #expect(round.posts.map(\.buyerID) == ["silver", "bronze"])
        #expect(round.winnerID == "bronze")
        #expect(round.reason(of: "silver") == "post_rejected")
        #expect(harness.fleet.stats(for: "bronze").pings == 1)
        #expect(harness.fleet.stats(for: "gold").pings == 1)
        // Pings never carry the contact, not even those sent while posting.
        let bronzePing = String(decoding: try #require(harness.fleet.recentPings(buyer: "bronze").last), as: UTF8.self)
        #expect(!bronzePing.contains("example.com"))
        await harness.shutdown()
    }

    @Test func aCallCampaignCannotBeAWaterfall() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("gavel-dist-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: directory) }
        try FileManager.default.createDirectory(at: directory.appendingPathComponent("buyers"), withIntermediateDirectories: true)
        try """
            campaigns:
              - {id: calls, kind: call, vertical: home_services, distribution: waterfall}
              - {id: leads, kind: lead, vertical: legal, distribution: waterfall}
            """.write(to: directory.appendingPathComponent("campaigns.yaml"), atomically: true, encoding: .utf8)
        try "sellers:\n  - {id: s, api_key: seller-key-1, campaigns: [calls, leads]}\n"
            .write(to: directory.appendingPathComponent("sellers.yaml"), atomically: true, encoding: .utf8)
        try "id: b\ncampaigns: [leads]\nping: {url: \"http://127.0.0.1:9/ping\"}\npost: {url: \"http://127.0.0.1:9/post\"}\n"
            .write(to: directory.appendingPathComponent("buyers/b.yaml"), atomically: true, encoding: .utf8)
        var problems: [String] = []
        do {
            _ = try ConfigLoader.load(directory: directory.path, environment: [:])
        } catch {
            problems = error.problems.map(\.description)
        }
        // The call campaign is refused; the lead campaign's waterfall is fine.
        #expect(problems.count == 1, "\(problems)")
        #expect(problems.first?.hasPrefix("campaigns.yaml: campaigns[0].distribution: waterfall is for lead campaigns") == true)
    }

    // MARK: Round robin

    @Test func roundRobinRotatesAndARestartGivesNobodyTwoTurnsInARow() async throws {
        let harness = try await TestExchange(campaignYAML: Self.campaign("round_robin"), buyers: [
            bidder("a", bid: "10.00"), bidder("b", bid: "20.00"), bidder("c", bid: "30.00"),
        ])
        var winners: [String] = []
        for index in 0..<4 {
            let result = try await harness.runLead(TestExchange.lead(email: "rr\(index)@example.com"))
            winners.append(try #require(try await harness.round(result.auctionID).winnerID))
        }
        #expect(winners == ["a", "b", "c", "a"])
        // Four rounds is not a whole turn of three: a rotation lost here would give `a` the next turn again.
        await harness.stopServer()
        try await harness.openServer()
        for index in 4..<6 {
            let result = try await harness.runLead(TestExchange.lead(email: "rr\(index)@example.com"))
            winners.append(try #require(try await harness.round(result.auctionID).winnerID))
        }
        #expect(winners == ["a", "b", "c", "a", "b", "c"])
        for (previous, next) in zip(winners, winners.dropFirst()) { #expect(previous != next) }
        await harness.shutdown()
    }

    // MARK: Weighted

    @Test func weightedFirstChoicesFollowTheWeightsOverManyRounds() async throws {
        let weights = ["light": 1, "middle": 3, "heavy": 6]
        let harness = try await TestExchange(campaignYAML: Self.campaign("weighted"), buyers: weights.keys.sorted().map { id in
            // Equal bids: only the weighted draw decides who is posted to first, and every post is accepted.
            bidder(id, bid: "10.00", latencyMs: 1, yaml: "weight: \(weights[id]!)")
        })
        let rounds = 500
        var winners: [String: Int] = [:]
        for batch in stride(from: 0, to: rounds, by: 25) {
            let ids = try await withThrowingTaskGroup(of: String.self) { group in
                for index in batch..<min(batch + 25, rounds) {
                    group.addTask { try await harness.runLead(TestExchange.lead(email: "w\(index)@example.com", tmax: 10_000)).auctionID }
                }
                return try await group.reduce(into: []) { $0.append($1) }
            }
            for id in ids { winners[try #require(try await harness.round(id).winnerID), default: 0] += 1 }
        }
        let total = Double(weights.values.reduce(0, +))
        for (id, weight) in weights {
            // Each round's first choice is a draw with p = weight share: the count is binomial.
            // Five standard deviations either side: a failure by chance is about 1 in 1.7 million,
            // while ignoring the weights (a third each) falls outside for `light` and `heavy`.
            let share = Double(weight) / total
            let expected = Double(rounds) * share
            let tolerance = 5 * (Double(rounds) * share * (1 - share)).squareRoot()
            let posted = harness.fleet.stats(for: id).posts
            #expect(posted == winners[id, default: 0], "every first choice sold")
            #expect(abs(Double(posted) - expected) <= tolerance, "\(id): \(posted) first choices, expected \(expected) ± \(tolerance)")
        }
        #expect(winners.values.reduce(0, +) == rounds)
        await harness.shutdown()
    }
}
