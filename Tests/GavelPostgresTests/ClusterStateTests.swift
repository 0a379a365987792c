import Foundation
@testable import GavelCore
@testable import GavelPostgres
@testable import GavelStore
import Testing

/// What several nodes share: two `PostgresStore`s (two node ids) on one schema.
@Suite(.enabled(if: PG.enabled, Comment(rawValue: PG.skipped)))
struct ClusterStateTests {
    static let now = Rounds.createdAtMs

    static func claim(_ roundID: String, buyerID: String = "b", node: String = "node-a", daily: Int? = nil, budget: Money? = nil,
                      price: Money = Money(10), contactHash: String? = nil, duplicateDays: Int = 0, isCall: Bool = false,
                      concurrent: Int? = nil, expiresAtMs: Int64 = now + 10_000) -> CapClaim {
        CapClaim(roundID: roundID, buyerID: buyerID, hourKey: "H:2024-07-10T12", dayKey: "D:2024-07-10", monthKey: "M:2024-07", price: price,
                 hourly: nil, daily: daily, monthly: nil, dailyBudget: budget, contactHash: contactHash, duplicateWindowDays: duplicateDays,
                 isCall: isCall, concurrent: concurrent, countsConversions: false, expiresAtMs: expiresAtMs, nodeID: node)
    }

    /// Two stores on one fresh schema.
    static func twoNodes() async throws -> (PostgresStore, PostgresStore) {
        let schema = PG.freshSchema()
        let a = try await PG.store(schema: schema, nodeID: "node-a", poolSize: 8)
        let b = try await PG.store(schema: schema, nodeID: "node-b", poolSize: 8)
        return (a, b)
    }

    @Test func twoHundredClaimsFromTwoNodesAgainstADailyCapOfFifty() async throws {
        let (a, b) = try await Self.twoNodes()
        // Ten sales committed already: forty more fit.
        try await a.record(Rounds.simpleSale(id: "earlier", capIncrements: [CapIncrement(buyerID: "b", window: "D:2024-07-10", count: 10,
                                                                                         spend: Money(100))]))
        let granted = try await withThrowingTaskGroup(of: Bool.self) { group in
            for index in 0..<200 {
                let store = index.isMultiple(of: 2) ? a : b
                group.addTask {
                    try await store.claim(Self.claim("r_\(index)", node: store.configuration.nodeID, daily: 50), atMs: Self.now,
                                          waitingAtMost: .seconds(10)) == .granted
                }
            }
            return try await group.reduce(0) { $0 + ($1 ? 1 : 0) }
        }
        #expect(granted == 40)
        // Claims count until their rounds are written; then the counters hold them, once.
        let usage = try await a.sharedUsage(nowMs: Self.now)
        #expect(usage.counters.first { $0.window == "D:2024-07-10" }?.count == 50)
        #expect(try await a.claim(Self.claim("one_more", daily: 50), atMs: Self.now, waitingAtMost: nil) == .capped)
        // The same claim again (a retry) is granted once, not counted twice.
        let first = try await b.sharedUsage(nowMs: Self.now)
        let grantedID = try #require(try await a.withConnection("find", failure: { .read($0) }) { connection in
            try await connection.rows("SELECT round_id FROM cap_claims LIMIT 1").first?.decode(String.self)
        })
        #expect(try await a.claim(Self.claim(grantedID, daily: 50), atMs: Self.now, waitingAtMost: nil) == .granted)
        #expect(try await b.sharedUsage(nowMs: Self.now).counters.first { $0.window == "D:2024-07-10" }?.count
                == first.counters.first { $0.window == "D:2024-07-10" }?.count)
        // A claim's round written: the claim ends and the counter takes it (still 50 in all).
        try await a.record(Rounds.simpleSale(id: grantedID, capIncrements: [CapIncrement(buyerID: "b", window: "D:2024-07-10", count: 1,
                                                                                         spend: Money(10))]))
        #expect(try await b.sharedUsage(nowMs: Self.now).counters.first { $0.window == "D:2024-07-10" }?.count == 50)
        // A released claim gives its unit back.
        let other = try #require(try await a.withConnection("find", failure: { .read($0) }) { connection in
            try await connection.rows("SELECT round_id FROM cap_claims LIMIT 1").first?.decode(String.self)
        })
        try await b.release(roundID: other, buyerID: "b")
        try await b.release(roundID: other, buyerID: "b")
        #expect(try await a.claim(Self.claim("after_release", daily: 50), atMs: Self.now, waitingAtMost: nil) == .granted)
        await a.closed()
        await b.closed()
    }

    @Test func budgetCountsSpendAndClaimsInFlight() async throws {
        let (a, b) = try await Self.twoNodes()
        try await a.record(Rounds.simpleSale(id: "earlier", capIncrements: [CapIncrement(buyerID: "b", window: "D:2024-07-10", count: 1,
                                                                                         spend: Money(60))]))
        #expect(try await a.claim(Self.claim("r1", budget: Money(100), price: Money(30)), atMs: Self.now, waitingAtMost: nil) == .granted)
        #expect(try await b.claim(Self.claim("r2", node: "node-b", budget: Money(100), price: Money(20)), atMs: Self.now, waitingAtMost: nil)
                == .capped)
        #expect(try await b.claim(Self.claim("r3", node: "node-b", budget: Money(100), price: Money(10)), atMs: Self.now, waitingAtMost: nil)
                == .granted)
        await a.closed()
        await b.closed()
    }

    @Test func duplicatesAgainstSalesAndClaims() async throws {
        let (a, b) = try await Self.twoNodes()
        try await a.record(Rounds.simpleSale(id: "sold_before", buyerID: "b", createdAtMs: Self.now - 2 * 86_400_000, contactHash: "jo"))
        #expect(try await a.claim(Self.claim("r1", contactHash: "jo", duplicateDays: 7), atMs: Self.now, waitingAtMost: nil) == .duplicate)
        #expect(try await a.claim(Self.claim("r2", contactHash: "jo", duplicateDays: 1), atMs: Self.now, waitingAtMost: nil) == .granted)
        // Another node posting the same contact to the same buyer: a duplicate while in flight.
        #expect(try await b.claim(Self.claim("r3", node: "node-b", contactHash: "jo", duplicateDays: 1), atMs: Self.now, waitingAtMost: nil)
                == .duplicate)
        #expect(try await b.claim(Self.claim("r4", buyerID: "other", node: "node-b", contactHash: "jo", duplicateDays: 1), atMs: Self.now,
                                  waitingAtMost: nil) == .granted)
        // No window: no check.
        #expect(try await b.claim(Self.claim("r5", node: "node-b", contactHash: "jo", duplicateDays: 0), atMs: Self.now, waitingAtMost: nil)
                == .granted)
        await a.closed()
        await b.closed()
    }

    @Test func liveCallsNeverAboveConcurrent() async throws {
        let (a, b) = try await Self.twoNodes()
        let granted = try await withThrowingTaskGroup(of: Bool.self) { group in
            for index in 0..<40 {
                let store = index.isMultiple(of: 2) ? a : b
                group.addTask {
                    try await store.claim(Self.claim("call_\(index)", node: store.configuration.nodeID, isCall: true, concurrent: 3),
                                          atMs: Self.now, waitingAtMost: .seconds(10)) == .granted
                }
            }
            return try await group.reduce(0) { $0 + ($1 ? 1 : 0) }
        }
        #expect(granted == 3)
        #expect(try await a.sharedUsage(nowMs: Self.now).liveCalls == ["b": 3])
        // A call's record marks its claim counted; the slot stays until the call ends.
        let live = try await a.withConnection("find", failure: { .read($0) }) { connection in
            try await connection.rows("SELECT round_id FROM cap_claims ORDER BY round_id").map { try $0.decode(String.self) }
        }
        var record = Rounds.simpleSale(id: live[0])
        record.kind = .call
        record.phase = .live
        try await b.record(record)
        #expect(try await a.sharedUsage(nowMs: Self.now).liveCalls == ["b": 3])
        #expect(try await a.claim(Self.claim("call_x", isCall: true, concurrent: 3), atMs: Self.now, waitingAtMost: nil) == .capped)
        try await a.release(roundID: live[0], buyerID: "b")
        #expect(try await b.claim(Self.claim("call_y", node: "node-b", isCall: true, concurrent: 3), atMs: Self.now, waitingAtMost: nil)
                == .granted)
        await a.closed()
        await b.closed()
    }

    @Test func aHeldPingIsClaimedByExactlyOneNode() async throws {
        let (a, b) = try await Self.twoNodes()
        var ping = Rounds.simpleSale(id: "png_1")
        ping.phase = .pinged
        ping.consentJSON = #"{"tcpa":true}"#
        ping.liveState = LiveState(roundID: "png_1", kind: .held, snapshot: #"{"held":1}"#, expiresAtMs: Self.now + 60_000)
        try await a.record(ping)
        async let fromA = a.claimHeld(id: "png_1", nodeID: "node-a", nowMs: Self.now)
        async let fromB = b.claimHeld(id: "png_1", nodeID: "node-b", nowMs: Self.now)
        let results = try await [fromA, fromB]
        let won = results.compactMap { if case .won(let state) = $0 { return state } else { return nil } }
        #expect(won.count == 1)
        #expect(won.first?.consentJSON == #"{"tcpa":true}"#)
        #expect(results.filter { if case .taken = $0 { return true } else { return false } }.count == 1)
        if case .none = try await a.claimHeld(id: "png_nope", nodeID: "node-a", nowMs: Self.now) {} else { Issue.record("expected none") }
        // Given back unposted: claimable again.
        try await b.unclaimHeld(id: "png_1")
        if case .won = try await b.claimHeld(id: "png_1", nodeID: "node-b", nowMs: Self.now) {} else { Issue.record("expected won") }
        // Expired: none.
        if case .none = try await a.claimHeld(id: "png_1", nodeID: "node-a", nowMs: Self.now + 61_000) {} else { Issue.record("expected none") }
        await a.closed()
        await b.closed()
    }

    @Test func aCallIsCheckedOutByOneNodeAtATime() async throws {
        let (a, b) = try await Self.twoNodes()
        var call = Rounds.simpleSale(id: "call_1")
        call.kind = .call
        call.phase = .live
        call.billable = false
        call.liveState = LiveState(roundID: "call_1", kind: .call, snapshot: "{}", expiresAtMs: Self.now + 3_600_000)
        try await a.record(call)
        async let fromA = a.checkOutCall(id: "call_1", nodeID: "node-a", nowMs: Self.now, leaseMs: 5_000)
        async let fromB = b.checkOutCall(id: "call_1", nodeID: "node-b", nowMs: Self.now, leaseMs: 5_000)
        let results = try await [fromA, fromB]
        #expect(results.filter { if case .won = $0 { return true } else { return false } }.count == 1)
        // The lease runs out (a dead node): another node takes it.
        if case .won = try await b.checkOutCall(id: "call_1", nodeID: "node-b", nowMs: Self.now + 6_000, leaseMs: 5_000) {} else {
            Issue.record("expected won after the lease")
        }
        // Writing the call's record checks it back in.
        try await b.record(call)
        if case .won = try await a.checkOutCall(id: "call_1", nodeID: "node-a", nowMs: Self.now + 6_001, leaseMs: 5_000) {} else {
            Issue.record("expected won after the record")
        }
        try await a.checkInCall(id: "call_1")
        if case .won = try await b.checkOutCall(id: "call_1", nodeID: "node-b", nowMs: Self.now + 6_002, leaseMs: 5_000) {} else {
            Issue.record("expected won after check-in")
        }
        if case .none = try await b.checkOutCall(id: "nope", nodeID: "node-b", nowMs: Self.now, leaseMs: 5_000) {} else { Issue.record("none") }
        await a.closed()
        await b.closed()
    }

    @Test func reclaimGivesBackExpiredClaimsAndSettlesStaleIntents() async throws {
        let (a, b) = try await Self.twoNodes()
        // A claim of a dead node whose post never went out: past its expiry, its unit goes back.
        #expect(try await a.claim(Self.claim("never_posted", daily: 2, expiresAtMs: Self.now + 1_000), atMs: Self.now, waitingAtMost: nil)
                == .granted)
        // A claim whose intent was written: the buyer may have it, so it stays counted (post_unknown).
        #expect(try await a.claim(Self.claim("posted", daily: 2, expiresAtMs: Self.now + 1_000), atMs: Self.now, waitingAtMost: nil)
                == .granted)
        try await a.record(Rounds.intent("posted", sentAtMs: Self.now))
        #expect(try await b.claim(Self.claim("r3", node: "node-b", daily: 2), atMs: Self.now, waitingAtMost: nil) == .capped)

        let settled = try await b.reclaim(nowMs: Self.now + 120_000, staleIntentMs: 60_000)
        #expect(settled == 2)
        #expect(try await b.round(id: "posted")?.status == "post_unknown")
        let usage = try await b.sharedUsage(nowMs: Self.now)
        #expect(usage.counters.first { $0.window == "D:2024-07-10" }?.count == 1)
        #expect(try await b.claim(Self.claim("r4", node: "node-b", daily: 2), atMs: Self.now, waitingAtMost: nil) == .granted)
        #expect(try await b.claim(Self.claim("r5", node: "node-b", daily: 2), atMs: Self.now, waitingAtMost: nil) == .capped)
        await a.closed()
        await b.closed()
    }

    @Test func signalsReachAnotherNodeAndTheEpochMoves() async throws {
        let (a, b) = try await Self.twoNodes()
        let before = try await b.signalEpoch()
        let received = Task { () -> ClusterSignal? in
            for await signal in b.signals() where signal != .resync { return signal }
            return nil
        }
        // LISTEN starts on its own connection: publish until it hears (at most 10 s).
        let signal = await withTaskGroup(of: ClusterSignal?.self) { group in
            group.addTask { await received.value }
            group.addTask {
                for _ in 0..<50 {
                    try? await a.publish(.pausesChanged)
                    try? await Task.sleep(for: .milliseconds(200))
                }
                return nil
            }
            let first = await group.next() ?? nil
            group.cancelAll()
            return first
        }
        received.cancel()
        #expect(signal == .pausesChanged)
        #expect(try await b.signalEpoch() > before)
        await a.closed()
        await b.closed()
    }

    @Test func heartbeatsCountLiveNodes() async throws {
        let (a, b) = try await Self.twoNodes()
        #expect(try await a.heartbeat(nodeID: "node-a", nowMs: 10_000, liveWithinMs: 5_000) == 1)
        #expect(try await b.heartbeat(nodeID: "node-b", nowMs: 11_000, liveWithinMs: 5_000) == 2)
        #expect(try await b.heartbeat(nodeID: "node-b", nowMs: 17_000, liveWithinMs: 5_000) == 1)
        await a.closed()
        await b.closed()
    }
}
