import Foundation
import GavelCore
import GavelStore

/// A live call between routing and its end: its lifecycle, the round it runs with, and the buyer's
/// slot it holds.
struct CallSession: Sendable {
    var lifecycle: CallLifecycle
    var context: RoundContext
    /// The concurrency slot of the current bid's buyer, while the call is live.
    var slot: BuyerLedger.CallSlot?
    var attributionJSON: String?
    /// How long routing took, kept as the round's duration.
    var routingUs: Int
    /// When the slot is released if no `completed` arrives (ms since the epoch).
    var releaseAtMs: Int64
}

/// Live calls by id, and recent call bids by caller, so a repeat call reuses bids still valid.
/// Bounded: at `capacity` live calls a new call is refused (503), never a live one dropped.
actor CallSessions {
    private var sessions: [String: CallSession] = [:]
    /// Calls whose event is being handled: a second event for the same call waits its turn.
    private var busy: Set<String> = []
    private var waiting: [String: [CheckedContinuation<Void, Never>]] = [:]
    /// "campaign|caller hash" -> the round whose bids can be reused; a cache, bounded by `capacity`.
    private var recentBids: [String: AuctionRound] = [:]
    let capacity: Int

    init(capacity: Int = 100_000) { self.capacity = capacity }

    /// Whether another live call fits.
    var hasRoom: Bool { sessions.count < capacity }

    func add(_ session: CallSession, id: String) { sessions[id] = session }

    /// Takes the call for exclusive handling of one event; nil when there is no live call of that id.
    func checkOut(_ id: String) async -> CallSession? {
        while busy.contains(id) {
            await withCheckedContinuation { continuation in waiting[id, default: []].append(continuation) }
        }
        guard let session = sessions[id] else {
            // Ended (or abandoned) while this event waited: let the next waiter find out too.
            if let next = waiting[id]?.first {
                waiting[id]?.removeFirst()
                if waiting[id]?.isEmpty == true { waiting[id] = nil }
                next.resume()
            }
            return nil
        }
        busy.insert(id)
        return session
    }

    /// Returns the call after an event: still live (`session`) or ended (nil).
    func checkIn(_ id: String, session: CallSession?) {
        sessions[id] = session
        busy.remove(id)
        guard session != nil else {
            // The call ended: every waiting event finds it gone (and says so), none waits on.
            for waiter in waiting.removeValue(forKey: id) ?? [] { waiter.resume() }
            return
        }
        if let next = waiting[id]?.first {
            waiting[id]?.removeFirst()
            if waiting[id]?.isEmpty == true { waiting[id] = nil }
            next.resume()
        }
    }

    /// Live calls past their release time, checked out for the caller to end (and check in).
    func checkOutAbandoned(nowMs: Int64) -> [(String, CallSession)] {
        let expired = sessions.filter { !busy.contains($0.key) && $0.value.releaseAtMs <= nowMs }
        for (id, _) in expired { busy.insert(id) }
        recentBids = recentBids.filter { _, round in CallSessions.hasValidBid(round, nowMs: nowMs) }
        return expired.map { ($0.key, $0.value) }
    }

    func rememberBids(_ round: AuctionRound, key: String, nowMs: Int64) {
        if recentBids.count >= capacity { recentBids = recentBids.filter { CallSessions.hasValidBid($0.value, nowMs: nowMs) } }
        guard recentBids.count < capacity else { return }
        recentBids[key] = round
    }

    /// A round with bids for this caller that have not expired, if any.
    func reusableBids(key: String, nowMs: Int64) -> AuctionRound? {
        guard let round = recentBids[key], CallSessions.hasValidBid(round, nowMs: nowMs) else { return nil }
        return round
    }

    private static func hasValidBid(_ round: AuctionRound, nowMs: Int64) -> Bool {
        guard let closed = round.closedAtMs else { return false }
        return round.ranking.contains { nowMs < $0.expiresAtMs(closedAtMs: closed, defaultHoldS: round.defaultHoldS) }
    }

    var liveCount: Int { sessions.count }
}
