import GavelCore
import Metrics

/// The exchange's metrics, created once: labels come from bounded sets (kinds, statuses, reason codes).
struct ExchangeMetrics: Sendable {
    private let rounds: [String: Counter]
    private let reasons: [ReasonCode: Counter]
    private let duration: Timer
    private let pingLatency: Timer
    let revenue: Counter
    let payout: Counter
    /// Rounds in the database whose post outcome is unknown (CONTRACT v2 `post_unknown`), read at start-up.
    let postUnknown: Gauge
    /// Round-starting requests shed with 503 `overloaded`.
    let shed: Counter
    /// The write-ahead of each post: from queueing its intent to its commit.
    let postIntent: Timer
    /// Rounds that may run at once now (the adaptive admission limit).
    let admissionLimit: Gauge

    init() {
        var rounds: [String: Counter] = [:]
        for kind in AuctionKind.allCases {
            for status in ["sold", "unsold", "bid", "no_bid", "routed", "unrouted"] {
                rounds["\(kind.rawValue)/\(status)"] = Counter(label: "gavel_rounds_total", dimensions: [("kind", kind.rawValue), ("status", status)])
            }
        }
        self.rounds = rounds
        self.reasons = Dictionary(uniqueKeysWithValues: ReasonCode.allCases.map {
            ($0, Counter(label: "gavel_buyer_reasons_total", dimensions: [("reason", $0.rawValue)]))
        })
        duration = Timer(label: "gavel_round_duration_seconds")
        pingLatency = Timer(label: "gavel_ping_latency_seconds")
        revenue = Counter(label: "gavel_revenue_units_total")
        payout = Counter(label: "gavel_payout_units_total")
        postUnknown = Gauge(label: "gavel_post_unknown_rounds")
        shed = Counter(label: "gavel_overload_shed_total")
        postIntent = Timer(label: "gavel_post_intent_seconds")
        admissionLimit = Gauge(label: "gavel_admission_limit")
    }

    func recordRound(kind: AuctionKind, status: String, durationUs: Int, entries: [AuctionRound.BuyerEntry]) {
        rounds["\(kind.rawValue)/\(status)"]?.increment()
        duration.recordMicroseconds(durationUs)
        for entry in entries {
            if let reason = entry.reason { reasons[reason]?.increment() }
            if entry.tmaxMs != nil, let latency = entry.latencyUs { pingLatency.recordMicroseconds(latency) }
        }
    }
}
