import GavelCore
import GRDB

/// The books over SQLite: the `ledger` table (append-only, see `Schema`), read with the rounds.
extension RoundStore: BooksStore {
    /// A sold round's ledger row, in the round's own transaction; a second write of the round
    /// (a retry, a replacement) books nothing more.
    static func bookSale(_ record: RoundRecord, winner: String, price: Money, payout: Money, in db: Database) throws {
        try db.cachedStatement(sql: """
            INSERT OR IGNORE INTO ledger
              (entry_id, type, round_id, at_ms, round_at_ms, kind, campaign_id, seller_id, buyer_id, source, revenue, payout)
            SELECT 'sale:' || id, 'sale', id, created_at_ms, created_at_ms, kind, campaign_id, seller_id, ?2,
                   COALESCE(source, json_extract(attribution_json, '$.source')), ?3, ?4
            FROM rounds WHERE id = ?1
            """).execute(arguments: [record.id, winner, price.units, payout.units])
    }

    private static let saleColumns = """
        l.round_id, l.kind, l.campaign_id, l.seller_id, l.buyer_id, l.source, l.revenue, l.payout, l.round_at_ms,
        x.entry_id AS return_id, x.reason AS return_reason, x.note AS return_note, x.at_ms AS return_at_ms,
        x.returned AS return_credited, x.payout_reversed AS return_reversed
        """

    private static func sale(from row: Row) -> BookedSale {
        var returned: BookedReturn?
        if let returnID: String = row["return_id"] {
            returned = BookedReturn(returnID: returnID, reason: row["return_reason"], note: row["return_note"], atMs: row["return_at_ms"],
                                    credited: Money(units: row["return_credited"]), payoutReversed: Money(units: row["return_reversed"]))
        }
        return BookedSale(
            roundID: row["round_id"], kind: AuctionKind(rawValue: row["kind"] ?? "") ?? .lead, campaignID: row["campaign_id"] ?? "",
            sellerID: row["seller_id"] ?? "", buyerID: row["buyer_id"] ?? "", source: row["source"], price: Money(units: row["revenue"]),
            payout: Money(units: row["payout"]), soldAtMs: row["round_at_ms"] ?? 0, returned: returned)
    }

    public func sale(roundID: String) async throws(StoreError) -> BookedSale? {
        do {
            return try await pool.read { db in
                try Row.fetchOne(db, sql: """
                    SELECT \(RoundStore.saleColumns) FROM ledger l
                    LEFT JOIN ledger x ON x.round_id = l.round_id AND x.type = 'return'
                    WHERE l.round_id = ? AND l.type = 'sale'
                    """, arguments: [roundID]).map(RoundStore.sale(from:))
            }
        } catch {
            throw .read("\(error)")
        }
    }

    public func record(_ entry: ReturnEntry) async throws(StoreError) -> ReturnOutcome {
        let sale = entry.sale
        let booked = entry.booked
        do {
            return try await pool.write { db -> ReturnOutcome in
                // Checked and written in one transaction: two returns of a round cannot both book.
                if let earlier = try Row.fetchOne(db, sql: """
                    SELECT \(RoundStore.saleColumns) FROM ledger l
                    JOIN ledger x ON x.round_id = l.round_id AND x.type = 'return'
                    WHERE l.round_id = ? AND l.type = 'sale'
                    """, arguments: [sale.roundID]).flatMap({ RoundStore.sale(from: $0).returned }) {
                    return .alreadyReturned(earlier)
                }
                try db.execute(sql: """
                    INSERT INTO ledger (entry_id, type, round_id, at_ms, round_at_ms, kind, campaign_id, seller_id, buyer_id, source,
                                        returned, payout_reversed, reason, note)
                    VALUES (?, 'return', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                    """, arguments: [
                        booked.returnID, sale.roundID, booked.atMs, sale.soldAtMs, sale.kind.rawValue, sale.campaignID, sale.sellerID,
                        sale.buyerID, sale.source, booked.credited.units, booked.payoutReversed.units, booked.reason, booked.note,
                    ])
                if let credit = entry.budgetCredit { try RoundStore.addCounts([credit], in: db) }
                if let answer = entry.answer { try RoundStore.insert(answer, into: db) }
                return .recorded
            }
        } catch {
            throw .write("\(error)")
        }
    }

    public func record(_ adjustment: Adjustment) async throws(StoreError) {
        do {
            try await pool.write { db in
                try db.execute(sql: """
                    INSERT INTO ledger (entry_id, type, at_ms, campaign_id, seller_id, buyer_id, revenue, payout, note, operator_id)
                    VALUES (?, 'adjustment', ?, ?, ?, ?, ?, ?, ?, ?)
                    """, arguments: [
                        adjustment.adjustmentID, adjustment.atMs, adjustment.campaignID, adjustment.sellerID, adjustment.buyerID,
                        adjustment.revenue.units, adjustment.payout.units, adjustment.note, adjustment.operatorID,
                    ])
            }
        } catch {
            throw .write("\(error)")
        }
    }

    public func bookSlices(startMs: Int64, endMs: Int64) async throws(StoreError) -> [BookSlice] {
        do {
            return try await pool.read { db in
                var slices: [BookSlice] = []
                // Rounds and their sales, in the slot the round ran in.
                let rounds = try Row.fetchCursor(db, sql: """
                    SELECT r.created_at_ms / \(BookSlice.slotMs) AS slot, r.campaign_id, r.seller_id, l.buyer_id,
                           COALESCE(r.source, json_extract(r.attribution_json, '$.source')) AS source,
                           COUNT(*) AS rounds, COUNT(l.round_id) AS sold, COALESCE(SUM(l.revenue), 0) AS revenue,
                           COALESCE(SUM(l.payout), 0) AS payout
                    FROM rounds r LEFT JOIN ledger l ON l.round_id = r.id AND l.type = 'sale'
                    WHERE r.created_at_ms >= ? AND r.created_at_ms < ?
                    GROUP BY 1, 2, 3, 4, 5
                    """, arguments: [startMs, endMs])
                while let row = try rounds.next() {
                    slices.append(BookSlice(
                        slot: row["slot"], campaign: row["campaign_id"], seller: row["seller_id"], buyer: row["buyer_id"], source: row["source"],
                        figures: BookFigures(rounds: row["rounds"], sold: row["sold"], revenue: Money(units: row["revenue"]),
                                             payout: Money(units: row["payout"]))))
                }
                // Returns and adjustments, in the slot they were made in.
                let entries = try Row.fetchCursor(db, sql: """
                    SELECT at_ms / \(BookSlice.slotMs) AS slot, campaign_id, seller_id, buyer_id, source,
                           SUM(revenue) AS revenue, SUM(payout) AS payout, SUM(returned) AS returned, SUM(payout_reversed) AS reversed
                    FROM ledger WHERE type IN ('return', 'adjustment') AND at_ms >= ? AND at_ms < ?
                    GROUP BY 1, 2, 3, 4, 5
                    """, arguments: [startMs, endMs])
                while let row = try entries.next() {
                    slices.append(BookSlice(
                        slot: row["slot"], campaign: row["campaign_id"], seller: row["seller_id"], buyer: row["buyer_id"], source: row["source"],
                        figures: BookFigures(revenue: Money(units: row["revenue"]), payout: Money(units: row["payout"]),
                                             returned: Money(units: row["returned"]), payoutReversed: Money(units: row["reversed"]))))
                }
                return slices
            }
        } catch {
            throw .read("\(error)")
        }
    }

    public func buyerActivity(startMs: Int64, endMs: Int64) async throws(StoreError) -> [BuyerActivity] {
        do {
            return try await pool.read { db in
                var buyers: [String: BuyerActivity] = [:]
                func update(_ id: String, _ change: (inout BuyerActivity) -> Void) {
                    change(&buyers[id, default: BuyerActivity(buyerID: id)])
                }
                let range: StatementArguments = [startMs, endMs]
                for row in try Row.fetchAll(db, sql: """
                    SELECT b.buyer_id, b.reason, COUNT(*) AS n, COUNT(b.latency_us) AS pings, COUNT(b.bid) AS bids,
                           COALESCE(SUM(b.bid), 0) AS bid_total
                    FROM rounds r JOIN round_buyers b ON b.round_id = r.id
                    WHERE r.created_at_ms >= ? AND r.created_at_ms < ?
                    GROUP BY b.buyer_id, b.reason
                    """, arguments: range) {
                    update(row["buyer_id"]) { buyer in
                        buyer.reasons[row["reason"], default: 0] += row["n"]
                        buyer.pings += row["pings"]
                        buyer.bids += row["bids"]
                        buyer.bidTotal += Money(units: row["bid_total"])
                    }
                }
                let counted = [ReasonCode.sold, .postRejected, .postFailed, .postTimeout].map { "'\($0.rawValue)'" }.joined(separator: ", ")
                for row in try Row.fetchAll(db, sql: """
                    SELECT p.buyer_id, COUNT(*) AS posts, SUM(p.result = 'sold') AS accepted
                    FROM rounds r JOIN post_attempts p ON p.round_id = r.id
                    WHERE r.created_at_ms >= ? AND r.created_at_ms < ? AND p.result IN (\(counted))
                    GROUP BY p.buyer_id
                    """, arguments: range) {
                    update(row["buyer_id"]) { buyer in
                        buyer.posts += row["posts"]
                        buyer.postsAccepted += row["accepted"]
                    }
                }
                for row in try Row.fetchAll(db, sql: """
                    SELECT l.buyer_id, COUNT(*) AS wins, SUM(l.revenue) AS spend
                    FROM rounds r JOIN ledger l ON l.round_id = r.id AND l.type = 'sale'
                    WHERE r.created_at_ms >= ? AND r.created_at_ms < ?
                    GROUP BY l.buyer_id
                    """, arguments: range) {
                    update(row["buyer_id"]) { buyer in
                        buyer.wins += row["wins"]
                        buyer.spend += Money(units: row["spend"])
                    }
                }
                for row in try Row.fetchAll(db, sql: """
                    SELECT buyer_id, COUNT(*) AS returns, SUM(returned) AS returned
                    FROM ledger WHERE type = 'return' AND at_ms >= ? AND at_ms < ?
                    GROUP BY buyer_id
                    """, arguments: range) {
                    update(row["buyer_id"]) { buyer in
                        buyer.returns += row["returns"]
                        buyer.returned += Money(units: row["returned"])
                    }
                }
                // Latency percentiles: each buyer's ping latencies, in order.
                var latencies: [String: [Int64]] = [:]
                let rows = try Row.fetchCursor(db, sql: """
                    SELECT b.buyer_id, b.latency_us FROM rounds r JOIN round_buyers b ON b.round_id = r.id
                    WHERE r.created_at_ms >= ? AND r.created_at_ms < ? AND b.latency_us IS NOT NULL
                    """, arguments: range)
                while let row = try rows.next() { latencies[row[0], default: []].append(row[1]) }
                for (buyerID, values) in latencies {
                    let sorted = values.sorted()
                    update(buyerID) { buyer in
                        buyer.latencyP50Us = RoundStore.nearestRank(sorted, percent: 50)
                        buyer.latencyP99Us = RoundStore.nearestRank(sorted, percent: 99)
                    }
                }
                return buyers.values.sorted { $0.buyerID < $1.buyerID }
            }
        } catch {
            throw .read("\(error)")
        }
    }

    /// The nearest-rank percentile of sorted values.
    static func nearestRank(_ sorted: [Int64], percent: Int) -> Int64? {
        guard !sorted.isEmpty else { return nil }
        let rank = (sorted.count * percent + 99) / 100
        return sorted[max(0, min(sorted.count - 1, rank - 1))]
    }

    public func sellerActivity(startMs: Int64, endMs: Int64, sellerID: String?) async throws(StoreError) -> [SellerActivity] {
        let slices = try await bookSlices(startMs: startMs, endMs: endMs, sellerID: sellerID)
        do {
            return try await pool.read { db in
                var sellers: [String: SellerActivity] = [:]
                for slice in slices {
                    guard let id = slice.seller else { continue }
                    sellers[id, default: SellerActivity(sellerID: id)].figures += slice.figures
                }
                let filter = sellerID == nil ? "" : "AND r.seller_id = ?3"
                var arguments: StatementArguments = [startMs, endMs]
                if let sellerID { arguments += [sellerID] }
                for row in try Row.fetchAll(db, sql: """
                    SELECT r.seller_id, r.status, COUNT(*) AS n FROM rounds r
                    WHERE r.created_at_ms >= ?1 AND r.created_at_ms < ?2 \(filter)
                    GROUP BY r.seller_id, r.status
                    """, arguments: arguments) {
                    let id: String = row["seller_id"]
                    sellers[id, default: SellerActivity(sellerID: id)].statuses[row["status"], default: 0] += row["n"]
                }
                for row in try Row.fetchAll(db, sql: """
                    SELECT r.seller_id, b.reason, COUNT(*) AS n FROM rounds r JOIN round_buyers b ON b.round_id = r.id
                    WHERE r.created_at_ms >= ?1 AND r.created_at_ms < ?2 \(filter)
                    GROUP BY r.seller_id, b.reason
                    """, arguments: arguments) {
                    let id: String = row["seller_id"]
                    sellers[id, default: SellerActivity(sellerID: id)].reasons[row["reason"], default: 0] += row["n"]
                }
                return sellers.values.sorted { $0.sellerID < $1.sellerID }
            }
        } catch {
            throw .read("\(error)")
        }
    }

    /// `bookSlices`, of one seller when `sellerID` is set.
    private func bookSlices(startMs: Int64, endMs: Int64, sellerID: String?) async throws(StoreError) -> [BookSlice] {
        let all = try await bookSlices(startMs: startMs, endMs: endMs)
        guard let sellerID else { return all }
        return all.filter { $0.seller == sellerID }
    }

    public func purchases(buyerID: String, startMs: Int64, endMs: Int64, after cursor: PurchaseCursor?, limit: Int) async throws(StoreError) -> [Purchase] {
        do {
            return try await pool.read { db in
                try Row.fetchAll(db, sql: """
                    SELECT \(RoundStore.saleColumns), r.lead_json, p.contact_json
                    FROM ledger l JOIN rounds r ON r.id = l.round_id
                    LEFT JOIN lead_pii p ON p.round_id = l.round_id
                    LEFT JOIN ledger x ON x.round_id = l.round_id AND x.type = 'return'
                    WHERE l.buyer_id = ?1 AND l.type = 'sale' AND l.round_at_ms >= ?2 AND l.round_at_ms < ?3
                      AND (?4 IS NULL OR l.round_at_ms < ?4 OR (l.round_at_ms = ?4 AND l.round_id < ?5))
                    ORDER BY l.round_at_ms DESC, l.round_id DESC
                    LIMIT ?6
                    """, arguments: [buyerID, startMs, endMs, cursor?.soldAtMs, cursor?.roundID, limit]).map { row in
                    Purchase(sale: RoundStore.sale(from: row), contactJSON: row["contact_json"], leadJSON: row["lead_json"])
                }
            }
        } catch {
            throw .read("\(error)")
        }
    }

    /// Returns of sales made since `sinceMs`, per buyer and kind: start-up takes them off the
    /// successes of the outcome estimates (a returned lead is not a success).
    func returnTallies(sinceMs: Int64, in db: Database) throws -> [OutcomeEstimator.Key: Int64] {
        var tallies: [OutcomeEstimator.Key: Int64] = [:]
        for row in try Row.fetchAll(db, sql: """
            SELECT buyer_id, kind, COUNT(*) AS n FROM ledger WHERE type = 'return' AND round_at_ms >= ? GROUP BY buyer_id, kind
            """, arguments: [sinceMs]) {
            guard let kind = AuctionKind(rawValue: row["kind"] ?? "") else { continue }
            tallies[OutcomeEstimator.Key(buyerID: row["buyer_id"], kind: kind), default: 0] += row["n"]
        }
        return tallies
    }
}
