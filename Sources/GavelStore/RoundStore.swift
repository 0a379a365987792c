import Dispatch
import GavelCore
import GRDB
import Logging
import Synchronization

/// The exchange's SQLite database (WAL mode), with group commit.
///
/// `record` queues a round and suspends; one writer on its own serial queue takes everything
/// queued, writes it in a single transaction, and resumes every waiter once it is committed. Under
/// load many rounds share one commit, so durability costs one fsync per batch, not per round.
public final class RoundStore: Sendable {
    /// How much SQLite syncs: `normal` survives a crash of the process (kill -9), `full` also a power loss.
    public enum Durability: String, Sendable { case normal, full }

    /// One write of a group commit.
    enum Write: Sendable {
        case round(RoundRecord)
        case postIntent(PostIntent)
        case answer(StoredAnswer)
    }

    private struct Pending {
        var writes: [Write] = []
        var waiters: [Waiter] = []
        var writing = false
        var closed = false
        /// Waiters that wait at most so long, queued or being written, by identity.
        var deadlines: [ObjectIdentifier: Deadline] = [:]
        /// When the deadline timer fires next (uptime nanoseconds); nil when it is idle.
        var armedAt: UInt64?
    }

    private struct Deadline {
        var waiter: Waiter
        var atNs: UInt64
        var timeout: Duration
    }

    let pool: DatabasePool
    private let pending = Mutex(Pending())
    private let writerQueue = DispatchQueue(label: "gavel.store.writer")
    /// One timer for every bounded wait, armed at the earliest deadline and rescheduled only under
    /// the lock (`Pending.armedAt`). A timer per write woke the dispatch manager and a worker thread
    /// for every write, though nearly all of them commit long before their deadline.
    /// `nonisolated(unsafe)`: a dispatch source is thread-safe (libdispatch serialises its calls),
    /// and it is only rescheduled under `pending`'s lock.
    nonisolated(unsafe) private let deadlineTimer: any DispatchSourceTimer
    private let checkpointer: Checkpointer
    private let logger: Logger

    public init(path: String, durability: Durability = .normal, logger: Logger = Logger(label: "gavel.store")) throws(StoreError) {
        self.logger = logger
        var configuration = Configuration()
        configuration.prepareDatabase { db in
            try db.execute(sql: "PRAGMA synchronous = \(durability == .full ? "FULL" : "NORMAL")")
            // Checkpoints (and their fsync) run on the checkpointer's own connection and thread,
            // never inside a commit that sellers wait for.
            try db.execute(sql: "PRAGMA wal_autocheckpoint = 0")
        }
        // Only another process can hold the database: the writer is this queue. Waiting long for it
        // would hold sellers; callers bound their own waits (`record(_:waitingAtMost:)`).
        configuration.busyMode = .timeout(1)
        do {
            pool = try DatabasePool(path: path, configuration: configuration)
        } catch {
            throw .open("\(path): \(error)")
        }
        do {
            try Schema.migrator.migrate(pool)
        } catch {
            throw .migrate("\(error)")
        }
        do {
            checkpointer = try Checkpointer(path: path, logger: logger)
        } catch {
            throw .open("checkpointer: \(error)")
        }
        deadlineTimer = DispatchSource.makeTimerSource(queue: DispatchQueue(label: "gavel.store.deadlines"))
        deadlineTimer.setEventHandler { [weak self] in self?.expireWaits() }
        deadlineTimer.schedule(deadline: .distantFuture)
        deadlineTimer.resume()
    }

    deinit { deadlineTimer.cancel() }

    /// Writes `round`; returns once it is committed. With `timeout`, gives up waiting after it
    /// with `StoreError.timeout` (the round may still commit afterwards).
    public func record(_ round: RoundRecord, waitingAtMost timeout: Duration?) async throws(StoreError) {
        try await enqueue(.round(round), timeout: timeout)
    }

    /// Writes a post intent ahead of sending the post: committed before this returns.
    public func record(_ intent: PostIntent, waitingAtMost timeout: Duration?) async throws(StoreError) {
        try await enqueue(.postIntent(intent), timeout: timeout)
    }

    /// Stores a final answer that has no round of its own (a 4xx) for its idempotency key.
    public func record(_ answer: StoredAnswer, waitingAtMost timeout: Duration?) async throws(StoreError) {
        try await enqueue(.answer(answer), timeout: timeout)
    }

    /// Every waiter is resumed with a `StoreError` (closed, timeout, write); anything else would be
    /// a bug, reported as a write failure.
    private func enqueue(_ write: Write, timeout: Duration?) async throws(StoreError) {
        do {
            try await enqueueUntyped(write, timeout: timeout)
        } catch let error as StoreError {
            throw error
        } catch {
            throw .write("\(error)")
        }
    }

    private func enqueueUntyped(_ write: Write, timeout: Duration?) async throws {
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
            let waiter = Waiter(continuation)
            let startWriter = pending.withLock { state -> Bool? in
                guard !state.closed else { return nil }
                state.writes.append(write)
                state.waiters.append(waiter)
                if let timeout {
                    let (seconds, attoseconds) = timeout.components
                    let nanoseconds = UInt64(max(0, seconds * 1_000_000_000 + attoseconds / 1_000_000_000))
                    let atNs = DispatchTime.now().uptimeNanoseconds &+ nanoseconds
                    state.deadlines[ObjectIdentifier(waiter)] = Deadline(waiter: waiter, atNs: atNs, timeout: timeout)
                    if state.armedAt.map({ atNs < $0 }) ?? true { arm(at: atNs, &state) }
                }
                defer { state.writing = true }
                return !state.writing
            }
            switch startWriter {
            case nil: waiter.resume(throwing: StoreError.closed())
            case true?: writerQueue.async { self.drain() }
            case false?: break
            }
        }
    }

    /// Under the lock: the timer fires next at `atNs`.
    private func arm(at atNs: UInt64, _ state: inout Pending) {
        state.armedAt = atNs
        deadlineTimer.schedule(deadline: DispatchTime(uptimeNanoseconds: atNs), leeway: .microseconds(100))
    }

    /// The deadline timer: ends every wait past its deadline, then re-arms at the next one. A write
    /// still queued is withdrawn (it will never be written); one the writer has taken may still land
    /// (`StoreError.mayLand`).
    private func expireWaits() {
        let now = DispatchTime.now().uptimeNanoseconds
        let expired = pending.withLock { state -> [(Deadline, withdrawn: Bool)] in
            var expired: [(Deadline, withdrawn: Bool)] = []
            var next: UInt64?
            for (id, deadline) in state.deadlines {
                guard deadline.atNs <= now else {
                    next = min(next ?? deadline.atNs, deadline.atNs)
                    continue
                }
                state.deadlines[id] = nil
                if let index = state.waiters.firstIndex(where: { $0 === deadline.waiter }) {
                    state.writes.remove(at: index)
                    state.waiters.remove(at: index)
                    expired.append((deadline, true))
                } else {
                    expired.append((deadline, false))
                }
            }
            if let next { arm(at: next, &state) } else { state.armedAt = nil }
            return expired
        }
        for (deadline, withdrawn) in expired {
            deadline.waiter.resume(throwing: StoreError.timeout(withdrawn ? "not written: the store was busy past \(deadline.timeout)"
                                                                           : "not committed within \(deadline.timeout); it may still be"))
        }
    }

    /// Writer queue only: commits batches until nothing is queued.
    private func drain() {
        var finished: [Waiter] = []
        while true {
            let (writes, waiters) = pending.withLock { [finished] state -> ([Write], [Waiter]) in
                // The last batch's waiters no longer need their deadlines.
                if !state.deadlines.isEmpty {
                    for waiter in finished { state.deadlines[ObjectIdentifier(waiter)] = nil }
                }
                // Nothing queued: the writer stops, and the next write starts it again.
                guard !state.writes.isEmpty else {
                    state.writing = false
                    return ([], [])
                }
                defer {
                    state.writes.removeAll(keepingCapacity: true)
                    state.waiters.removeAll(keepingCapacity: true)
                }
                return (state.writes, state.waiters)
            }
            guard !writes.isEmpty else { return }
            finished = waiters
            do {
                try pool.write { db in
                    for write in writes { try RoundStore.apply(write, to: db) }
                }
                for waiter in waiters { waiter.resume() }
            } catch {
                logger.error("round batch failed to commit", metadata: ["writes": "\(writes.count)", "error": "\(error)"])
                // Retry each write alone so one bad record does not fail the others.
                for (write, waiter) in zip(writes, waiters) {
                    do {
                        try pool.write { db in try RoundStore.apply(write, to: db) }
                        waiter.resume()
                    } catch {
                        waiter.resume(throwing: StoreError.write("\(error)"))
                    }
                }
            }
        }
    }

    private static func apply(_ write: Write, to db: Database) throws {
        switch write {
        case .round(let record): try insert(record, into: db)
        case .postIntent(let intent): try insert(intent, into: db)
        case .answer(let answer): try insert(answer, into: db)
        }
    }

    /// Stops taking rounds after those already queued are committed.
    public func close() {
        pending.withLock { $0.closed = true }
        writerQueue.sync {}
        checkpointer.stop()
    }

    static func insert(_ record: RoundRecord, into db: Database) throws {
        if record.isRetry {
            // Landed, or moved on since (a kept ping record must never take a posted round back to `pinged`).
            let landed = try Bool.fetchOne(db, sql: """
                SELECT EXISTS (SELECT 1 FROM rounds WHERE id = ? AND ((phase = ? AND status = ?) OR phase = 'final' OR ? = 'pinged'))
                """, arguments: [record.id, record.phase.rawValue, record.status, record.phase.rawValue]) ?? false
            if landed { return }
        }
        // A round may replace its own earlier record (a ping then its post; a call's lifecycle). The
        // common case, a round written once, costs one insert; an earlier record is updated in
        // place (never deleted: that would take the contact of a ping or call with it, by cascade)
        // and its child rows are written anew.
        let values: StatementArguments = [
            record.id, record.kind.rawValue, record.sellerID, record.campaignID, record.phase.rawValue, record.status,
            record.createdAtMs, record.tmaxMs, record.durationUs, record.winnerID, record.price?.units, record.payout?.units,
            record.leadJSON, record.attributionJSON, record.source,
        ]
        try db.cachedStatement(sql: """
            INSERT OR IGNORE INTO rounds
              (id, kind, seller_id, campaign_id, phase, status, created_at_ms, tmax_ms, duration_us, winner_id, price, payout, lead_json,
               attribution_json, source)
            VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
            """).execute(arguments: values)
        let replacing = db.changesCount == 0
        if replacing {
            try db.cachedStatement(sql: """
                UPDATE rounds SET kind = ?2, seller_id = ?3, campaign_id = ?4, phase = ?5, status = ?6, created_at_ms = ?7, tmax_ms = ?8,
                  duration_us = ?9, winner_id = ?10, price = ?11, payout = ?12, lead_json = ?13,
                  attribution_json = COALESCE(?14, attribution_json), source = COALESCE(?15, source)
                WHERE id = ?1
                """).execute(arguments: values)
            for table in ["round_buyers", "post_attempts", "call_events"] {
                try db.cachedStatement(sql: "DELETE FROM \(table) WHERE round_id = ?").execute(arguments: [record.id])
            }
        }
        let buyerStatement = try db.cachedStatement(sql: """
            INSERT INTO round_buyers (round_id, position, buyer_id, reason, bid, bid_id, latency_us, tmax_ms, detail, destination,
                                      buyer_reason, buyer_reason_category, estimate_ppm)
            VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
            """)
        for (position, entry) in record.entries.enumerated() {
            try buyerStatement.execute(arguments: [
                record.id, position, entry.buyerID, entry.reason?.rawValue ?? record.openReasons[entry.buyerID] ?? "bid",
                entry.bid?.units, entry.bidID, entry.latencyUs, entry.tmaxMs, entry.detail, entry.destination,
                entry.buyerReason?.code, entry.buyerReason?.category, entry.estimate?.ppm,
            ])
        }
        let postStatement = try db.cachedStatement(sql: """
            INSERT INTO post_attempts (round_id, sequence, buyer_id, price, result, latency_us, reference, detail,
                                       buyer_reason, buyer_reason_category)
            VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
            """)
        for (sequence, post) in record.posts.enumerated() {
            try postStatement.execute(arguments: [
                record.id, sequence + 1, post.buyerID, post.price.units, post.result.rawValue, post.latencyUs, post.reference, post.detail,
                post.buyerReason?.code, post.buyerReason?.category,
            ])
        }
        if record.contactJSON != nil || record.consentJSON != nil {
            try db.cachedStatement(sql: "INSERT OR REPLACE INTO lead_pii (round_id, contact_json, consent_json) VALUES (?, ?, ?)")
                .execute(arguments: [record.id, record.contactJSON ?? "{}", record.consentJSON])
        }
        let eventStatement = try db.cachedStatement(sql: """
            INSERT INTO call_events (round_id, sequence, type, buyer_id, at_ms, duration_s, recording_url, detail)
            VALUES (?, ?, ?, ?, ?, ?, ?, ?)
            """)
        for (sequence, event) in record.events.enumerated() {
            try eventStatement.execute(arguments: [
                record.id, sequence + 1, event.type, event.buyerID, event.atMs, event.durationS, event.recordingURL, event.detail,
            ])
        }
        if record.billable, let winner = record.winnerID, let price = record.price {
            let payout = record.payout ?? .zero
            try db.cachedStatement(sql: """
                INSERT OR REPLACE INTO sales
                  (round_id, kind, seller_id, campaign_id, buyer_id, price, payout, margin, sold_at_ms, contact_hash)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                """).execute(arguments: [
                    record.id, record.kind.rawValue, record.sellerID, record.campaignID, winner, price.units, payout.units,
                    (price - payout).units, record.createdAtMs, record.contactHash,
                ])
            try bookSale(record, winner: winner, price: price, payout: payout, in: db)
        }
        try addCounts(record.capIncrements, in: db)
        if let rotation = record.rotation { try advanceRotation(campaignID: record.campaignID, to: rotation, in: db) }
        // A final round settles its write-ahead intent, whether or not its post went out.
        if record.phase == .final || !record.posts.isEmpty {
            try db.cachedStatement(sql: "DELETE FROM post_intents WHERE round_id = ?").execute(arguments: [record.id])
        }
        if let answer = record.answer { try insert(answer, into: db) }
        if let live = record.liveState, record.phase != .final {
            try db.cachedStatement(sql: "INSERT OR REPLACE INTO live_state (round_id, kind, snapshot, expires_at_ms) VALUES (?, ?, ?, ?)")
                .execute(arguments: [live.roundID, live.kind.rawValue, live.snapshot, live.expiresAtMs])
        } else if replacing {
            try db.cachedStatement(sql: "DELETE FROM live_state WHERE round_id = ?").execute(arguments: [record.id])
        }
    }

    static func addCounts(_ increments: [CapIncrement], in db: Database) throws {
        let capStatement = try db.cachedStatement(sql: """
            INSERT INTO cap_counters (buyer_id, window, count, spend) VALUES (?, ?, ?, ?)
            ON CONFLICT (buyer_id, window) DO UPDATE SET count = count + excluded.count, spend = spend + excluded.spend
            """)
        for increment in increments {
            try capStatement.execute(arguments: [increment.buyerID, increment.window, increment.count, increment.spend.units])
        }
    }

    // MARK: Reads (GRDB's reader connections, concurrent with the writer)

    /// The round with this id, or nil.
    public func round(id: String) async throws(StoreError) -> StoredRound? {
        do {
            return try await pool.read { db -> StoredRound? in
                guard let row = try Row.fetchOne(db, sql: "SELECT * FROM rounds WHERE id = ?", arguments: [id]) else { return nil }
                let buyers = try Row.fetchAll(db, sql: "SELECT * FROM round_buyers WHERE round_id = ? ORDER BY position", arguments: [id]).map { row in
                    StoredRound.StoredBuyer(
                        buyerID: row["buyer_id"], reason: row["reason"], bid: (row["bid"] as Int64?).map(Money.init(units:)),
                        bidID: row["bid_id"], latencyUs: row["latency_us"], tmaxMs: row["tmax_ms"], detail: row["detail"],
                        destination: row["destination"], buyerReason: row["buyer_reason"], buyerReasonCategory: row["buyer_reason_category"],
                        estimate: (row["estimate_ppm"] as Int64?).map(Probability.init(ppm:))
                    )
                }
                let posts = try Row.fetchAll(db, sql: "SELECT * FROM post_attempts WHERE round_id = ? ORDER BY sequence", arguments: [id]).map { row in
                    StoredRound.StoredPost(
                        sequence: row["sequence"], buyerID: row["buyer_id"], price: Money(units: row["price"]), result: row["result"],
                        latencyUs: row["latency_us"], reference: row["reference"], detail: row["detail"],
                        buyerReason: row["buyer_reason"], buyerReasonCategory: row["buyer_reason_category"]
                    )
                }
                let events = try Row.fetchAll(db, sql: "SELECT * FROM call_events WHERE round_id = ? ORDER BY sequence", arguments: [id]).map { row in
                    CallEventRecord(type: row["type"], buyerID: row["buyer_id"], atMs: row["at_ms"], durationS: row["duration_s"],
                                    recordingURL: row["recording_url"], detail: row["detail"])
                }
                return StoredRound(
                    id: row["id"], kind: row["kind"], sellerID: row["seller_id"], campaignID: row["campaign_id"], phase: row["phase"],
                    status: row["status"], createdAtMs: row["created_at_ms"], tmaxMs: row["tmax_ms"], durationUs: row["duration_us"],
                    winnerID: row["winner_id"], price: (row["price"] as Int64?).map(Money.init(units:)),
                    payout: (row["payout"] as Int64?).map(Money.init(units:)), leadJSON: row["lead_json"], buyers: buyers, posts: posts,
                    events: events, attributionJSON: row["attribution_json"], source: row["source"],
                    recordingURL: try String.fetchOne(db, sql: "SELECT url FROM call_recordings WHERE round_id = ?", arguments: [id])
                )
            }
        } catch {
            throw .read("\(error)")
        }
    }

    /// Every cap counter, for the cap ledger at start-up.
    public func capCounters() throws(StoreError) -> [CapIncrement] {
        do {
            return try pool.read { db in
                try Row.fetchAll(db, sql: "SELECT buyer_id, window, count, spend FROM cap_counters").map { row in
                    CapIncrement(buyerID: row["buyer_id"], window: row["window"], count: row["count"], spend: Money(units: row["spend"]))
                }
            }
        } catch {
            throw .read("\(error)")
        }
    }

    /// Sales since `sinceMs` that carry a contact hash, for duplicate windows at start-up.
    public func salesWithContact(sinceMs: Int64) throws(StoreError) -> [SaleRecord] {
        do {
            return try pool.read { db in
                try Row.fetchAll(db, sql: """
                    SELECT buyer_id, contact_hash, sold_at_ms FROM sales WHERE sold_at_ms >= ?1 AND contact_hash IS NOT NULL
                    UNION ALL
                    SELECT buyer_id, contact_hash, at_ms FROM unknown_contacts WHERE at_ms >= ?1
                    """, arguments: [sinceMs]).map { row in
                    SaleRecord(buyerID: row["buyer_id"], contactHash: row["contact_hash"], soldAtMs: row["sold_at_ms"])
                }
            }
        } catch {
            throw .read("\(error)")
        }
    }

    /// Counts of rounds and sales, for tests and the operator's checks.
    public func counts() throws(StoreError) -> (rounds: Int, sales: Int, buyerRows: Int) {
        do {
            return try pool.read { db in
                (try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM rounds") ?? 0,
                 try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM sales") ?? 0,
                 try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM round_buyers") ?? 0)
            }
        } catch {
            throw .read("\(error)")
        }
    }
}

// MARK: Live state (held bids, live calls, tracking numbers)

extension RoundStore {
    /// Every live state not yet expired, for start-up; held pings come with their consent.
    public func liveStates(nowMs: Int64) throws(StoreError) -> [LiveState] {
        do {
            return try pool.read { db in
                try Row.fetchAll(db, sql: """
                    SELECT live_state.*, lead_pii.consent_json FROM live_state
                    LEFT JOIN lead_pii ON lead_pii.round_id = live_state.round_id
                    WHERE live_state.expires_at_ms > ?
                    """, arguments: [nowMs]).compactMap { row in
                    guard let kind = LiveState.Kind(rawValue: row["kind"]) else { return nil }
                    return LiveState(roundID: row["round_id"], kind: kind, snapshot: row["snapshot"], expiresAtMs: row["expires_at_ms"],
                                     consentJSON: row["consent_json"])
                }
            }
        } catch {
            throw .read("\(error)")
        }
    }

    /// Deletes live states and tracking-number reservations that expired before `nowMs`.
    @discardableResult
    public func sweepLiveState(nowMs: Int64) async throws(StoreError) -> Int {
        do {
            return try await pool.write { db in
                try db.execute(sql: "DELETE FROM live_state WHERE expires_at_ms <= ?", arguments: [nowMs])
                let states = db.changesCount
                try db.execute(sql: "DELETE FROM dni_sessions WHERE expires_at_ms <= ?", arguments: [nowMs])
                return states + db.changesCount
            }
        } catch {
            throw .write("\(error)")
        }
    }

    /// Reserves a tracking number for a visitor session (replacing an expired holder).
    public func record(_ session: StoredDNISession) async throws(StoreError) {
        do {
            try await pool.write { db in
                try db.execute(sql: """
                    INSERT OR REPLACE INTO dni_sessions (number, session_id, campaign_id, visit_json, expires_at_ms) VALUES (?, ?, ?, ?, ?)
                    """, arguments: [session.number, session.sessionID, session.campaignID, session.visitJSON, session.expiresAtMs])
            }
        } catch {
            throw .write("\(error)")
        }
    }

    /// Tracking numbers still reserved, for start-up.
    public func dniSessions(nowMs: Int64) throws(StoreError) -> [StoredDNISession] {
        do {
            return try pool.read { db in
                try Row.fetchAll(db, sql: "SELECT * FROM dni_sessions WHERE expires_at_ms > ?", arguments: [nowMs]).map { row in
                    StoredDNISession(number: row["number"], sessionID: row["session_id"], campaignID: row["campaign_id"],
                                     visitJSON: row["visit_json"], expiresAtMs: row["expires_at_ms"])
                }
            }
        } catch {
            throw .read("\(error)")
        }
    }
}
