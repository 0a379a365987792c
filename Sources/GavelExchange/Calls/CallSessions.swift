import Foundation
import GavelCore
import GavelStore

/// A live call between routing and its end.
struct CallSession: Sendable {
    enum Status: String, Sendable { case routed, connected }

    var round: AuctionRound
    var context: RoundContext
    var status: Status
    /// The bid the caller is being sent to, and the slot it holds.
    var current: RankedBid
    var slot: BuyerLedger.CallSlot
    var events: [CallEventRecord]
    var attribution: TrackingDesk.Attribution?
    /// How long routing took, kept as the round's duration.
    var routingUs: Int
    /// When the slot is released if no `completed` arrives.
    var releaseAt: Date
}

/// Live calls by id, and recent call bids by caller, so a repeat call reuses bids still valid.
actor CallSessions {
    private var sessions: [String: CallSession] = [:]
    /// Calls whose event is being handled: a second event for the same call waits its turn.
    private var busy: Set<String> = []
    private var waiting: [String: [CheckedContinuation<Void, Never>]] = [:]
    /// "campaign|caller hash" -> the round whose bids can be reused.
    private var recentBids: [String: AuctionRound] = [:]

    func add(_ session: CallSession, id: String) { sessions[id] = session }

    /// Takes the call for exclusive handling of one event; nil when there is no live call of that id.
    func checkOut(_ id: String) async -> CallSession? {
        while busy.contains(id) {
            await withCheckedContinuation { continuation in waiting[id, default: []].append(continuation) }
        }
        guard let session = sessions[id] else { return nil }
        busy.insert(id)
        return session
    }

    /// Returns the call after an event: still live (`session`) or ended (nil).
    func checkIn(_ id: String, session: CallSession?) {
        sessions[id] = session
        busy.remove(id)
        if let next = waiting[id]?.first {
            waiting[id]?.removeFirst()
            if waiting[id]?.isEmpty == true { waiting[id] = nil }
            next.resume()
        }
    }

    /// Live calls past their release time, taken out for the caller to release.
    func takeAbandoned(at now: Date) -> [(String, CallSession)] {
        let expired = sessions.filter { !busy.contains($0.key) && $0.value.releaseAt <= now }
        for (id, _) in expired { sessions[id] = nil }
        recentBids = recentBids.filter { _, round in
            guard let closed = round.closedAtMs else { return false }
            let latest = round.ranking.map { $0.expiresAtMs(closedAtMs: closed, defaultHoldS: round.defaultHoldS) }.max() ?? 0
            return Int64(now.timeIntervalSince1970 * 1000) < latest
        }
        return expired.map { ($0.key, $0.value) }
    }

    func rememberBids(_ round: AuctionRound, key: String) { recentBids[key] = round }

    /// A round with bids for this caller that have not expired, if any.
    func reusableBids(key: String, nowMs: Int64) -> AuctionRound? {
        guard let round = recentBids[key], let closed = round.closedAtMs else { return nil }
        let valid = round.ranking.contains { nowMs < $0.expiresAtMs(closedAtMs: closed, defaultHoldS: round.defaultHoldS) }
        return valid ? round : nil
    }

    var liveCount: Int { sessions.count }
}
