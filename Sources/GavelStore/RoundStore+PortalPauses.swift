import GRDB

/// Buyers that paused themselves in the portal: one row per paused buyer, deleted when it resumes,
/// so a pause holds across reloads and restarts (`paused: true` in YAML pauses regardless).
extension RoundStore {
    /// The buyers paused from the portal now.
    public func portalPauses() throws(StoreError) -> Set<String> {
        do {
            return try pool.read { db in Set(try String.fetchAll(db, sql: "SELECT buyer_id FROM portal_pauses")) }
        } catch {
            throw .read("\(error)")
        }
    }

    /// Pauses (or resumes) `buyerID`; committed before this returns.
    public func setPortalPause(buyerID: String, paused: Bool, atMs: Int64) async throws(StoreError) {
        do {
            try await pool.write { db in
                if paused {
                    try db.execute(sql: "INSERT INTO portal_pauses (buyer_id, paused_at_ms) VALUES (?, ?) ON CONFLICT(buyer_id) DO NOTHING",
                                   arguments: [buyerID, atMs])
                } else {
                    try db.execute(sql: "DELETE FROM portal_pauses WHERE buyer_id = ?", arguments: [buyerID])
                }
            }
        } catch {
            throw .write("\(error)")
        }
    }
}
