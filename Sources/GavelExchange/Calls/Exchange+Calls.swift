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
    public func runCall(_ submission: CallSubmission, seller: Seller, arrival: ContinuousClock.Instant,
                        ticket: IdempotencyTicket? = nil) async throws(ExchangeError) -> CallRouting {
        let now = Date()
        let callerHash = hasher.hash(phoneNumber: submission.callerNumber)
        var attribution: TrackingDesk.Attribution?
        if let dialed = submission.dialed {
            // A tracking number of another campaign says nothing about this call's marketing.
            attribution = await tracking.attribute(dialed: dialed, config: config, at: now)
            if attribution?.campaignID != submission.campaign.id { attribution = nil }
        }
        let context = RoundContext(
            auctionID: AuctionID.make(prefix: "call_", nowMs: RoundContext.nowMs), config: config, campaign: submission.campaign,
            seller: seller, lead: submission.eligibilityFields, contact: JSONObject(["number": .string(submission.callerNumber)]), consent: nil,
            contactHash: callerHash, arrival: arrival, tmaxMs: submission.tmaxMs, ticket: ticket
        )
        let cacheKey = "\(submission.campaign.id)|\(callerHash)"
        var round: AuctionRound
        if let cached = await calls.reusableBids(key: cacheKey, nowMs: RoundContext.nowMs) {
            round = cached.reusingBids(newID: context.auctionID, detail: "bid reused from \(cached.id)")
        } else {
            var caller = JSONObject()
            if let areaCode = PhoneNumber.areaCode(submission.callerNumber) { caller["area_code"] = .string(areaCode) }
            if let state = submission.state { caller["state"] = .string(state) }
            if let zip = submission.zip { caller["zip"] = .string(zip) }
            caller["hash"] = .string(callerHash)
            round = await bid(context, caller: caller)
            if !round.ranking.isEmpty { await calls.rememberBids(round, key: cacheKey) }
        }

        let routingUs = context.elapsedUs
        var events: [CallEventRecord] = []
        guard let (bid, slot, increments) = await routeNext(&round, context: context) else {
            events.append(CallEventRecord(type: "unrouted", buyerID: nil, atMs: RoundContext.nowMs, detail: "no valid bid with a free buyer"))
            var record = callRecord(round, context: context, phase: .final, status: "unrouted", current: nil, events: events,
                                    attribution: attribution, routingUs: routingUs, increments: [])
            let unrouted = CallRouting(callID: context.auctionID, routed: false, destination: nil, payout: .zero, minDurationS: nil, expiresAtMs: nil)
            record.answer = ticket?.answer(unrouted.json, roundID: context.auctionID)
            try await commit(record, waitMs: context.storeWaitMs)
            return unrouted
        }
        events.append(CallEventRecord(type: "routed", buyerID: bid.buyerID, atMs: RoundContext.nowMs, detail: bid.destination))
        var record = callRecord(round, context: context, phase: .live, status: "routed", current: bid, events: events,
                                attribution: attribution, routingUs: routingUs, increments: increments)
        let routed = routing(for: bid, context: context, round: round)
        record.answer = ticket?.answer(routed.json, roundID: context.auctionID)
        do throws(ExchangeError) {
            try await commit(record, waitMs: context.storeWaitMs)
        } catch {
            _ = await ledger.endCall(slot, how: .failed)
            throw error
        }
        let session = CallSession(
            round: round, context: context, status: .routed, current: bid, slot: slot, events: events, attribution: attribution,
            routingUs: routingUs, releaseAt: now.addingTimeInterval(Double(context.campaign.maxCallS))
        )
        await calls.add(session, id: context.auctionID)
        return routed
    }

    /// `POST /v1/calls/{id}/events`.
    public func handleCallEvent(callID: String, event: CallEvent, seller: Seller, ticket: IdempotencyTicket? = nil) async throws(PostError) -> CallEventOutcome {
        let outcome = try await applyCallEvent(callID: callID, event: event, seller: seller)
        await storeAnswer(ticket, json: outcome.json(callID: callID))
        return outcome
    }

    private func applyCallEvent(callID: String, event: CallEvent, seller: Seller) async throws(PostError) -> CallEventOutcome {
        guard var session = await calls.checkOut(callID) else {
            throw .request(try await endedCallError(callID: callID, seller: seller))
        }
        guard session.context.seller.id == seller.id else {
            await calls.checkIn(callID, session: session)
            throw .request(RequestError(status: 404, code: "unknown_call", message: "no live call \(callID) for this seller", field: "call_id"))
        }
        let buyerID = session.current.buyerID
        let nowMs = RoundContext.nowMs
        do {
            switch event.kind {
            case .connected:
                if session.status == .routed { session.round.recordPost(.accepted(reference: nil), latencyUs: 0) }
                session.status = .connected
                session.events.append(CallEventRecord(type: "connected", buyerID: buyerID, atMs: nowMs))
                try await commit(callRecord(session, phase: .live, status: "connected", increments: []), waitMs: Exchange.eventStoreWaitMs)
                await calls.checkIn(callID, session: session)
                return CallEventOutcome(status: "connected", routing: nil, payout: .zero)

            case .failed:
                guard session.status == .routed else {
                    await calls.checkIn(callID, session: session)
                    throw PostError.request(RequestError(status: 409, code: "call_connected", message: "a connected call can only complete", field: "type"))
                }
                var increments = await ledger.endCall(session.slot, how: .failed)
                session.round.recordPost(.failed(detail: "transfer failed" + (event.detail.map { ": \($0)" } ?? "")), latencyUs: 0)
                session.events.append(CallEventRecord(type: "failed", buyerID: buyerID, atMs: nowMs, detail: event.detail))
                guard let (bid, slot, more) = await routeNext(&session.round, context: session.context) else {
                    session.events.append(CallEventRecord(type: "unrouted", buyerID: nil, atMs: nowMs, detail: "no valid bid left"))
                    let record = callRecord(session.round, context: session.context, phase: .final, status: "unrouted", current: nil,
                                            events: session.events, attribution: session.attribution, routingUs: session.routingUs,
                                            increments: increments)
                    try await commit(record, waitMs: Exchange.eventStoreWaitMs)
                    await calls.checkIn(callID, session: nil)
                    return CallEventOutcome(status: "unrouted", routing: CallRouting(callID: callID, routed: false, payout: .zero), payout: .zero)
                }
                increments += more
                session.current = bid
                session.slot = slot
                session.events.append(CallEventRecord(type: "routed", buyerID: bid.buyerID, atMs: nowMs, detail: bid.destination))
                try await commit(callRecord(session, phase: .live, status: "routed", increments: increments), waitMs: Exchange.eventStoreWaitMs)
                await calls.checkIn(callID, session: session)
                return CallEventOutcome(status: "routed", routing: routing(for: bid, context: session.context, round: session.round), payout: .zero)

            case .completed:
                if session.status == .routed { session.round.recordPost(.accepted(reference: nil), latencyUs: 0) }
                let duration = event.durationS ?? 0
                let minimum = session.current.minDurationS ?? Exchange.defaultMinDurationS
                let converted = duration >= minimum
                let increments = await ledger.endCall(session.slot, how: .completed(converted: converted))
                if !converted {
                    session.round.overrideReason(.shortCall, for: buyerID, detail: "\(duration) s, below the \(minimum) s minimum")
                }
                session.events.append(CallEventRecord(type: "completed", buyerID: buyerID, atMs: nowMs, durationS: duration,
                                                      recordingURL: event.recordingURL, detail: converted ? "converted" : "not converted"))
                let status = converted ? "converted" : "not_converted"
                try await commit(callRecord(session, phase: .final, status: status, increments: increments, billable: converted), waitMs: Exchange.eventStoreWaitMs)
                await calls.checkIn(callID, session: nil)
                let payout = converted ? session.context.campaign.payout.payout(forPrice: session.current.price) : .zero
                if converted {
                    metrics.revenue.increment(by: session.current.price.units)
                    metrics.payout.increment(by: payout.units)
                }
                return CallEventOutcome(status: status, routing: nil, payout: payout)
            }
        } catch let error as PostError {
            throw error
        } catch let error as ExchangeError {
            await calls.checkIn(callID, session: session)
            throw .exchange(error)
        } catch {
            await calls.checkIn(callID, session: session)
            throw .exchange(.storage("\(error)"))
        }
    }

    /// Frees the slots of calls that got no `completed` within their campaign's `max_call_s`.
    /// Returns how many were released.
    @discardableResult
    public func releaseAbandonedCalls(at now: Date = Date()) async -> Int {
        await tracking.sweep(at: now)
        let abandoned = await calls.takeAbandoned(at: now)
        for (_, var session) in abandoned {
            let increments = await ledger.endCall(session.slot, how: .abandoned)
            session.round.overrideReason(.postTimeout, for: session.current.buyerID, detail: "no call event within max_call_s")
            session.events.append(CallEventRecord(type: "released", buyerID: session.current.buyerID, atMs: RoundContext.nowMs,
                                                  detail: "no completed event within \(session.context.campaign.maxCallS) s"))
            do {
                try await commit(callRecord(session, phase: .final, status: "abandoned", increments: increments), waitMs: Exchange.eventStoreWaitMs)
            } catch {
                logger.error("abandoned call not recorded", metadata: ["auction_id": "\(session.context.auctionID)", "error": "\(error)"])
            }
        }
        return abandoned.count
    }

    /// Live calls now, for metrics and tests.
    public func liveCallCount() async -> Int { await calls.liveCount }

    // MARK: Steps

    /// Walks down the ranking to the first bid that is still valid and whose buyer has a free slot.
    private func routeNext(_ round: inout AuctionRound, context: RoundContext) async -> (RankedBid, BuyerLedger.CallSlot, [CapIncrement])? {
        while true {
            // A caller waits on the line, but routing is a decision, not a post: only bid expiry limits it.
            switch round.nextPost(atMs: RoundContext.nowMs, remainingMs: Int.max / 2, minimumPostMs: 0) {
            case .post(let bid):
                guard let buyer = context.config.buyer(id: bid.buyerID) else {
                    round.skipPost(reason: .paused, detail: "buyer removed from config")
                    continue
                }
                guard bid.destination != nil else {
                    round.skipPost(reason: .badResponse, detail: "no destination to route to")
                    continue
                }
                switch await ledger.reserveCall(buyer: buyer, price: bid.price, callerHash: context.contactHash ?? "", at: Date()) {
                case .success(let (slot, increments)): return (bid, slot, increments)
                case .failure(.capped): round.skipPost(reason: .capped, detail: "no free call slot or cap reached")
                case .failure(.duplicate): round.skipPost(reason: .duplicate, detail: "caller already routed to this buyer")
                }
            default:
                return nil
            }
        }
    }

    private func routing(for bid: RankedBid, context: RoundContext, round: AuctionRound) -> CallRouting {
        CallRouting(
            callID: context.auctionID, routed: true, destination: bid.destination,
            payout: context.campaign.payout.payout(forPrice: bid.price), minDurationS: bid.minDurationS ?? Exchange.defaultMinDurationS,
            expiresAtMs: round.closedAtMs.map { bid.expiresAtMs(closedAtMs: $0, defaultHoldS: context.campaign.bidHoldS) }
        )
    }

    private func commit(_ record: RoundRecord, waitMs: Int) async throws(ExchangeError) {
        try await persist(record, waitMs: waitMs)
        if record.phase != .live {
            metrics.recordRound(kind: .call, status: record.status == "unrouted" ? "unrouted" : "routed", durationUs: record.durationUs, entries: record.entries)
        }
    }

    private func callRecord(_ session: CallSession, phase: RoundRecord.Phase, status: String, increments: [CapIncrement], billable: Bool = false) -> RoundRecord {
        callRecord(session.round, context: session.context, phase: phase, status: status, current: session.current, events: session.events,
                   attribution: session.attribution, routingUs: session.routingUs, increments: increments, billable: billable)
    }

    private func callRecord(_ round: AuctionRound, context: RoundContext, phase: RoundRecord.Phase, status: String, current: RankedBid?,
                            events: [CallEventRecord], attribution: TrackingDesk.Attribution?, routingUs: Int,
                            increments: [CapIncrement], billable: Bool = false) -> RoundRecord {
        let payout = current.map { context.campaign.payout.payout(forPrice: $0.price) }
        return RoundRecord(
            id: context.auctionID, kind: .call, sellerID: context.seller.id, campaignID: context.campaign.id, phase: phase,
            status: status, createdAtMs: context.createdAtMs, tmaxMs: context.tmaxMs, durationUs: routingUs,
            winnerID: current?.buyerID, price: current?.price, payout: billable ? payout : .zero,
            leadJSON: JSONValue.object(context.lead).serialized, contactJSON: context.contact.map { JSONValue.object($0).serialized },
            contactHash: context.contactHash, entries: round.entries, posts: round.posts, capIncrements: increments,
            billable: billable, openReasons: current.map { [$0.buyerID: "routed"] } ?? [:], events: events,
            attributionJSON: attribution?.json.serialized
        )
    }

    /// An event for a call that is not live: say how it ended, or that it does not exist.
    private func endedCallError(callID: String, seller: Seller) async throws(PostError) -> RequestError {
        let stored: StoredRound?
        do { stored = try await store.round(id: callID) } catch { throw .exchange(.storage("\(error)")) }
        guard let stored, stored.sellerID == seller.id, stored.kind == AuctionKind.call.rawValue else {
            return RequestError(status: 404, code: "unknown_call", message: "no call \(callID) for this seller", field: "call_id")
        }
        return RequestError(status: 409, code: "call_ended", message: "call \(callID) has ended: \(stored.status)", field: "call_id")
    }
}
