import Histogram
import Synchronization

/// Everything measured during one step, shared by the request tasks that finish concurrently.
///
/// Latencies are microseconds from each request's *intended* start (the schedule), so time a request
/// spent waiting for an overloaded system, or for the generator itself, is counted, never hidden.
final class Recorder: Sendable {
    /// Values are microseconds; anything past ten minutes is clamped to ten minutes.
    static let highestTrackableUs: UInt64 = 600_000_000
    /// Completions are counted per bucket of this many nanoseconds, to compute the achieved rate.
    static let bucketNs: UInt64 = 100_000_000
    /// Past saturation an admitted round must still be answered within its budget plus this (issue 8).
    static let graceMs = 5

    struct Configuration: Sendable {
        /// The step's t0: request `i` is due at `startNs + i / rate`.
        var startNs: UInt64
        /// The round budget; answers later than this are overruns.
        var tmaxMs: Int
        /// Length of the sub-windows whose latency is kept apart (soak drift); nil for none.
        var windowNs: UInt64?
        /// How many auction ids to keep (uniform reservoir sample) for the read-back.
        var sampleSize: Int
    }

    /// An auction id kept for the read-back, with what the seller was told.
    struct Sampled: Sendable, Codable {
        var auctionID: String
        var sold: Bool
    }

    /// The counters of everything recorded so far.
    struct Totals: Sendable {
        var scheduled = 0
        var sent = 0
        var ok = 0
        var sold = 0
        /// Calls among `sold` (routed calls: they transfer, no buyer post is counted).
        var soldCalls = 0
        var unsold = 0
        var errors = 0
        var errorKinds: [String: Int] = [:]
        /// Refused at once with 503 `overloaded`; neither answered 200 nor an error.
        var shed = 0
        var overruns = 0
        /// Answered 200 within the budget plus `graceMs`.
        var withinGrace = 0
        var pings = 0
        var failedPings = 0
    }

    /// The last second, for the progress line.
    struct Interval: Sendable {
        var completed = 0
        var errors = 0
        var shed = 0
        var latency: Histogram<UInt64> = Recorder.makeHistogram()
    }

    /// The finished step: histograms, counters, samples.
    struct Measurements: Sendable {
        var totals: Totals
        var latency: Histogram<UInt64>
        var overrun: Histogram<UInt64>
        var windows: [Histogram<UInt64>]
        var completionBuckets: [Int]
        /// Time to the 503 of each shed request, and shed answers per bucket (the shed rate).
        var shedLatency: Histogram<UInt64>
        var shedBuckets: [Int]
        var sample: [Sampled]
    }

    private struct State: Sendable {
        var totals = Totals()
        var latency = Recorder.makeHistogram()
        var overrun = Recorder.makeHistogram()
        var interval = Interval()
        var windows: [Histogram<UInt64>] = []
        var completionBuckets: [Int] = []
        var shedLatency = Recorder.makeHistogram()
        var shedBuckets: [Int] = []
        var sample: [Sampled] = []
        var sampleSeen = 0
        var random = SystemRandomNumberGenerator()
    }

    let configuration: Configuration
    private let state = Mutex(State())

    init(configuration: Configuration) {
        self.configuration = configuration
    }

    static func makeHistogram() -> Histogram<UInt64> {
        Histogram<UInt64>(lowestDiscernibleValue: 1, highestTrackableValue: highestTrackableUs, numberOfSignificantValueDigits: .three)
    }

    /// A request was handed to the workload.
    func recordSent() {
        state.withLock { $0.totals.scheduled += 1; $0.totals.sent += 1 }
    }

    /// A request was due but not sent because too many were in flight: an error, never a silent skip.
    func recordDropped() {
        state.withLock { state in
            state.totals.scheduled += 1
            state.totals.errors += 1
            state.totals.errorKinds["dropped_in_flight_cap", default: 0] += 1
            state.interval.errors += 1
        }
    }

    /// A request finished at `finishedNs`; it was due at `intendedNs`.
    func record(_ outcome: Outcome, intendedNs: UInt64, finishedNs: UInt64) {
        let latencyUs = min(finishedNs > intendedNs ? (finishedNs - intendedNs) / 1000 : 0, Self.highestTrackableUs)
        let tmaxUs = UInt64(configuration.tmaxMs) * 1000
        let graceUs = tmaxUs + UInt64(Self.graceMs) * 1000
        let bucket = finishedNs >= configuration.startNs ? Int((finishedNs - configuration.startNs) / Self.bucketNs) : 0
        let window = configuration.windowNs.map { Int((intendedNs - configuration.startNs) / $0) }
        state.withLock { state in
            state.interval.completed += 1
            state.totals.pings += outcome.pings ?? 0
            state.totals.failedPings += outcome.failedPings
            let sold: Bool
            switch outcome.status {
            case .failed(let label):
                state.totals.errors += 1
                state.totals.errorKinds[label, default: 0] += 1
                state.interval.errors += 1
                return
            case .shed:
                state.totals.shed += 1
                state.interval.shed += 1
                state.shedLatency.record(latencyUs)
                Self.count(bucket, in: &state.shedBuckets)
                return
            case .sold:
                state.totals.sold += 1
                if outcome.auctionID?.hasPrefix("call_") == true { state.totals.soldCalls += 1 }
                sold = true
            case .unsold:
                state.totals.unsold += 1
                sold = false
            }
            state.totals.ok += 1
            state.latency.record(latencyUs)
            state.interval.latency.record(latencyUs)
            state.overrun.record(latencyUs > tmaxUs ? latencyUs - tmaxUs : 0)
            if latencyUs > tmaxUs { state.totals.overruns += 1 }
            if latencyUs <= graceUs { state.totals.withinGrace += 1 }
            Self.count(bucket, in: &state.completionBuckets)
            if let window {
                while state.windows.count <= window { state.windows.append(Self.makeHistogram()) }
                state.windows[window].record(latencyUs)
            }
            if let auctionID = outcome.auctionID { Self.offer(Sampled(auctionID: auctionID, sold: sold), to: &state, size: configuration.sampleSize) }
        }
    }

    private static func count(_ bucket: Int, in buckets: inout [Int]) {
        if bucket >= buckets.count { buckets.append(contentsOf: repeatElement(0, count: bucket - buckets.count + 1)) }
        buckets[bucket] += 1
    }

    /// Reservoir sampling (algorithm R): every id has the same chance to be kept.
    private static func offer(_ item: Sampled, to state: inout State, size: Int) {
        guard size > 0 else { return }
        state.sampleSeen += 1
        if state.sample.count < size {
            state.sample.append(item)
        } else {
            let slot = Int.random(in: 0..<state.sampleSeen, using: &state.random)
            if slot < size { state.sample[slot] = item }
        }
    }

    /// The counters so far (cheap).
    var totals: Totals { state.withLock { $0.totals } }

    /// The last interval's figures, and a fresh interval.
    func takeInterval() -> Interval {
        state.withLock { state in
            defer { state.interval = Interval() }
            return state.interval
        }
    }

    /// Everything recorded.
    func measurements() -> Measurements {
        state.withLock { state in
            Measurements(totals: state.totals, latency: state.latency, overrun: state.overrun, windows: state.windows,
                         completionBuckets: state.completionBuckets, shedLatency: state.shedLatency, shedBuckets: state.shedBuckets,
                         sample: state.sample)
        }
    }
}
