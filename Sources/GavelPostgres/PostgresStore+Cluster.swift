import Foundation
import GavelCore
import GavelStore
import PostgresNIO

// MARK: SharedCaps

extension PostgresStore: SharedCaps {
    /// Checks and takes `claim` in one round trip: `gavel_claim` (a migration) takes the buyer's
    /// advisory lock for the transaction, counts committed counters plus every uncounted claim,
    /// checks the duplicate window and live calls, and inserts the claim.
    public func claim(_ claim: CapClaim, atMs: Int64, waitingAtMost timeout: Duration?) async throws(StoreError) -> CapClaim.Verdict {
        let logger = logger
        // One autocommit statement: the buyer's lock is held for one round trip. The function
        // commits without waiting for its fsync (migration v5): the post intent that always follows
        // a granted claim is a synchronous commit, and flushing it flushes the WAL up to this claim
        // too. A crash before then loses only a claim nothing was posted on.
        let verdict = try await withConnection("cap claim", timeout: timeout, failure: { .write($0) }) { connection -> String in
            try await connection.rows("""
                SELECT gavel_claim(\(claim.roundID), \(claim.buyerID), \(claim.isCall ? "call" : "post"), \(claim.hourKey), \(claim.dayKey),
                                   \(claim.monthKey), \(claim.price.units), \(claim.hourly.map(Int64.init)), \(claim.daily.map(Int64.init)),
                                   \(claim.monthly.map(Int64.init)), \(claim.dailyBudget?.units), \(claim.contactHash),
                                   \(Int64(claim.duplicateWindowDays)), \(claim.concurrent.map(Int64.init)), \(claim.countsConversions),
                                   \(claim.expiresAtMs), \(claim.nodeID), \(atMs))
                """, logger: logger)[0].decode(String.self)
        }
        guard let known = CapClaim.Verdict(rawValue: verdict) else { throw .write("cap claim: unknown verdict \(verdict)") }
        return known
    }

    /// Gives back a claim whose post failed (or whose call ended): idempotent.
    /// Takes the buyer's claim lock first, so a release sent after a claim whose answer the caller
    /// stopped waiting for runs after that claim commits, and removes it.
    public func release(roundID: String, buyerID: String) async throws(StoreError) {
        try await write("release claim") { connection in
            try await connection.run("SELECT pg_advisory_xact_lock(hashtext(current_schema() || '.gavel.cap.' || \(buyerID)))")
            try await connection.run("DELETE FROM cap_claims WHERE round_id = \(roundID) AND buyer_id = \(buyerID)")
        }
    }

    /// Committed counters plus every uncounted claim (each in its hour, day and month), and each
    /// buyer's live calls (its call claims).
    public func sharedUsage(nowMs: Int64) async throws(StoreError) -> SharedUsage {
        // Only windows a cap can still need (as the ledger's sweep keeps): hours of the last 30 h,
        // days of the last 3, months of the last 3 (every time zone's keys sort after these UTC ones).
        let (hourCutoff, dayCutoff, monthCutoff) = PostgresStore.windowCutoffs(nowMs: nowMs)
        return try await read("shared usage") { connection in
            var sums: [String: [String: (count: Int, spend: Int64)]] = [:]
            for row in try await connection.rows("""
                SELECT buyer_id, window_key, sum(count)::bigint AS count, sum(spend)::bigint AS spend FROM (
                    SELECT buyer_id, window_key, count, spend FROM cap_counters
                    WHERE (window_key LIKE 'H:%' AND window_key >= \(hourCutoff)) OR (window_key LIKE 'D:%' AND window_key >= \(dayCutoff))
                       OR (window_key LIKE 'M:%' AND window_key >= \(monthCutoff))
                    UNION ALL SELECT buyer_id, hour_key, 1, 0 FROM cap_claims WHERE NOT counted
                    UNION ALL SELECT buyer_id, day_key, 1, price FROM cap_claims WHERE NOT counted
                    UNION ALL SELECT buyer_id, month_key, 1, 0 FROM cap_claims WHERE NOT counted
                ) usage GROUP BY buyer_id, window_key
                """) {
                let count: Int64 = try row.get("count")
                sums[try row.get("buyer_id"), default: [:]][try row.get("window_key")] = (Int(count), try row.get("spend"))
            }
            var liveCalls: [String: Int] = [:]
            for row in try await connection.rows("SELECT buyer_id, count(*) AS n FROM cap_claims WHERE kind = 'call' GROUP BY buyer_id") {
                liveCalls[try row.get("buyer_id")] = Int(try row.get("n", as: Int64.self))
            }
            let counters = sums.flatMap { buyer, windows in
                windows.map { CapIncrement(buyerID: buyer, window: $0.key, count: $0.value.count, spend: Money(units: $0.value.spend)) }
            }
            return SharedUsage(counters: counters, liveCalls: liveCalls)
        }
    }
}

// MARK: SharedLiveState

extension PostgresStore: SharedLiveState {
    /// Claims held ping `id` for its post: one conditional update, so exactly one post (on any
    /// node) wins it.
    public func claimHeld(id: String, nodeID: String, nowMs: Int64) async throws(StoreError) -> LiveClaim {
        try await write("claim held ping") { connection in
            if let row = try await connection.rows("""
                UPDATE live_state l SET claimed_by = \(nodeID), claimed_until_ms = \(nowMs)
                WHERE l.round_id = \(id) AND l.kind = 'held' AND l.claimed_by IS NULL AND l.expires_at_ms > \(nowMs)
                RETURNING l.round_id, l.kind, l.snapshot, l.expires_at_ms,
                          (SELECT consent_json FROM lead_pii p WHERE p.round_id = l.round_id) AS consent_json
                """).first, let state = try PostgresStore.liveState(from: row) {
                return LiveClaim.won(state)
            }
            let exists = try await connection.rows("""
                SELECT 1 FROM live_state WHERE round_id = \(id) AND kind = 'held' AND expires_at_ms > \(nowMs)
                """).first != nil
            return exists ? LiveClaim.taken : LiveClaim.none
        }
    }

    /// Gives a claimed ping back unposted.
    public func unclaimHeld(id: String) async throws(StoreError) {
        try await write("unclaim held ping") { connection in
            try await connection.run("UPDATE live_state SET claimed_by = NULL, claimed_until_ms = NULL WHERE round_id = \(id) AND kind = 'held'")
        }
    }

    /// Checks out live call `id` for one event, for at most `leaseMs`.
    public func checkOutCall(id: String, nodeID: String, nowMs: Int64, leaseMs: Int64) async throws(StoreError) -> LiveClaim {
        try await write("check out call") { connection in
            if let row = try await connection.rows("""
                UPDATE live_state l SET claimed_by = \(nodeID), claimed_until_ms = \(nowMs + leaseMs)
                WHERE l.round_id = \(id) AND l.kind = 'call' AND (l.claimed_by IS NULL OR l.claimed_until_ms < \(nowMs))
                RETURNING l.round_id, l.kind, l.snapshot, l.expires_at_ms,
                          (SELECT consent_json FROM lead_pii p WHERE p.round_id = l.round_id) AS consent_json
                """).first, let state = try PostgresStore.liveState(from: row) {
                return LiveClaim.won(state)
            }
            let exists = try await connection.rows("SELECT 1 FROM live_state WHERE round_id = \(id) AND kind = 'call'").first != nil
            return exists ? LiveClaim.taken : LiveClaim.none
        }
    }

    /// Checks a call back in without a new record.
    public func checkInCall(id: String) async throws(StoreError) {
        try await write("check in call") { connection in
            try await connection.run("UPDATE live_state SET claimed_by = NULL, claimed_until_ms = NULL WHERE round_id = \(id) AND kind = 'call'")
        }
    }
}

// MARK: ClusterNodes

extension PostgresStore: ClusterNodes {
    /// Notes that `nodeID` is up; returns how many nodes beat within `liveWithinMs`.
    public func heartbeat(nodeID: String, nowMs: Int64, liveWithinMs: Int64) async throws(StoreError) -> Int {
        try await write("heartbeat") { connection in
            try await connection.run("""
                INSERT INTO nodes (node_id, seen_at_ms) VALUES (\(nodeID), \(nowMs))
                ON CONFLICT (node_id) DO UPDATE SET seen_at_ms = GREATEST(nodes.seen_at_ms, EXCLUDED.seen_at_ms)
                """)
            return Int(try await connection.rows("SELECT count(*) FROM nodes WHERE seen_at_ms >= \(nowMs - liveWithinMs)")[0].decode(Int64.self))
        }
    }

    /// Ends what dead nodes left behind, in one transaction: (a) post intents older than
    /// `staleIntentMs` become `post_unknown` (caps counted, contact remembered) and their claims
    /// end; (b) claims past their expiry go (a post claim with no intent was never posted: its unit
    /// goes back; a call claim of a call long over); (c) held pings claimed longer than
    /// `staleIntentMs` ago with no intent are freed. Returns how many it settled.
    @discardableResult
    public func reclaim(nowMs: Int64, staleIntentMs: Int64) async throws(StoreError) -> Int {
        try await write("reclaim") { connection in
            let intents = try await connection.rows("""
                DELETE FROM post_intents WHERE round_id IN (
                    SELECT round_id FROM post_intents WHERE sent_at_ms < \(nowMs - staleIntentMs)
                      -- Only a stopped node's: a live node settles its own posts (its kept rounds are retried).
                      AND node_id NOT IN (SELECT node_id FROM nodes WHERE seen_at_ms >= \(nowMs - PostgresStore.liveNodeWindowMs))
                    FOR UPDATE SKIP LOCKED)
                RETURNING *
                """).map(PostgresStore.intent(from:))
            try await PostgresStore.settle(intents, nowMs: nowMs, on: connection)
            let claims = try await connection.rows("""
                WITH gone AS (
                    DELETE FROM cap_claims c WHERE c.expires_at_ms < \(nowMs)
                      AND NOT EXISTS (SELECT 1 FROM post_intents i WHERE i.round_id = c.round_id)
                    RETURNING 1)
                SELECT count(*) FROM gone
                """)[0].decode(Int64.self)
            let held = try await connection.rows("""
                WITH freed AS (
                    UPDATE live_state l SET claimed_by = NULL, claimed_until_ms = NULL
                    WHERE l.kind = 'held' AND l.claimed_by IS NOT NULL AND l.claimed_until_ms < \(nowMs - staleIntentMs)
                      AND NOT EXISTS (SELECT 1 FROM post_intents i WHERE i.round_id = l.round_id)
                    RETURNING 1)
                SELECT count(*) FROM freed
                """)[0].decode(Int64.self)
            return intents.count + Int(claims) + Int(held)
        }
    }
}

extension PostgresStore: ClusterState {}

extension PostgresStore {
    /// A node whose heartbeat is older than this is taken for stopped when its posts are settled.
    static let liveNodeWindowMs: Int64 = 10_000

    /// The oldest hour, day and month keys (`H:…`, `D:…`, `M:…`, UTC) a cap can still need at `nowMs`.
    static func windowCutoffs(nowMs: Int64) -> (hour: String, day: String, month: String) {
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = TimeZone(identifier: "UTC")!
        func parts(_ ms: Int64) -> DateComponents {
            calendar.dateComponents([.year, .month, .day, .hour], from: Date(timeIntervalSince1970: Double(ms) / 1000))
        }
        func two(_ value: Int?) -> String { String(format: "%02d", value ?? 0) }
        let hour = parts(nowMs - 30 * 3_600_000)
        let day = parts(nowMs - 3 * 86_400_000)
        let month = parts(nowMs - 93 * 86_400_000)
        return ("H:\(hour.year ?? 0)-\(two(hour.month))-\(two(hour.day))T\(two(hour.hour))",
                "D:\(day.year ?? 0)-\(two(day.month))-\(two(day.day))", "M:\(month.year ?? 0)-\(two(month.month))")
    }
}
