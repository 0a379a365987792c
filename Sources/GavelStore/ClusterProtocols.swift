import GavelCore

// State several `gavel serve` nodes share through one database (PostgreSQL, issue 12). A single
// node on SQLite has none of it: its caps, held bids and live calls are exact in its own memory.
// With a `ClusterState`, the exchange keeps its in-memory ledger only as a fast eligibility
// filter and for buyer health, and asks the database for every decision that must be exact
// across nodes: a post's cap claim, a held ping's post, a live call's event.
//
// Every method throws `StoreError` only. Each has a deadline: the backend bounds every statement
// (and its wait for a connection) so that a slow or lost database fails closed, within the round.

/// One sale (or one live call) a node wants to take under a buyer's caps, checked and taken in
/// one step against what every node has sold and has in flight.
public struct CapClaim: Sendable, Hashable, Codable {
    /// The round the claim is for; a claim is released, or becomes a sale, by this id.
    public var roundID: String
    public var buyerID: String
    /// The counter windows of the claim (`CapWindows` keys: `H:…`, `D:…`, `M:…`).
    public var hourKey: String
    public var dayKey: String
    public var monthKey: String
    /// What the sale would add to the day's spend.
    public var price: Money
    public var hourly: Int?
    public var daily: Int?
    public var monthly: Int?
    public var dailyBudget: Money?
    /// The contact (lead) or caller hash, checked against sales and claims in the buyer's
    /// duplicate window; nil or `duplicateWindowDays` 0: no duplicate check.
    public var contactHash: String?
    public var duplicateWindowDays: Int
    /// A live call: the claim is the call's concurrency slot and stays until released.
    public var isCall: Bool
    /// Calls only: live calls the buyer takes at most at once.
    public var concurrent: Int?
    /// Calls only: the buyer's caps count conversions, so each live call counts as a pending one.
    public var countsConversions: Bool
    /// After this an unreleased claim is swept back (its node died): the round's budget plus a
    /// margin for a post, the campaign's longest call for a call.
    public var expiresAtMs: Int64
    /// The node that took it, for logs and for the sweep of a dead node's claims.
    public var nodeID: String

    public init(roundID: String, buyerID: String, hourKey: String, dayKey: String, monthKey: String, price: Money,
                hourly: Int?, daily: Int?, monthly: Int?, dailyBudget: Money?, contactHash: String?, duplicateWindowDays: Int,
                isCall: Bool, concurrent: Int?, countsConversions: Bool, expiresAtMs: Int64, nodeID: String) {
        self.roundID = roundID
        self.buyerID = buyerID
        self.hourKey = hourKey
        self.dayKey = dayKey
        self.monthKey = monthKey
        self.price = price
        self.hourly = hourly
        self.daily = daily
        self.monthly = monthly
        self.dailyBudget = dailyBudget
        self.contactHash = contactHash
        self.duplicateWindowDays = duplicateWindowDays
        self.isCall = isCall
        self.concurrent = concurrent
        self.countsConversions = countsConversions
        self.expiresAtMs = expiresAtMs
        self.nodeID = nodeID
    }

    public enum Verdict: String, Sendable, Hashable {
        case granted
        /// A count, budget or concurrency cap would be passed.
        case capped
        /// The contact was sold to (or is being posted to) this buyer within its duplicate window.
        case duplicate
    }
}

/// Caps shared by every node, exact: a claim is checked against committed counts plus every
/// claim still in flight, and taken, under one lock per buyer in one transaction.
///
/// The rule that keeps counts exact and durable: a round record's `capIncrements` are still
/// applied by the round writer in the round's own transaction, and the same transaction ends the
/// round's post claims (a lead's claim becomes its sale) and marks its call claims counted. So a
/// claim counts exactly once: while in flight as a claim, after its commit as a counter.
public protocol SharedCaps: Sendable {
    /// Checks and takes `claim`; `.granted` once the claim is durable enough to post on.
    func claim(_ claim: CapClaim, atMs: Int64, waitingAtMost timeout: Duration?) async throws(StoreError) -> CapClaim.Verdict
    /// Gives back a claim whose post failed (or whose call ended): idempotent.
    func release(roundID: String, buyerID: String) async throws(StoreError)
    /// Every buyer's counters as every node sees them (committed plus claims in flight), and each
    /// buyer's live calls, for the in-memory eligibility filter of each node.
    func sharedUsage(nowMs: Int64) async throws(StoreError) -> SharedUsage
}

/// What every node has sold and has in flight, for eligibility.
public struct SharedUsage: Sendable {
    public var counters: [CapIncrement]
    public var liveCalls: [String: Int]
    public init(counters: [CapIncrement], liveCalls: [String: Int]) {
        self.counters = counters
        self.liveCalls = liveCalls
    }
}

/// Held pings and live calls that any node may take over: a post claims its ping, an event
/// checks out its call, each in one conditional update, so exactly one node runs it at a time.
public protocol SharedLiveState: Sendable {
    /// Claims held ping `id` for its post. `.won` carries the held state (with its consent) to
    /// run the post on; `.taken` when another post (on any node) claimed it first; `.none` when
    /// there is no unexpired held ping of that id.
    func claimHeld(id: String, nodeID: String, nowMs: Int64) async throws(StoreError) -> LiveClaim
    /// Gives a claimed ping back unposted (the post did not fit the ping: its bids stay held).
    func unclaimHeld(id: String) async throws(StoreError)
    /// Checks out live call `id` for one event, for at most `leaseMs` (a dead node's lease runs
    /// out); `.taken` while another event holds it. Writing the call's record (live or final)
    /// checks it back in.
    func checkOutCall(id: String, nodeID: String, nowMs: Int64, leaseMs: Int64) async throws(StoreError) -> LiveClaim
    /// Checks a call back in without a new record (its event was refused).
    func checkInCall(id: String) async throws(StoreError)
}

public enum LiveClaim: Sendable {
    case won(LiveState)
    case taken
    case none
}

/// Nodes that are up, by heartbeat; rate limits are shared out among them.
public protocol ClusterNodes: Sendable {
    /// Notes that `nodeID` is up; returns how many nodes (itself included) beat within `liveWithinMs`.
    func heartbeat(nodeID: String, nowMs: Int64, liveWithinMs: Int64) async throws(StoreError) -> Int
    /// Ends what dead nodes left behind: claims past their expiry are swept back (a post claim
    /// whose post intent was written stays counted: its round becomes `post_unknown`), held pings
    /// claimed but never posted are freed, post intents older than `staleIntentMs` are resolved.
    /// Returns how many claims and rounds it settled.
    @discardableResult
    func reclaim(nowMs: Int64, staleIntentMs: Int64) async throws(StoreError) -> Int
}

/// What one node tells the others at once (PostgreSQL LISTEN/NOTIFY).
public enum ClusterSignal: String, Sendable, Hashable {
    /// An operator reloaded the config on one node: every node reloads its own directory.
    case configReloaded = "config"
    /// A buyer paused or resumed from the portal: every node re-reads the pauses.
    case pausesChanged = "pauses"
    /// The listening connection was lost and is back: a notice may have been missed, re-read everything.
    case resync
}

public protocol ClusterSignals: Sendable {
    /// Tells every node (this one too) about `signal`; also bumps a counter the slow poll reads.
    func publish(_ signal: ClusterSignal) async throws(StoreError)
    /// Signals as they arrive, until the task is cancelled; reconnects by itself and then yields `.resync`.
    func signals() -> AsyncStream<ClusterSignal>
    /// A number that changes with every published signal, for the slow poll that backs up LISTEN.
    func signalEpoch() async throws(StoreError) -> Int64
}

/// Requests with an `Idempotency-Key` that run now, on any node: a repeat on another node while
/// the first runs gets 409, as on the same node, instead of a second round (a lead sold twice).
public protocol RunningRequests: Sendable {
    /// Marks `scope` as running on `nodeID` until `untilMs` (a dead node's mark lapses then);
    /// false when a request with it runs now.
    func beginRequest(scope: String, nodeID: String, nowMs: Int64, untilMs: Int64) async throws(StoreError) -> Bool
    /// The request ended (its answer, if final, is stored): another may run.
    func endRequest(scope: String, nodeID: String) async throws(StoreError)
}

/// Tracking numbers (dynamic number insertion) reserved on any node: a number is given to one
/// visitor at a time across the cluster, and a call to it is attributed on whichever node it reaches.
public protocol SharedTracking: Sendable {
    /// Reserves `session.number` for the session when no unexpired reservation holds it; false otherwise.
    func reserveNumber(_ session: StoredDNISession, nowMs: Int64) async throws(StoreError) -> Bool
    /// The session holding `number` at `nowMs`, if any.
    func trackingSession(number: String, nowMs: Int64) async throws(StoreError) -> StoredDNISession?
}

/// Everything several nodes share. `PostgresStore` is one; a single SQLite node has none.
public protocol ClusterState: SharedCaps, SharedLiveState, ClusterNodes, ClusterSignals, RunningRequests, SharedTracking {}
