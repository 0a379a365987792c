import Foundation
import Synchronization

/// An open-loop load generator: request `i` of a step is due at `t0 + i / rate`, whatever the
/// answers to earlier requests, and its latency is measured from that due time.
///
/// Sending never waits for an answer, so a slow system cannot slow the arrivals down and hide its
/// own queueing (no coordinated omission). A dedicated thread (not Swift's cooperative pool, which
/// the answers keep busy) wakes at least every millisecond and starts every request that is due;
/// each request then runs as its own task. Past `maxInFlight` requests in flight, due requests are
/// dropped and counted as errors rather than delayed.
struct LoadGenerator: Sendable {
    /// One step: a fixed rate for a fixed time.
    struct Plan: Sendable {
        /// Requests per second.
        var rate: Double
        var seconds: Double
        /// How long to wait, after the last request was due, for the stragglers.
        var drainTimeoutMs: Int
        /// Names the step on the progress lines.
        var label: String
        /// Print a progress line to stderr once a second.
        var showProgress = true
    }

    /// What the dispatcher itself observed.
    struct DispatchReport: Sendable {
        /// The worst lateness of the dispatcher in starting a request (its own health, not the system's).
        var maxLateNs: UInt64
        /// False when requests were still in flight at the drain timeout (they count as unanswered).
        var drained: Bool
        /// From t0 until the last answer (or the drain timeout).
        var elapsedNs: UInt64
        /// Requests still in flight when the step was given up on.
        var abandoned: Int
    }

    var maxInFlight: Int

    /// Runs one step and returns once every request has finished or the drain timeout passed.
    /// `status` adds a few words to each progress line (e.g. the exchange's RSS).
    func run(_ plan: Plan, workload: some Workload, recorder: Recorder,
             status: @escaping @Sendable () -> String = { "" }) async -> DispatchReport {
        let inFlight = InFlightCounter()
        let dispatcher = Dispatcher(plan: plan, maxInFlight: maxInFlight, workload: workload, recorder: recorder,
                                    inFlight: inFlight, status: status)
        return await withCheckedContinuation { continuation in
            let thread = Thread {
                // Named from inside: on Linux, naming a Thread before it starts does not reach the OS thread.
                Thread.current.name = "load-dispatch"
                continuation.resume(returning: dispatcher.run())
            }
            thread.start()
        }
    }
}

/// Requests started and not yet finished.
final class InFlightCounter: Sendable {
    private let count = Atomic<Int>(0)
    var value: Int { count.load(ordering: .relaxed) }
    func increment() { count.add(1, ordering: .relaxed) }
    func decrement() { count.subtract(1, ordering: .relaxed) }
}

/// The dispatcher loop of one step; runs on its own thread.
private struct Dispatcher<W: Workload>: Sendable {
    let plan: LoadGenerator.Plan
    let maxInFlight: Int
    let workload: W
    let recorder: Recorder
    let inFlight: InFlightCounter
    let status: @Sendable () -> String

    /// The longest the loop sleeps, so requests go out in small batches and progress stays on time.
    static var tickNs: UInt64 { 1_000_000 }

    func run() -> LoadGenerator.DispatchReport {
        let t0 = recorder.configuration.startNs
        let total = Int((plan.rate * plan.seconds).rounded())
        let intervalNs = 1e9 / plan.rate
        var next = 0
        var maxLateNs: UInt64 = 0
        var nextProgressNs = t0 + 1_000_000_000
        let beforeStart = Monotonic.now()
        Monotonic.sleep(nanoseconds: t0 > beforeStart ? t0 - beforeStart : 0)

        while next < total {
            let now = Monotonic.now()
            while next < total {
                let intendedNs = t0 + UInt64(Double(next) * intervalNs)
                guard intendedNs <= now else { break }
                maxLateNs = max(maxLateNs, now - intendedNs)
                start(index: next, intendedNs: intendedNs)
                next += 1
            }
            if now >= nextProgressNs {
                progress(at: now)
                nextProgressNs += 1_000_000_000
            }
            if next < total {
                let dueNs = t0 + UInt64(Double(next) * intervalNs)
                let afterNow = Monotonic.now()
                Monotonic.sleep(nanoseconds: dueNs > afterNow ? min(dueNs - afterNow, Self.tickNs) : 0)
            }
        }

        // Drain: wait for the answers still out, printing progress as before.
        let drainDeadline = Monotonic.now() + UInt64(plan.drainTimeoutMs) * 1_000_000
        while inFlight.value > 0 && Monotonic.now() < drainDeadline {
            Monotonic.sleep(nanoseconds: Self.tickNs)
            let now = Monotonic.now()
            if now >= nextProgressNs {
                progress(at: now)
                nextProgressNs += 1_000_000_000
            }
        }
        let abandoned = inFlight.value
        return .init(maxLateNs: maxLateNs, drained: abandoned == 0, elapsedNs: Monotonic.now() - t0, abandoned: abandoned)
    }

    private func start(index: Int, intendedNs: UInt64) {
        guard inFlight.value < maxInFlight else {
            recorder.recordDropped()
            return
        }
        inFlight.increment()
        recorder.recordSent()
        let workload = workload, recorder = recorder, inFlight = inFlight
        Task {
            let outcome = await workload.perform(index)
            recorder.record(outcome, intendedNs: intendedNs, finishedNs: Monotonic.now())
            inFlight.decrement()
        }
    }

    private func progress(at now: UInt64) {
        guard plan.showProgress else { return }
        let interval = recorder.takeInterval()
        let totals = recorder.totals
        let elapsed = Double(now - recorder.configuration.startNs) / 1e9
        var line = "[\(plan.label) \(Int(plan.rate.rounded()))/s] " + String(format: "%3.0fs", elapsed)
            + " sent \(totals.sent) ok \(totals.ok) in-flight \(inFlight.value) | last 1s: \(interval.completed) done"
        if interval.latency.totalCount > 0 {
            line += String(format: ", p50 %.2f p99 %.2f max %.2f ms",
                           Double(interval.latency.valueAtPercentile(50)) / 1000,
                           Double(interval.latency.valueAtPercentile(99)) / 1000,
                           Double(interval.latency.max) / 1000)
        }
        line += " | errors \(totals.errors) overruns \(totals.overruns)"
        if totals.shed > 0 { line += " shed \(totals.shed) (last 1s \(interval.shed))" }
        let extra = status()
        if !extra.isEmpty { line += " | " + extra }
        Console.err(line)
    }
}
