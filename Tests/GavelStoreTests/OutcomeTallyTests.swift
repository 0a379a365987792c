import Foundation
@testable import GavelCore
import Testing
@testable import GavelStore

/// What the outcome estimates are rebuilt from at start-up: recorded post answers and completed calls.
struct OutcomeTallyTests {
    static let nowMs: Int64 = Rounds.createdAtMs

    func tallies(_ store: RoundStore, sinceMs: Int64 = 0) throws -> [String: OutcomeCounts] {
        var result: [String: OutcomeCounts] = [:]
        for tally in try store.outcomeTallies(sinceMs: sinceMs) {
            result["\(tally.kind.rawValue)/\(tally.buyerID)"] = OutcomeCounts(trials: tally.trials, successes: tally.successes)
        }
        return result
    }

    func post(_ buyerID: String, _ result: ReasonCode) -> AuctionRound.PostAttempt {
        AuctionRound.PostAttempt(buyerID: buyerID, price: Money(10), result: result, latencyUs: 1_000)
    }

    func lead(_ id: String, createdAtMs: Int64 = nowMs, posts: [AuctionRound.PostAttempt]) -> RoundRecord {
        RoundRecord(id: id, kind: .lead, sellerID: "seller-one", campaignID: "autos", phase: .final,
                    status: posts.last?.result == .sold ? "sold" : "unsold", createdAtMs: createdAtMs, tmaxMs: 800, durationUs: 1,
                    leadJSON: "{}", entries: [], posts: posts)
    }

    func call(_ id: String, status: String, winner: String?, createdAtMs: Int64 = nowMs) -> RoundRecord {
        RoundRecord(id: id, kind: .call, sellerID: "seller-one", campaignID: "calls", phase: status == "routed" ? .live : .final,
                    status: status, createdAtMs: createdAtMs, tmaxMs: 800, durationUs: 1, winnerID: winner, price: Money(30),
                    leadJSON: "{}", entries: [], posts: [post(winner ?? "nobody", .sold)])
    }

    @Test func leadPostsAndCompletedCallsAreCountedPerBuyer() async throws {
        let database = try TempDatabase()
        let store = try RoundStore(path: database.path)
        defer { store.close() }
        // Rejected, failed and timed-out posts count against the buyer; an unknown outcome does not.
        try await store.record(lead("auc_1", posts: [post("a", .postRejected), post("b", .sold)]))
        try await store.record(lead("auc_2", posts: [post("a", .postFailed), post("b", .postTimeout), post("c", .sold)]))
        try await store.record(lead("auc_3", posts: [post("a", .postUnknown)]))
        // A held ping recorded again with its post counts once.
        try await store.record(lead("png_1", posts: []))
        try await store.record(lead("png_1", posts: [post("a", .sold)]))
        // Calls: converted and not converted count; live, unrouted and abandoned do not.
        try await store.record(call("call_1", status: "converted", winner: "a"))
        try await store.record(call("call_2", status: "not_converted", winner: "a"))
        try await store.record(call("call_3", status: "routed", winner: "a"))
        try await store.record(call("call_4", status: "abandoned", winner: "a"))
        try await store.record(call("call_5", status: "unrouted", winner: nil))

        let counted = try tallies(store)
        #expect(counted.count == 4)
        #expect(counted["lead/a"] == OutcomeCounts(trials: 3, successes: 1))
        #expect(counted["lead/b"] == OutcomeCounts(trials: 2, successes: 1))
        #expect(counted["lead/c"] == OutcomeCounts(trials: 1, successes: 1))
        #expect(counted["call/a"] == OutcomeCounts(trials: 2, successes: 1))
    }

    @Test func onlyRoundsInsideTheWindowCount() async throws {
        let database = try TempDatabase()
        let store = try RoundStore(path: database.path)
        defer { store.close() }
        let day: Int64 = 86_400_000
        try await store.record(lead("auc_old", createdAtMs: Self.nowMs - 31 * day, posts: [post("a", .postRejected)]))
        try await store.record(lead("auc_new", createdAtMs: Self.nowMs - 29 * day, posts: [post("a", .sold)]))
        try await store.record(call("call_old", status: "not_converted", winner: "a", createdAtMs: Self.nowMs - 31 * day))
        let counted = try tallies(store, sinceMs: Self.nowMs - 30 * day)
        #expect(counted["lead/a"] == OutcomeCounts(trials: 1, successes: 1))
        #expect(counted["call/a"] == nil)
        #expect(try tallies(store)["lead/a"] == OutcomeCounts(trials: 2, successes: 1))
    }

    @Test func eachRoundBuyerKeepsTheEstimateItWasRankedWith() async throws {
        let database = try TempDatabase()
        let store = try RoundStore(path: database.path)
        defer { store.close() }
        var round = AuctionRound(id: "auc_est", payoutRule: .share(basisPoints: 5000), considered: [
            .pinged(.init(buyerID: "a"), tmaxMs: 100), .excluded(buyerID: "off", reason: .paused),
        ])
        _ = round.receive(.noBid, from: "a", latencyUs: 1)
        _ = round.closeBidding(atMs: Self.nowMs, method: .auction, estimates: ["a": Probability(ppm: 123_456), "off": .one])
        try await store.record(Rounds.finalRecord(round))
        let stored = try #require(try await store.round(id: "auc_est"))
        #expect(stored.buyers.first { $0.buyerID == "a" }?.estimate == Probability(ppm: 123_456))
        #expect(stored.buyers.first { $0.buyerID == "off" }?.estimate == nil)
    }
}
