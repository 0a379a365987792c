import Foundation
import GRDB

extension RoundStore {
    /// The key for contact and caller hashes: made at random on first start and kept, so hashes
    /// stay comparable across restarts and no buyer can reverse them with a published default.
    public func hashKey() throws(StoreError) -> String {
        do {
            return try pool.write { db in
                if let key = try String.fetchOne(db, sql: "SELECT value FROM settings WHERE name = 'hash_key'") { return key }
                var generator = SystemRandomNumberGenerator()
                let key = (0..<32).map { _ in String(format: "%02x", UInt8.random(in: 0...255, using: &generator)) }.joined()
                try db.execute(sql: "INSERT INTO settings (name, value) VALUES ('hash_key', ?)", arguments: [key])
                return key
            }
        } catch {
            throw .write("\(error)")
        }
    }
}
