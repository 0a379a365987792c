import Histogram

/// Percentiles of a latency histogram, in milliseconds.
struct LatencySummary: Codable, Sendable {
    var count: Int
    var p50: Double
    var p90: Double
    var p99: Double
    var p999: Double
    var max: Double
    var mean: Double

    /// From a histogram of microseconds.
    init(_ histogram: Histogram<UInt64>) {
        func ms(_ us: UInt64) -> Double { Double(us) / 1000 }
        count = Int(histogram.totalCount)
        guard count > 0 else {
            (p50, p90, p99, p999, max, mean) = (0, 0, 0, 0, 0, 0)
            return
        }
        p50 = ms(histogram.valueAtPercentile(50))
        p90 = ms(histogram.valueAtPercentile(90))
        p99 = ms(histogram.valueAtPercentile(99))
        p999 = ms(histogram.valueAtPercentile(99.9))
        max = ms(histogram.max)
        mean = histogram.mean.rounded() / 1000
    }
}

/// One sub-window of a step (soak drift): latency of the requests due in it.
struct WindowResult: Codable, Sendable {
    var startS: Double
    var seconds: Double
    var latency: LatencySummary
    /// The watched process's RSS at the end of the window.
    var rssKiB: Int?
}

/// The watched process's resident set over a step, in KiB.
struct RSSResult: Codable, Sendable {
    var startKiB: Int
    var endKiB: Int
    var maxKiB: Int
}

/// A functional check: passes or fails, never on timing.
struct Check: Codable, Sendable {
    var name: String
    var passed: Bool
    var detail: String
}

/// What the exchange recorded, read back for a sample of the step's auctions.
struct ReadbackResult: Codable, Sendable {
    /// Auctions looked up.
    var checked: Int
    /// Answered 200 by the seller API but not found by `GET /v1/auctions/{id}`.
    var lost: Int
    /// Found, but not as the seller was told (status, buyers considered, reasons).
    var mismatched: Int
    /// The first few problems, for the report.
    var problems: [String]
    /// The exchange's own `duration_ms` of each round (arrival to record, before the commit).
    var exchangeDuration: LatencySummary?
    /// `duration_ms` less the slowest ping answer and the posts: the exchange's own work within a round.
    var exchangeOverhead: LatencySummary?
    /// The slowest ping answer of each round as the exchange timed it (send to last byte): the buyers'
    /// own time plus the fleet's and libcurl's delays.
    var slowestPing: LatencySummary?
}

/// One step: a fixed rate for a fixed time.
struct StepResult: Codable, Sendable {
    var targetRate: Double
    var seconds: Double
    /// Requests due; `sent` of them went out, the rest were dropped at the in-flight cap.
    var scheduled: Int
    var sent: Int
    /// Requests answered 200 with a valid body: sold + unsold.
    var ok: Int
    var sold: Int
    /// Calls among `sold` (their TwiML dialled a buyer); nil in results written before calls existed.
    var soldCalls: Int?
    var unsold: Int
    var errors: Int
    var errorKinds: [String: Int]
    /// Requests refused at once with 503 `overloaded` (shed by the exchange's admission limit): not
    /// answered 200, not errors. Nil in results written before shed answers were told apart (they
    /// were `http_503` errors then).
    var shed: Int?
    /// Shed answers per second, counted like `achievedRate`.
    var shedRate: Double?
    /// From each shed request's intended start to its 503: "at once" means a few milliseconds.
    var shedLatency: LatencySummary?
    /// Answers 200 within the budget plus `graceMs` (issue 8: an admitted round is answered within
    /// its budget + 5 ms, even past saturation).
    var withinGrace: Int?
    var graceMs: Int?
    /// Shed answers sampled with their headers (`ShedProbe`), when any were shed.
    var shedProbe: ShedProbeResult?
    /// Answered requests per second, counted by completion time over the steady part of the step.
    var achievedRate: Double
    /// From each request's intended start to its answer, answered (200) requests only.
    var latency: LatencySummary
    /// Answers later than the budget (`tmax_ms`).
    var overruns: Int
    /// How far past the budget, over every answered request (0 for those within it).
    var overrun: LatencySummary
    /// Buyer pings per second during the step (fleet counters, else the workload's own count).
    var pingsPerSecond: Double?
    var pingsPerAuction: Double?
    /// Raw fan-out: pings that got no usable answer.
    var failedPings: Int?
    /// The fleet's counters over the step (everything, including the drain).
    var fleet: FleetCounters?
    /// `gavel_rounds_total` over the step.
    var exchangeRounds: Int?
    var readback: ReadbackResult?
    var rss: RSSResult?
    /// CPU use of the exchange, the fleet and the generator during the step (schedule and drain).
    var cpu: CPUShare?
    /// The exchange's threads per answered auction: CPU and context switches, by role.
    var threads: [ThreadShare]?
    var windows: [WindowResult]
    /// The dispatcher's worst lateness in starting a request (the generator's own health).
    var dispatcherMaxLateMs: Double
    var saturated: Bool
    var saturationReasons: [String]
    var checks: [Check]

    /// Share of the answered (admitted) requests answered within the budget plus `graceMs`, in percent.
    var withinGracePercent: Double? {
        guard let withinGrace, ok > 0 else { return nil }
        return Double(withinGrace) * 100 / Double(ok)
    }

    /// Sold share of answered requests, in percent.
    var soldPercent: Double { ok == 0 ? 0 : Double(sold) * 100 / Double(ok) }
    var unsoldPercent: Double { ok == 0 ? 0 : Double(unsold) * 100 / Double(ok) }
}

/// One invocation of `gavel-load leads` or `gavel-load raw`: its settings and its steps.
struct RunResult: Codable, Sendable {
    var tool = "gavel-load"
    var mode: String
    var scenario: String?
    var label: String
    var startedAt: String
    var command: [String]
    var machine: MachineInfo
    var target: String
    var campaign: String?
    var tmaxMs: Int
    var buyers: Int?
    var mix: [String: Double]
    var maxInFlight: Int
    /// Milliseconds of the buyers' own time in every round (S0: 10), for "added latency".
    var buyerTimeMs: Double?
    var warmupSeconds: Double
    var steps: [StepResult]
    /// The achieved rate of the best step that did not saturate (step search only).
    var sustainedRate: Double?
    var sustainedPingsPerSecond: Double?
    /// The highest achieved rate of any step, saturated or not.
    var peakRate: Double?
    var peakPingsPerSecond: Double?
    var checks: [Check]
}
