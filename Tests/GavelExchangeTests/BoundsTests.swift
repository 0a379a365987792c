import BuyerFleet
import Foundation
import GavelCore
import GavelExchange
import GavelServer
import GavelStore
import Testing

/// Every in-memory map has a bound; at a bound a held bid or a live call is never evicted: new
/// rounds get 503 `overloaded` instead.
@Suite(.serialized)
struct BoundsTests {
    func reopened(_ harness: TestExchange, _ change: @escaping @Sendable (inout ServerSettings) -> Void) async throws {
        harness.configureSettings = change
        await harness.stopServer()
        try await harness.openServer()
    }

    // A single node's memory bounds: on PostgreSQL held pings and live calls live in the database.
    @Test(.enabled(if: TestExchange.postgresURL == nil, "in-memory bound of a SQLite node"))
    func fullHeldBidsRefuseNewPingsAndKeepTheHeldOnes() async throws {
        let harness = try await TestExchange(buyers: [bidder("buyer", bid: "10.00")])
        try await reopened(harness) { $0.exchange.heldPingCapacity = 2 }
        let ping = #"{"campaign": "autos", "lead": {"zip": "94107", "state": "CA"}}"#
        let first = try await harness.exchange.runPing(harness.submission(ping, shape: .pingOnly), seller: harness.seller, arrival: .now)
        let second = try await harness.exchange.runPing(harness.submission(ping, shape: .pingOnly), seller: harness.seller, arrival: .now)
        await #expect(throws: ExchangeError.self) {
            _ = try await harness.exchange.runPing(harness.submission(ping, shape: .pingOnly), seller: harness.seller, arrival: .now)
        }
        #expect(harness.fleet.stats(for: "buyer").pings == 2)  // shed before any work
        for held in [first, second] {
            let result = try await harness.exchange.runPost(
                pingID: held.pingID, lead: nil, contact: JSONObject(["email": "jo@example.com"]), seller: harness.seller, arrival: .now)
            #expect(result.sold)
        }
        // Posted rounds make room again.
        let third = try await harness.exchange.runPing(harness.submission(ping, shape: .pingOnly), seller: harness.seller, arrival: .now)
        #expect(third.hasBid)
        await harness.shutdown()
    }

    @Test(.enabled(if: TestExchange.postgresURL == nil, "in-memory bound of a SQLite node"))
    func fullLiveCallsRefuseNewCallsOverHTTP() async throws {
        let harness = try await TestExchange(buyers: [callBidder("buyer", bid: "30.00", destination: "+18005550101")])
        try await reopened(harness) { $0.exchange.liveCallCapacity = 1 }
        try await harness.startHTTP()
        let first = try await harness.http(.post, "/v1/calls", body: TestExchange.call(number: "+14155550031"))
        #expect(first.status == 200)
        let response = try await harness.rawHTTP(.post, "/v1/calls", body: TestExchange.call(number: "+14155550032"))
        #expect(response.status == 503)
        let json = try JSONValue.parse(response.body)
        #expect(json["error"]?["code"] == .string("overloaded"))
        // The live call is untouched and ends normally.
        let callID = try #require(first.json["call_id"]?.stringValue)
        let done = try await harness.http(.post, "/v1/calls/\(callID)/events", body: #"{"type": "completed", "duration_s": 100}"#)
        #expect(done.json["status"] == .string("converted"))
        await harness.shutdown()
    }

    @Test func roundsPastTheInFlightLimitAreShedAtOnce() async throws {
        let harness = try await TestExchange(buyers: [bidder("slow", bid: "10.00", latencyMs: 600)])
        try await reopened(harness) { $0.exchange.maxRoundsInFlight = 1 }
        try await harness.startHTTP()
        let running = Task { try await harness.http(.post, "/v1/leads", body: TestExchange.lead()) }
        try await Task.sleep(for: .milliseconds(200))
        let shed = try await harness.rawHTTP(.post, "/v1/leads", body: TestExchange.lead(email: "al@example.com"))
        #expect(shed.status == 503)
        #expect(try JSONValue.parse(shed.body)["error"]?["code"] == .string("overloaded"))
        #expect(harness.fleet.stats(for: "slow").pings == 1)  // shed before any ping
        // Posts of held pings and call events are never shed; only round-starting requests are.
        #expect(try await running.value.status == 200)
        #expect(try await harness.http(.post, "/v1/leads", body: TestExchange.lead(email: "al@example.com")).status == 200)
        await harness.shutdown()
    }

    @Test func theLedgerForgetsOnlyWhatNoCapOrWindowNeeds() async throws {
        let ledger = BuyerLedger()
        let buyer = Buyer(id: "b", campaigns: ["autos"], ping: nil, post: nil, duplicateWindowDays: 1)
        let now = Date()
        let old = now.addingTimeInterval(-40 * 86_400)
        for date in [old, now] {
            guard case .success(let reservation) = ledger.reserve(buyer: buyer, price: Money(5), contactHash: "h-\(date)", at: date) else {
                Issue.record("reservation refused")
                return
            }
            _ = ledger.commit(reservation, at: date)
        }
        #expect(ledger.entryCount == 8)  // 2 × (hour, day, month) + 2 contacts
        let dropped = ledger.sweep(at: now, longestDuplicateWindowDays: 1)
        #expect(dropped == 3)  // the old hour and day, and the old contact; months are kept 93 days
        #expect(ledger.usage(buyerID: "b", window: CapWindowsProbe.day(now)).count == 1)
    }
}

/// Window keys as the ledger makes them (UTC buyers).
enum CapWindowsProbe {
    static func day(_ date: Date) -> String {
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = TimeZone(identifier: "UTC")!
        let parts = calendar.dateComponents([.year, .month, .day], from: date)
        return String(format: "D:%04d-%02d-%02d", parts.year!, parts.month!, parts.day!)
    }
}

/// The database never holds a seller past its budget, and caps hold while calls are on the line.
@Suite(.serialized)
struct BudgetTests {
    @Test func aLockedDatabaseGivesACleanServiceUnavailableWithinTheBudget() async throws {
        let harness = try await TestExchange(buyers: [bidder("buyer", bid: "10.00", latencyMs: 1)])
        try await harness.startHTTP()
        let blocker = try harness.blockWrites(seconds: 3)
        try await Task.sleep(for: .milliseconds(500))  // the lock is taken
        let limitBefore = harness.exchange.admissionLimit
        let started = ContinuousClock.now
        let answer = try await harness.http(.post, "/v1/leads", body: TestExchange.lead(campaign: "tiny"))
        let waited = ContinuousClock.now - started
        #expect(answer.status == 503)
        #expect(answer.json["error"]?["code"] == .string("storage_timeout"))
        // A commit that missed its deadline is the exchange's own congestion: fewer rounds are admitted.
        #expect(harness.exchange.admissionLimit < limitBefore)
        // tiny's budget is 300 ms; the answer must not wait for the database's 1 s busy (or lock) timeout.
        #expect(waited < .milliseconds(300 + 600))
        #expect(harness.fleet.stats(for: "buyer").posts == 0)  // no post without its intent on disk
        blocker.waitUntilExit()
        await harness.shutdown()
    }

    @Test func conversionCapsCountCallsStillOnTheLine() async throws {
        let ledger = BuyerLedger()
        var caps = BuyerCaps()
        caps.daily = 1
        caps.countConversions = true
        let buyer = Buyer(id: "b", campaigns: ["calls"], ping: nil, post: nil, caps: caps)
        guard case .success = ledger.reserveCall(buyer: buyer, price: Money(30), callerHash: "one", at: Date()) else {
            Issue.record("first call refused")
            return
        }
        // The first call may still convert: a second would overshoot the cap of one conversion.
        guard case .failure(.capped) = ledger.reserveCall(buyer: buyer, price: Money(30), callerHash: "two", at: Date()) else {
            Issue.record("second call was not capped")
            return
        }
    }
}
