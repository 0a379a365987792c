import NIOConcurrencyHelpers

/// The fleet's buyers by id. Buyers can be added at runtime (``BuyerFleet/setBehavior(_:for:)``),
/// so the table sits behind a lock; lookups hold it only to fetch the buyer's own state.
final class BuyerRegistry: Sendable {
    private let buyers: NIOLockedValueBox<[String: BuyerState]>
    private let seed: UInt64

    init(buyers: [String: BuyerBehavior], seed: UInt64) {
        self.seed = seed
        let states = buyers.map { id, behavior in (id, BuyerState(id: id, behavior: behavior, seed: seed)) }
        self.buyers = NIOLockedValueBox(Dictionary(uniqueKeysWithValues: states))
    }

    subscript(id: String) -> BuyerState? {
        buyers.withLockedValue { $0[id] }
    }

    var all: [String: BuyerState] {
        buyers.withLockedValue { $0 }
    }

    /// Changes a buyer's behaviour, adding the buyer if it is new.
    func setBehavior(_ behavior: BuyerBehavior, for id: String) {
        let seed = seed
        buyers.withLockedValue { buyers in
            if let existing = buyers[id] {
                existing.behavior = behavior
            } else {
                buyers[id] = BuyerState(id: id, behavior: behavior, seed: seed)
            }
        }
    }
}

extension BuyerRegistry {
    /// Every buyer's counters, by id.
    var allStats: [String: BuyerStats] {
        all.mapValues(\.stats)
    }
}
