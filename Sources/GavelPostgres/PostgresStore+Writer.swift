import GavelCore
import GavelStore
import Logging
import PostgresNIO
import Synchronization

/// One write of a group commit.
enum PendingWrite: Sendable {
    case round(RoundRecord)
    case postIntent(PostIntent)
    case answer(StoredAnswer)

    /// What two writes of one statement must not share (one row per key per statement).
    var key: String {
        switch self {
        case .round(let record): return "r:" + record.id
        case .postIntent(let intent): return "r:" + intent.roundID
        case .answer(let answer): return "a:" + answer.scope
        }
    }
}

/// A caller waiting for its write's commit, resumed exactly once: by the writer or by its deadline.
final class CommitWaiter: Sendable {
    private let continuation: Mutex<CheckedContinuation<Void, any Error>?>

    init(_ continuation: CheckedContinuation<Void, any Error>) { self.continuation = Mutex(continuation) }

    func resume() { take()?.resume() }
    func resume(throwing error: StoreError) { take()?.resume(throwing: error) }

    private func take() -> CheckedContinuation<Void, any Error>? {
        continuation.withLock { stored in
            defer { stored = nil }
            return stored
        }
    }
}

/// Group commit: `record` queues a write and suspends; a writer task takes everything queued and
/// writes it in one transaction, one statement per table, then resumes every waiter once COMMIT has
/// returned (the 200-after-commit rule). A batch that fails is retried one write at a time, so one
/// bad record does not fail the others (as `RoundStore` does). One writer per store: two would
/// wait on each other's locks of the same hot cap counters (past `lock_timeout` under load).
final class GroupCommit: Sendable {
    static let writers = 1
    /// At most so many writes per transaction: a batch's locks are held while it is written.
    static let maxBatch = 1_000

    private struct State {
        var writes: [PendingWrite] = []
        var waiters: [CommitWaiter] = []
        var closed = false
        /// Bounded waits, queued or being written, by waiter identity.
        var deadlines: [ObjectIdentifier: (waiter: CommitWaiter, at: ContinuousClock.Instant, timeout: Duration)] = [:]
    }

    private let state = Mutex(State())
    private let wakeups: [AsyncStream<Void>.Continuation]
    private let streams: Mutex<[AsyncStream<Void>]>
    private let reaperWakeup: AsyncStream<Void>.Continuation
    private let reaperStream: Mutex<AsyncStream<Void>?>
    private let tasks = Mutex<[Task<Void, Never>]>([])
    private let batchDeadline: Duration
    private let logger: Logger

    init(deadline: Duration, logger: Logger) {
        batchDeadline = deadline
        self.logger = logger
        var continuations: [AsyncStream<Void>.Continuation] = []
        var streams: [AsyncStream<Void>] = []
        for _ in 0..<Self.writers {
            let (stream, continuation) = AsyncStream.makeStream(of: Void.self, bufferingPolicy: .bufferingNewest(1))
            streams.append(stream)
            continuations.append(continuation)
        }
        wakeups = continuations
        self.streams = Mutex(streams)
        let (reaper, reaperContinuation) = AsyncStream.makeStream(of: Void.self, bufferingPolicy: .bufferingNewest(1))
        reaperWakeup = reaperContinuation
        reaperStream = Mutex(reaper)
    }

    /// Starts the writer tasks and the deadline reaper (the store's own tasks, ended by `close`).
    func start(_ store: PostgresStore) {
        let streams = self.streams.withLock { streams in
            defer { streams = [] }
            return streams
        }
        var started: [Task<Void, Never>] = streams.map { stream in
            Task { [weak store] in
                for await _ in stream {
                    guard let store else { return }
                    await self.drain(store)
                }
            }
        }
        if let reaper = reaperStream.withLock({ stream in defer { stream = nil }; return stream }) {
            started.append(Task { await self.reap(reaper) })
        }
        tasks.withLock { $0 = started }
    }

    func enqueue(_ write: PendingWrite, timeout: Duration?) async throws(StoreError) {
        do {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
                let waiter = CommitWaiter(continuation)
                let accepted = state.withLock { state -> Bool in
                    guard !state.closed else { return false }
                    state.writes.append(write)
                    state.waiters.append(waiter)
                    if let timeout {
                        state.deadlines[ObjectIdentifier(waiter)] = (waiter, .now + timeout, timeout)
                    }
                    return true
                }
                guard accepted else {
                    waiter.resume(throwing: .closed())
                    return
                }
                if timeout != nil { reaperWakeup.yield() }
                for wakeup in wakeups { wakeup.yield() }
            }
        } catch let error as StoreError {
            throw error
        } catch {
            throw .write("\(error)")
        }
    }

    /// Stops taking writes; the writers commit what is queued, then end.
    func close() {
        state.withLock { $0.closed = true }
        for wakeup in wakeups {
            wakeup.yield()
            wakeup.finish()
        }
        reaperWakeup.finish()
    }

    /// Waits for the writers to end (after `close`).
    func finished() async {
        for task in tasks.withLock({ $0 }) { await task.value }
    }

    /// One writer: commits batches until nothing is queued.
    private func drain(_ store: PostgresStore) async {
        var finished: [CommitWaiter] = []
        while true {
            let (writes, waiters) = state.withLock { [finished] state -> ([PendingWrite], [CommitWaiter]) in
                if !state.deadlines.isEmpty {
                    for waiter in finished { state.deadlines[ObjectIdentifier(waiter)] = nil }
                }
                guard state.writes.count > Self.maxBatch else {
                    defer {
                        state.writes.removeAll(keepingCapacity: true)
                        state.waiters.removeAll(keepingCapacity: true)
                    }
                    return (state.writes, state.waiters)
                }
                defer {
                    state.writes.removeFirst(Self.maxBatch)
                    state.waiters.removeFirst(Self.maxBatch)
                }
                return (Array(state.writes.prefix(Self.maxBatch)), Array(state.waiters.prefix(Self.maxBatch)))
            }
            guard !writes.isEmpty else { return }
            finished = waiters
            do {
                try await store.commit(writes, deadline: batchDeadline)
                for waiter in waiters { waiter.resume() }
            } catch let error where error.isTimeout {
                // Nothing is known of the batch: it may have committed. Each caller decides (a sold
                // round is kept and recorded again with `isRetry`).
                logger.error("round batch timed out", metadata: ["writes": "\(writes.count)", "error": "\(error.detail)"])
                for waiter in waiters { waiter.resume(throwing: error) }
            } catch {
                logger.error("round batch failed to commit", metadata: ["writes": "\(writes.count)", "error": "\(error.detail)"])
                // Retry each write alone so one bad record does not fail the others.
                for (write, waiter) in zip(writes, waiters) {
                    do {
                        try await store.commit([write], deadline: batchDeadline)
                        waiter.resume()
                    } catch {
                        waiter.resume(throwing: error)
                    }
                }
            }
        }
    }

    /// Ends every wait past its deadline. A write still queued is withdrawn (never written); one
    /// being written may still land.
    private func reap(_ wakeups: AsyncStream<Void>) async {
        for await _ in wakeups {
            while true {
                let now = ContinuousClock.now
                let (expired, next) = state.withLock { state -> ([(CommitWaiter, Duration, Bool)], ContinuousClock.Instant?) in
                    var expired: [(CommitWaiter, Duration, Bool)] = []
                    var next: ContinuousClock.Instant?
                    for (id, deadline) in state.deadlines {
                        guard deadline.at <= now else {
                            next = min(next ?? deadline.at, deadline.at)
                            continue
                        }
                        state.deadlines[id] = nil
                        if let index = state.waiters.firstIndex(where: { $0 === deadline.waiter }) {
                            state.writes.remove(at: index)
                            state.waiters.remove(at: index)
                            expired.append((deadline.waiter, deadline.timeout, true))
                        } else {
                            expired.append((deadline.waiter, deadline.timeout, false))
                        }
                    }
                    return (expired, next)
                }
                for (waiter, timeout, withdrawn) in expired {
                    waiter.resume(throwing: .timeout(withdrawn ? "not written: the store was busy past \(timeout)"
                                                               : "not committed within \(timeout); it may still be"))
                }
                guard let next else { break }
                // At most 5 ms late, and a new earlier deadline is seen within 5 ms.
                try? await Task.sleep(until: min(next, .now + .milliseconds(5)), clock: .continuous)
            }
        }
    }
}

// MARK: RoundWriter

extension PostgresStore {
    /// Writes `round`; returns once it is committed. With `timeout`, gives up waiting after it
    /// with `StoreError.timeout` (the round may still commit afterwards).
    public func record(_ round: RoundRecord, waitingAtMost timeout: Duration?) async throws(StoreError) {
        try await writer.enqueue(.round(round), timeout: timeout)
    }

    /// Writes a post intent (stamped with this node) ahead of sending the post: committed before this returns.
    public func record(_ intent: PostIntent, waitingAtMost timeout: Duration?) async throws(StoreError) {
        try await writer.enqueue(.postIntent(intent), timeout: timeout)
    }

    /// Stores a final answer that has no round of its own (a 4xx) for its idempotency key.
    public func record(_ answer: StoredAnswer, waitingAtMost timeout: Duration?) async throws(StoreError) {
        try await writer.enqueue(.answer(answer), timeout: timeout)
    }

    /// Waits until every queued write is committed and the pool is closed (after `close()`).
    public func closed() async {
        writer.close()
        signalHub.close()
        await writer.finished()
        endPool()
    }

    /// Writes `writes` in one transaction. Writes are applied in order; a batch that touches a
    /// round twice (or an idempotency key twice) is written as several segments, each with one
    /// statement per table, in the same transaction.
    func commit(_ writes: [PendingWrite], deadline: Duration) async throws(StoreError) {
        var segments: [[PendingWrite]] = [[]]
        var keys: Set<String> = []
        for write in writes {
            if !keys.insert(write.key).inserted {
                segments.append([])
                keys = [write.key]
            }
            segments[segments.count - 1].append(write)
        }
        let nodeID = configuration.nodeID
        let logger = logger
        let batch = segments
        try await transaction("round batch", timeout: deadline) { connection in
            var increments: [CapIncrement] = []
            for segment in batch {
                increments += try await BatchWriter(writes: segment, nodeID: nodeID).write(on: connection, logger: logger)
            }
            try await CapIncrementText.add(increments, on: connection, logger: logger)
        }
    }
}

/// One segment of a batch, written with one statement per table.
struct BatchWriter {
    var rounds: [RoundRecord] = []
    var intents: [PostIntent] = []
    var answers: [StoredAnswer] = []
    let nodeID: String

    init(writes: [PendingWrite], nodeID: String) {
        self.nodeID = nodeID
        for write in writes {
            switch write {
            case .round(let record):
                rounds.append(record)
                if let answer = record.answer { answers.append(answer) }
            case .postIntent(let intent): intents.append(intent)
            case .answer(let answer): answers.append(answer)
            }
        }
    }

    /// Writes the segment; returns the cap increments of the rounds written, for the caller to add last.
    func write(on connection: PostgresConnection, logger: Logger) async throws -> [CapIncrement] {
        if !intents.isEmpty { try await writeIntents(on: connection, logger: logger) }
        var rounds = rounds
        // A second attempt at a commit is a no-op if the first landed, or if the round has moved on
        // since (a kept ping record must never take a posted round back to `pinged`).
        let retries = rounds.filter(\.isRetry)
        if !retries.isEmpty {
            var columns = UnnestColumns()
            columns.text(retries.map(\.id))
            columns.text(retries.map(\.phase.rawValue))
            columns.text(retries.map(\.status))
            let landed = Set(try await connection.rows(columns.query("""
                SELECT r.id FROM {unnest} AS u(id, phase, status) JOIN rounds r ON r.id = u.id
                  AND ((r.phase = u.phase AND r.status = u.status) OR r.phase = 'final' OR u.phase = 'pinged')
                """), logger: logger).map { try $0.decode(String.self) })
            rounds.removeAll { $0.isRetry && landed.contains($0.id) }
        }
        if !rounds.isEmpty { try await writeRounds(rounds, on: connection, logger: logger) }
        if !answers.isEmpty { try await writeAnswers(on: connection, logger: logger) }
        return rounds.flatMap(\.capIncrements)
    }

    private func writeIntents(on connection: PostgresConnection, logger: Logger) async throws {
        var columns = UnnestColumns()
        columns.text(intents.map(\.roundID))
        columns.text(intents.map(\.kind.rawValue))
        columns.text(intents.map(\.sellerID))
        columns.text(intents.map(\.campaignID))
        columns.text(intents.map(\.buyerID))
        columns.bigint(intents.map(\.price.units))
        columns.bigint(intents.map(\.createdAtMs))
        columns.bigint(intents.map(\.sentAtMs))
        columns.bigint(intents.map { Int64($0.tmaxMs) })
        columns.text(intents.map(\.leadJSON))
        columns.text(intents.map(\.idempotencyScope))
        columns.text(intents.map(\.idempotencyHash))
        columns.text(intents.map { CapIncrementText.encode($0.capIncrements) })
        columns.text(intents.map(\.contactHash))
        columns.text(intents.map { _ in nodeID })
        // One intent per round: a later post of the same round (after a rejection) replaces it.
        try await connection.run(columns.query("""
            INSERT INTO post_intents (round_id, kind, seller_id, campaign_id, buyer_id, price, created_at_ms, sent_at_ms, tmax_ms,
                                      lead_json, idempotency_scope, idempotency_hash, cap_increments, contact_hash, node_id)
            SELECT * FROM {unnest}
            ON CONFLICT (round_id) DO UPDATE SET kind = EXCLUDED.kind, seller_id = EXCLUDED.seller_id, campaign_id = EXCLUDED.campaign_id,
              buyer_id = EXCLUDED.buyer_id, price = EXCLUDED.price, created_at_ms = EXCLUDED.created_at_ms, sent_at_ms = EXCLUDED.sent_at_ms,
              tmax_ms = EXCLUDED.tmax_ms, lead_json = EXCLUDED.lead_json, idempotency_scope = EXCLUDED.idempotency_scope,
              idempotency_hash = EXCLUDED.idempotency_hash, cap_increments = EXCLUDED.cap_increments, contact_hash = EXCLUDED.contact_hash,
              node_id = EXCLUDED.node_id
            """), logger: logger)
    }

    private func writeAnswers(on connection: PostgresConnection, logger: Logger) async throws {
        // The last answer of a scope wins (segments keep one per scope; a round's own answer may repeat one).
        var byScope: [String: StoredAnswer] = [:]
        for answer in answers { byScope[answer.scope] = answer }
        let answers = byScope.values.sorted { $0.scope < $1.scope }
        var columns = UnnestColumns()
        columns.text(answers.map(\.scope))
        columns.text(answers.map(\.bodyHash))
        columns.bigint(answers.map { Int64($0.status) })
        columns.text(answers.map(\.response))
        columns.text(answers.map(\.roundID))
        columns.bigint(answers.map(\.createdAtMs))
        try await connection.run(columns.query("""
            INSERT INTO idempotency_keys (scope, body_hash, status, response, round_id, created_at_ms) SELECT * FROM {unnest}
            ON CONFLICT (scope) DO UPDATE SET body_hash = EXCLUDED.body_hash, status = EXCLUDED.status, response = EXCLUDED.response,
              round_id = EXCLUDED.round_id, created_at_ms = EXCLUDED.created_at_ms
            """), logger: logger)
    }

    private func writeRounds(_ rounds: [RoundRecord], on connection: PostgresConnection, logger: Logger) async throws {
        let ids = rounds.map(\.id)
        // Rounds: an earlier record of the same round is updated in place (never deleted: that would
        // take its contact with it), and its child rows are written anew. A row with an xmax was updated, not inserted.
        var columns = UnnestColumns()
        columns.text(ids)
        columns.text(rounds.map(\.kind.rawValue))
        columns.text(rounds.map(\.sellerID))
        columns.text(rounds.map(\.campaignID))
        columns.text(rounds.map(\.phase.rawValue))
        columns.text(rounds.map(\.status))
        columns.bigint(rounds.map(\.createdAtMs))
        columns.bigint(rounds.map { Int64($0.tmaxMs) })
        columns.bigint(rounds.map { Int64($0.durationUs) })
        columns.text(rounds.map(\.winnerID))
        columns.bigint(rounds.map { $0.price?.units })
        columns.bigint(rounds.map { $0.payout?.units })
        columns.text(rounds.map(\.leadJSON))
        columns.text(rounds.map(\.attributionJSON))
        columns.text(rounds.map(\.source))
        let replaced = Set(try await connection.rows(columns.query("""
            WITH up AS (
              INSERT INTO rounds (id, kind, seller_id, campaign_id, phase, status, created_at_ms, tmax_ms, duration_us, winner_id, price,
                                  payout, lead_json, attribution_json, source)
              SELECT * FROM {unnest}
              ON CONFLICT (id) DO UPDATE SET kind = EXCLUDED.kind, seller_id = EXCLUDED.seller_id, campaign_id = EXCLUDED.campaign_id,
                phase = EXCLUDED.phase, status = EXCLUDED.status, created_at_ms = EXCLUDED.created_at_ms, tmax_ms = EXCLUDED.tmax_ms,
                duration_us = EXCLUDED.duration_us, winner_id = EXCLUDED.winner_id, price = EXCLUDED.price, payout = EXCLUDED.payout,
                lead_json = EXCLUDED.lead_json, attribution_json = COALESCE(EXCLUDED.attribution_json, rounds.attribution_json),
                source = COALESCE(EXCLUDED.source, rounds.source)
              RETURNING id, xmax::text <> '0' AS replaced
            )
            SELECT id FROM up WHERE replaced
            """), logger: logger).map { try $0.decode(String.self) })
        if !replaced.isEmpty {
            let replacedIDs = Array(replaced)
            for table in ["round_buyers", "post_attempts", "call_events"] {
                try await connection.run(PostgresQuery(unsafeSQL: "DELETE FROM \(table) WHERE round_id = ANY($1::text[])",
                                                       binds: binds(replacedIDs)), logger: logger)
            }
        }

        // Buyers considered.
        var buyers = UnnestColumns()
        var buyerRows: [(String, Int64, AuctionRound.BuyerEntry, String)] = []
        for record in rounds {
            for (position, entry) in record.entries.enumerated() {
                buyerRows.append((record.id, Int64(position), entry, entry.reason?.rawValue ?? record.openReasons[entry.buyerID] ?? "bid"))
            }
        }
        if !buyerRows.isEmpty {
            buyers.text(buyerRows.map(\.0))
            buyers.bigint(buyerRows.map(\.1))
            buyers.text(buyerRows.map(\.2.buyerID))
            buyers.text(buyerRows.map(\.3))
            buyers.bigint(buyerRows.map { $0.2.bid?.units })
            buyers.text(buyerRows.map(\.2.bidID))
            buyers.bigint(buyerRows.map { $0.2.latencyUs.map(Int64.init) })
            buyers.bigint(buyerRows.map { $0.2.tmaxMs.map(Int64.init) })
            buyers.text(buyerRows.map(\.2.detail))
            buyers.text(buyerRows.map(\.2.destination))
            buyers.text(buyerRows.map { $0.2.buyerReason?.code })
            buyers.text(buyerRows.map { $0.2.buyerReason?.category })
            buyers.bigint(buyerRows.map { $0.2.estimate?.ppm })
            try await connection.run(buyers.query("""
                INSERT INTO round_buyers (round_id, position, buyer_id, reason, bid, bid_id, latency_us, tmax_ms, detail, destination,
                                          buyer_reason, buyer_reason_category, estimate_ppm)
                SELECT * FROM {unnest}
                """), logger: logger)
        }

        // Posts.
        var postRows: [(String, Int64, AuctionRound.PostAttempt)] = []
        for record in rounds {
            for (sequence, post) in record.posts.enumerated() { postRows.append((record.id, Int64(sequence + 1), post)) }
        }
        if !postRows.isEmpty {
            var posts = UnnestColumns()
            posts.text(postRows.map(\.0))
            posts.bigint(postRows.map(\.1))
            posts.text(postRows.map(\.2.buyerID))
            posts.bigint(postRows.map(\.2.price.units))
            posts.text(postRows.map(\.2.result.rawValue))
            posts.bigint(postRows.map { Int64($0.2.latencyUs) })
            posts.text(postRows.map(\.2.reference))
            posts.text(postRows.map(\.2.detail))
            posts.text(postRows.map { $0.2.buyerReason?.code })
            posts.text(postRows.map { $0.2.buyerReason?.category })
            try await connection.run(posts.query("""
                INSERT INTO post_attempts (round_id, sequence, buyer_id, price, result, latency_us, reference, detail,
                                           buyer_reason, buyer_reason_category)
                SELECT * FROM {unnest}
                """), logger: logger)
        }

        // PII, in its own table.
        let pii = rounds.filter { $0.contactJSON != nil || $0.consentJSON != nil }
        if !pii.isEmpty {
            var columns = UnnestColumns()
            columns.text(pii.map(\.id))
            columns.text(pii.map { $0.contactJSON ?? "{}" })
            columns.text(pii.map(\.consentJSON))
            try await connection.run(columns.query("""
                INSERT INTO lead_pii (round_id, contact_json, consent_json) SELECT * FROM {unnest}
                ON CONFLICT (round_id) DO UPDATE SET contact_json = EXCLUDED.contact_json, consent_json = EXCLUDED.consent_json
                """), logger: logger)
        }

        // Call events.
        var eventRows: [(String, Int64, CallEventRecord)] = []
        for record in rounds {
            for (sequence, event) in record.events.enumerated() { eventRows.append((record.id, Int64(sequence + 1), event)) }
        }
        if !eventRows.isEmpty {
            var events = UnnestColumns()
            events.text(eventRows.map(\.0))
            events.bigint(eventRows.map(\.1))
            events.text(eventRows.map(\.2.type))
            events.text(eventRows.map(\.2.buyerID))
            events.bigint(eventRows.map(\.2.atMs))
            events.bigint(eventRows.map { $0.2.durationS.map(Int64.init) })
            events.text(eventRows.map(\.2.recordingURL))
            events.text(eventRows.map(\.2.detail))
            try await connection.run(events.query("""
                INSERT INTO call_events (round_id, sequence, type, buyer_id, at_ms, duration_s, recording_url, detail) SELECT * FROM {unnest}
                """), logger: logger)
        }

        // Sales, and their ledger rows (a second write of the round books nothing more).
        let sold = rounds.compactMap { record -> (RoundRecord, String, Money, Money)? in
            guard record.billable, let winner = record.winnerID, let price = record.price else { return nil }
            return (record, winner, price, record.payout ?? .zero)
        }
        if !sold.isEmpty {
            var sales = UnnestColumns()
            sales.text(sold.map(\.0.id))
            sales.text(sold.map(\.0.kind.rawValue))
            sales.text(sold.map(\.0.sellerID))
            sales.text(sold.map(\.0.campaignID))
            sales.text(sold.map(\.1))
            sales.bigint(sold.map(\.2.units))
            sales.bigint(sold.map(\.3.units))
            sales.bigint(sold.map { ($0.2 - $0.3).units })
            sales.bigint(sold.map(\.0.createdAtMs))
            sales.text(sold.map(\.0.contactHash))
            try await connection.run(sales.query("""
                INSERT INTO sales (round_id, kind, seller_id, campaign_id, buyer_id, price, payout, margin, sold_at_ms, contact_hash)
                SELECT * FROM {unnest}
                ON CONFLICT (round_id) DO UPDATE SET kind = EXCLUDED.kind, seller_id = EXCLUDED.seller_id, campaign_id = EXCLUDED.campaign_id,
                  buyer_id = EXCLUDED.buyer_id, price = EXCLUDED.price, payout = EXCLUDED.payout, margin = EXCLUDED.margin,
                  sold_at_ms = EXCLUDED.sold_at_ms, contact_hash = EXCLUDED.contact_hash
                """), logger: logger)
            var ledger = UnnestColumns()
            ledger.text(sold.map(\.0.id))
            ledger.text(sold.map(\.1))
            ledger.bigint(sold.map(\.2.units))
            ledger.bigint(sold.map(\.3.units))
            try await connection.run(ledger.query("""
                INSERT INTO ledger (entry_id, type, round_id, at_ms, round_at_ms, kind, campaign_id, seller_id, buyer_id, source, revenue, payout)
                SELECT 'sale:' || r.id, 'sale', r.id, r.created_at_ms, r.created_at_ms, r.kind, r.campaign_id, r.seller_id, u.winner,
                       COALESCE(r.source, r.attribution_json::jsonb ->> 'source'), u.price, u.payout
                FROM {unnest} AS u(id, winner, price, payout) JOIN rounds r ON r.id = u.id
                ON CONFLICT DO NOTHING
                """), logger: logger)
        }

        // Cap counters are added by the batch's last statement (`commit`): their rows are the
        // hottest in the database (every node's sales to one buyer), so they are locked only
        // for that statement and the COMMIT, not for the whole batch.

        // Rotations: the highest written wins.
        var rotations: [String: Int] = [:]
        for record in rounds {
            if let rotation = record.rotation { rotations[record.campaignID] = max(rotations[record.campaignID] ?? rotation, rotation) }
        }
        if !rotations.isEmpty {
            let sorted = rotations.sorted { $0.key < $1.key }
            var columns = UnnestColumns()
            columns.text(sorted.map(\.key))
            columns.bigint(sorted.map { Int64($0.value) })
            try await connection.run(columns.query("""
                INSERT INTO rotations (campaign_id, next) SELECT * FROM {unnest}
                ON CONFLICT (campaign_id) DO UPDATE SET next = GREATEST(rotations.next, EXCLUDED.next)
                """), logger: logger)
        }

        // A final round settles its write-ahead intent, whether or not its post went out.
        let settled = rounds.filter { $0.phase == .final || !$0.posts.isEmpty }.map(\.id)
        if !settled.isEmpty {
            try await connection.run(PostgresQuery(unsafeSQL: "DELETE FROM post_intents WHERE round_id = ANY($1::text[])",
                                                   binds: binds(settled)), logger: logger)
        }

        // Live state: written through (and checked back in: a call's record ends its event's
        // check-out); a round replaced without any is no longer live.
        let live = rounds.compactMap { record -> LiveState? in record.phase == .final ? nil : record.liveState }
        var liveByID: [String: LiveState] = [:]
        for state in live { liveByID[state.roundID] = state }
        if !liveByID.isEmpty {
            let states = liveByID.values.sorted { $0.roundID < $1.roundID }
            var columns = UnnestColumns()
            columns.text(states.map(\.roundID))
            columns.text(states.map(\.kind.rawValue))
            columns.text(states.map(\.snapshot))
            columns.bigint(states.map(\.expiresAtMs))
            try await connection.run(columns.query("""
                INSERT INTO live_state (round_id, kind, snapshot, expires_at_ms) SELECT * FROM {unnest}
                ON CONFLICT (round_id) DO UPDATE SET kind = EXCLUDED.kind, snapshot = EXCLUDED.snapshot, expires_at_ms = EXCLUDED.expires_at_ms,
                  claimed_by = NULL, claimed_until_ms = NULL
                """), logger: logger)
        }
        let ended = rounds.filter { replaced.contains($0.id) && ($0.phase == .final || $0.liveState == nil) }.map(\.id)
        if !ended.isEmpty {
            try await connection.run(PostgresQuery(unsafeSQL: "DELETE FROM live_state WHERE round_id = ANY($1::text[])",
                                                   binds: binds(ended)), logger: logger)
        }

        // Claims (ClusterProtocols): a written round's post claims end (its counters now hold
        // them); its call claims are counted and stay as the call's slot until released. A call
        // claim is taken to lapse soon after its round (its node may die before routing commits);
        // once the call is recorded live, it lasts as long as the call's live state.
        try await connection.run(PostgresQuery(unsafeSQL: "DELETE FROM cap_claims WHERE round_id = ANY($1::text[]) AND kind = 'post'",
                                               binds: binds(ids)), logger: logger)
        try await connection.run(PostgresQuery(unsafeSQL: """
            UPDATE cap_claims c SET counted = true,
              expires_at_ms = GREATEST(c.expires_at_ms,
                                       COALESCE((SELECT l.expires_at_ms FROM live_state l WHERE l.round_id = c.round_id), c.expires_at_ms))
            WHERE c.round_id = ANY($1::text[]) AND c.kind = 'call'
            """, binds: binds(ids)), logger: logger)
    }
}

/// One text array bind.
func binds(_ values: [String]) -> PostgresBindings {
    var binds = PostgresBindings()
    binds.append(values)
    return binds
}

/// Cap increments: stored as `window|count|spend` lines in a post intent (as SQLite does), and
/// added to `cap_counters` summed per (buyer, window).
enum CapIncrementText {
    static func encode(_ increments: [CapIncrement]) -> String {
        increments.map { "\($0.window)|\($0.count)|\($0.spend.units)" }.joined(separator: "\n")
    }

    static func decode(_ text: String, buyerID: String) -> [CapIncrement] {
        text.split(separator: "\n").compactMap { line in
            let parts = line.split(separator: "|", omittingEmptySubsequences: false)
            guard parts.count == 3, let count = Int(parts[1]), let spend = Int64(parts[2]) else { return nil }
            return CapIncrement(buyerID: buyerID, window: String(parts[0]), count: count, spend: Money(units: spend))
        }
    }

    /// Adds `increments` to the counters in one statement; rows in key order, so that two
    /// transactions lock them in the same order.
    static func add(_ increments: [CapIncrement], on connection: PostgresConnection, logger: Logger) async throws {
        guard !increments.isEmpty else { return }
        struct Key: Hashable, Comparable {
            var buyer: String
            var window: String
            static func < (lhs: Key, rhs: Key) -> Bool { (lhs.buyer, lhs.window) < (rhs.buyer, rhs.window) }
        }
        var sums: [Key: (count: Int64, spend: Int64)] = [:]
        for increment in increments {
            let key = Key(buyer: increment.buyerID, window: increment.window)
            let sum = sums[key] ?? (0, 0)
            sums[key] = (sum.count + Int64(increment.count), sum.spend + increment.spend.units)
        }
        let sorted = sums.sorted { $0.key < $1.key }
        var columns = UnnestColumns()
        columns.text(sorted.map(\.key.buyer))
        columns.text(sorted.map(\.key.window))
        columns.bigint(sorted.map(\.value.count))
        columns.bigint(sorted.map(\.value.spend))
        try await connection.run(columns.query("""
            INSERT INTO cap_counters (buyer_id, window_key, count, spend) SELECT * FROM {unnest}
            ON CONFLICT (buyer_id, window_key) DO UPDATE SET count = cap_counters.count + EXCLUDED.count,
              spend = cap_counters.spend + EXCLUDED.spend
            """), logger: logger)
    }
}
