import GavelStore
import PostgresNIO

// MARK: RunningRequests

extension PostgresStore: RunningRequests {
    /// One conditional upsert: the mark is taken when there is none or the one there lapsed (its
    /// node died mid-request), so exactly one node runs a request with this key at a time.
    public func beginRequest(scope: String, nodeID: String, nowMs: Int64, untilMs: Int64) async throws(StoreError) -> Bool {
        try await write("begin keyed request") { connection in
            try await !connection.rows("""
                INSERT INTO running_requests (scope, node_id, until_ms) VALUES (\(scope), \(nodeID), \(untilMs))
                ON CONFLICT (scope) DO UPDATE SET node_id = EXCLUDED.node_id, until_ms = EXCLUDED.until_ms
                WHERE running_requests.until_ms < \(nowMs)
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
