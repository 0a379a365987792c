import GRDB

extension RoundStore {
    /// Keeps a call's recording URL (the provider's recording callback). Its own table: a call's
    /// record is rewritten as the call goes on, and the recording may arrive before or after that.
    /// A second callback for the same call replaces the URL.
    public func attachRecording(roundID: String, url: String, atMs: Int64) async throws(StoreError) {
        do {
            try await pool.write { db in
                try db.execute(sql: """
                    INSERT INTO call_recordings (round_id, url, at_ms) VALUES (?, ?, ?)
                    ON CONFLICT (round_id) DO UPDATE SET url = excluded.url, at_ms = excluded.at_ms
                    """, arguments: [roundID, url, atMs])
            }
        } catch {
            throw .write("\(error)")
        }
    }

    /// The recording URL of a call, when its provider sent one.
    public func recordingURL(roundID: String) async throws(StoreError) -> String? {
        do {
            return try await pool.read { db in
                try String.fetchOne(db, sql: "SELECT url FROM call_recordings WHERE round_id = ?", arguments: [roundID])
            }
        } catch {
            throw .read("\(error)")
        }
    }
}
