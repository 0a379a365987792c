import GavelCore
import Synchronization

/// Buyers paused from the portal. The store holds the truth (`portal_pauses`, read at start-up);
/// this set is what rounds read, behind a lock held for one lookup.
public final class BuyerPauses: Sendable {
    private let paused = Mutex<Set<String>>([])

    public init() {}

    public func contains(_ buyerID: String) -> Bool { paused.withLock { $0.contains(buyerID) } }

    func restore(_ buyerIDs: Set<String>) { paused.withLock { $0 = buyerIDs } }

    func set(_ buyerID: String, paused isPaused: Bool) {
        paused.withLock { set in
            if isPaused { set.insert(buyerID) } else { set.remove(buyerID) }
        }
    }
}

extension Exchange {
    /// Pauses (or resumes) a buyer from its portal: committed to the store first, then new rounds
    /// exclude it with `paused` until it resumes, across restarts. `paused: true` in the buyer's
    /// YAML pauses it whatever the portal says.
    public func setPortalPause(buyerID: String, paused: Bool) async throws(ExchangeError) {
        do {
            try await store.setPortalPause(buyerID: buyerID, paused: paused, atMs: nowMs)
        } catch {
            throw .storage("\(error)")
        }
        portalPauses.set(buyerID, paused: paused)
        // The other nodes re-read the pauses at once (and by their slow poll if the notice is lost).
        if let cluster {
            do { try await cluster.publish(.pausesChanged) } catch {
                logger.warning("pause not announced to the other nodes; their poll picks it up", metadata: ["error": "\(error)"])
            }
        }
        logger.notice("buyer pause changed from the portal", metadata: ["buyer": "\(buyerID)", "paused": "\(paused)"])
    }

    /// Whether the buyer paused itself in the portal.
    public func isPortalPaused(_ buyerID: String) -> Bool { portalPauses.contains(buyerID) }
}
