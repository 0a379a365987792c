import Foundation
import GavelCore
import GavelStore
import Logging

// Several nodes on one database (`ClusterState`). Each decision that must be exact across nodes
// goes to the database: a post's cap claim, a held ping's post, a live call's event. The node's
// own memory keeps only what may be approximate or is per node: the ledger's counters as an
// eligibility filter (refreshed every second from every node's usage), buyer health, rate limits
// (shared out among the live nodes). Without a cluster (SQLite, one node) none of this runs.

extension Exchange {
    /// Why a slot under a buyer's caps was not taken.
    enum SlotDenied: Error, Sendable {
        case capped
        case duplicate
        /// The shared database did not answer in time: fail closed, nothing is sold.
        case unavailable(String)
    }

    /// Takes a slot under `buyer`'s caps for a post at `price`: in memory on one node, by a claim
    /// in the shared database on several.
    func reserveSlot(buyer: Buyer, price: Money, context: RoundContext, remainingMs: Int) async -> Result<BuyerLedger.Reservation, SlotDenied> {
        guard let cluster else {
            switch ledger.reserve(buyer: buyer, price: price, contactHash: context.contactHash, at: now) {
            case .success(let reservation): return .success(reservation)
            case .failure(.capped): return .failure(.capped)
            case .failure(.duplicate): return .failure(.duplicate)
            }
        }
        let windows = CapWindows(date: now, timeZone: buyer.capTimeZone)
        let contactHash = buyer.duplicateWindowDays > 0 ? context.contactHash : nil
        let reservation = BuyerLedger.Reservation(buyerID: buyer.id, price: price, windows: windows, contactHash: contactHash)
        // A buyer with nothing to exceed needs no claim: its sales are counted by their records.
        guard Exchange.needsClaim(buyer, isCall: false) else {
            ledger.take(reservation)
            return .success(reservation)
        }
        let claim = capClaim(buyer: buyer, reservation: reservation, roundID: context.auctionID, isCall: false,
                             expiresAtMs: nowMs + Int64(max(0, remainingMs)) + configuration.claimGraceMs)
        do {
            switch try await cluster.claim(claim, atMs: nowMs, waitingAtMost: .milliseconds(max(1, remainingMs))) {
            case .granted:
                ledger.take(reservation)
                return .success(reservation)
            case .capped: return .failure(.capped)
            case .duplicate: return .failure(.duplicate)
            }
        } catch {
            logger.error("cap claim failed; the post is not sent", metadata: [
                "auction_id": "\(context.auctionID)", "buyer": "\(buyer.id)", "error": "\(error)",
            ])
            releaseUnanswered(claim, cluster: cluster)
            return .failure(.unavailable("\(error)"))
        }
    }

    /// A claim whose answer did not come in time may still commit on the server: give it back once
    /// it has (the release waits for the buyer's claim lock), so it does not hold a unit of the cap
    /// until it lapses. Off the round's path: the round has already given up on this buyer.
    private func releaseUnanswered(_ claim: CapClaim, cluster: any ClusterState) {
        let logger = logger
        Task {
            do { try await cluster.release(roundID: claim.roundID, buyerID: claim.buyerID) } catch {
                logger.warning("unanswered cap claim not released; it lapses at its expiry", metadata: [
                    "auction_id": "\(claim.roundID)", "buyer": "\(claim.buyerID)", "error": "\(error)",
                ])
            }
        }
    }

    /// Gives back a slot whose post did not sell (or was never sent).
    func releaseSlot(_ reservation: BuyerLedger.Reservation, roundID: String) async {
        ledger.release(reservation)
        guard let cluster, config.buyer(id: reservation.buyerID).map({ Exchange.needsClaim($0, isCall: false) }) ?? true else { return }
        do {
            try await cluster.release(roundID: roundID, buyerID: reservation.buyerID)
        } catch {
            // The claim stays until its expiry: the cap under-fills by one for a while, never overshoots.
            logger.warning("cap claim not released; it lapses at its expiry", metadata: [
                "auction_id": "\(roundID)", "buyer": "\(reservation.buyerID)", "error": "\(error)",
            ])
        }
    }

    /// Takes a live-call slot (concurrency, duplicate caller, count caps) for `buyer`.
    func reserveCallSlot(buyer: Buyer, price: Money, context: RoundContext, releaseAtMs: Int64) async
        -> Result<(BuyerLedger.CallSlot, [CapIncrement]), SlotDenied> {
        guard let cluster else {
            switch ledger.reserveCall(buyer: buyer, price: price, callerHash: context.contactHash, at: now) {
            case .success(let slot): return .success(slot)
            case .failure(.capped): return .failure(.capped)
            case .failure(.duplicate): return .failure(.duplicate)
            }
        }
        let windows = CapWindows(date: now, timeZone: buyer.capTimeZone)
        let reservation = BuyerLedger.Reservation(buyerID: buyer.id, price: price, windows: windows, contactHash: context.contactHash)
        // Until the routing is recorded the claim lapses soon after the round (its node may die
        // first); the record that makes the call live extends it to the call's live state.
        let pendingMs = max(Int64(RoundContext.milliseconds(until: context.deadline)), Int64(Exchange.eventStoreWaitMs))
        let claim = capClaim(buyer: buyer, reservation: reservation, roundID: context.auctionID, isCall: true,
                             expiresAtMs: min(releaseAtMs, nowMs + pendingMs) + configuration.claimGraceMs)
        do {
            switch try await cluster.claim(claim, atMs: nowMs, waitingAtMost: .milliseconds(Int64(Exchange.eventStoreWaitMs))) {
            case .granted:
                let countsConversions = buyer.caps.countConversions
                let slot = BuyerLedger.CallSlot(reservation: reservation, countsConversions: countsConversions)
                ledger.takeCall(slot, callerHash: buyer.duplicateWindowDays > 0 ? context.contactHash : nil, at: now)
                return .success((slot, countsConversions ? [] : reservation.increments))
            case .capped: return .failure(.capped)
            case .duplicate: return .failure(.duplicate)
            }
        } catch {
            logger.error("call slot claim failed; the call is not routed to the buyer", metadata: [
                "auction_id": "\(context.auctionID)", "buyer": "\(buyer.id)", "error": "\(error)",
            ])
            releaseUnanswered(claim, cluster: cluster)
            return .failure(.unavailable("\(error)"))
        }
    }

    /// Frees a live call's slot once the record that ends it (or that gives it up) is committed.
    func endCallSlot(_ slot: BuyerLedger.CallSlot, how end: BuyerLedger.CallEnd, callID: String) async {
        ledger.endCall(slot, how: end)
        guard let cluster else { return }
        do {
            try await cluster.release(roundID: callID, buyerID: slot.reservation.buyerID)
        } catch {
            logger.warning("call slot not released; it lapses at its expiry", metadata: [
                "auction_id": "\(callID)", "buyer": "\(slot.reservation.buyerID)", "error": "\(error)",
            ])
        }
    }

    /// Whether a post to `buyer` can pass a limit and so must be claimed in the shared database: a
    /// count or budget cap, or a duplicate window. The others are counted by their rounds' records
    /// alone, with no lock on the hot path. (Every live call is claimed: its claim is its slot,
    /// which is how every node counts live calls.)
    static func needsClaim(_ buyer: Buyer, isCall: Bool) -> Bool {
        isCall || !buyer.caps.isUnlimited || buyer.duplicateWindowDays > 0
    }

    private func capClaim(buyer: Buyer, reservation: BuyerLedger.Reservation, roundID: String, isCall: Bool, expiresAtMs: Int64) -> CapClaim {
        let caps = buyer.caps
        return CapClaim(
            roundID: roundID, buyerID: buyer.id, hourKey: reservation.windows.hour, dayKey: reservation.windows.day,
            monthKey: reservation.windows.month, price: reservation.price, hourly: caps.hourly, daily: caps.daily,
            monthly: caps.monthly, dailyBudget: caps.dailyBudget,
            contactHash: buyer.duplicateWindowDays > 0 ? reservation.contactHash : nil, duplicateWindowDays: buyer.duplicateWindowDays,
            isCall: isCall, concurrent: isCall ? caps.concurrent : nil, countsConversions: isCall && caps.countConversions,
            expiresAtMs: expiresAtMs, nodeID: configuration.nodeID)
    }

    // MARK: Held pings on any node

    /// A post on a cluster: claims the held ping in the database, so exactly one post (on any
    /// node) runs it; a concurrent post waits for that one's recorded result.
    func runClusterPost(
        _ cluster: any ClusterState, pingID: String, lead: JSONObject?, contact: JSONObject, seller: Seller,
        arrival: ContinuousClock.Instant, ticket: IdempotencyTicket?
    ) async throws(PostError) -> LeadResult {
        // The running post ends within its round's budget; its commit may take a little longer.
        let longestTmaxMs = config.campaigns.values.map(\.tmaxMs).max() ?? 1_000
        let giveUpAt = ContinuousClock.now + .milliseconds(Int64(longestTmaxMs) + 2_000)
        var claim: LiveClaim
        while true {
            do { claim = try await cluster.claimHeld(id: pingID, nodeID: configuration.nodeID, nowMs: nowMs) } catch {
                throw .exchange(.storage("\(error)"))
            }
            guard case .taken = claim else { break }
            // Another post runs it: its result once recorded. If that post gave the ping back (it
            // did not fit the ping), claim it again.
            if let result = try await postResult(pingID: pingID, seller: seller, waitingMs: 200) {
                await storeAnswer(ticket, json: result.json)
                return result
            }
            guard ContinuousClock.now < giveUpAt else {
                throw .exchange(.storageTimeout("ping \(pingID) is being posted by another request; its outcome is not recorded yet"))
            }
        }
        switch claim {
        case .none, .taken:
            let result = try await recordedPostResult(pingID: pingID, seller: seller)
            await storeAnswer(ticket, json: result.json)
            return result
        case .won(let state):
            guard let held = heldRound(from: state), held.context.seller.id == seller.id else {
                try? await cluster.unclaimHeld(id: pingID)
                throw .request(RequestError(status: 404, code: "unknown_ping", message: "no ping \(pingID) for this seller", field: "ping_id"))
            }
            if let problem = Exchange.leadMismatch(lead, held: held) {
                // The post does not fit the ping: its bids stay held for a post that does.
                try? await cluster.unclaimHeld(id: pingID)
                throw .request(problem)
            }
            return try await postHeld(held, pingID: pingID, lead: lead, contact: contact, seller: seller, arrival: arrival, ticket: ticket)
        }
    }

    /// Another post of this ping runs (on this node or another): its result if recorded within
    /// `waitingMs`, else nil.
    private func postResult(pingID: String, seller: Seller, waitingMs: Int) async throws(PostError) -> LeadResult? {
        let giveUpAt = ContinuousClock.now + .milliseconds(waitingMs)
        while ContinuousClock.now < giveUpAt {
            let stored: StoredRound?
            do { stored = try await store.round(id: pingID) } catch { throw .exchange(.storage("\(error)")) }
            if let stored, stored.phase == RoundRecord.Phase.final.rawValue || stored.status == ReasonCode.postUnknown.rawValue {
                return try await recordedPostResult(pingID: pingID, seller: seller)
            }
            try? await Task.sleep(for: .milliseconds(10))
        }
        return nil
    }

    /// The held round again from its snapshot, on today's config.
    func heldRound(from state: LiveState) -> HeldBids.HeldRound? {
        let consent = state.consentJSON.flatMap { (try? JSONValue.parse(Array($0.utf8)))?.objectValue }
        guard let snapshot = try? JSONDecoder().decode(LiveSnapshots.Held.self, from: Data(state.snapshot.utf8)),
              let context = snapshot.basis.context(config: config, consent: consent)
        else { return nil }
        return HeldBids.HeldRound(round: snapshot.round, context: context, expiresAtMs: snapshot.expiresAtMs)
    }

    /// The live call again from its snapshot, on today's config.
    func callSession(from state: LiveState) -> CallSession? {
        guard let snapshot = try? JSONDecoder().decode(LiveSnapshots.Call.self, from: Data(state.snapshot.utf8)),
              let context = snapshot.basis.context(config: config, consent: nil)
        else { return nil }
        return CallSession(lifecycle: snapshot.lifecycle, context: context, slot: snapshot.slot, attributionJSON: snapshot.attributionJSON,
                           routingUs: snapshot.routingUs, releaseAtMs: snapshot.releaseAtMs)
    }

    // MARK: Live calls on any node

    /// Checks out a live call for one event: from memory on one node, from the database on several
    /// (waiting while another node's event holds it). Nil: there is no live call of that id.
    func checkOutCall(_ callID: String) async throws(PostError) -> CallSession? {
        guard let cluster else { return await calls.checkOut(callID) }
        let giveUpAt = ContinuousClock.now + .milliseconds(Int64(Exchange.eventStoreWaitMs))
        while true {
            let claim: LiveClaim
            do {
                claim = try await cluster.checkOutCall(id: callID, nodeID: configuration.nodeID, nowMs: nowMs,
                                                       leaseMs: Exchange.callLeaseMs)
            } catch {
                throw .exchange(.storage("\(error)"))
            }
            switch claim {
            case .won(let state):
                guard let session = callSession(from: state) else {
                    try? await cluster.checkInCall(id: callID)
                    logger.error("live call snapshot unreadable", metadata: ["auction_id": "\(callID)"])
                    throw .exchange(.storage("live call \(callID) could not be read back"))
                }
                return session
            case .none:
                return nil
            case .taken:
                guard ContinuousClock.now < giveUpAt else {
                    throw .exchange(.storageTimeout("another event of call \(callID) is still being handled"))
                }
                try? await Task.sleep(for: .milliseconds(5))
            }
        }
    }

    /// How long one event holds a call on a cluster: longer than everything an event may wait for
    /// (the checkout, a slot claim and the record's commit, each bounded by `eventStoreWaitMs`),
    /// with a margin, so the lease never runs out under an event still running.
    static let callLeaseMs = Int64(eventStoreWaitMs) * 5

    /// Returns a call after an event. `recorded`: the event's record was committed (live or final),
    /// which on a cluster already checked the call back in.
    func checkInCall(_ callID: String, session: CallSession?, recorded: Bool) async {
        guard let cluster else { return await calls.checkIn(callID, session: session) }
        guard !recorded else { return }
        do { try await cluster.checkInCall(id: callID) } catch {
            logger.warning("call not checked back in; its lease runs out", metadata: ["auction_id": "\(callID)", "error": "\(error)"])
        }
    }

    /// Cluster: the live calls past their release time, wherever they started, checked out for
    /// this node to end.
    func checkOutAbandonedCalls(_ cluster: any ClusterState, nowMs: Int64) async -> [(String, CallSession)] {
        let states: [LiveState]
        do { states = try await store.liveStates(nowMs: nowMs) } catch {
            logger.warning("live calls not read for the sweep", metadata: ["error": "\(error)"])
            return []
        }
        var abandoned: [(String, CallSession)] = []
        for state in states where state.kind == .call {
            guard let session = callSession(from: state), session.releaseAtMs <= nowMs else { continue }
            guard case .won? = try? await cluster.checkOutCall(id: state.roundID, nodeID: configuration.nodeID, nowMs: nowMs,
                                                                leaseMs: Exchange.callLeaseMs)
            else { continue }
            abandoned.append((state.roundID, session))
        }
        return abandoned
    }

    // MARK: Idempotency keys across nodes

    /// Cluster: marks a request with this Idempotency-Key scope as running, on every node; false
    /// when one runs now (the edge answers 409). Always true on a single node (the edge's own set).
    public func beginKeyedRequest(scope: String) async throws(ExchangeError) -> Bool {
        guard let cluster else { return true }
        let longestTmaxMs = config.campaigns.values.map(\.tmaxMs).max() ?? 1_000
        do {
            return try await cluster.beginRequest(scope: scope, nodeID: configuration.nodeID, nowMs: nowMs,
                                                  untilMs: nowMs + Int64(longestTmaxMs) + configuration.claimGraceMs)
        } catch {
            throw .storage("\(error)")
        }
    }

    /// The keyed request ended on this node.
    public func endKeyedRequest(scope: String) async {
        guard let cluster else { return }
        do { try await cluster.endRequest(scope: scope, nodeID: configuration.nodeID) } catch {
            logger.warning("running request mark not cleared; it lapses", metadata: ["error": "\(error)"])
        }
    }

    // MARK: Tracking numbers on any node

    /// Cluster: the first number of the visitor's pool that no unexpired reservation holds on any
    /// node, taken by one conditional upsert; else the pool's fallback (shared, not exclusive).
    func assignSharedNumber(_ cluster: any ClusterState, campaign: Campaign, tracking: TrackingNumbers, visit: TrackingDesk.Visit,
                            at now: Date) async -> TrackingDesk.Session {
        let source = tracking.pools[visit.source] != nil || tracking.fallbacks[visit.source] != nil ? visit.source : "default"
        let expiresAt = now.addingTimeInterval(Double(tracking.reservationS))
        let nowMs = Int64(now.timeIntervalSince1970 * 1000)
        let id = AuctionID.make(prefix: "dni_", nowMs: nowMs)
        if let visitJSON = try? JSONEncoder().encode(visit) {
            for number in tracking.pools[source] ?? [] {
                let stored = StoredDNISession(number: number, sessionID: id, campaignID: campaign.id,
                                              visitJSON: String(decoding: visitJSON, as: UTF8.self),
                                              expiresAtMs: Int64(expiresAt.timeIntervalSince1970 * 1000))
                do {
                    if try await cluster.reserveNumber(stored, nowMs: nowMs) {
                        return TrackingDesk.Session(id: id, campaignID: campaign.id, visit: visit, number: number, exclusive: true,
                                                    expiresAt: expiresAt)
                    }
                } catch {
                    // The database is away: the visitor gets the fallback, attributed by source only.
                    logger.warning("tracking number not reserved", metadata: ["error": "\(error)"])
                    break
                }
            }
        }
        let fallback = tracking.fallbacks[source] ?? tracking.fallbacks["default"] ?? ""
        return TrackingDesk.Session(id: id, campaignID: campaign.id, visit: visit, number: fallback, exclusive: false, expiresAt: expiresAt)
    }

    /// Cluster: who holds the dialed number now, on any node; else its campaign and source by config.
    func attributeShared(_ cluster: any ClusterState, dialed: String, at now: Date) async -> TrackingDesk.Attribution? {
        let nowMs = Int64(now.timeIntervalSince1970 * 1000)
        if let stored = try? await cluster.trackingSession(number: dialed, nowMs: nowMs),
           let visit = try? JSONDecoder().decode(TrackingDesk.Visit.self, from: Data(stored.visitJSON.utf8)) {
            return TrackingDesk.Attribution(
                match: "session", campaignID: stored.campaignID, source: visit.source, sessionID: stored.sessionID,
                medium: visit.medium, keyword: visit.keyword, gclid: visit.gclid, landingURL: visit.landingURL, number: dialed)
        }
        // No session holds it: attributed by the number's pool, as on a single node.
        return await tracking.attribute(dialed: dialed, config: config, at: now)
    }

    // MARK: Housekeeping

    /// One beat of a cluster node: says it is up, learns how many nodes are, refreshes its
    /// eligibility counters from every node's usage, and settles what dead nodes left. Returns the
    /// number of live nodes (1 without a cluster).
    @discardableResult
    public func clusterBeat(reclaim: Bool = true) async -> Int {
        guard let cluster else { return 1 }
        let nowMs = nowMs
        do {
            let nodes = try await cluster.heartbeat(nodeID: configuration.nodeID, nowMs: nowMs, liveWithinMs: 3_000)
            liveNodes.store(max(1, nodes), ordering: .relaxed)
            let usage = try await cluster.sharedUsage(nowMs: nowMs)
            ledger.replaceUsage(counters: usage.counters, liveCalls: usage.liveCalls)
            if reclaim {
                let settled = try await cluster.reclaim(nowMs: nowMs, staleIntentMs: configuration.claimGraceMs)
                if settled > 0 { logger.notice("claims of stopped nodes settled", metadata: ["settled": "\(settled)"]) }
            }
        } catch {
            logger.warning("cluster heartbeat failed", metadata: ["node": "\(configuration.nodeID)", "error": "\(error)"])
        }
        return liveNodes.load(ordering: .relaxed)
    }

    /// Re-reads the portal pauses (another node changed one).
    public func refreshPortalPauses() async {
        do { portalPauses.restore(try await store.portalPauses()) } catch {
            logger.warning("portal pauses not re-read", metadata: ["error": "\(error)"])
        }
    }

    /// A per-exchange rate limit as this node's share: divided among the live nodes.
    func nodeShare(of limit: RateLimit) -> RateLimit {
        let nodes = liveNodes.load(ordering: .relaxed)
        guard nodes > 1 else { return limit }
        return RateLimit(perSecond: limit.perSecond / Double(nodes), burst: max(1, limit.burst / nodes))
    }

    /// The cluster this exchange shares state with, if any (for the server's signal listener).
    public var clusterState: (any ClusterState)? { cluster }
}
