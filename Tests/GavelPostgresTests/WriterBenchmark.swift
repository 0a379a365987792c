import Foundation
@testable import GavelCore
@testable import GavelPostgres
@testable import GavelStore
import Testing

/// Group commit at speed: not a timed test (it asserts only that every round landed), a
/// measurement printed for the record. Run with GAVEL_PG_BENCH=1 (rounds: GAVEL_PG_BENCH_ROUNDS).
@Suite(.serialized, .enabled(if: PG.enabled && ProcessInfo.processInfo.environment["GAVEL_PG_BENCH"] != nil, "set GAVEL_PG_BENCH=1 to measure"))
struct WriterBenchmark {
    static let rounds = Int(ProcessInfo.processInfo.environment["GAVEL_PG_BENCH_ROUNDS"] ?? "") ?? 20_000

    /// A sold round with ten buyers, a post, PII, a sale, cap increments and an idempotent answer.
    static func record(_ index: Int) -> RoundRecord {
        let entries = (0..<10).map { buyer in
            AuctionRound.BuyerEntry(buyerID: "buyer-\(buyer)", reason: buyer == 0 ? .sold : .outbid, bid: Money(10 + buyer), bidID: "bid-\(buyer)",
                                    latencyUs: 10_000 + buyer, tmaxMs: 300, detail: nil, destination: nil, expiresInS: nil, buyerReason: nil,
                                    kept: nil, estimate: Probability(ppm: 500_000))
        }
        var record = RoundRecord(
            id: "bench_\(index)", kind: .lead, sellerID: "seller-\(index % 5)", campaignID: "autos", phase: .final, status: "sold",
            createdAtMs: Rounds.createdAtMs + Int64(index), tmaxMs: 800, durationUs: 50_000, winnerID: "buyer-\(index % 10)", price: Money(20),
            payout: Money(14), leadJSON: #"{"zip":"94107","state":"CA"}"#, contactJSON: #"{"email":"jo@example.com"}"#,
            contactHash: "hash-\(index)", entries: entries,
            posts: [AuctionRound.PostAttempt(buyerID: "buyer-\(index % 10)", price: Money(20), result: .sold, latencyUs: 30_000)],
            capIncrements: ["H:2024-07-10T12", "D:2024-07-10", "M:2024-07"].map {
                CapIncrement(buyerID: "buyer-\(index % 10)", window: $0, count: 1, spend: Money(20))
            },
            billable: true)
        record.answer = StoredAnswer(scope: "seller|POST|/v1/leads|\(index)", bodyHash: "h", status: 200, response: "{}", roundID: record.id,
                                     createdAtMs: record.createdAtMs)
        return record
    }

    @Test func groupCommitRoundsPerSecond() async throws {
        try await PG.withStore { store in
            let count = Self.rounds
            let started = ContinuousClock.now
            try await withThrowingTaskGroup(of: Void.self) { group in
                for index in 0..<count { group.addTask { try await store.record(Self.record(index)) } }
                try await group.waitForAll()
            }
            let elapsed = ContinuousClock.now - started
            let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
            print("group commit: \(count) rounds × 10 buyers in \(elapsed): \(Int(Double(count) / seconds)) rounds/s")
            #expect(try await store.counts().rounds == count)
        }
    }

    /// The baseline: one transaction per round, one round at a time per writer (8 at once).
    @Test func oneTransactionPerRoundRoundsPerSecond() async throws {
        try await PG.withStore { store in
            let count = min(Self.rounds, 5_000)
            let started = ContinuousClock.now
            try await withThrowingTaskGroup(of: Void.self) { group in
                for lane in 0..<4 {
                    group.addTask {
                        for index in stride(from: lane, to: count, by: 4) {
                            try await store.commit([.round(Self.record(index))], deadline: .seconds(30))
                        }
                    }
                }
                try await group.waitForAll()
            }
            let elapsed = ContinuousClock.now - started
            let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
            print("one transaction per round: \(count) rounds × 10 buyers in \(elapsed): \(Int(Double(count) / seconds)) rounds/s")
            #expect(try await store.counts().rounds == count)
        }
    }

    /// Exact caps across nodes: claims for one hot capped buyer from two stores (two nodes), 16 at
    /// a time each: claims/s and the latency of one claim. Asserts only that the cap held exactly.
    @Test func capClaimsPerSecondOnOneHotBuyer() async throws {
        let schema = PG.freshSchema()
        let first = try await PG.store(schema: schema, nodeID: "node-a", poolSize: 8)
        let second = try await PG.store(schema: schema, nodeID: "node-b", poolSize: 8)
        let count = min(Self.rounds, 10_000)
        let cap = count / 2
        let started = ContinuousClock.now
        let granted = try await withThrowingTaskGroup(of: Int.self) { group in
            for lane in 0..<32 {
                let store = lane % 2 == 0 ? first : second
                group.addTask {
                    var granted = 0
                    for index in stride(from: lane, to: count, by: 32) {
                        let claim = CapClaim(roundID: "r\(index)", buyerID: "hot", hourKey: "H:2024-07-10T12", dayKey: "D:2024-07-10",
                                             monthKey: "M:2024-07", price: Money(units: 100_000), hourly: nil, daily: cap, monthly: nil,
                                             dailyBudget: nil, contactHash: nil, duplicateWindowDays: 0, isCall: false, concurrent: nil,
                                             countsConversions: false, expiresAtMs: Int64.max / 2, nodeID: lane % 2 == 0 ? "node-a" : "node-b")
                        if try await store.claim(claim, atMs: 0, waitingAtMost: .seconds(5)) == .granted { granted += 1 }
                    }
                    return granted
                }
            }
            return try await group.reduce(0, +)
        }
        let elapsed = ContinuousClock.now - started
        let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
        print("cap claims: \(count) claims on one buyer from two nodes in \(elapsed): \(Int(Double(count) / seconds)) claims/s, "
              + "\(String(format: "%.2f", seconds * 1000 * 32 / Double(count))) ms each at 32 in flight")
        #expect(granted == cap)
        await first.closed()
        await second.closed()
    }
}
