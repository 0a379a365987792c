import BuyerFleet
import Foundation
import GavelCore
import GavelExchange
import Testing

/// The seller HTTP API of CONTRACT.md, through a real server on a free port.
@Suite(.serialized)
struct SellerAPITests {
    @Test func leadIsSoldAndItsRoundReadsBack() async throws {
        let harness = try await TestExchange(buyers: [bidder("winner", bid: "18.00"), bidder("loser", bid: "11.00")])
        try await harness.startHTTP()
        let (status, json) = try await harness.http(.post, "/v1/leads", body: TestExchange.lead())
        #expect(status == 200)
        #expect(json["status"] == "sold")
        #expect(json["payout"] == .number("9"))
        let id = try #require(json["auction_id"]?.stringValue)

        let (readStatus, round) = try await harness.http(.get, "/v1/auctions/\(id)")
        #expect(readStatus == 200)
        #expect(round["winner"] == "winner")
        #expect(round["status"] == "sold")
        guard case .array(let buyers)? = round["buyers"] else { Issue.record("no buyers array"); return }
        #expect(buyers.count == 2)
        #expect(buyers.contains { $0["buyer"] == "loser" && $0["reason"] == "outbid" && $0["bid"] == .number("11") })
        guard case .array(let posts)? = round["posts"] else { Issue.record("no posts array"); return }
        #expect(posts.count == 1)
        // The read-back never shows the contact.
        #expect(!round.serialized.contains("example.com"))

        // Another seller sees nothing of it.
        let (otherStatus, otherJSON) = try await harness.http(.get, "/v1/auctions/\(id)", key: TestExchange.otherSellerKey)
        #expect(otherStatus == 404)
        #expect(otherJSON["error"]?["code"] == "not_found")
        await harness.shutdown()
    }

    @Test func missingOrUnknownKeyIs401() async throws {
        let harness = try await TestExchange(buyers: [bidder("b", bid: "5.00")])
        try await harness.startHTTP()
        #expect(try await harness.http(.post, "/v1/leads", body: TestExchange.lead(), key: nil).status == 401)
        let (status, json) = try await harness.http(.post, "/v1/leads", body: TestExchange.lead(), key: "wrong-key-123")
        #expect(status == 401)
        #expect(json["error"]?["code"] == "unauthorized")
        #expect(harness.fleet.stats(for: "b").pings == 0)
        await harness.shutdown()
    }

    @Test func badInputGetsAFieldErrorAndRecordsNothing() async throws {
        let harness = try await TestExchange(buyers: [bidder("b", bid: "5.00")])
        try await harness.startHTTP()
        let cases: [(body: String, status: Int, field: String?)] = [
            ("", 400, nil),
            ("{not json", 400, nil),
            ("[1,2]", 400, nil),
            (#"{"lead": {"zip": "94107", "state": "CA"}, "contact": {"email": "a@b.co"}}"#, 422, "campaign"),
            (#"{"campaign": "nope", "lead": {"zip": "94107", "state": "CA"}, "contact": {"email": "a@b.co"}}"#, 422, "campaign"),
            (#"{"campaign": "autos", "lead": {"state": "CA"}, "contact": {"email": "a@b.co"}}"#, 422, "lead.zip"),
            (#"{"campaign": "autos", "lead": {"zip": "94107", "state": "CA", "email": "x@y.co"}, "contact": {"email": "a@b.co"}}"#, 422, "lead.email"),
            (#"{"campaign": "autos", "lead": {"zip": "94107", "state": "California"}, "contact": {"email": "a@b.co"}}"#, 422, "lead.state"),
            (#"{"campaign": "autos", "lead": {"zip": "94107", "state": "CA"}, "contact": {"email": "nope"}}"#, 422, "contact.email"),
            (#"{"campaign": "autos", "lead": {"zip": "94107", "state": "CA"}}"#, 422, "contact"),
            (#"{"campaign": "autos", "lead": {"zip": "94107", "state": "CA"}, "contact": {"email": "a@b.co"}, "tmax_ms": "fast"}"#, 422, "tmax_ms"),
        ]
        for testCase in cases {
            let (status, json) = try await harness.http(.post, "/v1/leads", body: testCase.body)
            #expect(status == testCase.status, "\(testCase.body)")
            #expect(json["error"]?["code"]?.stringValue != nil, "\(testCase.body)")
            #expect(json["error"]?["message"]?.stringValue != nil, "\(testCase.body)")
            if let field = testCase.field { #expect(json["error"]?["field"]?.stringValue == field, "\(testCase.body)") }
        }
        // A seller not allowed into a campaign.
        let forbidden = try await harness.http(.post, "/v1/leads", body: TestExchange.lead(campaign: "tort"), key: TestExchange.otherSellerKey)
        #expect(forbidden.status == 403)
        // Oversized body.
        let huge = "{\"campaign\": \"autos\", \"lead\": {\"note\": \"" + String(repeating: "x", count: 300_000) + "\"}}"
        #expect(try await harness.http(.post, "/v1/leads", body: huge).status == 413)
        #expect(try await harness.http(.get, "/v1/nothing").status == 404)

        let counts = try await harness.store.counts()
        #expect(counts.rounds == 0)
        #expect(harness.fleet.stats(for: "b").pings == 0)
        await harness.shutdown()
    }

    @Test func pingThenPostSellsOnceAndRepeatsTheFirstResult() async throws {
        let harness = try await TestExchange(buyers: [bidder("top", bid: "40.00"), bidder("next", bid: "30.00")])
        try await harness.startHTTP()
        let ping = try await harness.http(.post, "/v1/pings", body: #"{"campaign": "autos", "lead": {"zip": "94107", "state": "CA"}}"#)
        #expect(ping.status == 200)
        #expect(ping.json["status"] == "bid")
        #expect(ping.json["payout"] == .number("20"))
        #expect(ping.json["expires_at"]?.stringValue?.hasSuffix("Z") == true)
        let pingID = try #require(ping.json["ping_id"]?.stringValue)
        #expect(harness.fleet.stats(for: "top").posts == 0)

        let postBody = #"{"ping_id": "\#(pingID)", "lead": {"zip": "94107", "state": "CA"}, "contact": {"email": "two@example.com"}}"#
        // Two posts at once: one sale, the same answer twice.
        async let first = harness.http(.post, "/v1/posts", body: postBody)
        async let second = harness.http(.post, "/v1/posts", body: postBody)
        let (a, b) = try await (first, second)
        #expect(a.status == 200)
        #expect(b.status == 200)
        #expect(a.json == b.json)
        #expect(a.json["status"] == "sold")
        #expect(a.json["auction_id"]?.stringValue == pingID)
        #expect(harness.fleet.stats(for: "top").posts == 1)
        #expect(harness.fleet.stats(for: "next").posts == 0)
        let third = try await harness.http(.post, "/v1/posts", body: postBody)
        #expect(third.json == a.json)
        #expect(harness.fleet.stats(for: "top").posts == 1)

        // The round reads back whole.
        let round = try await harness.round(pingID)
        #expect(round.phase == "final")
        #expect(round.winnerID == "top")

        // Contact in a ping is refused; unknown pings are 404.
        let withContact = try await harness.http(.post, "/v1/pings", body: #"{"campaign": "autos", "lead": {"zip": "94107", "state": "CA"}, "contact": {"email": "a@b.co"}}"#)
        #expect(withContact.status == 422)
        #expect(withContact.json["error"]?["field"] == "contact")
        let unknown = try await harness.http(.post, "/v1/posts", body: #"{"ping_id": "png_nope", "contact": {"email": "a@b.co"}}"#)
        #expect(unknown.status == 404)
        await harness.shutdown()
    }

    @Test func aMismatchedPostIsRefusedAndLeavesTheBidsHeld() async throws {
        let harness = try await TestExchange(buyers: [bidder("top", bid: "40.00")])
        try await harness.startHTTP()
        let ping = try await harness.http(.post, "/v1/pings", body: #"{"campaign": "autos", "lead": {"zip": "94107", "state": "CA"}}"#)
        let pingID = try #require(ping.json["ping_id"]?.stringValue)
        let wrong = try await harness.http(.post, "/v1/posts", body: #"{"ping_id": "\#(pingID)", "lead": {"state": "TX"}, "contact": {"email": "m@example.com"}}"#)
        #expect(wrong.status == 422)
        #expect(wrong.json["error"]?["code"] == "lead_mismatch")
        #expect(wrong.json["error"]?["field"] == "lead.state")
        #expect(harness.fleet.stats(for: "top").posts == 0)
        let right = try await harness.http(.post, "/v1/posts", body: #"{"ping_id": "\#(pingID)", "lead": {"state": "CA", "age": 40}, "contact": {"email": "m@example.com"}}"#)
        #expect(right.status == 200)
        #expect(right.json["status"] == "sold")
        // The post carried the fields added at post time.
        let post = String(decoding: try #require(harness.fleet.recentPosts(buyer: "top").last), as: UTF8.self)
        #expect(post.contains("\"age\":40"))
        await harness.shutdown()
    }

    @Test func expiredPingIs410() async throws {
        var short = BuyerBehavior(latency: .fixed(ms: 2), bidMin: "9", bidMax: "9")
        short.expiresInS = 1
        let harness = try await TestExchange(buyers: [TestExchange.BuyerSpec(id: "brief", behavior: short)])
        try await harness.startHTTP()
        let ping = try await harness.http(.post, "/v1/pings", body: #"{"campaign": "autos", "lead": {"zip": "94107", "state": "CA"}}"#)
        let pingID = try #require(ping.json["ping_id"]?.stringValue)
        try await Task.sleep(for: .milliseconds(1200))
        let post = try await harness.http(.post, "/v1/posts", body: #"{"ping_id": "\#(pingID)", "contact": {"email": "late@example.com"}}"#)
        #expect(post.status == 410)
        #expect(post.json["error"]?["code"] == "ping_expired")
        #expect(harness.fleet.stats(for: "brief").posts == 0)
        await harness.shutdown()
    }

    @Test func sellersOverTheirRateGet429AndBuyersOverTheirPingRateAreCapped() async throws {
        let harness = try await TestExchange(
            buyers: [bidder("limited", bid: "9.00", yaml: "ping_rate_limit: {per_second: 1, burst: 2}"), bidder("open", bid: "5.00")],
            sellerRateLimit: "{per_second: 1, burst: 3}"
        )
        try await harness.startHTTP()
        var statuses: [Int] = []
        for index in 0..<4 {
            statuses.append(try await harness.http(.post, "/v1/leads", body: TestExchange.lead(email: "rl\(index)@example.com")).status)
        }
        #expect(statuses.prefix(3).allSatisfy { $0 == 200 })
        #expect(statuses.last == 429)
        // Three rounds ran: the buyer limited to a burst of two pings was capped in the third.
        #expect(harness.fleet.stats(for: "limited").pings == 2)
        #expect(harness.fleet.stats(for: "open").pings == 3)
        #expect(try await harness.store.counts().rounds == 3)
        await harness.shutdown()
    }

    @Test func healthAndMetricsAnswer() async throws {
        let harness = try await TestExchange(buyers: [bidder("b", bid: "5.00")])
        try await harness.startHTTP()
        let health = try await harness.http(.get, "/healthz", key: nil)
        #expect(health.status == 200)
        #expect(health.json["status"] == "ok")
        let metrics = try await harness.client.send(.init(url: "http://127.0.0.1:\(harness.port)/metrics", method: .get, timeoutMs: 5000)).get()
        #expect(metrics.status == 200)
        await harness.shutdown()
    }
}
