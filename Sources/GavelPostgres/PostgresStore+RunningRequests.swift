import GavelStore
import PostgresNIO

// MARK: RunningRequests

extension PostgresStore: RunningRequests {
    /// One conditional upsert: the mark is taken when there is none, the one there lapsed (its node
    /// died mid-request) or is this node's own (a repeat after a late commit: this node has the
    /// kept round; its own gate keeps concurrent repeats apart). Refused too while another node's
    /// post for this key is unsettled (its node died after sending it): the repeat learns the
    /// outcome once that post is settled, instead of selling the lead again.
    public func beginRequest(scope: String, nodeID: String, nowMs: Int64, untilMs: Int64) async throws(StoreError) -> Bool {
        try await write("begin keyed request") { connection in
            let unsettled = try await connection.rows("""
                SELECT 1 FROM post_intents WHERE idempotency_scope = \(scope) AND node_id <> \(nodeID) LIMIT 1
                """)
            guard unsettled.isEmpty else { return false }
            return try await !connection.rows("""
                INSERT INTO running_requests (scope, node_id, until_ms) VALUES (\(scope), \(nodeID), \(untilMs))
                ON CONFLICT (scope) DO UPDATE SET node_id = EXCLUDED.node_id, until_ms = EXCLUDED.until_ms
                WHERE running_requests.until_ms < \(nowMs) OR running_requests.node_id = EXCLUDED.node_id
                RETURNING scope
                """).isEmpty
        }
    }

    public func endRequest(scope: String, nodeID: String) async throws(StoreError) {
        try await write("end keyed request") { connection in
            try await connection.run("DELETE FROM running_requests WHERE scope = \(scope) AND node_id = \(nodeID)")
        }
    }
}

extension PostgresStore: StoreInspection {}

// MARK: SharedTracking

extension PostgresStore: SharedTracking {
    /// One conditional upsert: taken only from a reservation that has expired.
    public func reserveNumber(_ session: StoredDNISession, nowMs: Int64) async throws(StoreError) -> Bool {
        try await write("reserve tracking number") { connection in
            try await !connection.rows("""
                INSERT INTO dni_sessions (number, session_id, campaign_id, visit_json, expires_at_ms)
                VALUES (\(session.number), \(session.sessionID), \(session.campaignID), \(session.visitJSON), \(session.expiresAtMs))
                ON CONFLICT (number) DO UPDATE SET session_id = EXCLUDED.session_id, campaign_id = EXCLUDED.campaign_id,
                  visit_json = EXCLUDED.visit_json, expires_at_ms = EXCLUDED.expires_at_ms
                WHERE dni_sessions.expires_at_ms <= \(nowMs)
                RETURNING number
                """).isEmpty
        }
    }

    public func trackingSession(number: String, nowMs: Int64) async throws(StoreError) -> StoredDNISession? {
        try await read("tracking session") { connection in
            try await connection.rows("SELECT * FROM dni_sessions WHERE number = \(number) AND expires_at_ms > \(nowMs)").first.map { row in
                StoredDNISession(number: try row.get("number"), sessionID: try row.get("session_id"), campaignID: try row.get("campaign_id"),
                                 visitJSON: try row.get("visit_json"), expiresAtMs: try row.get("expires_at_ms"))
            }
        }
    }
}
