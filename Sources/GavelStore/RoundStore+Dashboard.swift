import GavelCore
import GRDB

/// What the operator dashboard reads: recent activity over a bounded window of rounds, the most
/// recent rounds, and counts of a day. Reads run on GRDB's reader pool, never on the writer.
extension RoundStore {
    /// Rounds in a window, counted per minute, with the reasons and per-buyer figures of the window.
    public struct Activity: Sendable {
        public struct Minute: Sendable, Hashable {
            public var startMs: Int64
            public var rounds: Int
            public var sold: Int

            public init(startMs: Int64, rounds: Int, sold: Int) {
                self.startMs = startMs
                self.rounds = rounds
                self.sold = sold
            }
        }

        public struct Buyer: Sendable, Hashable {
            public var considered = 0
            public var pinged = 0
            public var bids = 0
            public var wins = 0
            /// Ping latencies in the window, ascending.
            public var latenciesUs: [Int] = []

            public init() {}
        }

        public var rounds = 0
        public var sold = 0
        public var minutes: [Minute] = []
        public var reasons: [String: Int] = [:]
        public var buyers: [String: Buyer] = [:]
        /// True when the window held more rounds than were read (the oldest were left out).
        public var truncated = false

        public init() {}
    }

    /// One row of the recent-rounds table.
    public struct RecentRound: Sendable, Hashable {
        public var id: String
        public var kind: String
        public var campaignID: String
        public var status: String
        public var createdAtMs: Int64
        public var winnerID: String?
        public var price: Money?
        public var buyers: Int

        public init(id: String, kind: String, campaignID: String, status: String, createdAtMs: Int64, winnerID: String?, price: Money?,
                    buyers: Int) {
            self.id = id
            self.kind = kind
            self.campaignID = campaignID
            self.status = status
            self.createdAtMs = createdAtMs
            self.winnerID = winnerID
            self.price = price
            self.buyers = buyers
        }
    }

    /// Activity since `sinceMs`, reading at most `limit` rounds (the newest).
    public func activity(sinceMs: Int64, limit: Int) async throws(StoreError) -> Activity {
        do {
            return try await pool.read { db in
                var activity = Activity()
                let rounds = try Row.fetchAll(db, sql: """
                    SELECT r.id, r.created_at_ms, s.round_id IS NOT NULL AS sold
                    FROM rounds r LEFT JOIN sales s ON s.round_id = r.id
                    WHERE r.created_at_ms >= ? ORDER BY r.created_at_ms DESC LIMIT ?
                    """, arguments: [sinceMs, limit + 1])
                activity.truncated = rounds.count > limit
                var minutes: [Int64: Activity.Minute] = [:]
                for row in rounds.prefix(limit) {
                    let sold: Bool = row["sold"]
                    let start = (row["created_at_ms"] as Int64) / 60_000 * 60_000
                    minutes[start, default: Activity.Minute(startMs: start, rounds: 0, sold: 0)].rounds += 1
                    if sold { minutes[start]?.sold += 1 }
                    activity.rounds += 1
                    if sold { activity.sold += 1 }
                }
                activity.minutes = minutes.values.sorted { $0.startMs < $1.startMs }
                let oldest: Int64 = rounds.prefix(limit).last?["created_at_ms"] ?? sinceMs
                let buyerRows = try Row.fetchAll(db, sql: """
                    SELECT b.buyer_id, b.reason, b.bid IS NOT NULL AS has_bid, b.latency_us, r.winner_id = b.buyer_id AND s.round_id IS NOT NULL AS won
                    FROM rounds r JOIN round_buyers b ON b.round_id = r.id LEFT JOIN sales s ON s.round_id = r.id
                    WHERE r.created_at_ms >= ?
                    """, arguments: [max(sinceMs, oldest)])
                for row in buyerRows {
                    let buyerID: String = row["buyer_id"]
                    let reason: String = row["reason"]
                    activity.reasons[reason, default: 0] += 1
                    var buyer = activity.buyers[buyerID] ?? Activity.Buyer()
                    buyer.considered += 1
                    if let latency: Int = row["latency_us"] {
                        buyer.pinged += 1
                        buyer.latenciesUs.append(latency)
                    }
                    if row["has_bid"] as Bool { buyer.bids += 1 }
                    if (row["won"] as Bool?) == true { buyer.wins += 1 }
                    activity.buyers[buyerID] = buyer
                }
                for key in activity.buyers.keys { activity.buyers[key]?.latenciesUs.sort() }
                return activity
            }
        } catch {
            throw .read("\(error)")
        }
    }

    /// Rounds and sold rounds created in [fromMs, toMs).
    public func roundCounts(fromMs: Int64, toMs: Int64) async throws(StoreError) -> (rounds: Int, sold: Int) {
        do {
            return try await pool.read { db in
                let row = try Row.fetchOne(db, sql: """
                    SELECT COUNT(*) AS rounds, COUNT(s.round_id) AS sold
                    FROM rounds r LEFT JOIN sales s ON s.round_id = r.id
                    WHERE r.created_at_ms >= ? AND r.created_at_ms < ?
                    """, arguments: [fromMs, toMs])
                return (row?["rounds"] ?? 0, row?["sold"] ?? 0)
            }
        } catch {
            throw .read("\(error)")
        }
    }

    /// The newest `limit` rounds, newest first.
    public func recentRounds(limit: Int) async throws(StoreError) -> [RecentRound] {
        do {
            return try await pool.read { db in
                try Row.fetchAll(db, sql: """
                    SELECT r.id, r.kind, r.campaign_id, r.status, r.created_at_ms, r.winner_id, r.price,
                           (SELECT COUNT(*) FROM round_buyers b WHERE b.round_id = r.id) AS buyers
                    FROM rounds r ORDER BY r.created_at_ms DESC LIMIT ?
                    """, arguments: [limit]).map { row in
                    RecentRound(id: row["id"], kind: row["kind"], campaignID: row["campaign_id"], status: row["status"],
                                createdAtMs: row["created_at_ms"], winnerID: row["winner_id"],
                                price: (row["price"] as Int64?).map(Money.init(units:)), buyers: row["buyers"])
                }
            }
        } catch {
            throw .read("\(error)")
        }
    }
}
