import BuyerFleet
import Foundation
import GavelCore
import GavelExchange
import GavelStore
import Testing

/// Live state survives a restart: calls in progress (with their buyers' slots), held ping bids and
/// tracking-number reservations are written through and restored.
@Suite(.serialized)
struct RestartTests {
    @Test func aCallInProgressIsBilledAfterARestartAndHoldsItsSlot() async throws {
        let harness = try await TestExchange(buyers: [
            callBidder("busy", bid: "40.00", destination: "+18005550101", minDuration: 90, yaml: "caps: {concurrent: 1}"),
            callBidder("spare", bid: "20.00", destination: "+18005550102"),
        ])
        let routed = try await harness.runCall(TestExchange.call(number: "+14155550021"))
        #expect(routed.destination == "+18005550101")
        _ = try await harness.event(routed.callID, .connected)

        await harness.stopServer()
        try await harness.openServer()
        #expect(await harness.exchange.liveCallCount() == 1)
        #expect(harness.exchange.ledger.liveCalls(buyerID: "busy") == 1)
        // The concurrent cap counts the call that was live before the restart.
        let meanwhile = try await harness.runCall(TestExchange.call(number: "+14155550022"))
        #expect(meanwhile.destination == "+18005550102")
        #expect(try await harness.round(meanwhile.callID).reason(of: "busy") == "capped")

        let completed = try await harness.event(routed.callID, .completed, duration: 120)
        #expect(completed.status == "converted")
        #expect(completed.payout == Money(20))  // 50% of 40
        let round = try await harness.round(routed.callID)
        #expect(round.status == "converted")
        #expect(round.events.map(\.type) == ["routed", "connected", "completed"])
        #expect(harness.exchange.ledger.liveCalls(buyerID: "busy") == 0)
        #expect(try await harness.store.counts().sales == 1)

        // A completed call is not live after another restart, and its slot stays free.
        await harness.stopServer()
        try await harness.openServer()
        #expect(await harness.exchange.liveCallCount() == 1)  // `meanwhile` is still on the line
        #expect(harness.exchange.ledger.liveCalls(buyerID: "busy") == 0)
        await harness.shutdown()
    }

    @Test func aFailedTransferAfterARestartGoesToTheNextBid() async throws {
        let harness = try await TestExchange(buyers: [
            callBidder("first", bid: "40.00", destination: "+18005550101"),
            callBidder("second", bid: "20.00", destination: "+18005550102"),
        ])
        let routed = try await harness.runCall()
        await harness.stopServer()
        try await harness.openServer()
        let failed = try await harness.event(routed.callID, .failed)
        #expect(failed.status == "routed")
        #expect(failed.routing?.destination == "+18005550102")
        #expect(harness.exchange.ledger.liveCalls(buyerID: "first") == 0)
        #expect(harness.exchange.ledger.liveCalls(buyerID: "second") == 1)
        await harness.shutdown()
    }

    @Test func aHeldPingCanBePostedAfterARestart() async throws {
        let harness = try await TestExchange(buyers: [bidder("buyer", bid: "12.00")])
        let ping = try await harness.exchange.runPing(
            harness.submission(#"{"campaign": "autos", "lead": {"zip": "94107", "state": "CA"}, "consent": {"tcpa_consent": true, "signer": "Jo Doe"}}"#,
                               shape: .pingOnly),
            seller: harness.seller, arrival: .now)
        #expect(ping.hasBid)
        await harness.stopServer()
        try await harness.openServer()
        let result = try await harness.exchange.runPost(
            pingID: ping.pingID, lead: nil, contact: JSONObject(["email": "jo@example.com"]), seller: harness.seller, arrival: .now)
        #expect(result.sold)
        #expect(result.payout == Money(6))
        // The post carried the whole consent, restored from the contact table.
        let post = try #require(harness.fleet.recentPosts(buyer: "buyer").last)
        #expect(String(decoding: post, as: UTF8.self).contains("Jo Doe"))
        await harness.shutdown()
    }

    @Test func aTrackingNumberReservationSurvivesARestart() async throws {
        let harness = try await TestExchange(buyers: [callBidder("buyer", bid: "30.00", destination: "+18005550101")])
        let campaign = try #require(harness.exchange.config.campaigns["calls"])
        let session = await harness.exchange.assignTrackingNumber(
            campaign: campaign, tracking: try #require(campaign.tracking), visit: .init(source: "google", keyword: "boiler"))
        #expect(session.exclusive)
        await harness.stopServer()
        try await harness.openServer()
        // The number is still taken, and a call to it is attributed to the session.
        let next = await harness.exchange.assignTrackingNumber(campaign: campaign, tracking: campaign.tracking!, visit: .init(source: "google"))
        #expect(next.number != session.number)
        let routing = try await harness.runCall(#"{"caller": {"number": "+14155550199"}, "dialed": "\#(session.number)"}"#)
        let round = try await harness.round(routing.callID)
        let attribution = try JSONValue.parse(try #require(round.attributionJSON))
        #expect(attribution["session_id"]?.stringValue == session.id)
        #expect(attribution["keyword"] == "boiler")
        await harness.shutdown()
    }
}

/// Review findings, pinned by tests.
@Suite(.serialized)
struct LifecycleEdgeTests {
    @Test func concurrentEventsForAnEndingCallAllAnswer() async throws {
        let harness = try await TestExchange(buyers: [callBidder("buyer", bid: "30.00", destination: "+18005550101")])
        let routed = try await harness.runCall()
        // Five `completed` at once: one ends the call, the others learn it ended; none waits forever.
        let outcomes = await withTaskGroup(of: Bool.self) { group in
            for _ in 0..<5 {
                group.addTask { (try? await harness.event(routed.callID, .completed, duration: 120)) != nil }
            }
            var succeeded = 0
            for await ok in group where ok { succeeded += 1 }
            return succeeded
        }
        #expect(outcomes == 1)
        #expect(try await harness.store.counts().sales == 1)
        await harness.shutdown()
    }

    @Test func anIntentLeftBehindByAFinalRoundIsNotMadeUnknown() async throws {
        let harness = try await TestExchange(buyers: [bidder("only", bid: "10.00")])
        let result = try await harness.runLead()
        let nowMs = Int64(Date().timeIntervalSince1970 * 1000)
        // An intent that landed after its round was recorded (a late write): the round stays as recorded.
        try await harness.exchange.store.record(PostIntent(
            roundID: result.auctionID, kind: .lead, sellerID: "seller-one", campaignID: "autos", buyerID: "only", price: Money(10),
            createdAtMs: nowMs, sentAtMs: nowMs, tmaxMs: 5000, leadJSON: "{}", idempotencyScope: nil, idempotencyHash: nil,
            capIncrements: []))
        await harness.stopServer()
        try await harness.openServer()
        #expect(try await harness.round(result.auctionID).status == "sold")
        #expect(try await harness.exchange.store.postUnknownCount() == 0)
        #expect(try await harness.store.openPostIntents().isEmpty)
        await harness.shutdown()
    }
}
