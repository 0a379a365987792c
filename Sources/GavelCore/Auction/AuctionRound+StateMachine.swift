/// One auction round as a state machine: bids in, ranking, post attempts down the waterfall, outcome.
///
/// It does no I/O and reads no clock: the runner feeds it answers and the time, and does what the
/// returned `Action` says. That keeps every rule of a round testable in isolation.
///
/// A tiered round (the `waterfall` distribution, a ping tree) holds its buyers in tiers of equal
/// `priority`, highest first, and enters one tier at a time: `nextPost` asks for the next tier
/// (`.pingNextTier`) only when every bid of the tiers entered so far was tried and failed.
public struct AuctionRound: Sendable, Codable {
    /// How a buyer entered the round.
    public enum Consideration: Sendable, Hashable {
        /// Excluded before any ping, for this reason.
        case excluded(buyerID: String, reason: ReasonCode)
        /// Pinged, with `tmaxMs` to answer. In a tiered round, the most its ping may have: its tier
        /// may be reached later, with less time left (`startNextTier`).
        case pinged(Participant, tmaxMs: Int)
        /// A fixed-price buyer: bids its price without a ping.
        case fixedPrice(Participant, price: Money)
    }

    /// What the round knows of a buyer that takes part.
    public struct Participant: Sendable, Hashable, Codable {
        public var buyerID: String
        /// The effective floor: max(campaign floor, buyer floor).
        public var floor: Money
        public var priority: Int
        public var weight: Int
        public var destination: String?
        public var minDurationS: Int?

        public init(buyerID: String, floor: Money = .zero, priority: Int = 0, weight: Int = 1,
                    destination: String? = nil, minDurationS: Int? = nil) {
            self.buyerID = buyerID
            self.floor = floor
            self.priority = priority
            self.weight = weight
            self.destination = destination
            self.minDurationS = minDurationS
        }
    }

    /// A buyer's answer to a ping, already interpreted.
    public enum PingAnswer: Sendable, Hashable {
        case bid(price: Money, bidID: String?, expiresInS: Int?, destination: String?, minDurationS: Int?)
        case noBid
        case failed(ReasonCode, detail: String)
    }

    /// A buyer's answer to a post, already interpreted.
    public enum PostResult: Sendable, Hashable {
        case accepted(reference: String?)
        case rejected(reason: String?)
        case failed(detail: String)
        case timedOut
    }

    public enum Action: Sendable, Hashable {
        /// Pings are still out.
        case waitForBids
        /// Every pinged buyer answered: call `closeBidding`.
        case closeBidding
        /// Post to this bid's buyer (reserve its caps first).
        case post(RankedBid)
        /// Tiered rounds: every bid so far failed (or there was none) and time is left: enter the
        /// next tier (`startNextTier`), feed its answers, `closeBidding`, then ask again.
        case pingNextTier
        /// The round is over.
        case finish(Outcome)
    }

    public enum Outcome: Sendable, Hashable, Codable {
        case sold(Sale)
        case unsold

        public var sale: Sale? { if case .sold(let sale) = self { return sale } else { return nil } }
    }

    public struct Sale: Sendable, Hashable, Codable {
        public var bid: RankedBid
        public var price: Money { bid.price }
        public var payout: Money
        public var reference: String?
    }

    /// What the round records of each buyer considered.
    public struct BuyerEntry: Sendable, Hashable, Codable {
        public var buyerID: String
        public var reason: ReasonCode?
        public var bid: Money?
        public var bidID: String?
        public var latencyUs: Int?
        public var tmaxMs: Int?
        public var detail: String?
        /// Call bids: where the caller would go.
        public var destination: String?
        /// Seconds the bid is held, as the buyer said or the campaign's default.
        public var expiresInS: Int?
        /// The buyer's own code when it declined (its words, beside Gavel's `reason`).
        public var buyerReason: BuyerReason?
        /// Values of the ping answer the buyer's post needs back (`keep:` of its template).
        public var kept: [String: String]?
        /// The buyer's chance of paying (post accepted, call converted) as estimated when bidding
        /// closed; nil for a buyer that did not take part.
        public var estimate: Probability?
    }

    public struct PostAttempt: Sendable, Hashable, Codable {
        public var buyerID: String
        public var price: Money
        public var result: ReasonCode
        public var latencyUs: Int
        public var reference: String?
        public var detail: String?
        /// The buyer's own code when it rejected the post.
        public var buyerReason: BuyerReason?
    }

    private enum State: Sendable, Codable {
        case bidding(pending: Set<String>)
        case closed
        case waterfall(ranking: [RankedBid], next: Int)
        case finished(Outcome)
    }

    /// Buyers of equal priority, entered together in a tiered round.
    private struct Tier: Sendable, Codable {
        var priority: Int
        var members: [TierMember]
    }

    private enum TierMember: Sendable, Codable {
        /// Pinged when its tier is entered, with at most `maxMs`.
        case ping(buyerID: String, maxMs: Int)
        /// Bids its fixed price when its tier is entered.
        case fixedPrice(buyerID: String, price: Money)

        var buyerID: String {
            switch self {
            case .ping(let buyerID, _), .fixedPrice(let buyerID, _): return buyerID
            }
        }
    }

    /// What a buyer of a tier not entered yet shows meanwhile.
    static let waitingDetail = "its tier is pinged only if the tiers above sell nothing"

    public private(set) var id: String
    public let payoutRule: PayoutRule
    /// Hold time for bids that carry no expiry.
    public let defaultHoldS: Int
    private var state: State
    private var participants: [String: Participant] = [:]
    private var entryIndex: [String: Int] = [:]
    public private(set) var entries: [BuyerEntry] = []
    public private(set) var posts: [PostAttempt] = []
    /// When bidding closed (ms since the epoch); bids expire relative to it.
    public private(set) var closedAtMs: Int64?
    /// The ranked waterfall, as it was when bidding closed. In a tiered round, the bids of every
    /// tier entered so far, tier after tier.
    public private(set) var ranking: [RankedBid] = []
    /// Tiered rounds: the tiers not entered yet, highest priority first; nil in other rounds.
    private var waitingTiers: [Tier]?

    /// - Parameter tiered: the `waterfall` distribution. The pinged and fixed-price buyers then
    ///   wait in tiers of equal `priority` (showing `not_pinged` until their tier is entered), and
    ///   the round starts closed with no bid: `nextPost` asks for the first tier.
    public init(id: String, payoutRule: PayoutRule, defaultHoldS: Int = 60, considered: [Consideration], tiered: Bool = false) {
        self.id = id
        self.payoutRule = payoutRule
        self.defaultHoldS = defaultHoldS
        self.state = .closed
        var pending = Set<String>()
        var tiers: [Int: [TierMember]] = [:]
        for consideration in considered {
            switch consideration {
            case .excluded(let buyerID, let reason):
                appendEntry(BuyerEntry(buyerID: buyerID, reason: reason))
            case .pinged(let participant, let tmaxMs):
                guard entryIndex[participant.buyerID] == nil else { continue }
                participants[participant.buyerID] = participant
                if tiered {
                    tiers[participant.priority, default: []].append(.ping(buyerID: participant.buyerID, maxMs: tmaxMs))
                    appendEntry(BuyerEntry(buyerID: participant.buyerID, reason: .notPinged, detail: Self.waitingDetail))
                } else {
                    pending.insert(participant.buyerID)
                    appendEntry(BuyerEntry(buyerID: participant.buyerID, tmaxMs: tmaxMs))
                }
            case .fixedPrice(let participant, let price):
                guard entryIndex[participant.buyerID] == nil else { continue }
                participants[participant.buyerID] = participant
                if tiered {
                    tiers[participant.priority, default: []].append(.fixedPrice(buyerID: participant.buyerID, price: price))
                    appendEntry(BuyerEntry(buyerID: participant.buyerID, reason: .notPinged, detail: Self.waitingDetail))
                } else {
                    appendEntry(Self.standingBid(price, of: participant))
                }
            }
        }
        if tiered {
            waitingTiers = tiers.keys.sorted(by: >).map { Tier(priority: $0, members: tiers[$0] ?? []) }
        } else {
            state = .bidding(pending: pending)
        }
    }

    /// A fixed price is a standing bid: the same floor applies as to a pinged one.
    private static func standingBid(_ price: Money, of participant: Participant) -> BuyerEntry {
        var entry = BuyerEntry(buyerID: participant.buyerID, bid: price, latencyUs: 0, destination: participant.destination)
        if price < participant.floor {
            entry.reason = .belowFloor
            entry.detail = "floor \(participant.floor)"
        }
        return entry
    }

    private mutating func appendEntry(_ entry: BuyerEntry) {
        guard entryIndex[entry.buyerID] == nil else { return }
        entryIndex[entry.buyerID] = entries.count
        entries.append(entry)
    }

    public func entry(for buyerID: String) -> BuyerEntry? {
        entryIndex[buyerID].map { entries[$0] }
    }

    public var outcome: Outcome? {
        if case .finished(let outcome) = state { return outcome }
        return nil
    }

    /// Buyers still owed a ping answer.
    public var pendingBuyers: Set<String> {
        if case .bidding(let pending) = state { return pending }
        return []
    }

    /// A new round for a repeat request that reuses this round's bids instead of pinging again:
    /// the same answers and ranking (expiring from when they were given), no posts yet.
    public func reusingBids(newID: String, detail: String) -> AuctionRound {
        var copy = self
        copy.id = newID
        copy.posts = []
        var valid: [RankedBid] = []
        for bid in ranking {
            guard let index = entryIndex[bid.buyerID] else { continue }
            copy.entries[index].reason = nil
            copy.entries[index].detail = detail
            valid.append(bid)
        }
        copy.ranking = valid
        copy.state = .closed
        return copy
    }

    /// Sets the reason of a buyer whose bid is not in the waterfall any more (for example a call
    /// that connected but was too short to bill).
    public mutating func overrideReason(_ reason: ReasonCode, for buyerID: String, detail: String?) {
        setReason(reason, for: buyerID, detail: detail)
    }

    // MARK: Bidding

    /// Keeps what a buyer's ping answer said beyond the bid: its own reason code, and the values
    /// its post needs back. Called right after `receive`.
    public mutating func noteAnswer(from buyerID: String, buyerReason: BuyerReason?, kept: [String: String]) {
        guard let index = entryIndex[buyerID] else { return }
        entries[index].buyerReason = buyerReason
        entries[index].kept = kept.isEmpty ? nil : kept
    }

    /// Records a ping answer. Answers after bidding closed, or from buyers not pinged, are ignored.
    public mutating func receive(_ answer: PingAnswer, from buyerID: String, latencyUs: Int) -> Action {
        guard case .bidding(var pending) = state, pending.remove(buyerID) != nil,
              let index = entryIndex[buyerID], let participant = participants[buyerID]
        else { return pendingActionAfterIgnoredInput }
        entries[index].latencyUs = latencyUs
        switch answer {
        case .bid(let price, let bidID, let expiresInS, let destination, let minDurationS):
            entries[index].bid = price
            entries[index].bidID = bidID
            entries[index].expiresInS = expiresInS
            entries[index].destination = destination ?? participant.destination
            if let minDurationS { participants[buyerID]?.minDurationS = minDurationS }
            if price <= .zero {
                entries[index].reason = .noBid
            } else if price < participant.floor {
                entries[index].reason = .belowFloor
                entries[index].detail = "floor \(participant.floor)"
            }
        case .noBid:
            entries[index].reason = .noBid
        case .failed(let reason, let detail):
            entries[index].reason = reason
            entries[index].detail = detail
        }
        state = .bidding(pending: pending)
        return pending.isEmpty ? .closeBidding : .waitForBids
    }

    private var pendingActionAfterIgnoredInput: Action {
        if case .bidding(let pending) = state { return pending.isEmpty ? .closeBidding : .waitForBids }
        return .waitForBids
    }

    /// Ends bidding: buyers that have not answered time out, valid bids are ranked.
    /// The round then waits for `nextPost`. In a tiered round, the entered tier's bids are ranked
    /// behind those of the tiers above (all tried by then), and the walk goes on from them.
    /// - Parameters:
    ///   - rankBy: how bids are ordered within `method`.
    ///   - estimates: each buyer's chance of paying, recorded with the buyers that take part and
    ///     used by `rankBy: .expectedValue` (a bid without one counts as certain).
    public mutating func closeBidding(
        atMs nowMs: Int64, method: DistributionMethod, rankBy: RankBy = .price, estimates: [String: Probability] = [:],
        rotation: Int = 0, randomUnit: Double = 0
    ) -> [RankedBid] {
        guard case .bidding(let pending) = state else { return ranking }
        for buyerID in pending.sorted() {
            guard let index = entryIndex[buyerID] else { continue }
            entries[index].reason = .timeout
            entries[index].detail = "no answer before bidding closed"
        }
        for (buyerID, estimate) in estimates where participants[buyerID] != nil {
            if let index = entryIndex[buyerID] { entries[index].estimate = estimate }
        }
        let earlier = ranking
        let tried = Set(earlier.map(\.buyerID))
        let valid: [RankedBid] = entries.compactMap { entry in
            guard entry.reason == nil, !tried.contains(entry.buyerID), let price = entry.bid,
                  let participant = participants[entry.buyerID] else { return nil }
            return RankedBid(
                buyerID: entry.buyerID, price: price, bidID: entry.bidID, priority: participant.priority,
                weight: participant.weight, expiresInS: entry.expiresInS ?? defaultHoldS,
                destination: entry.destination, minDurationS: participant.minDurationS, estimate: entry.estimate
            )
        }
        ranking = Ranking.rank(valid, method: method, rankBy: rankBy, rotation: rotation, randomUnit: randomUnit)
        ranking = earlier + ranking  // a tiered round's new tier goes behind the tiers tried
        closedAtMs = nowMs
        state = earlier.isEmpty ? .closed : .waterfall(ranking: ranking, next: earlier.count)
        if !valid.isEmpty { markWaitingTiers(detail: "a higher tier bid; its tier is pinged only if their posts fail") }
        return ranking
    }

    // MARK: Tiers

    /// Tiered rounds: enters the next tier, after `nextPost` asked for it. Its fixed prices are bids
    /// at once; each other buyer is pinged with the lesser of `pingMs` and its own limit, unless
    /// `withhold` gives a reason not to (over its ping rate). Returns whom to ping with what time;
    /// feed their answers with `receive`, then `closeBidding`. Empty when no tier is waiting.
    public mutating func startNextTier(
        pingMs: Int, withhold: (String) -> ReasonCode? = { _ in nil }
    ) -> [(buyerID: String, tmaxMs: Int)] {
        switch state {
        case .bidding, .finished: return []
        case .closed, .waterfall: break
        }
        guard var tiers = waitingTiers, !tiers.isEmpty else { return [] }
        let tier = tiers.removeFirst()
        waitingTiers = tiers
        var pending = Set<String>()
        var targets: [(buyerID: String, tmaxMs: Int)] = []
        for member in tier.members {
            guard let index = entryIndex[member.buyerID], let participant = participants[member.buyerID] else { continue }
            switch member {
            case .fixedPrice(_, let price):
                entries[index] = Self.standingBid(price, of: participant)
            case .ping(let buyerID, let maxMs):
                entries[index].detail = nil
                if let reason = withhold(buyerID) {
                    entries[index].reason = reason
                    continue
                }
                let tmaxMs = max(1, min(maxMs, pingMs))
                entries[index].reason = nil
                entries[index].tmaxMs = tmaxMs
                pending.insert(buyerID)
                targets.append((buyerID, tmaxMs))
            }
        }
        state = .bidding(pending: pending)
        return targets
    }

    /// Tiered rounds: the buyers of the tiers not entered yet.
    public var waitingBuyers: [String] {
        (waitingTiers ?? []).flatMap { $0.members.map(\.buyerID) }
    }

    /// Says why the buyers of the tiers still waiting are not reached (they stay `not_pinged`).
    private mutating func markWaitingTiers(detail: String) {
        for buyerID in waitingBuyers { setReason(.notPinged, for: buyerID, detail: detail) }
    }

    // MARK: Waterfall

    /// The next step down the waterfall. Expired bids are skipped; when fewer than
    /// `minimumPostMs` remain, the bids not yet tried are `budget_exhausted` and the round ends unsold.
    public mutating func nextPost(atMs nowMs: Int64, remainingMs: Int, minimumPostMs: Int) -> Action {
        var next: Int
        switch state {
        case .bidding:
            preconditionFailure("nextPost before closeBidding")
        case .finished(let outcome):
            return .finish(outcome)
        case .closed:
            next = 0
        case .waterfall(_, let position):
            next = position
        }
        while next < ranking.count {
            let bid = ranking[next]
            if let closedAtMs, nowMs >= bid.expiresAtMs(closedAtMs: closedAtMs, defaultHoldS: defaultHoldS) {
                setReason(.expired, for: bid.buyerID, detail: "bid expired before the post")
                next += 1
                continue
            }
            guard remainingMs >= minimumPostMs else {
                for remaining in ranking[next...] {
                    setReason(.budgetExhausted, for: remaining.buyerID, detail: "\(remainingMs) ms left in the round")
                }
                return finish(.unsold, unreached: "not reached: \(max(0, remainingMs)) ms left in the round")
            }
            state = .waterfall(ranking: ranking, next: next)
            return .post(bid)
        }
        if waitingTiers?.isEmpty == false {
            // A tier needs time for its pings and then for a post.
            guard remainingMs >= 2 * minimumPostMs else {
                return finish(.unsold, unreached: "not reached: \(max(0, remainingMs)) ms left in the round")
            }
            state = .waterfall(ranking: ranking, next: next)
            return .pingNextTier
        }
        return finish(.unsold)
    }

    /// Records the result of the post the last `.post` asked for. Returns the outcome when the
    /// buyer accepted; nil means fall back with `nextPost`.
    @discardableResult
    public mutating func recordPost(_ result: PostResult, latencyUs: Int, buyerReason: BuyerReason? = nil) -> Outcome? {
        guard case .waterfall(let ranking, let position) = state else { return outcome }
        let bid = ranking[position]
        var attempt = PostAttempt(buyerID: bid.buyerID, price: bid.price, result: .sold, latencyUs: latencyUs)
        attempt.buyerReason = buyerReason
        switch result {
        case .accepted(let reference):
            attempt.reference = reference
            posts.append(attempt)
            setReason(.sold, for: bid.buyerID, detail: nil)
            let sale = Sale(bid: bid, payout: payoutRule.payout(forPrice: bid.price), reference: reference)
            for other in ranking where other.buyerID != bid.buyerID && entry(for: other.buyerID)?.reason == nil {
                setReason(.outbid, for: other.buyerID, detail: nil)
            }
            _ = finish(.sold(sale))
            return .sold(sale)
        case .rejected(let reason):
            attempt.result = .postRejected
            attempt.detail = reason
        case .failed(let detail):
            attempt.result = .postFailed
            attempt.detail = detail
        case .timedOut:
            attempt.result = .postTimeout
        }
        posts.append(attempt)
        setReason(attempt.result, for: bid.buyerID, detail: attempt.detail)
        state = .waterfall(ranking: ranking, next: position + 1)
        return nil
    }

    /// The buyer of the pending post could not be posted to (cap reached, bid expired); moves past it.
    public mutating func skipPost(reason: ReasonCode, detail: String? = nil) {
        guard case .waterfall(let ranking, let position) = state else { return }
        setReason(reason, for: ranking[position].buyerID, detail: detail)
        state = .waterfall(ranking: ranking, next: position + 1)
    }

    /// Ends the round unsold now (the seller gave up, the exchange is shutting down).
    public mutating func abandon(detail: String) -> Outcome {
        if case .finished(let outcome) = state { return outcome }
        if case .bidding = state { _ = closeBidding(atMs: 0, method: .auction) }
        for bid in ranking where entry(for: bid.buyerID)?.reason == nil {
            setReason(.budgetExhausted, for: bid.buyerID, detail: detail)
        }
        _ = finish(.unsold, unreached: "not reached: \(detail)")
        return .unsold
    }

    /// - Parameter unreached: why the tiers still waiting were not reached, when unsold.
    private mutating func finish(_ outcome: Outcome, unreached: String? = nil) -> Action {
        for bid in ranking where entry(for: bid.buyerID)?.reason == nil {
            setReason(.outbid, for: bid.buyerID, detail: nil)
        }
        if outcome.sale != nil {
            markWaitingTiers(detail: "a higher tier sold")
        } else if let unreached {
            markWaitingTiers(detail: unreached)
        }
        waitingTiers = waitingTiers.map { _ in [] }
        state = .finished(outcome)
        return .finish(outcome)
    }

    private mutating func setReason(_ reason: ReasonCode, for buyerID: String, detail: String?) {
        guard let index = entryIndex[buyerID] else { return }
        entries[index].reason = reason
        if let detail { entries[index].detail = detail }
    }
}
