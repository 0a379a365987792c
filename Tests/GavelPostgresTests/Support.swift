import Foundation
@testable import GavelCore
@testable import GavelPostgres
@testable import GavelStore
import Testing

/// The PostgreSQL server the tests use: `GAVEL_TEST_DATABASE_URL` (scripts/with-postgres.sh sets
/// it up). Without it the suites are skipped, never faked.
enum PG {
    static let url = ProcessInfo.processInfo.environment["GAVEL_TEST_DATABASE_URL"]
    static var enabled: Bool { url != nil }
    static let skipped = "GAVEL_TEST_DATABASE_URL is not set: run scripts/with-postgres.sh swift test --filter GavelPostgresTests"

    /// A fresh schema for one test.
    static func freshSchema() -> String { "t_" + UUID().uuidString.lowercased().replacingOccurrences(of: "-", with: "").prefix(20) }

    /// A store on `schema` (a fresh one unless given), as node `nodeID`.
    static func store(schema: String = freshSchema(), nodeID: String = "node-a", poolSize: Int = 4) async throws -> PostgresStore {
        var configuration = try PostgresStore.Configuration(url: url!, nodeID: nodeID, schema: schema)
        configuration.poolSize = poolSize
        return try await PostgresStore.open(configuration)
    }

    /// Runs `body` with a store, then closes it.
    static func withStore<T>(nodeID: String = "node-a", _ body: (PostgresStore) async throws -> T) async throws -> T {
        let store = try await store(nodeID: nodeID)
        do {
            let value = try await body(store)
            await store.closed()
            return value
        } catch {
            await store.closed()
            throw error
        }
    }
}

/// A SQLite store in a temporary directory, to compare with.
final class TempSQLite {
    let directory: URL
    let store: RoundStore

    init() throws {
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("gavel-pg-compare-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        store = try RoundStore(path: directory.appendingPathComponent("gavel.sqlite").path)
    }

    deinit {
        store.close()
        try? FileManager.default.removeItem(at: directory)
    }
}

enum Rounds {
    static let createdAtMs: Int64 = 1_720_612_800_000  // 2024-07-10T12:00:00Z

    /// A real round through the state machine: a rejects the post, b wins at 20, c is outbid,
    /// capped is excluded, slow times out.
    static func soldRound(id: String = "r_sold") -> AuctionRound {
        var round = AuctionRound(id: id, payoutRule: .share(basisPoints: 7000), considered: [
            .excluded(buyerID: "capped", reason: .capped),
            .pinged(.init(buyerID: "a"), tmaxMs: 300),
            .pinged(.init(buyerID: "b"), tmaxMs: 300),
            .pinged(.init(buyerID: "c"), tmaxMs: 250),
            .pinged(.init(buyerID: "slow"), tmaxMs: 300),
        ])
        _ = round.receive(.bid(price: Money(30), bidID: "bid-a", expiresInS: nil, destination: nil, minDurationS: nil), from: "a", latencyUs: 11_000)
        _ = round.receive(.bid(price: Money(20), bidID: "bid-b", expiresInS: 30, destination: nil, minDurationS: nil), from: "b", latencyUs: 22_000)
        _ = round.receive(.bid(price: Money(decimal: "10.0025")!, bidID: nil, expiresInS: nil, destination: nil, minDurationS: nil),
                          from: "c", latencyUs: 33_000)
        _ = round.closeBidding(atMs: createdAtMs + 300, method: .auction)
        _ = round.nextPost(atMs: createdAtMs + 310, remainingMs: 400, minimumPostMs: 50)
        _ = round.recordPost(.rejected(reason: "duplicate lead"), latencyUs: 40_000)
        _ = round.nextPost(atMs: createdAtMs + 360, remainingMs: 350, minimumPostMs: 50)
        _ = round.recordPost(.accepted(reference: "REF-42"), latencyUs: 50_000)
        return round
    }

    static func finalRecord(_ round: AuctionRound, createdAtMs: Int64 = createdAtMs, contactHash: String? = "hash-jo",
                            capIncrements: [CapIncrement] = []) -> RoundRecord {
        let sale = round.outcome?.sale
        return RoundRecord(
            id: round.id, kind: .lead, sellerID: "seller-one", campaignID: "autos", phase: .final,
            status: sale == nil ? "unsold" : "sold", createdAtMs: createdAtMs, tmaxMs: 800, durationUs: 123_456,
            winnerID: sale?.bid.buyerID, price: sale?.price, payout: sale?.payout,
            leadJSON: #"{"zip":"94107","state":"CA"}"#,
            contactJSON: sale == nil ? nil : #"{"email":"jo@example.com"}"#, contactHash: sale == nil ? nil : contactHash,
            entries: round.entries, posts: round.posts, capIncrements: capIncrements, billable: sale != nil
        )
    }

    /// A minimal sold round for bulk tests.
    static func simpleSale(id: String, buyerID: String = "b", price: Money = Money(10), createdAtMs: Int64 = createdAtMs,
                           contactHash: String? = nil, capIncrements: [CapIncrement] = []) -> RoundRecord {
        var round = AuctionRound(id: id, payoutRule: .share(basisPoints: 5000), considered: [
            .fixedPrice(.init(buyerID: buyerID), price: price),
        ])
        _ = round.closeBidding(atMs: createdAtMs, method: .auction)
        _ = round.nextPost(atMs: createdAtMs, remainingMs: 500, minimumPostMs: 50)
        _ = round.recordPost(.accepted(reference: nil), latencyUs: 1_000)
        return finalRecord(round, createdAtMs: createdAtMs, contactHash: contactHash, capIncrements: capIncrements)
    }

    static func intent(_ roundID: String, buyerID: String = "b", sentAtMs: Int64 = createdAtMs + 100, contactHash: String? = "hash-x",
                       scope: String? = nil) -> PostIntent {
        PostIntent(roundID: roundID, kind: .lead, sellerID: "seller-one", campaignID: "autos", buyerID: buyerID, price: Money(12),
                   createdAtMs: createdAtMs, sentAtMs: sentAtMs, tmaxMs: 800, leadJSON: #"{"zip":"94107"}"#, idempotencyScope: scope,
                   idempotencyHash: scope == nil ? nil : "hash-body",
                   capIncrements: [CapIncrement(buyerID: buyerID, window: "D:2024-07-10", count: 1, spend: Money(12))],
                   contactHash: contactHash)
    }
}

/// A round as text, every field: the same text from both stores means the same round.
func text(_ round: StoredRound?) -> String {
    guard let round else { return "nil" }
    var out = ""
    dump(round, to: &out)
    return out
}
