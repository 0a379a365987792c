import Foundation
import GavelCore
import GRDB
import Synchronization

/// A final answer kept for an idempotency key (CONTRACT v2, "Safety of every request").
public struct StoredAnswer: Sendable, Hashable {
    /// Seller, method, path and key: the key's scope.
    public var scope: String
    /// SHA-256 of the request body's canonical JSON: a repeat must send the same body.
    public var bodyHash: String
    public var status: Int
    /// The response body, byte for byte.
    public var response: String
    public var roundID: String?
    public var createdAtMs: Int64

    public init(scope: String, bodyHash: String, status: Int, response: String, roundID: String?, createdAtMs: Int64) {
        self.scope = scope
        self.bodyHash = bodyHash
        self.status = status
        self.response = response
        self.roundID = roundID
        self.createdAtMs = createdAtMs
    }
}

/// A post about to be sent, committed before it goes out (write-ahead). If the exchange stops
/// before the round is recorded, start-up finds it and makes the round `post_unknown`.
public struct PostIntent: Sendable, Hashable {
    public var roundID: String
    public var kind: AuctionKind
    public var sellerID: String
    public var campaignID: String
    public var buyerID: String
    public var price: Money
    public var createdAtMs: Int64
    public var sentAtMs: Int64
    public var tmaxMs: Int
    public var leadJSON: String
    /// The request's idempotency key and body hash, so a repeat learns the outcome is unknown.
    public var idempotencyScope: String?
    public var idempotencyHash: String?
    /// The cap counters the post would take: counted, because the buyer may have the lead.
    public var capIncrements: [CapIncrement]
    /// The contact's keyed hash, for the buyer's duplicate window (the buyer may have it).
    public var contactHash: String?

    public init(roundID: String, kind: AuctionKind, sellerID: String, campaignID: String, buyerID: String, price: Money,
                createdAtMs: Int64, sentAtMs: Int64, tmaxMs: Int, leadJSON: String, idempotencyScope: String?,
                idempotencyHash: String?, capIncrements: [CapIncrement], contactHash: String? = nil) {
        self.contactHash = contactHash
        self.roundID = roundID
        self.kind = kind
        self.sellerID = sellerID
        self.campaignID = campaignID
        self.buyerID = buyerID
        self.price = price
        self.createdAtMs = createdAtMs
        self.sentAtMs = sentAtMs
        self.tmaxMs = tmaxMs
        self.leadJSON = leadJSON
        self.idempotencyScope = idempotencyScope
        self.idempotencyHash = idempotencyHash
        self.capIncrements = capIncrements
    }
}

/// A continuation resumed exactly once: by the writer's commit or by the caller's time limit.
final class Waiter: Sendable {
    private let continuation: Mutex<CheckedContinuation<Void, any Error>?>

    init(_ continuation: CheckedContinuation<Void, any Error>) { self.continuation = Mutex(continuation) }

    func resume() { take()?.resume() }
    func resume(throwing error: any Error) { take()?.resume(throwing: error) }

    private func take() -> CheckedContinuation<Void, any Error>? {
        continuation.withLock { stored in
            defer { stored = nil }
            return stored
        }
    }
}

extension RoundStore {
    /// The answer stored for `scope`, if any and not older than `maxAgeMs`.
    public func answer(scope: String, notBeforeMs: Int64) async throws(StoreError) -> StoredAnswer? {
        do {
            return try await pool.read { db in
                try Row.fetchOne(db, sql: "SELECT * FROM idempotency_keys WHERE scope = ? AND created_at_ms >= ?",
                                 arguments: [scope, notBeforeMs]).map { row in
                    StoredAnswer(scope: row["scope"], bodyHash: row["body_hash"], status: row["status"], response: row["response"],
                                 roundID: row["round_id"], createdAtMs: row["created_at_ms"])
                }
            }
        } catch {
            throw .read("\(error)")
        }
    }

    /// Deletes answers created before `beforeMs`; returns how many.
    @discardableResult
    public func sweepAnswers(beforeMs: Int64) async throws(StoreError) -> Int {
        do {
            return try await pool.write { db in
                try db.execute(sql: "DELETE FROM idempotency_keys WHERE created_at_ms < ?", arguments: [beforeMs])
                return db.changesCount
            }
        } catch {
            throw .write("\(error)")
        }
    }

    /// Post intents still waiting for their outcome (none while the exchange is between rounds).
    public func openPostIntents() throws(StoreError) -> [PostIntent] {
        do {
            return try pool.read { db in try Row.fetchAll(db, sql: "SELECT * FROM post_intents").map(RoundStore.intent(from:)) }
        } catch {
            throw .read("\(error)")
        }
    }

    /// At start-up, before any round runs: every post intent left over is a post whose answer was
    /// never recorded. Its round becomes final with status `post_unknown` (never sold again), the
    /// buyer's reason `post_unknown`, its caps counted, and a repeat of its request gets 409
    /// `outcome_unknown`. Returns the intents resolved.
    public func resolveUnknownPosts(nowMs: Int64) throws(StoreError) -> [PostIntent] {
        do {
            return try pool.write { db in
                let intents = try Row.fetchAll(db, sql: "SELECT * FROM post_intents").map(RoundStore.intent(from:))
                for intent in intents {
                    // A round already final was recorded after all (its intent outlived it): leave it.
                    let final = try Bool.fetchOne(db, sql: "SELECT EXISTS (SELECT 1 FROM rounds WHERE id = ? AND phase = 'final')",
                                                  arguments: [intent.roundID]) ?? false
                    if !final { try RoundStore.markUnknown(intent, nowMs: nowMs, in: db) }
                }
                try db.execute(sql: "DELETE FROM post_intents")
                return intents
            }
        } catch {
            throw .write("\(error)")
        }
    }

    /// Rounds whose post outcome is unknown, for `/metrics` at start-up.
    public func postUnknownCount() throws(StoreError) -> Int {
        do {
            return try pool.read { db in try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM rounds WHERE status = 'post_unknown'") ?? 0 }
        } catch {
            throw .read("\(error)")
        }
    }

    // MARK: Rows

    static func insert(_ answer: StoredAnswer, into db: Database) throws {
        try db.cachedStatement(sql: """
            INSERT OR REPLACE INTO idempotency_keys (scope, body_hash, status, response, round_id, created_at_ms)
            VALUES (?, ?, ?, ?, ?, ?)
            """).execute(arguments: [answer.scope, answer.bodyHash, answer.status, answer.response, answer.roundID, answer.createdAtMs])
    }

    static func insert(_ intent: PostIntent, into db: Database) throws {
        // One intent per round: a later post of the same round (after a rejection) replaces it.
        try db.cachedStatement(sql: """
            INSERT OR REPLACE INTO post_intents
              (round_id, kind, seller_id, campaign_id, buyer_id, price, created_at_ms, sent_at_ms, tmax_ms, lead_json,
               idempotency_scope, idempotency_hash, cap_increments, contact_hash)
            VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
            """).execute(arguments: [
                intent.roundID, intent.kind.rawValue, intent.sellerID, intent.campaignID, intent.buyerID, intent.price.units,
                intent.createdAtMs, intent.sentAtMs, intent.tmaxMs, intent.leadJSON, intent.idempotencyScope, intent.idempotencyHash,
                encode(intent.capIncrements), intent.contactHash,
            ])
    }

    private static func intent(from row: Row) -> PostIntent {
        PostIntent(
            roundID: row["round_id"], kind: AuctionKind(rawValue: row["kind"]) ?? .lead, sellerID: row["seller_id"],
            campaignID: row["campaign_id"], buyerID: row["buyer_id"], price: Money(units: row["price"]),
            createdAtMs: row["created_at_ms"], sentAtMs: row["sent_at_ms"], tmaxMs: row["tmax_ms"], leadJSON: row["lead_json"],
            idempotencyScope: row["idempotency_scope"], idempotencyHash: row["idempotency_hash"],
            capIncrements: decode(row["cap_increments"], buyerID: row["buyer_id"]), contactHash: row["contact_hash"]
        )
    }

    private static func markUnknown(_ intent: PostIntent, nowMs: Int64, in db: Database) throws {
        let detail = "the exchange stopped after sending the post and before recording its answer"
        let exists = try Bool.fetchOne(db, sql: "SELECT EXISTS (SELECT 1 FROM rounds WHERE id = ?)", arguments: [intent.roundID]) ?? false
        if exists {
            // A held ping's round: keep its buyers and bids, settle the winner's post.
            try db.execute(sql: """
                UPDATE rounds SET phase = 'final', status = 'post_unknown', winner_id = ?, price = ?, payout = NULL WHERE id = ?
                """, arguments: [intent.buyerID, intent.price.units, intent.roundID])
            try db.execute(sql: "UPDATE round_buyers SET reason = 'post_unknown', detail = ? WHERE round_id = ? AND buyer_id = ?",
                           arguments: [detail, intent.roundID, intent.buyerID])
        } else {
            try db.execute(sql: """
                INSERT INTO rounds (id, kind, seller_id, campaign_id, phase, status, created_at_ms, tmax_ms, duration_us, winner_id, price,
                                    payout, lead_json)
                VALUES (?, ?, ?, ?, 'final', 'post_unknown', ?, ?, ?, ?, ?, NULL, ?)
                """, arguments: [
                    intent.roundID, intent.kind.rawValue, intent.sellerID, intent.campaignID, intent.createdAtMs, intent.tmaxMs,
                    max(0, intent.sentAtMs - intent.createdAtMs) * 1000, intent.buyerID, intent.price.units, intent.leadJSON,
                ])
            try db.execute(sql: """
                INSERT OR REPLACE INTO round_buyers (round_id, position, buyer_id, reason, bid, detail) VALUES (?, 0, ?, 'post_unknown', ?, ?)
                """, arguments: [intent.roundID, intent.buyerID, intent.price.units, detail])
        }
        let sequence = (try Int.fetchOne(db, sql: "SELECT COALESCE(MAX(sequence), 0) FROM post_attempts WHERE round_id = ?",
                                         arguments: [intent.roundID]) ?? 0) + 1
        try db.execute(sql: """
            INSERT INTO post_attempts (round_id, sequence, buyer_id, price, result, latency_us, detail) VALUES (?, ?, ?, ?, 'post_unknown', 0, ?)
            """, arguments: [intent.roundID, sequence, intent.buyerID, intent.price.units, detail])
        try addCounts(intent.capIncrements, in: db)
        if let contactHash = intent.contactHash {
            try db.execute(sql: "INSERT OR REPLACE INTO unknown_contacts (round_id, buyer_id, contact_hash, at_ms) VALUES (?, ?, ?, ?)",
                           arguments: [intent.roundID, intent.buyerID, contactHash, intent.sentAtMs])
        }
        try db.execute(sql: "DELETE FROM live_state WHERE round_id = ?", arguments: [intent.roundID])
        if let scope = intent.idempotencyScope, let hash = intent.idempotencyHash {
            let body = #"{"error":{"code":"outcome_unknown","message":"the exchange stopped while posting this lead; the buyer may have it, so it will not be sold again","auction_id":"\#(intent.roundID)"}}"#
            // A first final answer already stored for the key stays the answer.
            try db.execute(sql: """
                INSERT OR IGNORE INTO idempotency_keys (scope, body_hash, status, response, round_id, created_at_ms) VALUES (?, ?, 409, ?, ?, ?)
                """, arguments: [scope, hash, body + "\n", intent.roundID, nowMs])
        }
    }

    /// Cap increments as compact text: `window|count|spend` lines.
    private static func encode(_ increments: [CapIncrement]) -> String {
        increments.map { "\($0.window)|\($0.count)|\($0.spend.units)" }.joined(separator: "\n")
    }

    private static func decode(_ text: String, buyerID: String) -> [CapIncrement] {
        text.split(separator: "\n").compactMap { line in
            let parts = line.split(separator: "|", omittingEmptySubsequences: false)
            guard parts.count == 3, let count = Int(parts[1]), let spend = Int64(parts[2]) else { return nil }
            return CapIncrement(buyerID: buyerID, window: String(parts[0]), count: count, spend: Money(units: spend))
        }
    }
}
