import GavelCore
import GavelStore
import PostgresNIO

/// The books over PostgreSQL: the `ledger` table (append-only: triggers refuse UPDATE, DELETE and
/// TRUNCATE), read with the rounds. Every query is `RoundStore+Books.swift`'s, in PostgreSQL's words.
extension PostgresStore: BooksStore {
    private static let saleColumns = """
        l.round_id, l.kind, l.campaign_id, l.seller_id, l.buyer_id, l.source, l.revenue, l.payout, l.round_at_ms,
        x.entry_id AS return_id, x.reason AS return_reason, x.note AS return_note, x.at_ms AS return_at_ms,
        x.returned AS return_credited, x.payout_reversed AS return_reversed
        """

    private static func sale(from row: PostgresRandomAccessRow) throws -> BookedSale {
        var returned: BookedReturn?
        if let returnID = try row.get("return_id", as: String?.self) {
            returned = BookedReturn(returnID: returnID, reason: try row.get("return_reason", as: String?.self) ?? "",
                                    note: try row.get("return_note"), atMs: try row.get("return_at_ms"),
                                    credited: Money(units: try row.get("return_credited")),
                                    payoutReversed: Money(units: try row.get("return_reversed")))
        }
        return BookedSale(
            roundID: try row.get("round_id"), kind: AuctionKind(rawValue: try row.get("kind", as: String?.self) ?? "") ?? .lead,
            campaignID: try row.get("campaign_id", as: String?.self) ?? "", sellerID: try row.get("seller_id", as: String?.self) ?? "",
            buyerID: try row.get("buyer_id", as: String?.self) ?? "", source: try row.get("source"), price: Money(units: try row.get("revenue")),
            payout: Money(units: try row.get("payout")), soldAtMs: try row.get("round_at_ms", as: Int64?.self) ?? 0, returned: returned)
    }

    public func sale(roundID: String) async throws(StoreError) -> BookedSale? {
        try await read("sale") { connection in
            var binds = PostgresBindings()
            binds.append(roundID)
            return try await connection.rows(PostgresQuery(unsafeSQL: """
                SELECT \(PostgresStore.saleColumns) FROM ledger l
                LEFT JOIN ledger x ON x.round_id = l.round_id AND x.type = 'return'
                WHERE l.round_id = $1 AND l.type = 'sale'
                """, binds: binds)).first.map(PostgresStore.sale(from:))
        }
    }

    public func record(_ entry: ReturnEntry) async throws(StoreError) -> ReturnOutcome {
        let sale = entry.sale
        let booked = entry.booked
        return try await write("return") { connection in
            // Checked and written in one transaction, the sale's row locked: two returns of a round
            // cannot both book (and the unique index would refuse the second).
            var binds = PostgresBindings()
            binds.append(sale.roundID)
            _ = try await connection.rows(PostgresQuery(unsafeSQL: "SELECT 1 FROM ledger WHERE round_id = $1 AND type = 'sale' FOR SHARE",
                                                        binds: binds))
            if let earlier = try await connection.rows(PostgresQuery(unsafeSQL: """
                SELECT \(PostgresStore.saleColumns) FROM ledger l
                JOIN ledger x ON x.round_id = l.round_id AND x.type = 'return'
                WHERE l.round_id = $1 AND l.type = 'sale'
                """, binds: binds)).first.flatMap({ try PostgresStore.sale(from: $0).returned }) {
                return .alreadyReturned(earlier)
            }
            let inserted = try await connection.rows("""
                INSERT INTO ledger (entry_id, type, round_id, at_ms, round_at_ms, kind, campaign_id, seller_id, buyer_id, source,
                                    returned, payout_reversed, reason, note)
                VALUES (\(booked.returnID), 'return', \(sale.roundID), \(booked.atMs), \(sale.soldAtMs), \(sale.kind.rawValue), \(sale.campaignID),
                        \(sale.sellerID), \(sale.buyerID), \(sale.source), \(booked.credited.units), \(booked.payoutReversed.units),
                        \(booked.reason), \(booked.note))
                ON CONFLICT (round_id, type) DO NOTHING
                RETURNING 1
                """)
            if inserted.isEmpty {
                // Another node booked it between the check and the insert.
                if let earlier = try await connection.rows(PostgresQuery(unsafeSQL: """
                    SELECT \(PostgresStore.saleColumns) FROM ledger l
                    JOIN ledger x ON x.round_id = l.round_id AND x.type = 'return'
                    WHERE l.round_id = $1 AND l.type = 'sale'
                    """, binds: binds)).first.flatMap({ try PostgresStore.sale(from: $0).returned }) {
                    return .alreadyReturned(earlier)
                }
            }
            if let credit = entry.budgetCredit { try await CapIncrementText.add([credit], on: connection, logger: PostgresStore.quiet) }
            if let answer = entry.answer {
                try await connection.run("""
                    INSERT INTO idempotency_keys (scope, body_hash, status, response, round_id, created_at_ms)
                    VALUES (\(answer.scope), \(answer.bodyHash), \(Int64(answer.status)), \(answer.response), \(answer.roundID), \(answer.createdAtMs))
                    ON CONFLICT (scope) DO UPDATE SET body_hash = EXCLUDED.body_hash, status = EXCLUDED.status, response = EXCLUDED.response,
                      round_id = EXCLUDED.round_id, created_at_ms = EXCLUDED.created_at_ms
                    """)
            }
            return .recorded
        }
    }

    public func record(_ adjustment: Adjustment) async throws(StoreError) {
        try await write("adjustment") { connection in
            try await connection.run("""
                INSERT INTO ledger (entry_id, type, at_ms, campaign_id, seller_id, buyer_id, revenue, payout, note, operator_id)
                VALUES (\(adjustment.adjustmentID), 'adjustment', \(adjustment.atMs), \(adjustment.campaignID), \(adjustment.sellerID),
                        \(adjustment.buyerID), \(adjustment.revenue.units), \(adjustment.payout.units), \(adjustment.note), \(adjustment.operatorID))
                """)
        }
    }

    public func bookSlices(startMs: Int64, endMs: Int64) async throws(StoreError) -> [BookSlice] {
        try await read("book slices") { connection in
            var slices: [BookSlice] = []
            // Rounds and their sales, in the slot the round ran in.
            for row in try await connection.rows("""
                SELECT r.created_at_ms / \(BookSlice.slotMs) AS slot, r.campaign_id, r.seller_id, l.buyer_id,
                       COALESCE(r.source, r.attribution_json::jsonb ->> 'source') AS source,
                       count(*) AS rounds, count(l.round_id) AS sold, COALESCE(sum(l.revenue), 0)::bigint AS revenue,
                       COALESCE(sum(l.payout), 0)::bigint AS payout
                FROM rounds r LEFT JOIN ledger l ON l.round_id = r.id AND l.type = 'sale'
                WHERE r.created_at_ms >= \(startMs) AND r.created_at_ms < \(endMs)
                GROUP BY 1, 2, 3, 4, 5
                """) {
                slices.append(BookSlice(
                    slot: try row.get("slot"), campaign: try row.get("campaign_id"), seller: try row.get("seller_id"),
                    buyer: try row.get("buyer_id"), source: try row.get("source"),
                    figures: BookFigures(rounds: try row.get("rounds"), sold: try row.get("sold"), revenue: Money(units: try row.get("revenue")),
                                         payout: Money(units: try row.get("payout")))))
            }
            // Returns and adjustments, in the slot they were made in.
            for row in try await connection.rows("""
                SELECT at_ms / \(BookSlice.slotMs) AS slot, campaign_id, seller_id, buyer_id, source,
                       sum(revenue)::bigint AS revenue, sum(payout)::bigint AS payout, sum(returned)::bigint AS returned,
                       sum(payout_reversed)::bigint AS reversed
                FROM ledger WHERE type IN ('return', 'adjustment') AND at_ms >= \(startMs) AND at_ms < \(endMs)
                GROUP BY 1, 2, 3, 4, 5
                """) {
                slices.append(BookSlice(
                    slot: try row.get("slot"), campaign: try row.get("campaign_id"), seller: try row.get("seller_id"),
                    buyer: try row.get("buyer_id"), source: try row.get("source"),
                    figures: BookFigures(revenue: Money(units: try row.get("revenue")), payout: Money(units: try row.get("payout")),
                                         returned: Money(units: try row.get("returned")), payoutReversed: Money(units: try row.get("reversed")))))
            }
            return slices
        }
    }

    public func buyerActivity(startMs: Int64, endMs: Int64) async throws(StoreError) -> [BuyerActivity] {
        let counted = [ReasonCode.sold, .postRejected, .postFailed, .postTimeout].map { "'\($0.rawValue)'" }.joined(separator: ", ")
        return try await read("buyer activity") { connection in
            var buyers: [String: BuyerActivity] = [:]
            func update(_ id: String, _ change: (inout BuyerActivity) -> Void) {
                change(&buyers[id, default: BuyerActivity(buyerID: id)])
            }
            var range = PostgresBindings()
            range.append(startMs)
            range.append(endMs)
            for row in try await connection.rows(PostgresQuery(unsafeSQL: """
                SELECT b.buyer_id, b.reason, count(*) AS n, count(b.latency_us) AS pings, count(b.bid) AS bids,
                       COALESCE(sum(b.bid), 0)::bigint AS bid_total
                FROM rounds r JOIN round_buyers b ON b.round_id = r.id
                WHERE r.created_at_ms >= $1 AND r.created_at_ms < $2
                GROUP BY b.buyer_id, b.reason
                """, binds: range)) {
                let reason: String = try row.get("reason")
                let n: Int64 = try row.get("n"), pings: Int64 = try row.get("pings"), bids: Int64 = try row.get("bids")
                let total: Int64 = try row.get("bid_total")
                update(try row.get("buyer_id")) { buyer in
                    buyer.reasons[reason, default: 0] += n
                    buyer.pings += pings
                    buyer.bids += bids
                    buyer.bidTotal += Money(units: total)
                }
            }
            for row in try await connection.rows(PostgresQuery(unsafeSQL: """
                SELECT p.buyer_id, count(*) AS posts, count(*) FILTER (WHERE p.result = 'sold') AS accepted
                FROM rounds r JOIN post_attempts p ON p.round_id = r.id
                WHERE r.created_at_ms >= $1 AND r.created_at_ms < $2 AND p.result IN (\(counted))
                GROUP BY p.buyer_id
                """, binds: range)) {
                let posts: Int64 = try row.get("posts"), accepted: Int64 = try row.get("accepted")
                update(try row.get("buyer_id")) { buyer in
                    buyer.posts += posts
                    buyer.postsAccepted += accepted
                }
            }
            for row in try await connection.rows(PostgresQuery(unsafeSQL: """
                SELECT l.buyer_id, count(*) AS wins, sum(l.revenue)::bigint AS spend
                FROM rounds r JOIN ledger l ON l.round_id = r.id AND l.type = 'sale'
                WHERE r.created_at_ms >= $1 AND r.created_at_ms < $2
                GROUP BY l.buyer_id
                """, binds: range)) {
                let wins: Int64 = try row.get("wins"), spend: Int64 = try row.get("spend")
                update(try row.get("buyer_id")) { buyer in
                    buyer.wins += wins
                    buyer.spend += Money(units: spend)
                }
            }
            for row in try await connection.rows(PostgresQuery(unsafeSQL: """
                SELECT buyer_id, count(*) AS returns, sum(returned)::bigint AS returned
                FROM ledger WHERE type = 'return' AND at_ms >= $1 AND at_ms < $2
                GROUP BY buyer_id
                """, binds: range)) {
                let returns: Int64 = try row.get("returns"), returned: Int64 = try row.get("returned")
                update(try row.get("buyer_id")) { buyer in
                    buyer.returns += returns
                    buyer.returned += Money(units: returned)
                }
            }
            // Latency percentiles (nearest rank), computed by the server from each buyer's latencies.
            for row in try await connection.rows(PostgresQuery(unsafeSQL: """
                SELECT b.buyer_id, array_agg(b.latency_us ORDER BY b.latency_us) AS latencies
                FROM rounds r JOIN round_buyers b ON b.round_id = r.id
                WHERE r.created_at_ms >= $1 AND r.created_at_ms < $2 AND b.latency_us IS NOT NULL
                GROUP BY b.buyer_id
                """, binds: range)) {
                let sorted: [Int64] = try row.get("latencies")
                update(try row.get("buyer_id")) { buyer in
                    buyer.latencyP50Us = PostgresStore.nearestRank(sorted, percent: 50)
                    buyer.latencyP99Us = PostgresStore.nearestRank(sorted, percent: 99)
                }
            }
            return buyers.values.sorted { $0.buyerID < $1.buyerID }
        }
    }

    /// The nearest-rank percentile of sorted values.
    static func nearestRank(_ sorted: [Int64], percent: Int) -> Int64? {
        guard !sorted.isEmpty else { return nil }
        let rank = (sorted.count * percent + 99) / 100
        return sorted[max(0, min(sorted.count - 1, rank - 1))]
    }

    public func sellerActivity(startMs: Int64, endMs: Int64, sellerID: String?) async throws(StoreError) -> [SellerActivity] {
        var slices = try await bookSlices(startMs: startMs, endMs: endMs)
        if let sellerID { slices = slices.filter { $0.seller == sellerID } }
        let allSlices = slices
        return try await read("seller activity") { connection in
            var sellers: [String: SellerActivity] = [:]
            for slice in allSlices {
                guard let id = slice.seller else { continue }
                sellers[id, default: SellerActivity(sellerID: id)].figures += slice.figures
            }
            var binds = PostgresBindings()
            binds.append(startMs)
            binds.append(endMs)
            binds.append(sellerID)
            for row in try await connection.rows(PostgresQuery(unsafeSQL: """
                SELECT r.seller_id, r.status, count(*) AS n FROM rounds r
                WHERE r.created_at_ms >= $1 AND r.created_at_ms < $2 AND ($3::text IS NULL OR r.seller_id = $3)
                GROUP BY r.seller_id, r.status
                """, binds: binds)) {
                let id: String = try row.get("seller_id")
                sellers[id, default: SellerActivity(sellerID: id)].statuses[try row.get("status"), default: 0] += try row.get("n", as: Int64.self)
            }
            for row in try await connection.rows(PostgresQuery(unsafeSQL: """
                SELECT r.seller_id, b.reason, count(*) AS n FROM rounds r JOIN round_buyers b ON b.round_id = r.id
                WHERE r.created_at_ms >= $1 AND r.created_at_ms < $2 AND ($3::text IS NULL OR r.seller_id = $3)
                GROUP BY r.seller_id, b.reason
                """, binds: binds)) {
                let id: String = try row.get("seller_id")
                sellers[id, default: SellerActivity(sellerID: id)].reasons[try row.get("reason"), default: 0] += try row.get("n", as: Int64.self)
            }
            return sellers.values.sorted { $0.sellerID < $1.sellerID }
        }
    }

    public func purchases(buyerID: String, startMs: Int64, endMs: Int64, after cursor: PurchaseCursor?, limit: Int) async throws(StoreError)
        -> [Purchase]
    {
        try await read("purchases") { connection in
            var binds = PostgresBindings()
            binds.append(buyerID)
            binds.append(startMs)
            binds.append(endMs)
            binds.append(cursor?.soldAtMs)
            binds.append(cursor?.roundID)
            binds.append(Int64(limit))
            return try await connection.rows(PostgresQuery(unsafeSQL: """
                SELECT \(PostgresStore.saleColumns), r.lead_json, p.contact_json
                FROM ledger l JOIN rounds r ON r.id = l.round_id
                LEFT JOIN lead_pii p ON p.round_id = l.round_id
                LEFT JOIN ledger x ON x.round_id = l.round_id AND x.type = 'return'
                WHERE l.buyer_id = $1 AND l.type = 'sale' AND l.round_at_ms >= $2 AND l.round_at_ms < $3
                  AND ($4::bigint IS NULL OR l.round_at_ms < $4 OR (l.round_at_ms = $4 AND l.round_id < $5))
                ORDER BY l.round_at_ms DESC, l.round_id DESC
                LIMIT $6
                """, binds: binds)).map { row in
                Purchase(sale: try PostgresStore.sale(from: row), contactJSON: try row.get("contact_json"), leadJSON: try row.get("lead_json"))
            }
        }
    }
}

// MARK: DashboardReader

extension PostgresStore {
    public func activity(sinceMs: Int64, limit: Int) async throws(StoreError) -> RoundStore.Activity {
        try await read("activity") { connection in
            var activity = RoundStore.Activity()
            let rounds = try await connection.rows("""
                SELECT r.created_at_ms, s.round_id IS NOT NULL AS sold
                FROM rounds r LEFT JOIN sales s ON s.round_id = r.id
                WHERE r.created_at_ms >= \(sinceMs) ORDER BY r.created_at_ms DESC LIMIT \(Int64(limit + 1))
                """)
            activity.truncated = rounds.count > limit
            var minutes: [Int64: RoundStore.Activity.Minute] = [:]
            var oldest = sinceMs
            for row in rounds.prefix(limit) {
                let sold: Bool = try row.get("sold")
                let created: Int64 = try row.get("created_at_ms")
                oldest = created
                let start = created / 60_000 * 60_000
                minutes[start, default: RoundStore.Activity.Minute(startMs: start, rounds: 0, sold: 0)].rounds += 1
                if sold { minutes[start]?.sold += 1 }
                activity.rounds += 1
                if sold { activity.sold += 1 }
            }
            activity.minutes = minutes.values.sorted { $0.startMs < $1.startMs }
            for row in try await connection.rows("""
                SELECT b.buyer_id, b.reason, b.bid IS NOT NULL AS has_bid, b.latency_us,
                       (r.winner_id = b.buyer_id AND s.round_id IS NOT NULL) AS won
                FROM rounds r JOIN round_buyers b ON b.round_id = r.id LEFT JOIN sales s ON s.round_id = r.id
                WHERE r.created_at_ms >= \(max(sinceMs, oldest))
                """) {
                let buyerID: String = try row.get("buyer_id")
                activity.reasons[try row.get("reason"), default: 0] += 1
                var buyer = activity.buyers[buyerID] ?? RoundStore.Activity.Buyer()
                buyer.considered += 1
                if let latency = try row.get("latency_us", as: Int64?.self) {
                    buyer.pinged += 1
                    buyer.latenciesUs.append(Int(latency))
                }
                if try row.get("has_bid", as: Bool.self) { buyer.bids += 1 }
                if try row.get("won", as: Bool?.self) == true { buyer.wins += 1 }
                activity.buyers[buyerID] = buyer
            }
            for key in activity.buyers.keys { activity.buyers[key]?.latenciesUs.sort() }
            return activity
        }
    }

    public func roundCounts(fromMs: Int64, toMs: Int64) async throws(StoreError) -> (rounds: Int, sold: Int) {
        try await read("round counts") { connection in
            let row = try await connection.rows("""
                SELECT count(*) AS rounds, count(s.round_id) AS sold
                FROM rounds r LEFT JOIN sales s ON s.round_id = r.id
                WHERE r.created_at_ms >= \(fromMs) AND r.created_at_ms < \(toMs)
                """)[0]
            return (Int(try row.get("rounds", as: Int64.self)), Int(try row.get("sold", as: Int64.self)))
        }
    }

    public func recentRounds(limit: Int) async throws(StoreError) -> [RoundStore.RecentRound] {
        try await read("recent rounds") { connection in
            try await connection.rows("""
                SELECT r.id, r.kind, r.campaign_id, r.status, r.created_at_ms, r.winner_id, r.price,
                       (SELECT count(*) FROM round_buyers b WHERE b.round_id = r.id) AS buyers
                FROM rounds r ORDER BY r.created_at_ms DESC LIMIT \(Int64(limit))
                """).map { row in
                RoundStore.RecentRound(id: try row.get("id"), kind: try row.get("kind"), campaignID: try row.get("campaign_id"),
                                       status: try row.get("status"), createdAtMs: try row.get("created_at_ms"), winnerID: try row.get("winner_id"),
                                       price: try row.get("price", as: Int64?.self).map(Money.init(units:)),
                                       buyers: Int(try row.get("buyers", as: Int64.self)))
            }
        }
    }
}

extension PostgresStore: ExchangeStore {}
