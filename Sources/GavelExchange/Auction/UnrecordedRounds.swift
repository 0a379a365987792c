import Foundation
import GavelCore
import GavelStore
import Synchronization

/// Rounds whose commit failed or was late although they sold or owe an idempotent answer.
///
/// What the exchange knows (a buyer accepted the lead) must not be forgotten because the database
/// hiccuped: a repeat of the request, or the housekeeping loop, commits the round again
/// (`RoundRecord.isRetry`, a no-op when the first commit landed after all). Bounded: past the
/// bound the oldest is dropped from memory, and its post intent makes it `post_unknown` at start-up.
final class UnrecordedRounds: Sendable {
    private struct State {
        var byID: [String: RoundRecord] = [:]
        var idByScope: [String: String] = [:]
        var order: [String] = []
    }

    private let state = Mutex(State())
    let capacity: Int

    init(capacity: Int = 10_000) { self.capacity = capacity }

    func keep(_ record: RoundRecord) {
        var retry = record
        retry.isRetry = true
        state.withLock { state in
            if state.byID.updateValue(retry, forKey: record.id) == nil { state.order.append(record.id) }
            if let scope = record.answer?.scope { state.idByScope[scope] = record.id }
            while state.order.count > capacity {
                let dropped = state.order.removeFirst()
                if let scope = state.byID.removeValue(forKey: dropped)?.answer?.scope { state.idByScope[scope] = nil }
            }
        }
    }

    func record(id: String) -> RoundRecord? { state.withLock { $0.byID[id] } }

    func record(scope: String) -> RoundRecord? { state.withLock { state in state.idByScope[scope].flatMap { state.byID[$0] } } }

    func all() -> [RoundRecord] { state.withLock { state in state.order.compactMap { state.byID[$0] } } }

    func remove(id: String) {
        state.withLock { state in
            guard let record = state.byID.removeValue(forKey: id) else { return }
            if let scope = record.answer?.scope { state.idByScope[scope] = nil }
            state.order.removeAll { $0 == id }
        }
    }

    var count: Int { state.withLock { $0.byID.count } }
}

extension Exchange {
    /// Keeps a round whose commit failed, when forgetting it could sell a lead twice or lose an answer.
    /// Returns whether it was kept. Calls are never kept: a call whose event did not commit stays as
    /// it was in memory (and holds its slot), and a retry of the event applies it again.
    @discardableResult
    func keepUnrecorded(_ record: RoundRecord) -> Bool {
        guard record.kind != .call, record.billable || record.answer != nil || !record.posts.isEmpty else { return false }
        unrecorded.keep(record)
        return true
    }

    /// Commits a kept round again; nil when none is kept under `roundID`.
    func retryUnrecorded(roundID: String) async throws(ExchangeError) -> RoundRecord? {
        guard let record = unrecorded.record(id: roundID) else { return nil }
        return try await recommit(record)
    }

    private func recommit(_ record: RoundRecord) async throws(ExchangeError) -> RoundRecord {
        do {
            try await store.record(record, waitingAtMost: .seconds(2))
        } catch {
            throw .storage("\(error)")
        }
        unrecorded.remove(id: record.id)
        logger.notice("kept round committed on retry", metadata: ["auction_id": "\(record.id)"])
        return record
    }

    /// The housekeeping loop's retry of every kept round; returns how many are still uncommitted.
    @discardableResult
    public func retryUnrecordedRounds() async -> Int {
        for record in unrecorded.all() {
            do { _ = try await recommit(record) } catch { break }
        }
        return unrecorded.count
    }

    /// The final answer already given for an idempotency key: a kept round's (committed first),
    /// else the stored one (24 h). Nil when the key is new.
    public func previousAnswer(for ticket: IdempotencyTicket) async throws(ExchangeError) -> StoredAnswer? {
        if let record = unrecorded.record(scope: ticket.scope) {
            return try await recommit(record).answer
        }
        do {
            return try await store.answer(scope: ticket.scope, notBeforeMs: nowMs - Exchange.idempotencyWindowMs)
        } catch {
            throw .storage("\(error)")
        }
    }

    /// Stores a final 4xx answer for an idempotency key (it has no round to go with).
    public func storeAnswer(_ ticket: IdempotencyTicket, status: Int, body: String) async {
        let answer = StoredAnswer(scope: ticket.scope, bodyHash: ticket.bodyHash, status: status, response: body, roundID: nil,
                                  createdAtMs: nowMs)
        do {
            try await store.record(answer, waitingAtMost: .seconds(1))
        } catch {
            // A lost 4xx only means a repeat is validated again, with the same result.
            logger.warning("idempotent answer not stored", metadata: ["error": "\(error)"])
        }
    }

    /// Stores a 200 answer that repeats one already given (a second post of a ping): it has no new round.
    func storeAnswer(_ ticket: IdempotencyTicket?, json: JSONValue) async {
        guard let ticket else { return }
        await storeAnswer(ticket, status: 200, body: JSONText.body(json))
    }

    /// Idempotency keys are kept this long (CONTRACT v2: 24 h).
    public static let idempotencyWindowMs: Int64 = 24 * 3_600_000

    /// Drops what expired from the store: idempotency keys past 24 h, held bids and tracking-number
    /// reservations past their expiry.
    public func sweepStore() async {
        ledger.sweep(at: now, longestDuplicateWindowDays: config.buyers.map(\.duplicateWindowDays).max() ?? 0)
        await sweepIdempotencyKeys()
        do {
            try await store.sweepLiveState(nowMs: nowMs)
        } catch {
            logger.warning("live state sweep failed", metadata: ["error": "\(error)"])
        }
    }

    /// Deletes idempotency answers older than the window.
    @discardableResult
    public func sweepIdempotencyKeys() async -> Int {
        do {
            return try await store.sweepAnswers(beforeMs: nowMs - Exchange.idempotencyWindowMs)
        } catch {
            logger.warning("idempotency sweep failed", metadata: ["error": "\(error)"])
            return 0
        }
    }

    /// The write-ahead record of a post about to be sent.
    func postIntent(bid: RankedBid, reservation: BuyerLedger.Reservation, context: RoundContext) -> PostIntent {
        PostIntent(
            roundID: context.auctionID, kind: context.campaign.kind, sellerID: context.seller.id, campaignID: context.campaign.id,
            buyerID: bid.buyerID, price: bid.price, createdAtMs: context.createdAtMs, sentAtMs: nowMs,
            tmaxMs: context.tmaxMs, leadJSON: JSONValue.object(context.lead).serialized, idempotencyScope: context.ticket?.scope,
            idempotencyHash: context.ticket?.bodyHash, capIncrements: reservation.increments, contactHash: context.contactHash
        )
    }
}
