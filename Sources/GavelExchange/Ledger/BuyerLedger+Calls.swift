import Foundation
import GavelCore
import GavelStore

extension BuyerLedger {
    /// A live call holding one of a buyer's concurrency slots.
    public struct CallSlot: Sendable, Hashable, Codable {
        public var reservation: Reservation
        /// Whether the buyer's caps count conversions (charged at `completed`) rather than routed calls (charged now).
        public var countsConversions: Bool
    }

    /// How a live call ended, for its slot.
    public enum CallEnd: Sendable {
        /// The transfer did not connect: the call does not count against the buyer.
        case failed
        /// The call ended; `converted` when it reached the buyer's minimum duration.
        case completed(converted: Bool)
        /// No `completed` came within the campaign's maximum call length: the slot is freed.
        case abandoned
    }

    /// Takes a live-call slot for `buyer` at `price`: checks its duplicate window, concurrency and
    /// count caps. Returns the slot and the counter increments to persist with the routed round.
    /// A withheld caller (`callerHash` nil) is never a duplicate.
    public func reserveCall(buyer: Buyer, price: Money, callerHash: String?, at date: Date) -> Result<(CallSlot, [CapIncrement]), ReservationDenied> {
        withState { $0.reserveCall(buyer: buyer, price: price, callerHash: callerHash, at: date) }
    }

    /// The counter changes that ending a call makes, to persist with the record that ends it.
    /// Nothing changes in memory until `endCall`, after that record is committed.
    public static func increments(ending slot: CallSlot, how end: CallEnd) -> [CapIncrement] {
        let sign: Int
        switch (end, slot.countsConversions) {
        case (.failed, false): sign = -1
        case (.completed(converted: true), true): sign = 1
        default: return []
        }
        let spend = Money(units: slot.reservation.price.units * Int64(sign))
        return slot.reservation.increments.map { CapIncrement(buyerID: $0.buyerID, window: $0.window, count: sign, spend: spend) }
    }

    /// Frees the slot and applies `increments(ending:how:)` in memory: call it once the ending is committed.
    public func endCall(_ slot: CallSlot, how end: CallEnd) {
        withState { state in
            state.adjustLiveCalls(buyerID: slot.reservation.buyerID, by: -1)
            for increment in BuyerLedger.increments(ending: slot, how: end) {
                state.addCount(buyerID: increment.buyerID, window: increment.window, count: increment.count, spend: increment.spend)
            }
        }
    }

    /// Cluster: a live-call slot the shared database granted, kept in this node's counters too.
    func takeCall(_ slot: CallSlot, callerHash: String?, at date: Date) {
        withState { state in
            state.adjustLiveCalls(buyerID: slot.reservation.buyerID, by: 1)
            if !slot.countsConversions { _ = state.addCounts(slot.reservation, sign: 1) }
            if let callerHash { state.rememberSale(contactHash: callerHash, buyerID: slot.reservation.buyerID, at: date) }
        }
    }

    /// A call that was live before a restart holds its slot again (its counters are in the store).
    public func restoreLiveCall(_ slot: CallSlot, callerHash: String?, at date: Date) {
        withState { state in
            state.adjustLiveCalls(buyerID: slot.reservation.buyerID, by: 1)
            if let callerHash { state.rememberSale(contactHash: callerHash, buyerID: slot.reservation.buyerID, at: date) }
        }
    }
}

extension BuyerLedger.State {
    mutating func reserveCall(buyer: Buyer, price: Money, callerHash: String?, at date: Date)
        -> Result<(BuyerLedger.CallSlot, [CapIncrement]), BuyerLedger.ReservationDenied> {
        if buyer.duplicateWindowDays > 0, let callerHash, let last = recentSale(contactHash: callerHash, buyerID: buyer.id),
           date.timeIntervalSince(last) < Double(buyer.duplicateWindowDays) * 86_400 {
            return .failure(.duplicate)
        }
        let liveCalls = live[buyer.id] ?? 0
        if let concurrent = buyer.caps.concurrent, liveCalls >= concurrent { return .failure(.capped) }
        let windows = CapWindows(date: date, timeZone: buyer.capTimeZone)
        let countsConversions = buyer.caps.countConversions
        // Caps that count conversions also count the calls still on the line: each may convert.
        if !buyer.caps.isUnlimited, exceedsCaps(buyer: buyer, price: countsConversions ? .zero : price, windows: windows,
                                                pending: countsConversions ? liveCalls : 0) {
            return .failure(.capped)
        }
        adjustLiveCalls(buyerID: buyer.id, by: 1)
        // The caller is remembered at routing: the same caller is not routed to this buyer again in its window.
        if buyer.duplicateWindowDays > 0, let callerHash { rememberSale(contactHash: callerHash, buyerID: buyer.id, at: date) }
        let reservation = BuyerLedger.Reservation(buyerID: buyer.id, price: price, windows: windows, contactHash: callerHash)
        let slot = BuyerLedger.CallSlot(reservation: reservation, countsConversions: countsConversions)
        guard !countsConversions else { return .success((slot, [])) }
        return .success((slot, addCounts(reservation, sign: 1)))
    }
}
