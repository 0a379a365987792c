import GRDB

// MARK: Round-robin rotations

extension RoundStore {
    /// Each round-robin campaign's rotation counter as last written, for start-up.
    public func rotations() throws(StoreError) -> [String: Int] {
        do {
            return try pool.read { db in
                let rows = try Row.fetchAll(db, sql: "SELECT campaign_id, next FROM rotations")
                return Dictionary(rows.map { ($0["campaign_id"], $0["next"]) }, uniquingKeysWith: max)
            }
        } catch {
            throw .read("\(error)")
        }
    }

    /// Writes a campaign's rotation counter in the round's transaction. Rounds of a campaign run
    /// at once and commit in any order: the highest counter written wins, so it never goes back.
    static func advanceRotation(campaignID: String, to next: Int, in db: Database) throws {
        try db.cachedStatement(sql: """
            INSERT INTO rotations (campaign_id, next) VALUES (?, ?)
            ON CONFLICT (campaign_id) DO UPDATE SET next = MAX(next, excluded.next)
            """).execute(arguments: [campaignID, next])
    }
}
