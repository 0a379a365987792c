import Foundation
import GavelCore
import GavelPing
import GavelStore
import Logging
import Synchronization

/// The answer to `POST /v1/leads` and `POST /v1/posts`.
public struct LeadResult: Sendable, Hashable {
    public var auctionID: String
    public var sold: Bool
    /// What the seller earns; zero when unsold.
    public var payout: Money
}

/// The answer to `POST /v1/pings`.
public struct PingResult: Sendable, Hashable {
    public var pingID: String
    public var hasBid: Bool
    public var payout: Money
    public var expiresAtMs: Int64
}

/// Runs auction rounds: eligibility -> pings -> ranking -> post/fallback -> record.
///
/// Shared state lives behind a lock (`BuyerLedger`) or in actors (`HeldBids`); each round's own state is an
/// `AuctionRound` value owned by the task running it; I/O goes through the libcurl engine and the store.
public final class Exchange: Sendable {
    public struct Configuration: Sendable {
        /// Key for contact and caller hashes. Set `GAVEL_HASH_KEY` in production.
        public var hashKey: String
        /// A post is not started with less time than this left in the round.
        public var minimumPostMs: Int
        /// Time kept back from the budget for recording the round and answering.
        public var recordReserveMs: Int
        public var health: BuyerLedger.HealthPolicy
        /// Rounds (leads, pings, calls) running at once, at most; below it the limit adapts to how
        /// promptly rounds get their pings out (`AdmissionLimit`). Past it: 503 `overloaded`.
        public var maxRoundsInFlight: Int
        /// Pings whose bids are held for a post, at most; never evicted: new pings are refused instead.
        public var heldPingCapacity: Int
        /// Live calls at most; never evicted: new calls are refused instead.
        public var liveCallCapacity: Int
        /// Calendar time (expiry, cap windows, idempotency); tests pass a clock they move.
        public var clock: any WallClock = SystemWallClock()
        /// This node's name on a cluster: on its post intents and cap claims, in its logs.
        public var nodeID = "local"
        /// Cluster: how long past its round (or call) an unreleased cap claim of a stopped node is
        /// kept before it is swept back, and how old a post intent must be before any node settles it.
        public var claimGraceMs: Int64 = 30_000

        public init(hashKey: String = "gavel-development-hash-key", minimumPostMs: Int = 10, recordReserveMs: Int = 10,
                    health: BuyerLedger.HealthPolicy = .init(), maxRoundsInFlight: Int = 4_096, heldPingCapacity: Int = 100_000,
                    liveCallCapacity: Int = 100_000) {
            self.hashKey = hashKey
            self.minimumPostMs = minimumPostMs
            self.recordReserveMs = recordReserveMs
            self.health = health
            self.maxRoundsInFlight = maxRoundsInFlight
            self.heldPingCapacity = heldPingCapacity
            self.liveCallCapacity = liveCallCapacity
        }
    }

    /// The store, seen through the protocols the exchange needs (`StoreProtocols.swift`): the
    /// exchange never knows which backend it has. The web pages read the dashboard through it.
    public let store: any ExchangeStore
    public let ledger: BuyerLedger
    let engine: CurlMultiEngine
    let configuration: Configuration
    let hasher: ContactHasher
    let logger: Logger
    let metrics = ExchangeMetrics()
    private let currentConfig: Mutex<ExchangeConfig>
    private let rotations = Mutex<[String: Int]>([:])
    let held: HeldBids
    let unrecorded = UnrecordedRounds()
    let calls: CallSessions
    /// Rounds running now and how many may, for admission (`admitRound`).
    private let admission: Mutex<AdmissionLimit>
    let sellerLimits = RateLimiter()
    let pingLimits = RateLimiter()
    /// Tracking numbers handed to landing-page visitors (dynamic number insertion).
    public let tracking = TrackingDesk()
    /// Each buyer's chance of paying, for expected-value ranking (`Exchange+Estimates.swift`).
    public let estimates = BuyerEstimates()
    /// Buyers paused from the portal (`BuyerPauses.swift`).
    let portalPauses = BuyerPauses()
    /// State shared with other nodes on the same database; nil on a single node (`Exchange+Cluster.swift`).
    let cluster: (any ClusterState)?
    /// Nodes up, this one included, by the last heartbeat: rate limits are shared out among them.
    let liveNodes = Atomic<Int>(1)

    public init(config: ExchangeConfig, store: any ExchangeStore, engine: CurlMultiEngine,
                configuration: Configuration = Configuration(), cluster: (any ClusterState)? = nil,
                logger: Logger = Logger(label: "gavel.exchange")) {
        self.currentConfig = Mutex(config)
        self.store = store
        self.cluster = cluster
        self.engine = engine
        self.configuration = configuration
        self.hasher = ContactHasher(key: configuration.hashKey)
        self.ledger = BuyerLedger(healthPolicy: configuration.health)
        self.admission = Mutex(AdmissionLimit(settings: .init(maxLimit: configuration.maxRoundsInFlight)))
        self.held = HeldBids(capacity: configuration.heldPingCapacity)
        self.calls = CallSessions(capacity: configuration.liveCallCapacity)
        self.logger = logger
        // Buyer host names are resolved ahead, off the engine thread, and pinned per transfer.
        engine.prepare(urls: Exchange.buyerURLs(config))
    }

    /// Every URL the engine will be sent to: the buyers' ping and post endpoints.
    static func buyerURLs(_ config: ExchangeConfig) -> [String] {
        config.buyers.flatMap { [$0.ping?.url, $0.post?.url].compactMap { $0 } }
    }

    /// Restores cap counters and duplicate windows from the store.
    public func restoreState() async throws(StoreError) {
        // Before counters are read: unknown posts add to them.
        let unknown = try await store.resolveUnknownPosts(nowMs: nowMs)
        for intent in unknown {
            logger.warning("post outcome unknown after a restart; round is final as post_unknown", metadata: [
                "auction_id": "\(intent.roundID)", "buyer": "\(intent.buyerID)",
            ])
        }
        metrics.postUnknown.record(try await store.postUnknownCount())
        let counters = try await store.capCounters()
        let maxWindowDays = config.buyers.map(\.duplicateWindowDays).max() ?? 0
        let since = nowMs - Int64(maxWindowDays) * 86_400_000
        let sales = maxWindowDays > 0 ? try await store.salesWithContact(sinceMs: since) : []
        ledger.restore(counters: counters, sales: sales)
        restoreRotations(try await store.rotations())
        portalPauses.restore(try await store.portalPauses())
        // On a cluster, held pings and live calls stay in the database, for whichever node gets their next request.
        if cluster == nil { try await restoreLiveState() }
        try await restoreTrackingNumbers()
        try await restoreEstimates()
    }

    /// Stops the ping engine once transfers in flight end, then closes the store after its last commit.
    public func shutdown() {
        engine.shutdown()
        store.close()
    }

    /// Checks the seller's request rate: a 429 with the seconds to wait when over its limit.
    public func admit(_ seller: Seller) throws(RequestError) {
        guard let limit = seller.rateLimit.map(nodeShare(of:)), let wait = sellerLimits.take(seller.id, limit: limit) else { return }
        let seconds = max(1, Int(wait.rounded(.up)))
        throw RequestError(status: 429, code: "rate_limited",
                           message: "over \(Int(limit.perSecond)) requests/s; retry in \(seconds) s", retryAfterS: seconds)
    }

    /// Takes a place for a new round, or refuses it at once with 503 `overloaded` (CONTRACT v2):
    /// work that cannot start within its budget is shed before any is done (the HTTP edge calls
    /// this before it reads the body). Pair with `roundEnded`.
    public func admitRound() throws(ExchangeError) {
        let (admitted, limit) = admission.withLock { ($0.admit(), $0.limit) }
        guard admitted else {
            metrics.shed.increment()
            throw .overloaded("\(Int(limit)) rounds in flight")
        }
    }

    public func roundEnded() { admission.withLock { $0.release() } }

    /// How many rounds may run at once now (`gavel_admission_limit`).
    public var admissionLimit: Int { admission.withLock { Int($0.limit) } }

    /// A round got its pings out `startDelayMs` after it arrived (or the exchange's own overload
    /// made most of its buyers time out together): the admission limit adapts.
    func observeStart(delayMs: Double, budgetMs: Int) {
        let limit = admission.withLock { admission in
            admission.observe(startDelayMs: delayMs, budgetMs: budgetMs, nowMs: nowMs)
            return admission.limit
        }
        metrics.admissionLimit.record(limit)
    }

    /// A commit waited from `waitedSince`: on the node's own database (SQLite), one that took longer
    /// than the time each round keeps for it (`recordReserveMs`) and than a late start counts as
    /// congestion too. Past saturation rounds start on time but queue for the writer and the cores,
    /// so the start alone does not see it (LoadTests S5X: 884 answers 503 `storage_timeout` without
    /// this). Not on PostgreSQL: there a slow commit is contention among the nodes (one capped buyer's
    /// claims queue on its lock), not this node's overload, and cutting admission for it shed half
    /// of a cap race the nodes were answering in time (`scripts/cluster-test.sh`); a commit that
    /// misses its deadline counts on both. An on-time commit does not raise the limit:
    /// `observeStart` already does, once per round.
    func observeCommit(waitedSince: ContinuousClock.Instant, budgetMs: Int) {
        guard cluster == nil else { return }
        let (seconds, attoseconds) = waitedSince.duration(to: .now).components
        let waitedMs = Double(seconds) * 1000 + Double(attoseconds) / 1e15
        let late = waitedMs > Double(configuration.recordReserveMs)
            && admission.withLock { $0.isLate(startDelayMs: waitedMs, budgetMs: budgetMs) }
        if late { observeCongestion() }
    }

    /// Something the exchange's own overload causes happened to a round: the admission limit falls.
    func observeCongestion() {
        let limit = admission.withLock { admission in
            admission.observeCongestion(nowMs: nowMs)
            return admission.limit
        }
        metrics.admissionLimit.record(limit)
    }

    /// Now, by the exchange's clock.
    var nowMs: Int64 { configuration.clock.nowMs }
    var now: Date { configuration.clock.now }

    /// The config new rounds start with.
    public var config: ExchangeConfig { currentConfig.withLock { $0 } }

    /// Swaps the config; rounds in flight finish on the snapshot they started with.
    public func reload(_ config: ExchangeConfig) {
        currentConfig.withLock { $0 = config }
        engine.prepare(urls: Exchange.buyerURLs(config))
        estimates.republish(prior: config.outcomePrior)
    }

    // MARK: Seller entry points

    /// `POST /v1/leads`: a full lead, pinged, sold and recorded before this returns.
    public func runLead(_ submission: LeadSubmission, seller: Seller, arrival: ContinuousClock.Instant,
                        ticket: IdempotencyTicket? = nil) async throws(ExchangeError) -> LeadResult {
        let context = makeContext(submission, seller: seller, arrival: arrival, prefix: "auc_", ticket: ticket)
        var round = await bid(context)
        let (outcome, increments) = await post(&round, context: context)
        return try await finish(round: round, outcome: outcome, increments: increments, context: context)
    }

    /// `POST /v1/pings`: bids gathered and held; nothing is sold yet.
    public func runPing(_ submission: LeadSubmission, seller: Seller, arrival: ContinuousClock.Instant,
                        ticket: IdempotencyTicket? = nil) async throws(ExchangeError) -> PingResult {
        guard await held.hasRoom(nowMs: nowMs) else {
            metrics.shed.increment()
            throw .overloaded("\(held.capacity) pings held: no room for another")
        }
        let context = makeContext(submission, seller: seller, arrival: arrival, prefix: "png_", ticket: ticket)
        let round = await bid(context)
        let top = round.ranking.first
        let expiresAtMs = RankedBid.expiry(closedAtMs: round.closedAtMs ?? context.createdAtMs, holdS: top?.expiresInS ?? context.campaign.bidHoldS)
        let status = top == nil ? "no_bid" : "bid"
        let result = PingResult(
            pingID: context.auctionID, hasBid: top != nil,
            payout: top.map { context.campaign.payout.payout(forPrice: $0.price) } ?? .zero, expiresAtMs: expiresAtMs
        )
        let heldRound = HeldBids.HeldRound(round: round, context: context, expiresAtMs: expiresAtMs)
        var record = roundRecord(round, context: context, phase: .pinged, status: status, sale: nil, increments: [])
        record.answer = context.ticket?.answer(result.json, roundID: context.auctionID, atMs: nowMs)
        if top != nil { record.liveState = LiveSnapshots.held(heldRound) }
        do {
            try await persist(record, waitMs: context.storeWaitMs)
        } catch {
            // Kept for a retry: its answer (with the ping id) will be replayed, so the bids stay postable.
            if top != nil, cluster == nil, unrecorded.record(id: context.auctionID) != nil { await held.hold(heldRound, id: context.auctionID, nowMs: nowMs) }
            throw error
        }
        metrics.recordRound(kind: .lead, status: status, durationUs: record.durationUs, entries: round.entries)
        // On a cluster the database holds it (its record's live state), for a post on any node.
        if top != nil, cluster == nil { await held.hold(heldRound, id: context.auctionID, nowMs: nowMs) }
        logger.debug("ping round held", metadata: ["auction_id": "\(context.auctionID)", "status": "\(status)"])
        return result
    }

    /// `POST /v1/posts`: sells a held ping. A second post of the same ping returns the first result.
    public func runPost(
        pingID: String, lead: JSONObject?, contact: JSONObject, seller: Seller, arrival: ContinuousClock.Instant,
        ticket: IdempotencyTicket? = nil
    ) async throws(PostError) -> LeadResult {
        if let cluster {
            return try await runClusterPost(cluster, pingID: pingID, lead: lead, contact: contact, seller: seller, arrival: arrival, ticket: ticket)
        }
        let claim = await held.claim(id: pingID, sellerID: seller.id, nowMs: nowMs) { held in Exchange.leadMismatch(lead, held: held) }
        switch claim {
        case .done(.success(let result)):
            await storeAnswer(ticket, json: result.json)
            return result
        case .done(.failure(let error)):
            // The first post's commit failed: if it sold, the round is kept and its commit retried now.
            let kept: RoundRecord?
            do { kept = try await retryUnrecorded(roundID: pingID) } catch let retryError { throw .exchange(retryError) }
            guard let record = kept else {
                // Committed since by housekeeping: the database has the outcome.
                if let recorded = try? await recordedPostResult(pingID: pingID, seller: seller) { return recorded }
                throw .exchange(error)
            }
            let result = LeadResult(auctionID: pingID, sold: record.billable, payout: record.payout ?? .zero)
            await held.complete(id: pingID, sellerID: seller.id, result: .success(result), nowMs: nowMs)
            return result
        case .rejected(let problem):
            throw .request(problem)
        case .expired:
            throw .request(RequestError(status: 410, code: "ping_expired", message: "the bids of ping \(pingID) have expired", field: "ping_id"))
        case .unknown:
            let result = try await recordedPostResult(pingID: pingID, seller: seller)
            await storeAnswer(ticket, json: result.json)
            return result
        case .run(let held):
            do throws(PostError) {
                let result = try await postHeld(held, pingID: pingID, lead: lead, contact: contact, seller: seller, arrival: arrival, ticket: ticket)
                await self.held.complete(id: pingID, sellerID: seller.id, result: .success(result), nowMs: nowMs)
                return result
            } catch {
                // Repeats get the same 503: the round is not on the books, and it is not run twice.
                if case .exchange(let failure) = error {
                    await self.held.complete(id: pingID, sellerID: seller.id, result: .failure(failure), nowMs: nowMs)
                }
                throw error
            }
        }
    }

    /// The buyers bid on the pinged lead: the post may add fields, not change what they filtered on.
    static func leadMismatch(_ lead: JSONObject?, held: HeldBids.HeldRound) -> RequestError? {
        guard let lead else { return nil }
        for (key, value) in lead where held.context.lead[key] != nil && held.context.lead[key] != value {
            return .invalid("lead.\(key)", "differs from the pinged lead", code: "lead_mismatch")
        }
        return nil
    }

    /// Runs the post phase of a held ping this request claimed, and records it.
    func postHeld(
        _ held: HeldBids.HeldRound, pingID: String, lead: JSONObject?, contact: JSONObject, seller: Seller,
        arrival: ContinuousClock.Instant, ticket: IdempotencyTicket?
    ) async throws(PostError) -> LeadResult {
        var round = held.round
        let pinged = held.context
        var merged = pinged.lead
        for (key, value) in lead ?? JSONObject() { merged[key] = value }
        let context = RoundContext(
            auctionID: pingID, config: pinged.config, campaign: pinged.campaign, seller: seller,
            lead: merged, contact: contact, consent: pinged.consent, contactHash: hasher.hash(contact: contact),
            arrival: arrival, tmaxMs: pinged.campaign.tmaxMs, ticket: ticket, createdAtMs: nowMs, source: pinged.source
        )
        let (outcome, increments) = await post(&round, context: context)
        do {
            return try await finish(round: round, outcome: outcome, increments: increments, context: context)
        } catch {
            throw .exchange(error)
        }
    }

    public enum PostError: Error, Sendable {
        case request(RequestError)
        case exchange(ExchangeError)
    }

    /// A post for a ping no longer held in memory (after a restart, or an hour after its post):
    /// the recorded result when it was posted, else why it cannot be.
    func recordedPostResult(pingID: String, seller: Seller) async throws(PostError) -> LeadResult {
        let stored: StoredRound?
        do { stored = try await store.round(id: pingID) } catch { throw .exchange(.storage("\(error)")) }
        guard let stored, stored.sellerID == seller.id, stored.id.hasPrefix("png_") else {
            throw .request(RequestError(status: 404, code: "unknown_ping", message: "no ping \(pingID) for this seller", field: "ping_id"))
        }
        if stored.status == ReasonCode.postUnknown.rawValue {
            throw .request(RequestError(
                status: 409, code: "outcome_unknown",
                message: "the exchange stopped while posting ping \(pingID); the buyer may have the lead, so it will not be sold again",
                field: "ping_id"))
        }
        if stored.phase == RoundRecord.Phase.final.rawValue {
            return LeadResult(auctionID: pingID, sold: stored.status == "sold", payout: stored.payout ?? .zero)
        }
        let message = stored.status == "no_bid" ? "ping \(pingID) had no bid to post to" : "the bids of ping \(pingID) are no longer held"
        throw .request(RequestError(status: 410, code: "ping_expired", message: message, field: "ping_id"))
    }

    // MARK: The round

    private func makeContext(_ submission: LeadSubmission, seller: Seller, arrival: ContinuousClock.Instant, prefix: String,
                             ticket: IdempotencyTicket?) -> RoundContext {
        RoundContext(
            auctionID: AuctionID.make(prefix: prefix, nowMs: nowMs), config: config, campaign: submission.campaign,
            seller: seller, lead: submission.lead, contact: submission.contact, consent: submission.consent,
            contactHash: submission.contact.flatMap { hasher.hash(contact: $0) }, arrival: arrival, tmaxMs: submission.tmaxMs,
            ticket: ticket, createdAtMs: nowMs, source: submission.source
        )
    }

    /// Eligibility, then pings to every eligible buyer at once; returns the round with bidding closed.
    func bid(_ context: RoundContext, caller: JSONObject? = nil) async -> AuctionRound {
        let now = now
        let campaign = context.campaign
        let tiered = campaign.distribution == .waterfall
        let candidates = context.config.buyersByCampaign[campaign.id] ?? []
        let lead = Eligibility.Lead(fields: context.lead)
        var considered: [AuctionRound.Consideration] = []
        var staticallyEligible: [Buyer] = []
        for buyer in candidates {
            if let reason = Eligibility.exclusion(of: buyer, campaign: campaign, lead: lead, at: now,
                                                  isPaused: portalPauses.contains(buyer.id)) {
                considered.append(.excluded(buyerID: buyer.id, reason: reason))
            } else {
                staticallyEligible.append(buyer)
            }
        }
        let ledgerExclusions = staticallyEligible.isEmpty
            ? [:] : ledger.exclusions(for: staticallyEligible, contactHash: context.contactHash, at: now)
        var targets: [(buyer: Buyer, tmaxMs: Int)] = []
        let pingMs = RoundContext.milliseconds(until: context.pingDeadline)
        for buyer in staticallyEligible {
            let participant = AuctionRound.Participant(
                buyerID: buyer.id, floor: max(campaign.floor, buyer.floor), priority: buyer.priority, weight: buyer.weight,
                destination: buyer.destination, minDurationS: buyer.minDurationS)
            if let reason = ledgerExclusions[buyer.id] {
                considered.append(.excluded(buyerID: buyer.id, reason: reason))
            } else if !tiered, overPingRate(buyer) {  // a waterfall takes the token when the buyer's tier is reached
                considered.append(.excluded(buyerID: buyer.id, reason: .capped))
            } else if let price = buyer.fixedPrice {
                considered.append(.fixedPrice(participant, price: price))
            } else if let ping = buyer.ping {
                let tmax = min(ping.timeoutMs, pingMs)
                considered.append(.pinged(participant, tmaxMs: tmax))
                targets.append((buyer, tmax))
            }
        }
        var round = AuctionRound(id: context.auctionID, payoutRule: campaign.payout, defaultHoldS: campaign.bidHoldS,
                                 considered: considered, tiered: tiered)
        let (startSeconds, startAttoseconds) = context.started.duration(to: .now).components
        observeStart(delayMs: Double(startSeconds) * 1000 + Double(startAttoseconds) / 1e15, budgetMs: context.tmaxMs)
        if tiered {
            await pingTiers(&round, context: context, caller: caller)
        } else {
            await fanOut(targets, into: &round, context: context, caller: caller)
            closeBidding(&round, context: context)
        }
        return round
    }

    /// Pings `targets` as one batch and feeds their answers to the round; their failures count
    /// against their health.
    private func fanOut(_ targets: [(buyer: Buyer, tmaxMs: Int)], into round: inout AuctionRound, context: RoundContext,
                        caller: JSONObject?) async {
        let now = now
        let campaign = context.campaign
        if !targets.isEmpty {
            // Each buyer's codec writes its ping; native buyers share one body serialised once.
            var input = PingInput(auctionID: context.auctionID, campaign: campaign, lead: context.lead, caller: caller,
                                  consent: context.consent, source: context.source, tmaxMs: 0, nowMs: nowMs)
            if targets.contains(where: { $0.buyer.codec.isNative }) {
                input.nativeTemplate = BuyerProtocol.PingTemplate(
                    auctionID: context.auctionID, campaign: campaign, lead: context.lead, caller: caller, consent: context.consent)
            }
            let nowS = nowMs / 1000
            let isCall = campaign.kind == .call
            var locallyFailed = Set<String>()
            // One batch for the whole fan-out: each ping's deadline is the time its buyer has, so
            // the batch ends when every buyer answered or bidding closes, whichever is first.
            let requests = targets.compactMap { buyer, tmax in
                buyer.ping.map { ping in
                    input.tmaxMs = tmax
                    return (buyer, buyer.codec.codec.pingRequest(input, endpoint: ping)
                        .transfer(timeoutMs: tmax, signingSecret: buyer.signingSecret, nowS: nowS))
                }
            }
            let results = await engine.send(all: requests.map(\.1))
            for ((buyer, _), result) in zip(requests, results) {
                // The exchange's own overload is not the buyer's failure: keep it out of health.
                if case .failure(let error) = result, error.isLocal { locallyFailed.insert(buyer.id) }
                var (parsed, latency) = Exchange.interpretPing(result, codec: buyer.codec.codec, maxBid: campaign.maxBid)
                if isCall { parsed.answer = Exchange.checkCallBid(parsed.answer, buyer: buyer) }
                _ = round.receive(parsed.answer, from: buyer.id, latencyUs: latency)
                if parsed.buyerReason != nil || !parsed.kept.isEmpty {
                    round.noteAnswer(from: buyer.id, buyerReason: parsed.buyerReason, kept: parsed.kept)
                }
            }
            var failed: [String] = []
            var answered: [String] = []
            let sent = Set(requests.map { $0.0.id })
            let pinged = round.entries.filter { sent.contains($0.buyerID) && !locallyFailed.contains($0.buyerID) }
            // When most of a round's buyers time out together, the likelier cause is the exchange
            // (overloaded, or its network), not each buyer: backing them all off would turn an
            // overload into a collapse. Their timeouts then do not count; other failures still do.
            let timeouts = pinged.filter { $0.reason == .timeout }.count
            let exchangeSuspect = pinged.count >= 3 && timeouts * 2 >= pinged.count
            if exchangeSuspect { observeCongestion() }
            for entry in pinged {
                switch entry.reason {
                case .timeout? where exchangeSuspect: continue
                case .timeout?, .unreachable?, .badResponse?, .httpError?: failed.append(entry.buyerID)
                default: answered.append(entry.buyerID)
                }
            }
            ledger.recordHealth(failed: failed, answered: answered, at: now)
        }
    }

    /// Closes bidding and ranks the bids by the campaign's distribution method.
    private func closeBidding(_ round: inout AuctionRound, context: RoundContext) {
        let campaign = context.campaign
        _ = round.closeBidding(atMs: nowMs, method: campaign.distribution, rankBy: campaign.rankBy,
                               estimates: closingEstimates(round, context: context),
                               rotation: nextRotation(campaign.id), randomUnit: Double.random(in: 0..<1))
    }

    /// Waterfall: pings tier after tier, highest priority first, until one yields a bid, none is
    /// left, or too little time is. The first tier has the time until the ping deadline, like any
    /// round; each lower tier the campaign's ping share of the time then left (the deadline stays).
    private func pingTiers(_ round: inout AuctionRound, context: RoundContext, caller: JSONObject?) async {
        var pingMs = RoundContext.milliseconds(until: context.pingDeadline)
        while round.ranking.isEmpty {
            let remaining = RoundContext.milliseconds(until: context.deadline) - configuration.recordReserveMs
            guard case .pingNextTier = round.nextPost(atMs: nowMs, remainingMs: remaining, minimumPostMs: configuration.minimumPostMs)
            else { return }
            if round.closedAtMs != nil {
                pingMs = context.tierPingMs(remainingMs: remaining, minimumPostMs: configuration.minimumPostMs)
            }
            await pingNextTier(&round, context: context, caller: caller, pingMs: pingMs)
        }
    }

    /// Waterfall: enters the round's next tier and pings it, each buyer with at most `pingMs`; a
    /// buyer over its ping rate is `capped` (its token is taken only when its tier is reached).
    private func pingNextTier(_ round: inout AuctionRound, context: RoundContext, caller: JSONObject?, pingMs: Int) async {
        let config = context.config
        let tier = round.startNextTier(pingMs: pingMs) { buyerID in
            guard let buyer = config.buyer(id: buyerID) else { return .paused }
            return overPingRate(buyer) ? .capped : nil
        }
        let targets = tier.compactMap { target in config.buyer(id: target.buyerID).map { (buyer: $0, tmaxMs: target.tmaxMs) } }
        logger.debug("waterfall tier entered", metadata: [
            "auction_id": "\(context.auctionID)", "pinged": "\(targets.count)", "ping_ms": "\(pingMs)",
        ])
        await fanOut(targets, into: &round, context: context, caller: caller)
        closeBidding(&round, context: context)
    }

    /// Takes a ping from a buyer's ping rate limit; true when it has none left (`capped`).
    private func overPingRate(_ buyer: Buyer) -> Bool {
        guard buyer.ping != nil, let limit = buyer.pingRateLimit.map(nodeShare(of:)) else { return false }
        return pingLimits.take(buyer.id, limit: limit) != nil
    }

    /// Walks down the ranking: reserve caps, post, fall back on rejection, until sold or out of time.
    func post(_ round: inout AuctionRound, context: RoundContext) async -> (AuctionRound.Outcome, [CapIncrement]) {
        while true {
            let remaining = RoundContext.milliseconds(until: context.deadline) - configuration.recordReserveMs
            switch round.nextPost(atMs: nowMs, remainingMs: remaining, minimumPostMs: configuration.minimumPostMs) {
            case .finish(let outcome):
                return (outcome, [])
            case .pingNextTier:
                // Waterfall: every bid so far failed; the next tier gets its share of the time left.
                await pingNextTier(&round, context: context, caller: nil,
                                   pingMs: context.tierPingMs(remainingMs: remaining, minimumPostMs: configuration.minimumPostMs))
            case .waitForBids, .closeBidding:
                return (round.abandon(detail: "unexpected state"), [])
            case .post(let bid):
                guard let buyer = context.config.buyer(id: bid.buyerID) else {
                    round.skipPost(reason: .paused, detail: "buyer removed from config")
                    continue
                }
                // A bid given before the buyer paused (a held ping posted later) is not sold to it.
                if buyer.paused || portalPauses.contains(buyer.id) {
                    round.skipPost(reason: .paused, detail: "buyer paused since it bid")
                    continue
                }
                let reservation: BuyerLedger.Reservation
                switch await reserveSlot(buyer: buyer, price: bid.price, context: context, remainingMs: remaining) {
                case .success(let held): reservation = held
                case .failure(.capped):
                    round.skipPost(reason: .capped, detail: "cap reached before the post")
                    continue
                case .failure(.duplicate):
                    round.skipPost(reason: .duplicate, detail: "contact already sold to this buyer")
                    continue
                case .failure(.unavailable):
                    return (round.abandon(detail: "the exchange could not check the buyer's caps"), [])
                }
                // Write-ahead: the intent is committed before the post leaves, so a crash while the
                // buyer holds the lead turns into `post_unknown` at start-up, never into a resale.
                let intentStart = ContinuousClock.now
                do {
                    try await store.record(postIntent(bid: bid, reservation: reservation, context: context),
                                           waitingAtMost: .milliseconds(max(1, remaining)))
                    let (seconds, attoseconds) = intentStart.duration(to: .now).components
                    metrics.postIntent.recordNanoseconds(seconds * 1_000_000_000 + attoseconds / 1_000_000_000)
                } catch {
                    await releaseSlot(reservation, roundID: context.auctionID)
                    logger.error("post intent not recorded; round ends unsold", metadata: [
                        "auction_id": "\(context.auctionID)", "buyer": "\(bid.buyerID)", "error": "\(error)",
                    ])
                    return (round.abandon(detail: "the exchange could not record the post ahead of sending it"), [])
                }
                let result = await sendPost(bid: bid, buyer: buyer, round: round, context: context, remainingMs: remaining)
                recordOutcome(of: result.result, buyerID: bid.buyerID, context: context)
                if let outcome = round.recordPost(result.result, latencyUs: result.latencyUs, buyerReason: result.buyerReason) {
                    let increments = ledger.commit(reservation, at: now)
                    return (outcome, increments)
                }
                await releaseSlot(reservation, roundID: context.auctionID)
            }
        }
    }

    private func sendPost(bid: RankedBid, buyer: Buyer, round: AuctionRound, context: RoundContext, remainingMs: Int) async
        -> (result: AuctionRound.PostResult, latencyUs: Int, buyerReason: BuyerReason?) {
        guard let endpoint = buyer.post else { return (.failed(detail: "buyer has no post endpoint"), 0, nil) }
        let input = PostInput(
            auctionID: context.auctionID, campaign: context.campaign, bid: bid, lead: context.lead, contact: context.contact ?? JSONObject(),
            consent: context.consent, source: context.source, kept: round.entry(for: bid.buyerID)?.kept ?? [:],
            tmaxMs: remainingMs, nowMs: nowMs)
        let request = buyer.codec.codec.postRequest(input, endpoint: endpoint)
            .transfer(timeoutMs: min(endpoint.timeoutMs, remainingMs), signingSecret: buyer.signingSecret, nowS: nowMs / 1000, sendOnce: true)
        switch await engine.send(request) {
        case .success(let response):
            let answer = buyer.codec.codec.parsePost(status: response.status, body: response.body)
            return (answer.result, response.latencyUs, answer.buyerReason)
        case .failure(let error):
            return (error.isTimeout ? .timedOut : .failed(detail: error.description), error.latencyUs, nil)
        }
    }

    /// A call bid must name a valid destination (its own or the buyer's configured one).
    static func checkCallBid(_ answer: AuctionRound.PingAnswer, buyer: Buyer) -> AuctionRound.PingAnswer {
        guard case .bid(let price, let bidID, let expiresInS, let destination, let minDurationS) = answer else { return answer }
        guard let raw = destination ?? buyer.destination else {
            return .failed(.badResponse, detail: "call bid without a destination")
        }
        guard let normalized = PhoneNumber.destination(raw) else {
            return .failed(.badResponse, detail: "destination is neither a phone number nor a sip: URI")
        }
        return .bid(price: price, bidID: bidID, expiresInS: expiresInS, destination: normalized, minDurationS: minDurationS ?? buyer.minDurationS)
    }

    static func interpretPing(_ result: HTTPResult, codec: any BuyerCodec, maxBid: Money) -> (BidAnswer, Int) {
        switch result {
        case .success(let response):
            return (codec.parsePing(status: response.status, body: response.body, maxBid: maxBid), response.latencyUs)
        case .failure(let error):
            let reason: ReasonCode
            if error.isTimeout { reason = .timeout }
            else if error.isUnreachable { reason = .unreachable }
            else { reason = .badResponse }
            return (BidAnswer(.failed(reason, detail: error.description)), error.latencyUs)
        }
    }

    /// Records the finished round, then answers: a 200 means it is committed.
    private func finish(round: AuctionRound, outcome: AuctionRound.Outcome, increments: [CapIncrement], context: RoundContext) async throws(ExchangeError) -> LeadResult {
        let sale = outcome.sale
        let status = sale == nil ? "unsold" : "sold"
        let result = LeadResult(auctionID: context.auctionID, sold: sale != nil, payout: sale?.payout ?? .zero)
        var record = roundRecord(round, context: context, phase: .final, status: status, sale: sale, increments: increments)
        record.answer = context.ticket?.answer(result.json, roundID: context.auctionID, atMs: nowMs)
        try await persist(record, waitMs: context.storeWaitMs)
        metrics.recordRound(kind: context.campaign.kind, status: status, durationUs: record.durationUs, entries: round.entries)
        if let sale {
            metrics.revenue.increment(by: sale.price.units)
            metrics.payout.increment(by: sale.payout.units)
        }
        logger.debug("round finished", metadata: [
            "auction_id": "\(context.auctionID)", "status": "\(status)", "buyers": "\(round.entries.count)",
            "duration_us": "\(record.durationUs)",
        ])
        return result
    }

    /// Commits a round, waiting at most `waitMs`; a failure is logged and becomes the one 5xx the
    /// seller can get. A round that sold or carries an idempotent answer is kept in memory when its
    /// commit fails or is late, and committed again on a repeat or by the housekeeping loop.
    func persist(_ record: RoundRecord, waitMs: Int) async throws(ExchangeError) {
        var record = record
        record.rotation = rotationMark(campaignID: record.campaignID)
        let waitStarted = ContinuousClock.now
        do {
            try await store.record(record, waitingAtMost: .milliseconds(max(1, waitMs)))
            observeCommit(waitedSince: waitStarted, budgetMs: record.tmaxMs)
        } catch where error.isTimeout {
            // A commit that misses the answer's deadline is the exchange's own overload (the writer
            // starved of CPU, or queued behind more rounds than it can take): admit fewer rounds.
            observeCongestion()
            keepUnrecorded(record)
            logger.warning("round commit late; answered 503", metadata: ["auction_id": "\(record.id)", "wait_ms": "\(waitMs)"])
            throw .storageTimeout("\(error)")
        } catch {
            let kept = keepUnrecorded(record)
            logger.error("round not recorded", metadata: ["auction_id": "\(record.id)", "error": "\(error)", "kept": "\(kept)"])
            // A kept round will count: tell the seller its outcome is pending, not that nothing happened.
            throw kept ? .storageTimeout("\(error)") : .storage("\(error)")
        }
    }

    func roundRecord(_ round: AuctionRound, context: RoundContext, phase: RoundRecord.Phase, status: String,
                     sale: AuctionRound.Sale?, increments: [CapIncrement]) -> RoundRecord {
        var record = RoundRecord(
            id: context.auctionID, kind: context.campaign.kind, sellerID: context.seller.id, campaignID: context.campaign.id,
            phase: phase, status: status, createdAtMs: context.createdAtMs, tmaxMs: context.tmaxMs, durationUs: context.elapsedUs,
            winnerID: sale?.bid.buyerID, price: sale?.price, payout: sale?.payout, leadJSON: JSONValue.object(context.lead).serialized,
            contactJSON: context.contact.map { JSONValue.object($0).serialized },
            consentJSON: context.consent.map { JSONValue.object($0).serialized }, contactHash: sale == nil ? nil : context.contactHash,
            entries: round.entries, posts: round.posts, capIncrements: increments, billable: sale != nil && phase == .final
        )
        record.source = context.source
        return record
    }

    private func nextRotation(_ campaignID: String) -> Int {
        rotations.withLock { counters in
            defer { counters[campaignID, default: 0] &+= 1 }
            return counters[campaignID, default: 0]
        }
    }

    /// Round-robin campaigns: the rotation counter to write with a round of the campaign, so a
    /// restart goes on with the next turn (`restoreRotations`); nil for other campaigns.
    private func rotationMark(campaignID: String) -> Int? {
        guard config.campaigns[campaignID]?.distribution == .roundRobin else { return nil }
        return rotations.withLock { $0[campaignID] }
    }

    /// The rotation counters recorded before a restart (the store keeps the highest written).
    private func restoreRotations(_ recorded: [String: Int]) {
        rotations.withLock { counters in
            for (campaignID, next) in recorded { counters[campaignID] = max(counters[campaignID] ?? 0, next) }
        }
    }
}
