import BuyerFleet
import Foundation
import GavelCore
import GavelExchange
import GavelStore
import Testing

/// CONTRACT v2 "Idempotency": repeats with the same `Idempotency-Key` get the first final answer,
/// and nothing is sold twice — across a restart, a failed commit and a post whose answer was lost.
@Suite(.serialized)
struct IdempotencyTests {
    func key(_ value: String) -> [(name: String, value: String)] { [("Idempotency-Key", value)] }

    @Test func aRepeatedLeadGetsTheSameAnswerAndSellsOnce() async throws {
        let harness = try await TestExchange(buyers: [bidder("only", bid: "10.00")])
        try await harness.startHTTP()
        let body = TestExchange.lead()
        let first = try await harness.rawHTTP(.post, "/v1/leads", body: body, headers: key("lead-1"))
        #expect(first.status == 200)
        // The same JSON with its keys in another order and other spacing is the same request.
        let reordered = #"{"contact": {"email": "jo@example.com", "phone": "+15551234567", "address": "1 Main St", "first_name": "Jo", "last_name": "Doe"},  "lead": {"age": 34, "state": "CA", "zip": "94107"}, "campaign": "autos"}"#
        let second = try await harness.rawHTTP(.post, "/v1/leads", body: reordered, headers: key("lead-1"))
        #expect(second.status == 200)
        #expect(second.body == first.body)
        #expect(harness.fleet.stats(for: "only").posts == 1)
        #expect(try await harness.store.counts().sales == 1)

        // Across a restart too.
        await harness.stopServer()
        try await harness.openServer()
        try await harness.startHTTP()
        let third = try await harness.rawHTTP(.post, "/v1/leads", body: body, headers: key("lead-1"))
        #expect(third.status == 200 && third.body == first.body)
        #expect(harness.fleet.stats(for: "only").posts == 1)

        // Another body under the same key is refused; another key is a new lead.
        let other = try await harness.http(.post, "/v1/leads", body: TestExchange.lead(email: "al@example.com"), headers: key("lead-1"))
        #expect(other.status == 422)
        #expect(other.json["error"]?["code"] == .string("idempotency_key_reused"))
        let fresh = try await harness.http(.post, "/v1/leads", body: TestExchange.lead(email: "al@example.com"), headers: key("lead-2"))
        #expect(fresh.status == 200)
        #expect(harness.fleet.stats(for: "only").posts == 2)
        await harness.shutdown()
    }

    @Test func finalRejectionsAreRepeatedAndBadKeysRefused() async throws {
        let harness = try await TestExchange(buyers: [bidder("only", bid: "10.00")])
        try await harness.startHTTP()
        let bad = #"{"campaign": "autos", "lead": {"zip": "941", "state": "CA"}, "contact": {"email": "jo@example.com"}}"#
        let first = try await harness.rawHTTP(.post, "/v1/leads", body: bad, headers: key("bad-1"))
        #expect(first.status == 422)
        let again = try await harness.rawHTTP(.post, "/v1/leads", body: bad, headers: key("bad-1"))
        #expect(again.status == 422 && again.body == first.body)

        for invalid in [String(repeating: "k", count: 256), "tab\there", "naïve"] {
            let answer = try await harness.http(.post, "/v1/leads", body: TestExchange.lead(), headers: key(invalid))
            #expect(answer.status == 400)
            #expect(answer.json["error"]?["code"] == .string("invalid_header"))
        }
        #expect(harness.fleet.stats(for: "only").posts == 0)
        await harness.shutdown()
    }

    @Test func pingsPostsAndCallsHonourKeys() async throws {
        let harness = try await TestExchange(buyers: [
            bidder("lead-buyer", bid: "10.00"),
            callBidder("call-buyer", bid: "30.00", destination: "+18005550101"),
        ])
        try await harness.startHTTP()
        let ping = #"{"campaign": "autos", "lead": {"zip": "94107", "state": "CA"}}"#
        let pinged = try await harness.rawHTTP(.post, "/v1/pings", body: ping, headers: key("p-1"))
        let pingedAgain = try await harness.rawHTTP(.post, "/v1/pings", body: ping, headers: key("p-1"))
        #expect(pinged.status == 200 && pingedAgain.body == pinged.body)
        #expect(harness.fleet.stats(for: "lead-buyer").pings == 1)
        let pingID = try #require(try JSONValue.parse(pinged.body)["ping_id"]?.stringValue)
        let post = #"{"ping_id": "\#(pingID)", "contact": {"email": "jo@example.com"}}"#
        let posted = try await harness.rawHTTP(.post, "/v1/posts", body: post, headers: key("post-1"))
        let postedAgain = try await harness.rawHTTP(.post, "/v1/posts", body: post, headers: key("post-1"))
        #expect(posted.status == 200 && postedAgain.body == posted.body)
        #expect(harness.fleet.stats(for: "lead-buyer").posts == 1)

        let call = try await harness.rawHTTP(.post, "/v1/calls", body: TestExchange.call(), headers: key("c-1"))
        let callAgain = try await harness.rawHTTP(.post, "/v1/calls", body: TestExchange.call(), headers: key("c-1"))
        #expect(call.status == 200 && callAgain.body == call.body)
        #expect(harness.fleet.stats(for: "call-buyer").pings == 1)
        let callID = try #require(try JSONValue.parse(call.body)["call_id"]?.stringValue)
        let completed = #"{"type": "completed", "duration_s": 120}"#
        let done = try await harness.rawHTTP(.post, "/v1/calls/\(callID)/events", body: completed, headers: key("e-1"))
        let doneAgain = try await harness.rawHTTP(.post, "/v1/calls/\(callID)/events", body: completed, headers: key("e-1"))
        #expect(done.status == 200 && doneAgain.body == done.body)
        #expect(try await harness.store.counts().sales == 2)
        await harness.shutdown()
    }

    @Test func aFailedCommitAfterTheBuyerAcceptedNeverSellsTwice() async throws {
        let slowPost = BuyerBehavior(latency: .fixed(ms: 1), bidMin: "20.00", bidMax: "20.00", postLatency: .fixed(ms: 1500))
        let harness = try await TestExchange(buyers: [
            TestExchange.BuyerSpec(id: "first", behavior: slowPost), bidder("second", bid: "10.00"),
        ])
        try await harness.startHTTP()
        // While the post is with the buyer (its intent already written), another process takes the
        // database's write lock: the round cannot commit, the seller gets a 503, the sale is kept.
        let body = TestExchange.lead()
        let request = Task { try await harness.http(.post, "/v1/leads", body: body, headers: key("retry-1")) }
        try await Task.sleep(for: .milliseconds(600))
        let blocker = try harness.blockWrites(seconds: 4)
        let failed = try await request.value
        #expect(failed.status == 503)
        #expect(harness.fleet.stats(for: "first").posts == 1)
        while blocker.isRunning { try await Task.sleep(for: .milliseconds(50)) }

        // The retry gets the recorded sale, and no buyer sees the lead again.
        let retried = try await harness.http(.post, "/v1/leads", body: body, headers: key("retry-1"))
        #expect(retried.status == 200)
        #expect(retried.json["status"] == .string("sold"))
        #expect(harness.fleet.stats(for: "first").posts == 1)
        #expect(harness.fleet.stats(for: "second").posts == 0)
        #expect(try await harness.store.counts().sales == 1)
        await harness.shutdown()
    }

    @Test func aPostWhoseAnswerWasLostBecomesPostUnknownAtStartUp() async throws {
        let harness = try await TestExchange(buyers: [bidder("only", bid: "10.00", yaml: "caps: {daily: 5}")])
        try await harness.startHTTP()
        let body = TestExchange.lead()
        let ticket = try #require(try IdempotencyTicket.make(
            key: "lost-1", sellerID: "seller-one", method: "POST", path: "/v1/leads", body: Array(body.utf8)))
        // What the exchange writes ahead of a post, left behind by a crash before the answer was recorded.
        let nowMs = Int64(Date().timeIntervalSince1970 * 1000)
        try await harness.exchange.store.record(PostIntent(
            roundID: "auc_lost", kind: .lead, sellerID: "seller-one", campaignID: "autos", buyerID: "only", price: Money(10),
            createdAtMs: nowMs, sentAtMs: nowMs, tmaxMs: 5000, leadJSON: #"{"zip":"94107"}"#, idempotencyScope: ticket.scope,
            idempotencyHash: ticket.bodyHash, capIncrements: [CapIncrement(buyerID: "only", window: "D:test", count: 1, spend: Money(10))],
            contactHash: "h-lost"))
        await harness.stopServer()
        try await harness.openServer()
        try await harness.startHTTP()

        let round = try await harness.round("auc_lost")
        #expect(round.status == "post_unknown")
        #expect(round.phase == "final")
        #expect(round.reason(of: "only") == "post_unknown")
        #expect(round.posts.last?.result == "post_unknown")
        let shown = try await harness.http(.get, "/v1/auctions/auc_lost")
        #expect(shown.json["status"] == .string("post_unknown"))
        let repeated = try await harness.http(.post, "/v1/leads", body: body, headers: key("lost-1"))
        #expect(repeated.status == 409)
        #expect(repeated.json["error"]?["code"] == .string("outcome_unknown"))
        #expect(harness.fleet.stats(for: "only").posts == 0)
        #expect(harness.exchange.ledger.usage(buyerID: "only", window: "D:test").count == 1)
        #expect(try await harness.exchange.store.postUnknownCount() == 1)
        // The buyer may have the contact: its duplicate window counts it like a sale.
        #expect(try await harness.exchange.store.salesWithContact(sinceMs: 0).contains { $0.contactHash == "h-lost" && $0.buyerID == "only" })
        await harness.shutdown()
    }

    @Test func sweepDeletesOnlyExpiredKeys() async throws {
        let harness = try await TestExchange(buyers: [bidder("only", bid: "10.00")])
        let store = harness.exchange.store
        let nowMs = Int64(Date().timeIntervalSince1970 * 1000)
        try await store.record(StoredAnswer(scope: "old", bodyHash: "h", status: 200, response: "{}", roundID: nil, createdAtMs: nowMs - 25 * 3_600_000))
        try await store.record(StoredAnswer(scope: "new", bodyHash: "h", status: 200, response: "{}", roundID: nil, createdAtMs: nowMs))
        #expect(await harness.exchange.sweepIdempotencyKeys() == 1)
        #expect(try await store.answer(scope: "new", notBeforeMs: 0) != nil)
        #expect(try await store.answer(scope: "old", notBeforeMs: 0) == nil)
        await harness.shutdown()
    }
}
