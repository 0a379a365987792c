import Foundation
import GavelCore
import GavelStore
import Synchronization

/// The shared, per-buyer state every auction reads and changes: cap counters, recent sales of
/// each contact (duplicate windows), and health (back-off from buyers that keep failing).
///
/// One lock around a value (`State`), not an actor: every call is a few dictionary operations, so
/// an auction takes the lock on its own thread instead of hopping to an actor's executor and back.
/// A reservation is check-and-increment under the lock: a thousand concurrent auctions cannot push
/// a buyer past a cap.
public final class BuyerLedger: Sendable {
    /// A held slot under a buyer's caps, taken before a post.
    public struct Reservation: Sendable, Hashable, Codable {
        public var buyerID: String
        public var price: Money
        var windows: CapWindows
        var contactHash: String?

        /// The counters this reservation takes once committed.
        public var increments: [CapIncrement] {
            [windows.hour, windows.day, windows.month].map { CapIncrement(buyerID: buyerID, window: $0, count: 1, spend: price) }
        }
    }

    public struct HealthPolicy: Sendable {
        /// Consecutive failed pings (timeout, unreachable, bad answers) before backing off.
        public var failuresBeforeBackOff: Int
        public var firstBackOffSeconds: Double
        public var maxBackOffSeconds: Double

        public init(failuresBeforeBackOff: Int = 5, firstBackOffSeconds: Double = 2, maxBackOffSeconds: Double = 60) {
            self.failuresBeforeBackOff = failuresBeforeBackOff
            self.firstBackOffSeconds = firstBackOffSeconds
            self.maxBackOffSeconds = maxBackOffSeconds
        }
    }

    public enum ReservationDenied: Error, Sendable { case capped, duplicate }

    private let state: Mutex<State>

    public init(healthPolicy: HealthPolicy = HealthPolicy()) {
        self.state = Mutex(State(healthPolicy: healthPolicy))
    }

    /// Loads what the store remembers: cap counters and recent sales.
    public func restore(counters stored: [CapIncrement], sales recent: [SaleRecord]) {
        state.withLock { $0.restore(counters: stored, sales: recent) }
    }

    /// Ledger-based exclusions for the buyers of one round, under one lock.
    public func exclusions(for buyers: [Buyer], contactHash: String?, at date: Date) -> [String: ReasonCode] {
        state.withLock { $0.exclusions(for: buyers, contactHash: contactHash, at: date) }
    }

    /// Takes a slot under `buyer`'s caps for a post at `price`; nil (and the reason) when it would exceed one.
    public func reserve(buyer: Buyer, price: Money, contactHash: String?, at date: Date) -> Result<Reservation, ReservationDenied> {
        state.withLock { $0.reserve(buyer: buyer, price: price, contactHash: contactHash, at: date) }
    }

    /// The post failed: give the slot back.
    public func release(_ reservation: Reservation) {
        state.withLock { $0.release(reservation) }
    }

    /// The post sold: the slot stays taken, and the contact is remembered for duplicate windows.
    /// Returns the counter increments to persist with the round.
    public func commit(_ reservation: Reservation, at date: Date) -> [CapIncrement] {
        state.withLock { $0.commit(reservation, at: date) }
    }

    /// Ping outcomes of one round: failures build up to a back-off, any answer resets it.
    public func recordHealth(failed: [String], answered: [String], at date: Date) {
        guard !failed.isEmpty || !answered.isEmpty else { return }
        state.withLock { $0.recordHealth(failed: failed, answered: answered, at: date) }
    }

    /// Drops what no cap or duplicate window can still need, so memory stays bounded however long
    /// the exchange runs: hour windows older than 30 hours, days older than 3 days, months older than
    /// 3 months (keys sort by time; the margins cover every time zone), and contacts sold longer ago
    /// than the longest duplicate window. Returns how many entries were dropped.
    @discardableResult
    public func sweep(at date: Date, longestDuplicateWindowDays: Int) -> Int {
        state.withLock { $0.sweep(at: date, longestDuplicateWindowDays: longestDuplicateWindowDays) }
    }

    /// Cluster: a slot the shared database granted, kept in this node's counters too, so its own
    /// eligibility sees it before the next refresh.
    func take(_ reservation: Reservation) {
        state.withLock { _ = $0.addCounts(reservation, sign: 1) }
    }

    /// Cluster: every node's usage (committed counts and claims in flight) replaces this node's
    /// counters and live calls, which then serve only as the eligibility filter.
    public func replaceUsage(counters: [CapIncrement], liveCalls: [String: Int]) {
        state.withLock { $0.replaceUsage(counters: counters, liveCalls: liveCalls) }
    }

    /// Entries held in memory (counters and remembered contacts), for tests of the bounds.
    public var entryCount: Int { state.withLock { $0.entryCount } }

    /// Current counts, for reports and tests.
    public func usage(buyerID: String, window: String) -> (count: Int, spend: Money) {
        state.withLock { $0.usage(buyerID: buyerID, window: window) }
    }

    /// Live calls of every buyer.
    public var totalLiveCalls: Int { state.withLock { $0.live.values.reduce(0, +) } }

    /// Live calls a buyer holds now.
    public func liveCalls(buyerID: String) -> Int { state.withLock { $0.live[buyerID] ?? 0 } }

    /// A buyer's health now: until when it is backed off (nil: it is pinged), and its failed pings in a row.
    public func health(buyerID: String, at date: Date) -> (backedOffUntil: Date?, failures: Int) {
        state.withLock { $0.health(buyerID: buyerID, at: date) }
    }

    /// Adds `count` and `spend` to one window (a return takes its price back from the day's spend).
    func addCount(buyerID: String, window: String, count: Int, spend: Money) {
        state.withLock { $0.addCount(buyerID: buyerID, window: window, count: count, spend: spend) }
    }

    /// Runs `body` on the state under the lock, for the call and usage extensions.
    func withState<Value: Sendable>(_ body: (inout State) -> Value) -> Value {
        state.withLock { body(&$0) }
    }
}

extension BuyerLedger {
    /// Everything the ledger knows, changed only under its lock: plain mutating methods, no I/O.
    struct State {
        struct Counter {
            var count = 0
            var spend = Money.zero
        }

        struct Health {
            var consecutiveFailures = 0
            var backOffUntil: Date?
            var backOffSeconds: Double = 0
        }

        /// Committed counts plus those reserved by posts in flight, per buyer and window key.
        private var counters: [String: [String: Counter]] = [:]
        /// Contact hash -> buyer -> last sale time; and the hashes reserved by posts in flight.
        private var sales: [String: [String: Date]] = [:]
        private var pendingContacts: Set<String> = []
        private var health: [String: Health] = [:]
        private(set) var live: [String: Int] = [:]
        private let healthPolicy: HealthPolicy

        init(healthPolicy: HealthPolicy) {
            self.healthPolicy = healthPolicy
        }

        mutating func restore(counters stored: [CapIncrement], sales recent: [SaleRecord]) {
            for increment in stored {
                counters[increment.buyerID, default: [:]][increment.window, default: Counter()].count += increment.count
                counters[increment.buyerID, default: [:]][increment.window, default: Counter()].spend += increment.spend
            }
            for sale in recent {
                let date = Date(timeIntervalSince1970: Double(sale.soldAtMs) / 1000)
                if let existing = sales[sale.contactHash]?[sale.buyerID], existing >= date { continue }
                sales[sale.contactHash, default: [:]][sale.buyerID] = date
            }
        }

        mutating func replaceUsage(counters stored: [CapIncrement], liveCalls: [String: Int]) {
            counters = [:]
            for increment in stored {
                counters[increment.buyerID, default: [:]][increment.window, default: Counter()].count += increment.count
                counters[increment.buyerID, default: [:]][increment.window, default: Counter()].spend += increment.spend
            }
            live = liveCalls
        }

        mutating func exclusions(for buyers: [Buyer], contactHash: String?, at date: Date) -> [String: ReasonCode] {
            var result: [String: ReasonCode] = [:]
            for buyer in buyers {
                if isDuplicate(buyer: buyer, contactHash: contactHash, at: date) {
                    result[buyer.id] = .duplicate
                } else if !buyer.caps.isUnlimited, wouldExceed(buyer: buyer, price: .zero, windows: CapWindows(date: date, timeZone: buyer.capTimeZone)) {
                    result[buyer.id] = .capped
                } else if let until = health[buyer.id]?.backOffUntil {
                    if date < until {
                        result[buyer.id] = .unhealthy
                    } else {
                        // Past the back-off: let one round probe it; a failure extends the back-off.
                        health[buyer.id]?.backOffUntil = nil
                        health[buyer.id]?.consecutiveFailures = healthPolicy.failuresBeforeBackOff - 1
                    }
                }
            }
            return result
        }

        mutating func reserve(buyer: Buyer, price: Money, contactHash: String?, at date: Date) -> Result<Reservation, ReservationDenied> {
            if isDuplicate(buyer: buyer, contactHash: contactHash, at: date) { return .failure(.duplicate) }
            let windows = CapWindows(date: date, timeZone: buyer.capTimeZone)
            if !buyer.caps.isUnlimited, wouldExceed(buyer: buyer, price: price, windows: windows) { return .failure(.capped) }
            add(buyerID: buyer.id, windows: windows, count: 1, spend: price)
            let pendingKey = buyer.duplicateWindowDays > 0 ? contactHash.map { "\(buyer.id)|\($0)" } : nil
            if let pendingKey { pendingContacts.insert(pendingKey) }
            // Only buyers with a duplicate window need the contact remembered; the others cost no memory.
            let remembered = buyer.duplicateWindowDays > 0 ? contactHash : nil
            return .success(Reservation(buyerID: buyer.id, price: price, windows: windows, contactHash: remembered))
        }

        mutating func release(_ reservation: Reservation) {
            add(buyerID: reservation.buyerID, windows: reservation.windows, count: -1, spend: .zero - reservation.price)
            if let hash = reservation.contactHash { pendingContacts.remove("\(reservation.buyerID)|\(hash)") }
        }

        mutating func commit(_ reservation: Reservation, at date: Date) -> [CapIncrement] {
            if let hash = reservation.contactHash {
                pendingContacts.remove("\(reservation.buyerID)|\(hash)")
                sales[hash, default: [:]][reservation.buyerID] = date
            }
            return reservation.increments
        }

        mutating func recordHealth(failed: [String], answered: [String], at date: Date) {
            for buyerID in answered { health[buyerID] = nil }
            for buyerID in failed {
                var state = health[buyerID] ?? Health()
                state.consecutiveFailures += 1
                if state.consecutiveFailures >= healthPolicy.failuresBeforeBackOff {
                    state.backOffSeconds = state.backOffSeconds == 0
                        ? healthPolicy.firstBackOffSeconds
                        : min(healthPolicy.maxBackOffSeconds, state.backOffSeconds * 2)
                    state.backOffUntil = date.addingTimeInterval(state.backOffSeconds)
                    state.consecutiveFailures = 0
                }
                health[buyerID] = state
            }
        }

        mutating func sweep(at date: Date, longestDuplicateWindowDays: Int) -> Int {
            let hourCutoff = CapWindows(date: date.addingTimeInterval(-30 * 3600), timeZone: CapWindows.utc).hour
            let dayCutoff = CapWindows(date: date.addingTimeInterval(-3 * 86_400), timeZone: CapWindows.utc).day
            let monthCutoff = CapWindows(date: date.addingTimeInterval(-93 * 86_400), timeZone: CapWindows.utc).month
            var dropped = 0
            for (buyerID, windows) in counters {
                let kept = windows.filter { key, _ in
                    if key.hasPrefix("H:") { return key >= hourCutoff }
                    if key.hasPrefix("D:") { return key >= dayCutoff }
                    if key.hasPrefix("M:") { return key >= monthCutoff }
                    return true
                }
                dropped += windows.count - kept.count
                counters[buyerID] = kept.isEmpty ? nil : kept
            }
            let oldest = date.addingTimeInterval(-Double(longestDuplicateWindowDays) * 86_400)
            for (hash, buyers) in sales {
                let kept = buyers.filter { $0.value >= oldest }
                dropped += buyers.count - kept.count
                sales[hash] = kept.isEmpty ? nil : kept
            }
            return dropped
        }

        var entryCount: Int { counters.values.reduce(0) { $0 + $1.count } + sales.values.reduce(0) { $0 + $1.count } }

        func usage(buyerID: String, window: String) -> (count: Int, spend: Money) {
            let counter = counters[buyerID]?[window] ?? Counter()
            return (counter.count, counter.spend)
        }

        func health(buyerID: String, at date: Date) -> (backedOffUntil: Date?, failures: Int) {
            let state = health[buyerID]
            let until = state?.backOffUntil.flatMap { $0 > date ? $0 : nil }
            return (until, state?.consecutiveFailures ?? 0)
        }

        // MARK: Shared with the call extension

        func recentSale(contactHash: String, buyerID: String) -> Date? { sales[contactHash]?[buyerID] }

        mutating func rememberSale(contactHash: String, buyerID: String, at date: Date) { sales[contactHash, default: [:]][buyerID] = date }

        mutating func adjustLiveCalls(buyerID: String, by delta: Int) { live[buyerID] = max(0, (live[buyerID] ?? 0) + delta) }

        func exceedsCaps(buyer: Buyer, price: Money, windows: CapWindows, pending: Int = 0) -> Bool {
            wouldExceed(buyer: buyer, price: price, windows: windows, pending: pending)
        }

        mutating func addCount(buyerID: String, window: String, count: Int, spend: Money) {
            counters[buyerID, default: [:]][window, default: Counter()].count += count
            counters[buyerID, default: [:]][window, default: Counter()].spend += spend
        }

        /// Adds (or with `sign` -1 takes back) one count and the price to each window; returns what to persist.
        mutating func addCounts(_ reservation: Reservation, sign: Int) -> [CapIncrement] {
            let spend = Money(units: reservation.price.units * Int64(sign))
            add(buyerID: reservation.buyerID, windows: reservation.windows, count: sign, spend: spend)
            return [reservation.windows.hour, reservation.windows.day, reservation.windows.month].map {
                CapIncrement(buyerID: reservation.buyerID, window: $0, count: sign, spend: spend)
            }
        }

        // MARK: Private

        private func isDuplicate(buyer: Buyer, contactHash: String?, at date: Date) -> Bool {
            guard buyer.duplicateWindowDays > 0, let contactHash else { return false }
            if pendingContacts.contains("\(buyer.id)|\(contactHash)") { return true }
            guard let last = sales[contactHash]?[buyer.id] else { return false }
            return date.timeIntervalSince(last) < Double(buyer.duplicateWindowDays) * 86_400
        }

        /// Whether one more sale at `price` (with `pending` more that may still count) passes a cap.
        private func wouldExceed(buyer: Buyer, price: Money, windows: CapWindows, pending: Int = 0) -> Bool {
            let buyerCounters = counters[buyer.id] ?? [:]
            let caps = buyer.caps
            let adding = 1 + pending
            if let hourly = caps.hourly, (buyerCounters[windows.hour]?.count ?? 0) + adding > hourly { return true }
            if let daily = caps.daily, (buyerCounters[windows.day]?.count ?? 0) + adding > daily { return true }
            if let monthly = caps.monthly, (buyerCounters[windows.month]?.count ?? 0) + adding > monthly { return true }
            if let budget = caps.dailyBudget {
                let spent = buyerCounters[windows.day]?.spend ?? .zero
                // At eligibility (price zero) a buyer is capped once its budget is used up.
                if price == .zero ? spent >= budget : spent + price > budget { return true }
            }
            return false
        }

        private mutating func add(buyerID: String, windows: CapWindows, count: Int, spend: Money) {
            for window in [windows.hour, windows.day, windows.month] {
                counters[buyerID, default: [:]][window, default: Counter()].count += count
                counters[buyerID, default: [:]][window, default: Counter()].spend += spend
            }
        }
    }
}
