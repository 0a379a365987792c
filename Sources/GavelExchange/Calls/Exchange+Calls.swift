import Foundation
import GavelCore
import GavelStore
import Logging

/// The answer to `POST /v1/calls`, and to a `failed` event that routes the caller onwards.
public struct CallRouting: Sendable, Hashable {
    public var callID: String
    public var routed: Bool
    public var destination: String?
    /// What the seller earns if the call converts.
    public var payout: Money
    public var minDurationS: Int?
    public var expiresAtMs: Int64?
}

/// The answer to `POST /v1/calls/{id}/events`.
public struct CallEventOutcome: Sendable, Hashable {
    /// `routed` (a failed transfer found the next destination), `unrouted`, `connected`,
    /// `converted` or `not_converted`.
    public var status: String
    public var routing: CallRouting?
    /// What the seller earns from this call: non-zero only once it converted.
    public var payout: Money
}

extension Exchange {
    /// Calls without a bid's own minimum duration are billable from this many seconds.
    public static let defaultMinDurationS = 60
    /// Call events have no round budget; their commits are still bounded.
    static let eventStoreWaitMs = 2_000

    /// `POST /v1/calls`: ping the call buyers with coarse caller data (or reuse this caller's
    /// still-valid bids), route to the best bid whose buyer has a free slot, record, answer.
    ///
    /// `callID` names the call when its telephony provider already has an id for it (the voice
    /// webhook's `CallSid`), so the provider's later callbacks find it, also after a restart.
    /// A `submission` without a caller number (withheld) is auctioned without a caller hash: withheld
    /// callers are never taken for one duplicate caller.
    public func runCall(_ submission: CallSubmission, seller: Seller, arrival: ContinuousClock.Instant,
                        ticket: IdempotencyTicket? = nil, callID: String? = nil) async throws(ExchangeError) -> CallRouting {
        guard await calls.hasRoom else {
            metrics.shed.increment()
            throw .overloaded("\(calls.capacity) live calls: no room for another")
        }
        let now = now
        let callerHash = submission.callerNumber.isEmpty ? nil : hasher.hash(phoneNumber: submission.callerNumber)
        var attribution: TrackingDesk.Attribution?
        if let dialed = submission.dialed {
            // A tracking number of another campaign says nothing about this call's marketing.
            attribution = if let cluster { await attributeShared(cluster, dialed: dialed, at: now) }
                else { await tracking.attribute(dialed: dialed, config: config, at: now) }
            if attribution?.campaignID != submission.campaign.id { attribution = nil }
        }
        let context = RoundContext(
            auctionID: callID ?? AuctionID.make(prefix: "call_", nowMs: nowMs), config: config, campaign: submission.campaign,
            seller: seller, lead: submission.eligibilityFields,
            contact: submission.callerNumber.isEmpty ? nil : JSONObject(["number": .string(submission.callerNumber)]), consent: nil,
            contactHash: callerHash, arrival: arrival, tmaxMs: submission.tmaxMs, ticket: ticket, createdAtMs: nowMs
        )
        // A repeat call from the same caller may reuse its still-valid bids; a withheld caller never does.
        let cacheKey = callerHash.map { "\(submission.campaign.id)|\($0)" }
        let round: AuctionRound
        if let cacheKey, let cached = await calls.reusableBids(key: cacheKey, nowMs: nowMs) {
            round = cached.reusingBids(newID: context.auctionID, detail: "bid reused from \(cached.id)")
        } else {
            var caller = JSONObject()
            if let areaCode = PhoneNumber.areaCode(submission.callerNumber) { caller["area_code"] = .string(areaCode) }
            if let state = submission.state { caller["state"] = .string(state) }
            if let zip = submission.zip { caller["zip"] = .string(zip) }
            if let callerHash { caller["hash"] = .string(callerHash) }
            round = await bid(context, caller: caller)
            if let cacheKey, !round.ranking.isEmpty { await calls.rememberBids(round, key: cacheKey, nowMs: nowMs) }
        }

        var session = CallSession(
            lifecycle: CallLifecycle(round: round, defaultMinDurationS: Exchange.defaultMinDurationS), context: context, slot: nil,
            attributionJSON: attribution?.json.serialized, routingUs: 0,
            releaseAtMs: nowMs + Int64(context.campaign.maxCallS) * 1000
        )
        let increments = await route(&session)
        session.routingUs = context.elapsedUs
        let answer = routing(session)
        var record = callRecord(session, increments: increments)
        record.answer = ticket?.answer(answer.json, roundID: context.auctionID, atMs: nowMs)
        do throws(ExchangeError) {
            try await commit(record, waitMs: context.storeWaitMs)
        } catch {
            if error.mayStillCommit, session.lifecycle.isLive {
                // Late, not refused: the call may be routed after all (a retry with its key learns
                // so). It keeps its slot, and stays live for its events or the safety sweep.
                if cluster == nil { await calls.add(session, id: context.auctionID) }
            } else if let slot = session.slot {
                await endCallSlot(slot, how: .failed, callID: context.auctionID)
            }
            throw error
        }
        // On a cluster the database holds the live call (its record's live state), for events on any node.
        if session.lifecycle.isLive, cluster == nil { await calls.add(session, id: context.auctionID) }
        return answer
    }

    /// `POST /v1/calls/{id}/events`. One event per call at a time; the event is applied to a copy
    /// of the call, committed, and only then does the call change in memory and its old slot free up,
    /// so a retry after a failed commit finds the call as it was.
    ///
    /// `seller` nil: the caller is the call's telephony provider (signed webhooks), not a seller.
    public func handleCallEvent(callID: String, event: CallEvent, seller: Seller?, ticket: IdempotencyTicket? = nil) async throws(PostError) -> CallEventOutcome {
        // The provider bridges these calls and reports their outcome: a seller's event would bill
        // (or reroute) a call the provider never reported.
        if seller != nil, callID.hasPrefix(Exchange.providerCallPrefix) {
            throw .request(RequestError(status: 404, code: "unknown_call",
                                        message: "call \(callID) is reported by its telephony provider's webhooks, not by events", field: "call_id"))
        }
        guard let session = try await checkOutCall(callID) else {
            throw .request(try await endedCallError(callID: callID, seller: seller))
        }
        if let seller, session.context.seller.id != seller.id {
            await checkInCall(callID, session: session, recorded: false)
            throw .request(RequestError(status: 404, code: "unknown_call", message: "no live call \(callID) for this seller", field: "call_id"))
        }
        var next = session
        var increments: [CapIncrement] = []
        var freed: (BuyerLedger.CallSlot, BuyerLedger.CallEnd)?
        let nowMs = nowMs
        let outcome: CallEventOutcome
        // The event does not fit the call now: the call goes back as it was.
        func rejected(_ rejection: CallLifecycle.Rejection) async -> PostError {
            await checkInCall(callID, session: session, recorded: false)
            return .request(RequestError(status: 409, code: rejection.code, message: rejection.message, field: "type"))
        }
        // The buyer's slot is freed once the event is committed; its counters move with the record.
        func freeSlot(_ how: BuyerLedger.CallEnd) {
            guard let slot = next.slot else { return }
            increments += BuyerLedger.increments(ending: slot, how: how)
            freed = (slot, how)
            next.slot = nil
        }
        switch event.kind {
        case .connected:
            if case .failure(let rejection) = next.lifecycle.connect(atMs: nowMs) { throw await rejected(rejection) }
            outcome = CallEventOutcome(status: "connected", routing: nil, payout: .zero)
        case .failed:
            if case .failure(let rejection) = next.lifecycle.fail(atMs: nowMs, detail: event.detail) { throw await rejected(rejection) }
            freeSlot(.failed)
            increments += await route(&next)
            let answer = routing(next)
            outcome = CallEventOutcome(status: answer.routed ? "routed" : "unrouted", routing: answer, payout: .zero)
        case .completed:
            let duration = event.durationS ?? 0
            guard case .success(let (bid, converted)) = next.lifecycle.complete(atMs: nowMs, durationS: duration, recordingURL: event.recordingURL) else {
                await checkInCall(callID, session: session, recorded: false)
                throw .request(RequestError(status: 409, code: "call_ended", message: "call \(callID) is not live", field: "call_id"))
            }
            freeSlot(.completed(converted: converted))
            let payout = converted ? next.context.campaign.payout.payout(forPrice: bid.price) : .zero
            outcome = CallEventOutcome(status: converted ? "converted" : "not_converted", routing: nil, payout: payout)
        case .hungUp:
            if case .failure(let rejection) = next.lifecycle.hangUp(atMs: nowMs, detail: event.detail) { throw await rejected(rejection) }
            freeSlot(.failed)
            outcome = CallEventOutcome(status: "hung_up", routing: nil, payout: .zero)
        }
        var record = callRecord(next, increments: increments)
        record.answer = ticket?.answer(outcome.json(callID: callID), roundID: callID, atMs: nowMs)
        do throws(ExchangeError) {
            try await commit(record, waitMs: Exchange.eventStoreWaitMs)
        } catch {
            // On a cluster a late (not refused) record may still land and check the call in: keep
            // what it took and let the lease run out rather than free a call another node may take.
            if cluster != nil, error.mayStillCommit { throw .exchange(error) }
            // Undo what only the uncommitted event took: a slot reserved while rerouting.
            if let reserved = next.slot, reserved != session.slot { await endCallSlot(reserved, how: .failed, callID: callID) }
            await checkInCall(callID, session: session, recorded: false)
            throw .exchange(error)
        }
        if let (slot, how) = freed { await endCallSlot(slot, how: how, callID: callID) }
        await checkInCall(callID, session: next.lifecycle.isLive ? next : nil, recorded: true)
        // Counted once committed, so a retried event is not counted twice.
        if event.kind == .completed, let bid = next.lifecycle.current {
            recordCallOutcome(converted: next.lifecycle.ending == .converted, buyerID: bid.buyerID, context: next.context)
        }
        if next.lifecycle.ending == .converted, let bid = next.lifecycle.current {
            metrics.revenue.increment(by: bid.price.units)
            metrics.payout.increment(by: outcome.payout.units)
        }
        return outcome
    }

    /// Ends the calls that got no `completed` within their campaign's `max_call_s` and frees their
    /// slots. Returns how many ended; one whose commit fails stays live for the next sweep.
    @discardableResult
    public func releaseAbandonedCalls(at date: Date? = nil, shared: Bool = true) async -> Int {
        let now = date ?? self.now
        await tracking.sweep(at: now)
        let nowMs = Int64(now.timeIntervalSince1970 * 1000)
        var released = 0
        // Also drops expired reusable bids; on a cluster the live calls are in the database.
        var abandoned = await calls.checkOutAbandoned(nowMs: nowMs)
        if let cluster, shared { abandoned += await checkOutAbandonedCalls(cluster, nowMs: nowMs) }
        for (id, session) in abandoned {
            var next = session
            guard next.lifecycle.abandon(atMs: nowMs, maxCallS: next.context.campaign.maxCallS) != nil else {
                await checkInCall(id, session: nil, recorded: false)
                continue
            }
            let increments = next.slot.map { BuyerLedger.increments(ending: $0, how: .abandoned) } ?? []
            do {
                try await commit(callRecord(next, increments: increments), waitMs: Exchange.eventStoreWaitMs)
            } catch {
                logger.error("abandoned call not recorded", metadata: ["auction_id": "\(id)", "error": "\(error)"])
                await checkInCall(id, session: session, recorded: false)
                continue
            }
            if let slot = next.slot { await endCallSlot(slot, how: .abandoned, callID: id) }
            await checkInCall(id, session: nil, recorded: true)
            released += 1
        }
        return released
    }

    /// Live calls now, for metrics and tests.
    /// On a cluster: every node's, as this node last learned them (claims in the shared database).
    public func liveCallCount() async -> Int {
        cluster == nil ? await calls.liveCount : ledger.totalLiveCalls
    }

    // MARK: Steps

    /// Routes the call to the first bid that is still valid and whose buyer has a free slot, or
    /// ends it unrouted. Returns the counter increments of the slot taken.
    private func route(_ session: inout CallSession) async -> [CapIncrement] {
        while case .reserve(let bid) = session.lifecycle.nextRoute(atMs: nowMs) {
            guard let buyer = session.context.config.buyer(id: bid.buyerID) else {
                session.lifecycle.denied(.paused, detail: "buyer removed from config")
                continue
            }
            // Reused or held bids of a buyer that paused since are not routed to it.
            if buyer.paused || portalPauses.contains(buyer.id) {
                session.lifecycle.denied(.paused, detail: "buyer paused since it bid")
                continue
            }
            switch await reserveCallSlot(buyer: buyer, price: bid.price, context: session.context, releaseAtMs: session.releaseAtMs) {
            case .success(let (slot, increments)):
                session.lifecycle.reserved(atMs: nowMs)
                session.slot = slot
                return increments
            case .failure(.capped):
                session.lifecycle.denied(.capped, detail: "no free call slot or cap reached")
            case .failure(.duplicate):
                session.lifecycle.denied(.duplicate, detail: "caller already routed to this buyer")
            case .failure(.unavailable):
                session.lifecycle.denied(.capped, detail: "the exchange could not check the buyer's call slots")
            }
        }
        return []
    }

    private func routing(_ session: CallSession) -> CallRouting {
        let context = session.context
        guard session.lifecycle.isLive, let bid = session.lifecycle.current else {
            return CallRouting(callID: context.auctionID, routed: false, destination: nil, payout: .zero, minDurationS: nil, expiresAtMs: nil)
        }
        return CallRouting(
            callID: context.auctionID, routed: true, destination: bid.destination,
            payout: context.campaign.payout.payout(forPrice: bid.price), minDurationS: bid.minDurationS ?? Exchange.defaultMinDurationS,
            expiresAtMs: session.lifecycle.round.closedAtMs.map { bid.expiresAtMs(closedAtMs: $0, defaultHoldS: context.campaign.bidHoldS) }
        )
    }

    private func commit(_ record: RoundRecord, waitMs: Int) async throws(ExchangeError) {
        try await persist(record, waitMs: waitMs)
        if record.phase != .live {
            metrics.recordRound(kind: .call, status: record.status == "unrouted" ? "unrouted" : "routed", durationUs: record.durationUs, entries: record.entries)
        }
    }

    /// The call's record as it stands: live (with a snapshot to restore it after a restart) or final.
    private func callRecord(_ session: CallSession, increments: [CapIncrement]) -> RoundRecord {
        let lifecycle = session.lifecycle
        let context = session.context
        let current = lifecycle.current
        let billable = lifecycle.ending == .converted
        let payout = current.map { context.campaign.payout.payout(forPrice: $0.price) }
        var record = RoundRecord(
            id: context.auctionID, kind: .call, sellerID: context.seller.id, campaignID: context.campaign.id,
            phase: lifecycle.isLive ? .live : .final, status: lifecycle.status, createdAtMs: context.createdAtMs, tmaxMs: context.tmaxMs,
            durationUs: session.routingUs, winnerID: current?.buyerID, price: current?.price, payout: billable ? payout : .zero,
            leadJSON: JSONValue.object(context.lead).serialized, contactJSON: context.contact.map { JSONValue.object($0).serialized },
            contactHash: context.contactHash, entries: lifecycle.round.entries, posts: lifecycle.round.posts, capIncrements: increments,
            billable: billable, openReasons: lifecycle.isLive ? current.map { [$0.buyerID: "routed"] } ?? [:] : [:],
            events: lifecycle.events, attributionJSON: session.attributionJSON
        )
        if lifecycle.isLive {
            record.liveState = LiveSnapshots.call(session)
        }
        return record
    }

    /// An event for a call that is not live: say how it ended, or that it does not exist.
    private func endedCallError(callID: String, seller: Seller?) async throws(PostError) -> RequestError {
        let stored: StoredRound?
        do { stored = try await store.round(id: callID) } catch { throw .exchange(.storage("\(error)")) }
        guard let stored, seller == nil || stored.sellerID == seller?.id, stored.kind == AuctionKind.call.rawValue else {
            return RequestError(status: 404, code: "unknown_call", message: "no call \(callID) for this seller", field: "call_id")
        }
        return RequestError(status: 409, code: "call_ended", message: "call \(callID) has ended: \(stored.status)", field: "call_id")
    }
}
