import GavelCore

// The seams between the exchange and its database. The exchange (`GavelExchange`) holds its store
// as `any ExchangeStore` and calls nothing else, so tests can hand it fakes and a second backend
// (PostgreSQL, issue 12) can stand in for `RoundStore` (SQLite) without the exchange knowing which
// it has. Each protocol is one job; `BooksStore` (`Books/BooksStore.swift`) is the books'.
//
// Every method throws `StoreError` only; writes return once committed (the 200-after-commit rule).
// A backend may answer synchronously (SQLite's start-up reads do): a plain method meets an async requirement.

/// Writes rounds, with group commit: a write returns once its transaction has committed.
public protocol RoundWriter: Sendable {
    /// Writes `round`; returns once it is committed. With `timeout`, gives up waiting after it
    /// with `StoreError.timeout` (the round may still commit afterwards).
    func record(_ round: RoundRecord, waitingAtMost timeout: Duration?) async throws(StoreError)
    /// Writes a post intent ahead of sending the post: committed before this returns. With
    /// `timeout`, as for a round.
    func record(_ intent: PostIntent, waitingAtMost timeout: Duration?) async throws(StoreError)
    /// Stops taking writes after those already queued are committed.
    func close()
}

extension RoundWriter {
    /// Writes `round`, waiting for its commit however long it takes.
    public func record(_ round: RoundRecord) async throws(StoreError) { try await record(round, waitingAtMost: nil) }
    /// Writes a post intent, waiting for its commit however long it takes.
    public func record(_ intent: PostIntent) async throws(StoreError) { try await record(intent, waitingAtMost: nil) }
}

/// Reads a recorded round back.
public protocol RoundReader: Sendable {
    /// The round with this id (any kind), or nil.
    func round(id: String) async throws(StoreError) -> StoredRound?
}

/// Idempotency keys: the answer first sent for a request, so a repeat gets the same bytes.
/// (A 200's answer is written with its round, by the round writer.)
public protocol IdempotentAnswers: Sendable {
    /// The answer stored for `scope`, if any and created at or after `notBeforeMs`.
    func answer(scope: String, notBeforeMs: Int64) async throws(StoreError) -> StoredAnswer?
    /// Stores a final answer that has no round of its own (a 4xx) for its idempotency key.
    func record(_ answer: StoredAnswer, waitingAtMost timeout: Duration?) async throws(StoreError)
}

extension IdempotentAnswers {
    /// Stores an answer, waiting for its commit however long it takes.
    public func record(_ answer: StoredAnswer) async throws(StoreError) { try await record(answer, waitingAtMost: nil) }
}

/// What a node restores at start-up, before any round runs: caps, duplicate windows, posts whose
/// outcome was lost, held bids and live calls, rotations and buyers' outcome tallies.
public protocol StartupState: Sendable {
    /// Makes every post intent left over final as `post_unknown` (caps counted, never sold again);
    /// returns the intents resolved. Called before the counters are read.
    func resolveUnknownPosts(nowMs: Int64) async throws(StoreError) -> [PostIntent]
    /// Rounds whose post outcome is unknown, for `/metrics`.
    func postUnknownCount() async throws(StoreError) -> Int
    /// Every cap counter, for the cap ledger.
    func capCounters() async throws(StoreError) -> [CapIncrement]
    /// Sales since `sinceMs` that carry a contact hash, for duplicate windows.
    func salesWithContact(sinceMs: Int64) async throws(StoreError) -> [SaleRecord]
    /// Every held bid and live call not yet expired; held pings come with their consent.
    func liveStates(nowMs: Int64) async throws(StoreError) -> [LiveState]
    /// Each round-robin campaign's rotation counter as last written.
    func rotations() async throws(StoreError) -> [String: Int]
    /// Each buyer's post and call outcomes since `sinceMs`, for expected-value ranking.
    func outcomeTallies(sinceMs: Int64) async throws(StoreError) -> [OutcomeTally]
}

/// Tracking numbers reserved for landing-page visitors (dynamic number insertion).
public protocol TrackingReservations: Sendable {
    /// Reserves a tracking number for a visitor session (replacing an expired holder).
    func record(_ session: StoredDNISession) async throws(StoreError)
    /// Tracking numbers still reserved at `nowMs`, for start-up.
    func dniSessions(nowMs: Int64) async throws(StoreError) -> [StoredDNISession]
}

/// Housekeeping: deletes what expired. Each returns how many rows it deleted.
public protocol StoreSweeps: Sendable {
    /// Deletes held bids, live calls and tracking-number reservations that expired before `nowMs`.
    @discardableResult
    func sweepLiveState(nowMs: Int64) async throws(StoreError) -> Int
    /// Deletes idempotent answers created before `beforeMs`.
    @discardableResult
    func sweepAnswers(beforeMs: Int64) async throws(StoreError) -> Int
}

/// Buyers paused from their portal: the store holds the truth across reloads and restarts.
public protocol PortalPauseStore: Sendable {
    /// The buyers paused from the portal now.
    func portalPauses() async throws(StoreError) -> Set<String>
    /// Pauses (or resumes) `buyerID`; committed before this returns.
    func setPortalPause(buyerID: String, paused: Bool, atMs: Int64) async throws(StoreError)
}

/// Calls' recordings, as their provider reports them.
public protocol CallRecordings: Sendable {
    /// Keeps a call's recording URL; a second one for the same call replaces it.
    func attachRecording(roundID: String, url: String, atMs: Int64) async throws(StoreError)
}

/// The operator dashboard's figures: recent activity and today's counts. Read by the web pages
/// through the exchange (`exchange.store`), never by the exchange itself.
public protocol DashboardReader: Sendable {
    /// Activity since `sinceMs`, reading at most `limit` rounds (the newest).
    func activity(sinceMs: Int64, limit: Int) async throws(StoreError) -> RoundStore.Activity
    /// Rounds, and those sold, created in `fromMs ..< toMs`.
    func roundCounts(fromMs: Int64, toMs: Int64) async throws(StoreError) -> (rounds: Int, sold: Int)
    /// The newest rounds, newest first.
    func recentRounds(limit: Int) async throws(StoreError) -> [RoundStore.RecentRound]
}

extension DashboardReader {
    /// Activity since `sinceMs`, reading at most 20,000 rounds (the newest).
    public func activity(sinceMs: Int64) async throws(StoreError) -> RoundStore.Activity {
        try await activity(sinceMs: sinceMs, limit: 20_000)
    }
}

/// Everything the exchange (and the web pages reading through it) needs of its store. `RoundStore`
/// (SQLite) is one; a second backend conforms to the same protocols and nothing above changes.
public protocol ExchangeStore: RoundWriter, RoundReader, IdempotentAnswers, StartupState, TrackingReservations, StoreSweeps,
    PortalPauseStore, CallRecordings, BooksStore, DashboardReader {}

extension RoundStore: ExchangeStore {}

/// Reads for operators and tests that the exchange never makes: what the database holds.
public protocol StoreInspection: Sendable {
    /// Rounds, sales and buyer rows recorded.
    func counts() async throws(StoreError) -> (rounds: Int, sales: Int, buyerRows: Int)
    /// Post intents not yet resolved by their round's record.
    func openPostIntents() async throws(StoreError) -> [PostIntent]
}

extension RoundStore: StoreInspection {}
