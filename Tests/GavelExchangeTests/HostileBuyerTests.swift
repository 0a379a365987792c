import BuyerFleet
import Foundation
import GavelCore
import GavelExchange
import GavelStore
import Testing

/// Buyer answers are untrusted (CONTRACT v2): every numeric field of a bid gets extreme values
/// (zero, negative, huge, fractional, exponent, string, wrong type) through the whole exchange.
/// Nothing may crash, each answer gets the reason code the contract names, and the budget holds.
@Suite(.serialized)
struct HostileBuyerTests {
    /// (buyer id, raw ping answer, expected reason). The honest buyer bids 50 and wins every round,
    /// so a hostile answer that is valid ends `outbid`.
    static let leadCases: [(String, String, String)] = [
        ("bid-zero", #"{"bid": 0}"#, "no_bid"),
        ("bid-null", #"{"bid": null}"#, "no_bid"),
        ("bid-negative", #"{"bid": -5}"#, "bad_response"),
        ("bid-huge", #"{"bid": 99999999999999}"#, "bad_response"),
        ("bid-over-max", #"{"bid": 10000.0001}"#, "bad_response"),
        ("bid-at-max", #"{"bid": 10000, "expires_in_s": 60}"#, "sold"),
        ("bid-exponent", #"{"bid": 1e3}"#, "bad_response"),
        ("bid-five-decimals", #"{"bid": 1.23456}"#, "bad_response"),
        ("bid-word", #"{"bid": "lots"}"#, "bad_response"),
        ("bid-bool", #"{"bid": true}"#, "bad_response"),
        ("bid-object", #"{"bid": {"amount": 5}}"#, "bad_response"),
        ("bid-string-number", #"{"bid": "12.5"}"#, "outbid"),
        ("exp-huge", #"{"bid": 5, "expires_in_s": 9300000000000000}"#, "bad_response"),
        ("exp-overflow", #"{"bid": 5, "expires_in_s": 99999999999999999999999}"#, "bad_response"),
        ("exp-zero", #"{"bid": 5, "expires_in_s": 0}"#, "bad_response"),
        ("exp-negative", #"{"bid": 5, "expires_in_s": -1}"#, "bad_response"),
        ("exp-fraction", #"{"bid": 5, "expires_in_s": 1.5}"#, "bad_response"),
        ("exp-exponent", #"{"bid": 5, "expires_in_s": 6e1}"#, "bad_response"),
        ("exp-word", #"{"bid": 5, "expires_in_s": "soon"}"#, "bad_response"),
        ("exp-too-long", #"{"bid": 5, "expires_in_s": 86401}"#, "bad_response"),
        ("exp-longest", #"{"bid": 5, "expires_in_s": 86400}"#, "outbid"),
        ("exp-string", #"{"bid": 5, "expires_in_s": "60"}"#, "outbid"),
        ("min-huge", #"{"bid": 5, "min_duration_s": 9300000000000000}"#, "bad_response"),
        ("min-negative", #"{"bid": 5, "min_duration_s": -1}"#, "bad_response"),
        ("min-too-long", #"{"bid": 5, "min_duration_s": 7201}"#, "bad_response"),
        ("not-object", #"[1, 2, 3]"#, "bad_response"),
        ("deep", String(repeating: "[", count: 5000), "bad_response"),
    ]

    func hostileBuyers(campaign: String = "autos") -> [TestExchange.BuyerSpec] {
        Self.leadCases.map { id, body, _ in
            var behavior = BuyerBehavior(latency: .fixed(ms: 1))
            behavior.rawBid = body
            return TestExchange.BuyerSpec(id: id, behavior: behavior, campaign: campaign)
        }
    }

    @Test func everyHostileBidGetsItsReasonAndTheRoundSells() async throws {
        // The at-max bidder wins against the honest 50; every other valid bid is outbid.
        let harness = try await TestExchange(buyers: hostileBuyers() + [bidder("honest", bid: "50.00")])
        for _ in 0..<2 {  // twice: a poisoned answer must not break the next round either
            let result = try await harness.runLead()
            #expect(result.sold)
            let round = try await harness.round(result.auctionID)
            for (id, _, expected) in Self.leadCases {
                #expect(round.reason(of: id) == expected, "buyer \(id)")
            }
            #expect(round.reason(of: "honest") == "outbid")
            #expect(round.durationUs < round.tmaxMs * 1000)
        }
        await harness.shutdown()
    }

    @Test func hostileExpiryNeverReachesAHeldPing() async throws {
        let harness = try await TestExchange(buyers: hostileBuyers() + [bidder("honest", bid: "50.00")])
        let result = try await harness.exchange.runPing(
            harness.submission(#"{"campaign": "autos", "lead": {"zip": "94107", "state": "CA"}}"#, shape: .pingOnly),
            seller: harness.seller, arrival: .now)
        #expect(result.hasBid)
        // The winner's 60 s (or the campaign default) holds the bid, nothing from a hostile answer.
        let nowMs = Int64(Date().timeIntervalSince1970 * 1000)
        #expect(result.expiresAtMs > nowMs && result.expiresAtMs < nowMs + 120_000)
        let round = try await harness.round(result.pingID)
        #expect(round.reason(of: "exp-huge") == "bad_response")
        #expect(round.reason(of: "bid-huge") == "bad_response")
        await harness.shutdown()
    }

    @Test func hostileCallBidsAreBadResponses() async throws {
        func caller(_ id: String, _ body: String) -> TestExchange.BuyerSpec {
            var behavior = BuyerBehavior(latency: .fixed(ms: 1))
            behavior.rawBid = body
            return TestExchange.BuyerSpec(id: id, behavior: behavior, campaign: "calls")
        }
        let harness = try await TestExchange(buyers: [
            caller("min-huge", #"{"bid": 90, "destination": "+18005550111", "min_duration_s": 9300000000000000}"#),
            caller("min-fraction", #"{"bid": 90, "destination": "+18005550112", "min_duration_s": 90.5}"#),
            caller("exp-huge", #"{"bid": 90, "destination": "+18005550113", "expires_in_s": 9300000000000000}"#),
            caller("dest-garbage", #"{"bid": 90, "destination": "call me maybe"}"#),
            caller("ok", #"{"bid": 20, "destination": "+18005550114", "min_duration_s": "120", "expires_in_s": "30"}"#),
        ])
        let routing = try await harness.runCall()
        #expect(routing.routed)
        #expect(routing.destination == "+18005550114")
        #expect(routing.minDurationS == 120)
        let round = try await harness.round(routing.callID)
        for id in ["min-huge", "min-fraction", "exp-huge", "dest-garbage"] {
            #expect(round.reason(of: id) == "bad_response", "buyer \(id)")
        }
        await harness.shutdown()
    }

    @Test func fixedPriceBuyersRespectFloors() async throws {
        let harness = try await TestExchange(buyers: [
            TestExchange.BuyerSpec(id: "cheap-fixed", fixedPrice: "0.50"),
            bidder("bidder", bid: "3.00"),
        ])
        let result = try await harness.runLead()
        let round = try await harness.round(result.auctionID)
        #expect(round.reason(of: "cheap-fixed") == "below_floor")
        #expect(round.winnerID == "bidder")
        await harness.shutdown()
    }
}
