import GavelCore

/// Rounds from `POST /v1/pings` whose bids are held for the seller's post, and the results of
/// posts already made, so a second post of the same ping returns the first result.
actor HeldBids {
    struct HeldRound: Sendable {
        var round: AuctionRound
        var context: RoundContext
        var expiresAtMs: Int64
    }

    typealias PostResult = Result<LeadResult, ExchangeError>

    enum Claim: Sendable {
        /// The caller runs the post phase and must call `complete`.
        case run(HeldRound)
        /// Already posted (or being posted): the first result.
        case done(PostResult)
        /// The post does not fit the ping; the bids stay held.
        case rejected(RequestError)
        case expired
        case unknown
    }

    private enum Entry {
        case held(HeldRound)
        case posting(owner: String, waiters: [CheckedContinuation<PostResult, Never>])
        case done(PostResult, owner: String, keepUntilMs: Int64)
    }

    private var entries: [String: Entry] = [:]
    private var holdsSinceSweep = 0
    /// Held and posting rounds at most: never evicted, so a new ping is refused instead (503).
    let capacity: Int

    init(capacity: Int = 100_000) { self.capacity = capacity }

    /// Whether another held round fits; finished results (the database has them) go first.
    func hasRoom(nowMs: Int64) -> Bool {
        guard entries.count >= capacity else { return true }
        sweep(nowMs: nowMs)
        if entries.count >= capacity {
            entries = entries.filter { if case .done = $0.value { return false } else { return true } }
        }
        return entries.count < capacity
    }
    /// How long a finished post's result is kept in memory for repeat posts (the database has it after).
    private let resultTTLms: Int64 = 3_600_000

    func hold(_ held: HeldRound, id: String, nowMs: Int64) {
        entries[id] = .held(held)
        holdsSinceSweep += 1
        if holdsSinceSweep >= 1024 { sweep(nowMs: nowMs) }
    }

    /// Claims the ping for posting, or tells why it cannot be. `check` runs before the claim, so a
    /// post that does not fit the ping leaves its bids held. A concurrent second post waits for the first.
    func claim(id: String, sellerID: String, nowMs: Int64, check: (HeldRound) -> RequestError?) async -> Claim {
        switch entries[id] {
        case nil:
            return .unknown
        case .held(let held):
            guard held.context.seller.id == sellerID else { return .unknown }
            guard nowMs < held.expiresAtMs else {
                entries[id] = nil
                return .expired
            }
            if let problem = check(held) { return .rejected(problem) }
            entries[id] = .posting(owner: sellerID, waiters: [])
            return .run(held)
        case .posting(let owner, let waiters):
            guard owner == sellerID else { return .unknown }
            let result = await withCheckedContinuation { continuation in
                entries[id] = .posting(owner: owner, waiters: waiters + [continuation])
            }
            return .done(result)
        case .done(let result, let owner, _):
            return owner == sellerID ? .done(result) : .unknown
        }
    }

    func complete(id: String, sellerID: String, result: PostResult, nowMs: Int64) {
        if case .posting(_, let waiters) = entries[id] {
            for waiter in waiters { waiter.resume(returning: result) }
        }
        entries[id] = .done(result, owner: sellerID, keepUntilMs: nowMs + resultTTLms)
    }

    private func sweep(nowMs: Int64) {
        holdsSinceSweep = 0
        entries = entries.filter { _, entry in
            switch entry {
            case .held(let held): return nowMs < held.expiresAtMs
            case .posting: return true
            case .done(_, _, let keepUntil): return nowMs < keepUntil
            }
        }
    }
}
