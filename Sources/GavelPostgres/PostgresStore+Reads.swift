import GavelCore
import GavelStore
import PostgresNIO

// MARK: RoundReader

extension PostgresStore {
    /// The round with this id (any kind), or nil.
    public func round(id: String) async throws(StoreError) -> StoredRound? {
        try await read("round") { connection in
            guard let row = try await connection.rows("""
                SELECT r.*, (SELECT url FROM call_recordings WHERE round_id = r.id) AS recording_url FROM rounds r WHERE r.id = \(id)
                """).first else { return nil }
            let buyers = try await connection.rows("SELECT * FROM round_buyers WHERE round_id = \(id) ORDER BY position").map { row in
                StoredRound.StoredBuyer(
                    buyerID: try row.get("buyer_id"), reason: try row.get("reason"), bid: try row.get("bid", as: Int64?.self).map(Money.init(units:)),
                    bidID: try row.get("bid_id"), latencyUs: try row.get("latency_us", as: Int64?.self).map(Int.init),
                    tmaxMs: try row.get("tmax_ms", as: Int64?.self).map(Int.init), detail: try row.get("detail"),
                    destination: try row.get("destination"), buyerReason: try row.get("buyer_reason"),
                    buyerReasonCategory: try row.get("buyer_reason_category"),
                    estimate: try row.get("estimate_ppm", as: Int64?.self).map(Probability.init(ppm:)))
            }
            let posts = try await connection.rows("SELECT * FROM post_attempts WHERE round_id = \(id) ORDER BY sequence").map { row in
                StoredRound.StoredPost(
                    sequence: Int(try row.get("sequence", as: Int32.self)), buyerID: try row.get("buyer_id"),
                    price: Money(units: try row.get("price")), result: try row.get("result"),
                    latencyUs: Int(try row.get("latency_us", as: Int64.self)), reference: try row.get("reference"), detail: try row.get("detail"),
                    buyerReason: try row.get("buyer_reason"), buyerReasonCategory: try row.get("buyer_reason_category"))
            }
            let events = try await connection.rows("SELECT * FROM call_events WHERE round_id = \(id) ORDER BY sequence").map { row in
                CallEventRecord(type: try row.get("type"), buyerID: try row.get("buyer_id"), atMs: try row.get("at_ms"),
                                durationS: try row.get("duration_s", as: Int64?.self).map(Int.init), recordingURL: try row.get("recording_url"),
                                detail: try row.get("detail"))
            }
            return StoredRound(
                id: try row.get("id"), kind: try row.get("kind"), sellerID: try row.get("seller_id"), campaignID: try row.get("campaign_id"),
                phase: try row.get("phase"), status: try row.get("status"), createdAtMs: try row.get("created_at_ms"),
                tmaxMs: Int(try row.get("tmax_ms", as: Int64.self)), durationUs: Int(try row.get("duration_us", as: Int64.self)),
                winnerID: try row.get("winner_id"), price: try row.get("price", as: Int64?.self).map(Money.init(units:)),
                payout: try row.get("payout", as: Int64?.self).map(Money.init(units:)), leadJSON: try row.get("lead_json"),
                buyers: buyers, posts: posts, events: events, attributionJSON: try row.get("attribution_json"), source: try row.get("source"),
                recordingURL: try row.get("recording_url"))
        }
    }

    /// Counts of rounds and sales, for tests and the operator's checks.
    public func counts() async throws(StoreError) -> (rounds: Int, sales: Int, buyerRows: Int) {
        try await read("counts") { connection in
            let row = try await connection.rows("""
                SELECT (SELECT count(*) FROM rounds) AS rounds, (SELECT count(*) FROM sales) AS sales,
                       (SELECT count(*) FROM round_buyers) AS buyers
                """)[0]
            return (Int(try row.get("rounds", as: Int64.self)), Int(try row.get("sales", as: Int64.self)), Int(try row.get("buyers", as: Int64.self)))
        }
    }
}

// MARK: IdempotentAnswers, sweeps

extension PostgresStore {
    /// The answer stored for `scope`, if any and created at or after `notBeforeMs`.
    public func answer(scope: String, notBeforeMs: Int64) async throws(StoreError) -> StoredAnswer? {
        try await read("answer") { connection in
            try await connection.rows("SELECT * FROM idempotency_keys WHERE scope = \(scope) AND created_at_ms >= \(notBeforeMs)").first.map { row in
                StoredAnswer(scope: try row.get("scope"), bodyHash: try row.get("body_hash"), status: Int(try row.get("status", as: Int32.self)),
                             response: try row.get("response"), roundID: try row.get("round_id"), createdAtMs: try row.get("created_at_ms"))
            }
        }
    }

    /// Deletes answers created before `beforeMs`; returns how many.
    @discardableResult
    public func sweepAnswers(beforeMs: Int64) async throws(StoreError) -> Int {
        try await write("sweep answers") { connection in
            try await connection.rows("WITH gone AS (DELETE FROM idempotency_keys WHERE created_at_ms < \(beforeMs) RETURNING 1) SELECT count(*) FROM gone")
                .first.map { Int(try $0.decode(Int64.self)) } ?? 0
        }
    }

    /// Deletes live states and tracking-number reservations that expired before `nowMs`.
    @discardableResult
    public func sweepLiveState(nowMs: Int64) async throws(StoreError) -> Int {
        try await write("sweep live state") { connection in
            try await connection.rows("""
                WITH states AS (DELETE FROM live_state WHERE expires_at_ms <= \(nowMs) RETURNING 1),
                     numbers AS (DELETE FROM dni_sessions WHERE expires_at_ms <= \(nowMs) RETURNING 1),
                     -- Past any duplicate window a buyer can have (days, at most a year and a bit).
                     callers AS (DELETE FROM routed_callers WHERE routed_at_ms < \(nowMs - 400 * 86_400_000) RETURNING 1)
                SELECT (SELECT count(*) FROM states) + (SELECT count(*) FROM numbers) + (SELECT count(*) FROM callers)
                """).first.map { Int(try $0.decode(Int64.self)) } ?? 0
        }
    }
}

// MARK: TrackingReservations, pauses, recordings

extension PostgresStore {
    /// Reserves a tracking number for a visitor session (replacing an expired holder).
    public func record(_ session: StoredDNISession) async throws(StoreError) {
        try await write("tracking number") { connection in
            try await connection.run("""
                INSERT INTO dni_sessions (number, session_id, campaign_id, visit_json, expires_at_ms)
                VALUES (\(session.number), \(session.sessionID), \(session.campaignID), \(session.visitJSON), \(session.expiresAtMs))
                ON CONFLICT (number) DO UPDATE SET session_id = EXCLUDED.session_id, campaign_id = EXCLUDED.campaign_id,
                  visit_json = EXCLUDED.visit_json, expires_at_ms = EXCLUDED.expires_at_ms
                """)
        }
    }

    /// Tracking numbers still reserved at `nowMs`.
    public func dniSessions(nowMs: Int64) async throws(StoreError) -> [StoredDNISession] {
        try await read("tracking numbers") { connection in
            try await connection.rows("SELECT * FROM dni_sessions WHERE expires_at_ms > \(nowMs)").map { row in
                StoredDNISession(number: try row.get("number"), sessionID: try row.get("session_id"), campaignID: try row.get("campaign_id"),
                                 visitJSON: try row.get("visit_json"), expiresAtMs: try row.get("expires_at_ms"))
            }
        }
    }

    /// The buyers paused from the portal now.
    public func portalPauses() async throws(StoreError) -> Set<String> {
        try await read("portal pauses") { connection in
            Set(try await connection.rows("SELECT buyer_id FROM portal_pauses").map { try $0.decode(String.self) })
        }
    }

    /// Pauses (or resumes) `buyerID`; committed before this returns.
    public func setPortalPause(buyerID: String, paused: Bool, atMs: Int64) async throws(StoreError) {
        try await write("portal pause") { connection in
            if paused {
                try await connection.run("""
                    INSERT INTO portal_pauses (buyer_id, paused_at_ms) VALUES (\(buyerID), \(atMs)) ON CONFLICT (buyer_id) DO NOTHING
                    """)
            } else {
                try await connection.run("DELETE FROM portal_pauses WHERE buyer_id = \(buyerID)")
            }
        }
    }

    /// Keeps a call's recording URL; a second one for the same call replaces it.
    public func attachRecording(roundID: String, url: String, atMs: Int64) async throws(StoreError) {
        try await write("recording") { connection in
            try await connection.run("""
                INSERT INTO call_recordings (round_id, url, at_ms) VALUES (\(roundID), \(url), \(atMs))
                ON CONFLICT (round_id) DO UPDATE SET url = EXCLUDED.url, at_ms = EXCLUDED.at_ms
                """)
        }
    }
}

// MARK: StartupState

extension PostgresStore {
    /// Makes the post intents left over final as `post_unknown` (caps counted, never sold again).
    /// Several nodes share the table: only this node's intents, and any node's older than 60 s
    /// (its node is gone or its round long over), never a live node's post in flight.
    public func resolveUnknownPosts(nowMs: Int64) async throws(StoreError) -> [PostIntent] {
        let nodeID = configuration.nodeID
        return try await write("resolve unknown posts") { connection in
            let intents = try await connection.rows("""
                DELETE FROM post_intents WHERE node_id = \(nodeID) OR sent_at_ms < \(nowMs - 60_000) RETURNING *
                """).map(PostgresStore.intent(from:))
            try await PostgresStore.settle(intents, nowMs: nowMs, on: connection)
            return intents
        }
    }

    /// Rounds whose post outcome is unknown, for `/metrics`.
    public func postUnknownCount() async throws(StoreError) -> Int {
        try await read("post unknown count") { connection in
            Int(try await connection.rows("SELECT count(*) FROM rounds WHERE status = 'post_unknown'")[0].decode(Int64.self))
        }
    }

    /// Every cap counter.
    public func capCounters() async throws(StoreError) -> [CapIncrement] {
        try await read("cap counters") { connection in
            try await connection.rows("SELECT buyer_id, window_key, count, spend FROM cap_counters").map { row in
                CapIncrement(buyerID: try row.get("buyer_id"), window: try row.get("window_key"), count: Int(try row.get("count", as: Int64.self)),
                             spend: Money(units: try row.get("spend")))
            }
        }
    }

    /// Sales since `sinceMs` that carry a contact hash (and contacts whose post outcome is unknown).
    public func salesWithContact(sinceMs: Int64) async throws(StoreError) -> [SaleRecord] {
        try await read("sales with contact") { connection in
            try await connection.rows("""
                SELECT buyer_id, contact_hash, sold_at_ms FROM sales WHERE sold_at_ms >= \(sinceMs) AND contact_hash IS NOT NULL
                UNION ALL
                SELECT buyer_id, contact_hash, at_ms FROM unknown_contacts WHERE at_ms >= \(sinceMs)
                """).map { row in
                SaleRecord(buyerID: try row.get("buyer_id"), contactHash: try row.get("contact_hash"), soldAtMs: try row.get("sold_at_ms"))
            }
        }
    }

    /// Every held bid and live call not yet expired; held pings come with their consent.
    public func liveStates(nowMs: Int64) async throws(StoreError) -> [LiveState] {
        try await read("live states") { connection in
            try await connection.rows("""
                SELECT l.round_id, l.kind, l.snapshot, l.expires_at_ms, p.consent_json FROM live_state l
                LEFT JOIN lead_pii p ON p.round_id = l.round_id WHERE l.expires_at_ms > \(nowMs)
                """).compactMap(PostgresStore.liveState(from:))
        }
    }

    static func liveState(from row: PostgresRandomAccessRow) throws -> LiveState? {
        guard let kind = LiveState.Kind(rawValue: try row.get("kind")) else { return nil }
        return LiveState(roundID: try row.get("round_id"), kind: kind, snapshot: try row.get("snapshot"),
                         expiresAtMs: try row.get("expires_at_ms"), consentJSON: try row.get("consent_json"))
    }

    /// Each round-robin campaign's rotation counter as last written.
    public func rotations() async throws(StoreError) -> [String: Int] {
        try await read("rotations") { connection in
            var rotations: [String: Int] = [:]
            for row in try await connection.rows("SELECT campaign_id, next FROM rotations") {
                rotations[try row.get("campaign_id")] = Int(try row.get("next", as: Int64.self))
            }
            return rotations
        }
    }

    /// Each buyer's post and call outcomes since `sinceMs` (as `RoundStore.outcomeTallies`), less
    /// the returns of the window's sales.
    public func outcomeTallies(sinceMs: Int64) async throws(StoreError) -> [OutcomeTally] {
        let counted = [ReasonCode.sold, .postRejected, .postFailed, .postTimeout].map { "'\($0.rawValue)'" }.joined(separator: ", ")
        let completed = [CallLifecycle.Ending.converted, .notConverted].map { "'\($0.rawValue)'" }.joined(separator: ", ")
        return try await read("outcome tallies") { connection in
            var binds = PostgresBindings()
            binds.append(sinceMs)
            var tallies: [OutcomeTally] = []
            for row in try await connection.rows(PostgresQuery(unsafeSQL: """
                SELECT p.buyer_id, count(*) AS trials, count(*) FILTER (WHERE p.result = '\(ReasonCode.sold.rawValue)') AS successes
                FROM post_attempts p JOIN rounds r ON r.id = p.round_id
                WHERE r.kind = '\(AuctionKind.lead.rawValue)' AND r.created_at_ms >= $1 AND p.result IN (\(counted))
                GROUP BY p.buyer_id
                """, binds: binds)) {
                tallies.append(OutcomeTally(buyerID: try row.get("buyer_id"), kind: .lead, trials: try row.get("trials"),
                                            successes: try row.get("successes")))
            }
            for row in try await connection.rows(PostgresQuery(unsafeSQL: """
                SELECT winner_id AS buyer_id, count(*) AS trials,
                       count(*) FILTER (WHERE status = '\(CallLifecycle.Ending.converted.rawValue)') AS successes
                FROM rounds WHERE kind = '\(AuctionKind.call.rawValue)' AND created_at_ms >= $1 AND status IN (\(completed))
                  AND winner_id IS NOT NULL
                GROUP BY winner_id
                """, binds: binds)) {
                tallies.append(OutcomeTally(buyerID: try row.get("buyer_id"), kind: .call, trials: try row.get("trials"),
                                            successes: try row.get("successes")))
            }
            // A returned sale was a success and is no longer.
            var returns: [String: Int64] = [:]
            for row in try await connection.rows(PostgresQuery(unsafeSQL: """
                SELECT buyer_id, kind, count(*) AS n FROM ledger WHERE type = 'return' AND round_at_ms >= $1 GROUP BY buyer_id, kind
                """, binds: binds)) {
                guard let buyer = try row.get("buyer_id", as: String?.self), let kind = try row.get("kind", as: String?.self) else { continue }
                returns["\(kind)/\(buyer)", default: 0] += try row.get("n", as: Int64.self)
            }
            return tallies.map { tally in
                var tally = tally
                tally.successes = max(0, tally.successes - (returns["\(tally.kind.rawValue)/\(tally.buyerID)"] ?? 0))
                return tally
            }
        }
    }
}

// MARK: Post intents left over

extension PostgresStore {
    /// Post intents still waiting for their outcome (of every node).
    public func openPostIntents() async throws(StoreError) -> [PostIntent] {
        try await read("post intents") { connection in
            try await connection.rows("SELECT * FROM post_intents ORDER BY sent_at_ms").map(PostgresStore.intent(from:))
        }
    }

    /// The node that wrote the post intent of `roundID`, if one is open.
    public func postIntentNode(roundID: String) async throws(StoreError) -> String? {
        try await read("post intent node") { connection in
            try await connection.rows("SELECT node_id FROM post_intents WHERE round_id = \(roundID)").first?.decode(String.self)
        }
    }

    static func intent(from row: PostgresRandomAccessRow) throws -> PostIntent {
        let buyerID: String = try row.get("buyer_id")
        return PostIntent(
            roundID: try row.get("round_id"), kind: AuctionKind(rawValue: try row.get("kind")) ?? .lead, sellerID: try row.get("seller_id"),
            campaignID: try row.get("campaign_id"), buyerID: buyerID, price: Money(units: try row.get("price")),
            createdAtMs: try row.get("created_at_ms"), sentAtMs: try row.get("sent_at_ms"), tmaxMs: Int(try row.get("tmax_ms", as: Int64.self)),
            leadJSON: try row.get("lead_json"), idempotencyScope: try row.get("idempotency_scope"),
            idempotencyHash: try row.get("idempotency_hash"),
            capIncrements: CapIncrementText.decode(try row.get("cap_increments"), buyerID: buyerID), contactHash: try row.get("contact_hash"))
    }

    /// Intents taken out of `post_intents` (deleted by the caller, in this transaction): each
    /// round not final becomes final as `post_unknown` (as `RoundStore.resolveUnknownPosts`), its
    /// caps counted, its contact remembered; its post claims end (the counters now hold them).
    static func settle(_ intents: [PostIntent], nowMs: Int64, on connection: PostgresConnection) async throws {
        for intent in intents {
            // A round already final was recorded after all (its intent outlived it): leave it.
            let final = try await connection.rows("SELECT 1 FROM rounds WHERE id = \(intent.roundID) AND phase = 'final'").first != nil
            if !final { try await markUnknown(intent, nowMs: nowMs, on: connection) }
            try await connection.run("DELETE FROM cap_claims WHERE round_id = \(intent.roundID) AND kind = 'post'")
        }
    }

    private static func markUnknown(_ intent: PostIntent, nowMs: Int64, on connection: PostgresConnection) async throws {
        let detail = "the exchange stopped after sending the post and before recording its answer"
        let exists = try await connection.rows("SELECT 1 FROM rounds WHERE id = \(intent.roundID)").first != nil
        if exists {
            // A held ping's round: keep its buyers and bids, settle the winner's post.
            try await connection.run("""
                UPDATE rounds SET phase = 'final', status = 'post_unknown', winner_id = \(intent.buyerID), price = \(intent.price.units),
                  payout = NULL WHERE id = \(intent.roundID)
                """)
            try await connection.run("""
                UPDATE round_buyers SET reason = 'post_unknown', detail = \(detail) WHERE round_id = \(intent.roundID) AND buyer_id = \(intent.buyerID)
                """)
        } else {
            let durationUs = max(0, intent.sentAtMs - intent.createdAtMs) * 1000
            try await connection.run("""
                INSERT INTO rounds (id, kind, seller_id, campaign_id, phase, status, created_at_ms, tmax_ms, duration_us, winner_id, price,
                                    payout, lead_json)
                VALUES (\(intent.roundID), \(intent.kind.rawValue), \(intent.sellerID), \(intent.campaignID), 'final', 'post_unknown',
                        \(intent.createdAtMs), \(Int64(intent.tmaxMs)), \(durationUs), \(intent.buyerID), \(intent.price.units), NULL,
                        \(intent.leadJSON))
                """)
            try await connection.run("""
                INSERT INTO round_buyers (round_id, position, buyer_id, reason, bid, detail)
                VALUES (\(intent.roundID), 0, \(intent.buyerID), 'post_unknown', \(intent.price.units), \(detail))
                ON CONFLICT (round_id, buyer_id) DO UPDATE SET position = 0, reason = 'post_unknown', bid = EXCLUDED.bid,
                  detail = EXCLUDED.detail
                """)
        }
        try await connection.run("""
            INSERT INTO post_attempts (round_id, sequence, buyer_id, price, result, latency_us, detail)
            SELECT \(intent.roundID), COALESCE(max(sequence), 0) + 1, \(intent.buyerID), \(intent.price.units), 'post_unknown', 0, \(detail)
            FROM post_attempts WHERE round_id = \(intent.roundID)
            """)
        try await CapIncrementText.add(intent.capIncrements, on: connection, logger: quiet)
        if let contactHash = intent.contactHash {
            try await connection.run("""
                INSERT INTO unknown_contacts (round_id, buyer_id, contact_hash, at_ms) VALUES (\(intent.roundID), \(intent.buyerID), \(contactHash),
                  \(intent.sentAtMs))
                ON CONFLICT (round_id) DO UPDATE SET buyer_id = EXCLUDED.buyer_id, contact_hash = EXCLUDED.contact_hash, at_ms = EXCLUDED.at_ms
                """)
        }
        try await connection.run("DELETE FROM live_state WHERE round_id = \(intent.roundID)")
        if let scope = intent.idempotencyScope, let hash = intent.idempotencyHash {
            let body = #"{"error":{"code":"outcome_unknown","message":"the exchange stopped while posting this lead; the buyer may have it, so it will not be sold again","auction_id":"\#(intent.roundID)"}}"# + "\n"
            // A first final answer already stored for the key stays the answer.
            try await connection.run("""
                INSERT INTO idempotency_keys (scope, body_hash, status, response, round_id, created_at_ms)
                VALUES (\(scope), \(hash), 409, \(body), \(intent.roundID), \(nowMs)) ON CONFLICT (scope) DO NOTHING
                """)
        }
    }
}
