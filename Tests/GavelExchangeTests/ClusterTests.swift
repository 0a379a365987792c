import BuyerFleet
import Foundation
import GavelCore
import GavelExchange
import GavelPing
import GavelServer
import GavelStore
import Testing

/// Two exchange nodes on one PostgreSQL database (issue 12): caps, held pings, live calls and
/// portal pauses shared exactly. Runs when `GAVEL_TEST_DATABASE_URL` names a server
/// (`scripts/with-postgres.sh swift test --filter ClusterTests`); CI runs it so.
@Suite(.serialized, .enabled(if: TestExchange.clusterDatabaseURL != nil, "needs PostgreSQL: run under scripts/with-postgres.sh"))
struct ClusterTests {
    func cluster(_ buyers: [TestExchange.BuyerSpec]) async throws -> (TestExchange, GavelServer) {
        let first = try await TestExchange(buyers: buyers, databaseURL: TestExchange.clusterDatabaseURL)
        let second = try await first.openPeer()
        return (first, second)
    }

    func seller(_ node: GavelServer) -> Seller { node.exchange.config.sellersByKey[TestExchange.sellerKey]! }

    func runLead(on node: GavelServer, email: String) async throws -> LeadResult {
        let submission = try LeadSubmission.parse(Array(TestExchange.lead(email: email).utf8), shape: .fullLead, seller: seller(node),
                                                  config: node.exchange.config)
        return try await node.exchange.runLead(submission, seller: seller(node), arrival: .now)
    }

    @Test func capsHoldExactlyAcrossTwoNodes() async throws {
        let (first, second) = try await cluster([
            bidder("capped", bid: "10.00", yaml: "caps: {daily: 7, daily_budget: 1000.00}"),
            bidder("spare", bid: "2.00"),
        ])
        let nodes = [first.server!, second]
        let results = try await withThrowingTaskGroup(of: LeadResult.self) { group in
            for index in 0..<40 {
                let node = nodes[index % 2]
                group.addTask { try await self.runLead(on: node, email: "lead\(index)@example.com") }
            }
            return try await group.reduce(into: []) { $0.append($1) }
        }
        var soldToCapped = 0
        for result in results {
            let round = try await first.round(result.auctionID)
            if round.winnerID == "capped" { soldToCapped += 1 }
        }
        #expect(results.filter(\.sold).count == 40)
        #expect(soldToCapped == 7)
        second.exchange.shutdown()
        await first.shutdown()
    }

    @Test func aPingPostedOnBothNodesAtOnceSellsOnce() async throws {
        let (first, second) = try await cluster([bidder("only", bid: "10.00", latencyMs: 2)])
        let ping = try await first.exchange.runPing(
            first.submission(#"{"campaign": "autos", "lead": {"zip": "94107", "state": "CA"}}"#, shape: .pingOnly), seller: first.seller, arrival: .now)
        #expect(ping.hasBid)
        let contact = try #require(try JSONValue.parse(Array(#"{"first_name": "Jo", "last_name": "Doe", "email": "jo@example.com", "phone": "+15551234567"}"#.utf8)).objectValue)
        async let onFirst = first.exchange.runPost(pingID: ping.pingID, lead: nil, contact: contact, seller: first.seller, arrival: .now)
        async let onSecond = second.exchange.runPost(pingID: ping.pingID, lead: nil, contact: contact, seller: seller(second), arrival: .now)
        let (a, b) = try await (onFirst, onSecond)
        #expect(a == b)
        #expect(a.sold)
        #expect(first.fleet.stats(for: "only").posts == 1)
        second.exchange.shutdown()
        await first.shutdown()
    }

    @Test func aPingHeldOnOneNodeIsPostedOnTheOther() async throws {
        let (first, second) = try await cluster([bidder("only", bid: "10.00", latencyMs: 2)])
        let ping = try await first.exchange.runPing(
            first.submission(#"{"campaign": "autos", "lead": {"zip": "94107", "state": "CA"}}"#, shape: .pingOnly), seller: first.seller, arrival: .now)
        let contact = try #require(try JSONValue.parse(Array(#"{"first_name": "Jo", "last_name": "Doe", "email": "jo@example.com", "phone": "+15551234567"}"#.utf8)).objectValue)
        let result = try await second.exchange.runPost(pingID: ping.pingID, lead: nil, contact: contact, seller: seller(second), arrival: .now)
        #expect(result.sold)
        #expect(try await first.round(ping.pingID).status == "sold")
        // A later repeat on the first node gets the same result from the database.
        let repeated = try await first.exchange.runPost(pingID: ping.pingID, lead: nil, contact: contact, seller: first.seller, arrival: .now)
        #expect(repeated == result)
        second.exchange.shutdown()
        await first.shutdown()
    }

    @Test func liveCallsAreSharedAndTheirEventsRunOnAnyNode() async throws {
        let (first, second) = try await cluster([
            callBidder("busy", bid: "40.00", destination: "+18005550101", yaml: "caps: {concurrent: 1}"),
            callBidder("spare", bid: "20.00", destination: "+18005550102"),
        ])
        let call = { (node: GavelServer, number: String) async throws -> CallRouting in
            let submission = try CallSubmission.parse(Array(TestExchange.call(number: number).utf8), seller: self.seller(node),
                                                      config: node.exchange.config)
            return try await node.exchange.runCall(submission, seller: self.seller(node), arrival: .now)
        }
        let firstCall = try await call(first.server, "+14155550011")
        #expect(firstCall.destination == "+18005550101")
        // The other node sees the busy buyer's one slot taken.
        let secondCall = try await call(second, "+14155550012")
        #expect(secondCall.destination == "+18005550102")
        // The first call's end is reported to the second node, which frees the slot for everyone.
        let ended = try await second.exchange.handleCallEvent(callID: firstCall.callID, event: CallEvent(kind: .completed, durationS: 200),
                                                              seller: seller(second))
        #expect(ended.status == "converted")
        let thirdCall = try await call(first.server, "+14155550013")
        #expect(thirdCall.destination == "+18005550101")
        // An event for a call that ended is refused on either node.
        await #expect(throws: Exchange.PostError.self) {
            try await first.exchange.handleCallEvent(callID: firstCall.callID, event: CallEvent(kind: .completed, durationS: 10),
                                                     seller: first.seller)
        }
        second.exchange.shutdown()
        await first.shutdown()
    }

    @Test func aPortalPauseOnOneNodeReachesTheOther() async throws {
        let (first, second) = try await cluster([bidder("pausing", bid: "10.00")])
        try await first.startHTTP()
        let secondTask = Task { try await second.run(signals: []) { _ in } }
        try await Task.sleep(for: .milliseconds(300))  // the second node's listener connects
        try await first.exchange.setPortalPause(buyerID: "pausing", paused: true)
        let deadline = ContinuousClock.now + .seconds(3)
        while !second.exchange.isPortalPaused("pausing"), ContinuousClock.now < deadline {
            try await Task.sleep(for: .milliseconds(20))
        }
        #expect(second.exchange.isPortalPaused("pausing"))
        secondTask.cancel()
        _ = try? await secondTask.value
        await first.shutdown()
    }

    @Test func aKeyedRequestRunningOnOneNodeIsNotRunAgainOnTheOther() async throws {
        // Slow answers keep the first request running while its repeat reaches the other node.
        let (first, second) = try await cluster([bidder("slow", bid: "10.00", latencyMs: 400)])
        try await first.startHTTP()
        let (ports, continuation) = AsyncStream<Int>.makeStream()
        let secondTask = Task { try await second.run(signals: []) { port in continuation.yield(port) } }
        var secondPort = 0
        for await port in ports { secondPort = port; break }
        let headers: [(name: String, value: String)] = [("Content-Type", "application/json"), ("Authorization", "Bearer \(TestExchange.sellerKey)"),
                                                        ("Idempotency-Key", "cluster-key-1")]
        let body = Array(TestExchange.lead().utf8)
        let client = first.client
        let send: @Sendable (Int) async throws -> HTTPResponse = { port in
            try await client.send(HTTPRequest(url: "http://127.0.0.1:\(port)/v1/leads", method: .post, headers: headers,
                                              body: body, timeoutMs: 10_000)).get()
        }
        async let onFirst = send(first.port)
        try await Task.sleep(for: .milliseconds(100))
        async let onSecond = send(secondPort)
        let (a, b) = try await (onFirst, onSecond)
        #expect(a.status == 200)
        #expect(b.status == 409)
        #expect(String(decoding: b.body, as: UTF8.self).contains("request_in_progress"))
        // Once it ended, a repeat on the other node replays the first answer, byte for byte.
        let replay = try await send(secondPort)
        #expect(replay.status == 200)
        #expect(replay.body == a.body)
        #expect(first.fleet.stats(for: "slow").posts == 1)
        secondTask.cancel()
        _ = try? await secondTask.value
        await first.shutdown()
    }

    @Test func aTrackingNumberIsHeldByOneVisitorAcrossNodesAndAttributedOnEither() async throws {
        let (first, second) = try await cluster([callBidder("buyer", bid: "30.00", destination: "+18005550101")])
        let campaign = try #require(first.exchange.config.campaigns["calls"])
        let tracking = try #require(campaign.tracking)
        let onFirst = await first.exchange.assignTrackingNumber(campaign: campaign, tracking: tracking,
                                                                visit: .init(source: "google", keyword: "boiler repair"))
        let onSecond = await second.exchange.assignTrackingNumber(campaign: campaign, tracking: tracking, visit: .init(source: "google"))
        let third = await first.exchange.assignTrackingNumber(campaign: campaign, tracking: tracking, visit: .init(source: "google"))
        #expect(onFirst.number == "+18005550201")
        #expect(onSecond.number == "+18005550202")  // not the first visitor's number, though another node gave it
        #expect(third.number == "+18005550299")     // the pool is used up: the fallback
        #expect(!third.exclusive)
        // A call to the first visitor's number reaches the second node: attributed to that visit.
        let body = #"{"caller": {"number": "+14155550199", "state": "CA"}, "dialed": "+18005550201"}"#
        let submission = try CallSubmission.parse(Array(body.utf8), seller: seller(second), config: second.exchange.config)
        let routing = try await second.exchange.runCall(submission, seller: seller(second), arrival: .now)
        let attribution = try JSONValue.parse(try #require(try await first.round(routing.callID).attributionJSON))
        #expect(attribution["match"] == "session")
        #expect(attribution["keyword"] == "boiler repair")
        #expect(attribution["session_id"]?.stringValue == onFirst.id)
        second.exchange.shutdown()
        await first.shutdown()
    }

    @Test func aCallerRoutedOnOneNodeIsADuplicateOnTheOther() async throws {
        let (first, second) = try await cluster([
            callBidder("once", bid: "40.00", destination: "+18005550101", yaml: "duplicate_window_days: 7"),
            callBidder("spare", bid: "20.00", destination: "+18005550102"),
        ])
        let call = { (node: GavelServer) async throws -> CallRouting in
            let submission = try CallSubmission.parse(Array(TestExchange.call(number: "+14155550077").utf8), seller: self.seller(node),
                                                      config: node.exchange.config)
            return try await node.exchange.runCall(submission, seller: self.seller(node), arrival: .now)
        }
        let firstCall = try await call(first.server)
        #expect(firstCall.destination == "+18005550101")
        // A short call: not billed. The caller is still remembered at routing, on every node.
        _ = try await first.exchange.handleCallEvent(callID: firstCall.callID, event: CallEvent(kind: .completed, durationS: 5),
                                                     seller: first.seller)
        let again = try await call(second)
        #expect(again.destination == "+18005550102")
        #expect(try await first.round(again.callID).reason(of: "once") == "duplicate")
        second.exchange.shutdown()
        await first.shutdown()
    }
}
