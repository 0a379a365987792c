/// A live call after its auction, as a state machine: routed to the best bid whose buyer takes it,
/// connected, completed (a conversion when it lasted the bid's minimum); a failed transfer moves
/// the caller to the next still-valid bid.
///
/// Like `AuctionRound` it does no I/O and reads no clock. The runner reserves and frees buyers'
/// slots, records the call and answers; this value decides what happens and keeps the history.
/// It is `Codable`, so a live call survives a restart of the exchange.
public struct CallLifecycle: Sendable, Codable {
    /// How a call ended.
    public enum Ending: String, Sendable, Codable {
        case unrouted
        case converted
        case notConverted = "not_converted"
        case abandoned
        /// The caller hung up before a transfer connected: nothing is billed.
        case hungUp = "hung_up"
    }

    /// What the runner does next while routing.
    public enum RouteAction: Sendable, Hashable {
        /// Reserve a slot for this bid's buyer, then call `reserved(atMs:)` or `denied(_:detail:)`.
        case reserve(RankedBid)
        /// No valid bid is left: the call has ended unrouted.
        case unrouted
    }

    /// Why an event does not fit the call now.
    public struct Rejection: Error, Sendable, Hashable {
        public var code: String
        public var message: String
    }

    private enum State: Sendable, Codable {
        case routing
        case reserving(RankedBid)
        case routed(RankedBid)
        case connected(RankedBid)
        case ended(Ending, RankedBid?)
    }

    public private(set) var round: AuctionRound
    public private(set) var events: [CallEventRecord] = []
    /// Minimum billable seconds for a bid that names none.
    public let defaultMinDurationS: Int
    private var state: State = .routing

    /// `round` has its bidding closed and its ranking made.
    public init(round: AuctionRound, defaultMinDurationS: Int) {
        self.round = round
        self.defaultMinDurationS = defaultMinDurationS
    }

    /// The bid the caller is sent to (or was, once ended).
    public var current: RankedBid? {
        switch state {
        case .routing: return nil
        case .reserving(let bid), .routed(let bid), .connected(let bid): return bid
        case .ended(_, let bid): return bid
        }
    }

    /// Whether the call still holds a buyer's slot.
    public var isLive: Bool {
        switch state {
        case .routed, .connected: return true
        default: return false
        }
    }

    public var ending: Ending? { if case .ended(let ending, _) = state { return ending } else { return nil } }

    /// The round status recorded: `routed`, `connected`, or how it ended.
    public var status: String {
        switch state {
        case .routing, .reserving, .routed: return "routed"
        case .connected: return "connected"
        case .ended(let ending, _): return ending.rawValue
        }
    }

    /// The minimum duration of the current bid.
    public var minimumDurationS: Int { current?.minDurationS ?? defaultMinDurationS }

    // MARK: Routing

    /// The next step of routing: the first unexpired bid to reserve, or the end.
    public mutating func nextRoute(atMs nowMs: Int64) -> RouteAction {
        guard case .routing = state else { return .unrouted }
        // A caller waits on the line, but routing is a decision, not a post: only bid expiry limits it.
        while case .post(let bid) = round.nextPost(atMs: nowMs, remainingMs: Int.max / 2, minimumPostMs: 0) {
            guard bid.destination != nil else {
                round.skipPost(reason: .badResponse, detail: "no destination to route to")
                continue
            }
            state = .reserving(bid)
            return .reserve(bid)
        }
        events.append(CallEventRecord(type: "unrouted", buyerID: nil, atMs: nowMs, detail: "no valid bid with a free buyer"))
        state = .ended(.unrouted, nil)
        return .unrouted
    }

    /// The buyer's slot is held: the caller goes to the reserved bid.
    public mutating func reserved(atMs nowMs: Int64) {
        guard case .reserving(let bid) = state else { return }
        events.append(CallEventRecord(type: "routed", buyerID: bid.buyerID, atMs: nowMs, detail: bid.destination))
        state = .routed(bid)
    }

    /// The buyer cannot take the call (`capped`, `duplicate`, `paused`): routing goes on.
    public mutating func denied(_ reason: ReasonCode, detail: String) {
        guard case .reserving = state else { return }
        round.skipPost(reason: reason, detail: detail)
        state = .routing
    }

    // MARK: Events

    /// The transfer connected. A repeat is accepted and changes nothing.
    public mutating func connect(atMs nowMs: Int64) -> Result<Void, Rejection> {
        switch state {
        case .routed(let bid):
            round.recordPost(.accepted(reference: nil), latencyUs: 0)
            events.append(CallEventRecord(type: "connected", buyerID: bid.buyerID, atMs: nowMs))
            state = .connected(bid)
            return .success(())
        case .connected:
            return .success(())
        default:
            return .failure(Self.notLive)
        }
    }

    /// The transfer failed: the bid's slot is to be freed (returned), and routing goes on with `nextRoute`.
    public mutating func fail(atMs nowMs: Int64, detail: String?) -> Result<RankedBid, Rejection> {
        switch state {
        case .routed(let bid):
            round.recordPost(.failed(detail: "transfer failed" + (detail.map { ": \($0)" } ?? "")), latencyUs: 0)
            events.append(CallEventRecord(type: "failed", buyerID: bid.buyerID, atMs: nowMs, detail: detail))
            state = .routing
            return .success(bid)
        case .connected:
            return .failure(Rejection(code: "call_connected", message: "a connected call can only complete"))
        default:
            return .failure(Self.notLive)
        }
    }

    /// The call ended after `durationS`: a conversion when it reached the bid's minimum.
    /// Returns the bid whose slot is to be freed and whether it converted.
    public mutating func complete(atMs nowMs: Int64, durationS: Int, recordingURL: String?) -> Result<(RankedBid, converted: Bool), Rejection> {
        let bid: RankedBid
        switch state {
        case .routed(let routed):
            round.recordPost(.accepted(reference: nil), latencyUs: 0)
            bid = routed
        case .connected(let connected):
            bid = connected
        default:
            return .failure(Self.notLive)
        }
        let minimum = bid.minDurationS ?? defaultMinDurationS
        let converted = durationS >= minimum
        if !converted {
            round.overrideReason(.shortCall, for: bid.buyerID, detail: "\(durationS) s, below the \(minimum) s minimum")
        }
        events.append(CallEventRecord(type: "completed", buyerID: bid.buyerID, atMs: nowMs, durationS: durationS,
                                      recordingURL: recordingURL, detail: converted ? "converted" : "not converted"))
        state = .ended(converted ? .converted : .notConverted, bid)
        return .success((bid, converted))
    }

    /// The caller hung up while a transfer was ringing or had failed (a provider's `canceled`, or a
    /// failed dial with the caller gone): the call ends unbilled and its slot is freed.
    public mutating func hangUp(atMs nowMs: Int64, detail: String?) -> Result<RankedBid?, Rejection> {
        switch state {
        case .routed(let bid):
            round.recordPost(.failed(detail: "caller hung up" + (detail.map { ": \($0)" } ?? "")), latencyUs: 0)
            events.append(CallEventRecord(type: "hung_up", buyerID: bid.buyerID, atMs: nowMs, detail: detail))
            state = .ended(.hungUp, bid)
            return .success(bid)
        case .routing:
            events.append(CallEventRecord(type: "hung_up", buyerID: nil, atMs: nowMs, detail: detail))
            state = .ended(.hungUp, nil)
            return .success(nil)
        case .connected:
            return .failure(Rejection(code: "call_connected", message: "a connected call can only complete"))
        default:
            return .failure(Self.notLive)
        }
    }

    /// No `completed` came within the campaign's longest call: the call ends and its slot is freed.
    public mutating func abandon(atMs nowMs: Int64, maxCallS: Int) -> RankedBid? {
        guard isLive, let bid = current else { return nil }
        round.overrideReason(.postTimeout, for: bid.buyerID, detail: "no call event within max_call_s")
        events.append(CallEventRecord(type: "released", buyerID: bid.buyerID, atMs: nowMs,
                                      detail: "no completed event within \(maxCallS) s"))
        state = .ended(.abandoned, bid)
        return bid
    }

    private static let notLive = Rejection(code: "call_ended", message: "the call is not live")
}
