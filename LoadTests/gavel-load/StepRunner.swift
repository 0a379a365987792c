import Foundation

/// How a run steps through its rates, and what it measures and checks in each step.
struct StepSettings: Sendable {
    var label: String
    /// Rates to run, in order (requests per second).
    var rates: [Double]
    var stepSeconds: Double
    /// Unrecorded traffic before the first step, at the first rate: opens connections, warms caches.
    var warmupSeconds: Double
    /// Stop at the first saturated step (after refining).
    var untilSaturated: Bool
    /// After a saturated step, this many extra steps bisect (geometrically) between it and the last good one.
    var refine: Int
    var pauseSeconds: Double
    var maxInFlight: Int
    var tmaxMs: Int
    var clientTimeoutMs: Int
    /// Keep latency apart per window of this many seconds (soak drift); nil for none.
    var windowSeconds: Double?
    /// Auctions per step read back through the seller API; 0 for none.
    var readbackSize: Int
    /// Run the functional checks (smoke) and print them.
    var verify: Bool
    /// The step must shed rounds (503 `overloaded`): a functional check of the overload step.
    var expectShed = false
    var showProgress: Bool
    /// Saturated when the achieved rate falls below this share of the target…
    var minAchievedShare = 0.95
    /// …or more than this share of requests fail, or p99 exceeds the budget.
    var maxErrorShare = 0.01
}

/// Runs the steps of one invocation: warm-up, then each rate, with probes before and after.
struct StepRunner<W: Workload>: Sendable {
    var settings: StepSettings
    var workload: W
    var probes: Probes
    /// Reads auctions back (lead mode); nil in raw mode.
    var readback: Readback?
    /// Raw mode: the pings each request sends, for the counts check.
    var pingsPerRequest: Int?
    /// Lead mode: the pings every auction should cause when the exchange is healthy (every buyer);
    /// fewer means buyers were backed off as unhealthy, which marks the step saturated.
    var expectedPingsPerAuction: Int?
    /// Prints each step as it completes.
    var onStep: @Sendable (StepResult) -> Void = { _ in }

    func run() async -> [StepResult] {
        let generator = LoadGenerator(maxInFlight: settings.maxInFlight)
        if settings.warmupSeconds > 0, let first = settings.rates.first {
            let recorder = Recorder(configuration: .init(startNs: Monotonic.now() + 5_000_000, tmaxMs: settings.tmaxMs,
                                                         windowNs: nil, sampleSize: 0))
            let plan = LoadGenerator.Plan(rate: first, seconds: settings.warmupSeconds, drainTimeoutMs: settings.clientTimeoutMs + 2000,
                                          label: settings.label + " warm-up", showProgress: settings.showProgress)
            _ = await generator.run(plan, workload: workload, recorder: recorder)
            await pause()
        }

        var results: [StepResult] = []
        var lastGood: Double?
        for rate in settings.rates {
            let result = await step(rate: rate, generator: generator)
            results.append(result)
            guard settings.untilSaturated && result.saturated else {
                if !result.saturated { lastGood = rate }
                await pause()
                continue
            }
            var low = lastGood
            var high = rate
            for _ in 0..<settings.refine {
                guard let below = low else { break }
                let middle = Self.roundRate((below * high).squareRoot())
                guard middle > below && middle < high else { break }
                await pause()
                let refined = await step(rate: middle, generator: generator)
                results.append(refined)
                if refined.saturated { high = middle } else { low = middle }
            }
            break
        }
        return results.sorted { $0.targetRate < $1.targetRate }
    }

    /// A rate rounded to a readable value: tens below 1,000, fifties above.
    static func roundRate(_ rate: Double) -> Double {
        let unit = rate < 1000 ? 10.0 : 50.0
        return (rate / unit).rounded() * unit
    }

    private func pause() async {
        if settings.pauseSeconds > 0 { try? await Task.sleep(for: .seconds(settings.pauseSeconds)) }
    }

    private func step(rate: Double, generator: LoadGenerator) async -> StepResult {
        let fleetBefore = await probes.fleet()
        let roundsBefore = await probes.exchangeRounds()

        let startNs = Monotonic.now() + 5_000_000
        let windowNs = settings.windowSeconds.map { UInt64($0 * 1e9) }
        let recorder = Recorder(configuration: .init(startNs: startNs, tmaxMs: settings.tmaxMs, windowNs: windowNs,
                                                     sampleSize: settings.readbackSize))
        let sampler = probes.watchPID.map { RSSSampler(pid: $0, startNs: startNs) }
        sampler?.start()
        let cpuBefore = CPUReading.take(exchange: probes.watchPID, fleet: probes.fleetPID)
        let threadsBefore = probes.watchPID.map(ThreadReading.take(pid:))
        let plan = LoadGenerator.Plan(rate: rate, seconds: settings.stepSeconds, drainTimeoutMs: settings.clientTimeoutMs + 2000,
                                      label: settings.label, showProgress: settings.showProgress)
        // The shed probe samples headers beside the schedule, only while the generator sees rounds shed.
        let probeEndNs = startNs + UInt64(settings.stepSeconds * 1e9)
        async let probed = workload.shedProbe?.run(recorder: recorder, untilNs: probeEndNs)
        let report = await generator.run(plan, workload: workload, recorder: recorder) {
            sampler?.latestKiB.map { String(format: "RSS %.1f MiB", Double($0) / 1024) } ?? ""
        }
        let shedProbe = await probed
        sampler?.stop()
        let cpu = CPUReading.take(exchange: probes.watchPID, fleet: probes.fleetPID).share(since: cpuBefore)
        let threadsAfter = probes.watchPID.map(ThreadReading.take(pid:))

        let fleetAfter = await probes.fleet()
        let roundsAfter = await probes.exchangeRounds()
        let measured = recorder.measurements()
        let totals = measured.totals
        let fleet = both(fleetAfter, fleetBefore).map { $0 - $1 }

        var result = StepResult(
            targetRate: rate, seconds: settings.stepSeconds, scheduled: totals.scheduled, sent: totals.sent, ok: totals.ok,
            sold: totals.sold, soldCalls: totals.soldCalls, unsold: totals.unsold, errors: totals.errors + report.abandoned,
            errorKinds: report.abandoned > 0 ? totals.errorKinds.merging(["unanswered_at_drain": report.abandoned], uniquingKeysWith: +) : totals.errorKinds,
            achievedRate: Self.achievedRate(buckets: measured.completionBuckets, seconds: settings.stepSeconds, ok: totals.ok),
            latency: LatencySummary(measured.latency), overruns: totals.overruns, overrun: LatencySummary(measured.overrun),
            fleet: fleet, exchangeRounds: both(roundsAfter, roundsBefore).map { $0 - $1 }, rss: sampler?.summary,
            cpu: cpu, windows: [], dispatcherMaxLateMs: (report.maxLateNs.nanosAsMs * 1000).rounded() / 1000,
            saturated: false, saturationReasons: [], checks: [])
        if let threadsBefore, let threadsAfter {
            result.threads = threadsAfter.perAuction(since: threadsBefore, auctions: totals.ok)
        }
        result.shed = totals.shed
        result.shedRate = Self.achievedRate(buckets: measured.shedBuckets, seconds: settings.stepSeconds, ok: totals.shed)
        if totals.shed > 0 { result.shedLatency = LatencySummary(measured.shedLatency) }
        result.withinGrace = totals.withinGrace
        result.graceMs = Recorder.graceMs
        if let shedProbe, shedProbe.sent > 0 { result.shedProbe = shedProbe }

        let pings = fleet?.pings ?? (totals.pings > 0 ? totals.pings : nil)
        if let pings, totals.sent > 0 {
            result.pingsPerAuction = Double(pings) / Double(totals.sent)
            result.pingsPerSecond = result.achievedRate * Double(pings) / Double(totals.sent)
        }
        if pingsPerRequest != nil { result.failedPings = totals.failedPings }
        if let windowSeconds = settings.windowSeconds {
            result.windows = measured.windows.enumerated().map { index, histogram in
                let endNs = UInt64(Double(index + 1) * windowSeconds * 1e9)
                return WindowResult(startS: Double(index) * windowSeconds, seconds: windowSeconds,
                                    latency: LatencySummary(histogram), rssKiB: sampler?.kib(atOffsetNs: endNs))
            }
        }
        if let readback, !measured.sample.isEmpty {
            result.readback = await readback.check(measured.sample)
        }
        result.saturationReasons = saturationReasons(result, drained: report.drained)
        result.saturated = !result.saturationReasons.isEmpty
        if settings.verify { result.checks = checks(result, drained: report.drained) }
        onStep(result)
        return result
    }

    /// Answered requests per second, counted by completion time, skipping the first second (or fifth)
    /// of the step while the pipeline fills: in a steady state this is the arrival rate, and under
    /// overload it is the system's throughput.
    static func achievedRate(buckets: [Int], seconds: Double, ok: Int) -> Double {
        let bucketSeconds = Double(Recorder.bucketNs) / 1e9
        let first = Int((min(1, seconds * 0.2) / bucketSeconds).rounded(.up))
        let end = Int((seconds / bucketSeconds).rounded(.down))
        guard end - first >= 5 else { return Double(ok) / max(seconds, 0.001) }
        let counted = buckets.indices.filter { $0 >= first && $0 < end }.reduce(0) { $0 + buckets[$1] }
        return (Double(counted) / (Double(end - first) * bucketSeconds) * 10).rounded() / 10
    }

    private func saturationReasons(_ result: StepResult, drained: Bool) -> [String] {
        var reasons: [String] = []
        if result.achievedRate < settings.minAchievedShare * result.targetRate {
            reasons.append(String(format: "achieved %.0f%% of the target", result.achievedRate * 100 / result.targetRate))
        }
        if result.latency.p99 > Double(settings.tmaxMs) {
            reasons.append(String(format: "p99 %.1f ms over the %d ms budget", result.latency.p99, settings.tmaxMs))
        }
        if Double(result.errors) > settings.maxErrorShare * Double(max(1, result.scheduled)) {
            reasons.append("\(result.errors) errors")
        }
        if let shed = result.shed, Double(shed) > settings.maxErrorShare * Double(max(1, result.scheduled)) {
            reasons.append(String(format: "%.0f%% shed (503 overloaded)", Double(shed) * 100 / Double(max(1, result.scheduled))))
        }
        if !drained { reasons.append("answers still missing at the drain timeout") }
        if let expected = expectedPingsPerAuction, let perAuction = result.pingsPerAuction, perAuction < 0.98 * Double(expected) {
            reasons.append(String(format: "buyers backed off: %.1f pings per auction of %d", perAuction, expected))
        }
        return reasons
    }

    /// Functional checks only: HTTP errors, lost auctions, counts that do not add up, PII. Never timing.
    private func checks(_ result: StepResult, drained: Bool) -> [Check] {
        var checks: [Check] = []
        let errorDetail = result.errorKinds.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: " ")
        let shedDetail = (result.shed ?? 0) > 0 ? " (\(result.shed ?? 0) more shed)" : ""
        checks.append(Check(name: "answers", passed: result.errors == 0 && drained && result.sent > 0,
                            detail: result.errors == 0 ? "\(result.ok) of \(result.sent) answered\(shedDetail)" : "errors: \(errorDetail)"))
        if let check = Self.shedCheck(result, expected: settings.expectShed) { checks.append(check) }

        if let pingsPerRequest {
            let expected = result.sent * pingsPerRequest
            let pinged = result.fleet?.pings
            checks.append(Check(name: "counts", passed: pinged == expected,
                                detail: "fleet saw \(pinged.map(String.init) ?? "nothing") pings, \(expected) sent"))
        } else {
            var problems: [String] = []
            // The shed probe's admitted leads are rounds too (and its unanswered ones may be).
            let probe = result.shedProbe ?? ShedProbeResult()
            let fewest = result.ok + probe.admitted
            if let rounds = result.exchangeRounds {
                if !(fewest...(fewest + probe.unanswered)).contains(rounds) {
                    problems.append("exchange counted \(rounds) rounds, \(result.ok) answered 200" + (probe.sent > 0 ? " (+ \(probe.admitted) probes)" : ""))
                }
            } else {
                problems.append("exchange /metrics unavailable")
            }
            if let fleet = result.fleet {
                // Calls are sold by transfer: only sold leads need a buyer's accepted post.
                let soldLeads = result.sold - (result.soldCalls ?? 0)
                if fleet.accepted < soldLeads { problems.append("\(soldLeads) leads sold but buyers accepted only \(fleet.accepted) posts") }
                if fleet.pings == 0 && result.ok > 0 { problems.append("no pings reached the fleet") }
            }
            checks.append(Check(name: "counts", passed: problems.isEmpty,
                                detail: problems.isEmpty ? "rounds \(result.exchangeRounds ?? 0) = answers \(result.ok)"
                                        + (probe.sent > 0 ? " + \(probe.admitted) shed probes admitted" : "") + "; leads sold \(result.sold - (result.soldCalls ?? 0)) <= accepted \(result.fleet?.accepted ?? 0)" : problems.joined(separator: "; ")))
            if let readback = result.readback {
                let wanted = min(settings.readbackSize, result.ok)
                let passed = readback.lost == 0 && readback.mismatched == 0 && readback.checked >= wanted
                checks.append(Check(name: "readback", passed: passed,
                                    detail: passed ? "\(readback.checked) auctions read back"
                                        : "\(readback.lost) lost, \(readback.mismatched) wrong of \(readback.checked): \(readback.problems.joined(separator: "; "))"))
            } else {
                checks.append(Check(name: "readback", passed: false, detail: "no auction to read back"))
            }
        }

        if let fleet = result.fleet {
            checks.append(Check(name: "pii", passed: fleet.piiViolations == 0,
                                detail: fleet.piiViolations == 0 ? "no PII in \(fleet.pings) pings" : "\(fleet.piiViolations) pings carried PII"))
        } else if probes.fleetURL != nil {
            checks.append(Check(name: "pii", passed: false, detail: "fleet /stats unavailable"))
        }
        if probes.watchPID != nil {
            checks.append(Check(name: "rss", passed: (result.rss?.endKiB ?? 0) > 0,
                                detail: result.rss.map { "VmRSS \($0.startKiB) -> \($0.endKiB) KiB" } ?? "VmRSS unreadable"))
        }
        return checks
    }
}

extension StepRunner {
    /// The form of shed answers: every 503 was `overloaded` (the generator's answers, by their code),
    /// those sampled with headers carried `Retry-After`, and no other 5xx came. With `expected`, the
    /// step must also have shed (and sampled) some: the overload step checks the machinery itself.
    /// Nil when nothing was shed, none expected and no 5xx came.
    static func shedCheck(_ result: StepResult, expected: Bool) -> Check? {
        let serverErrors = result.errorKinds.filter { $0.key.hasPrefix("http_5") }
        let shed = result.shed ?? 0
        guard expected || shed > 0 || result.shedProbe != nil || !serverErrors.isEmpty else { return nil }
        let probe = result.shedProbe ?? ShedProbeResult()
        var problems: [String] = []
        if !serverErrors.isEmpty {
            problems.append("other 5xx: " + serverErrors.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }.joined(separator: ", "))
        }
        if !probe.wrong.isEmpty {
            problems.append("sampled: " + probe.wrong.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }.joined(separator: ", "))
        }
        if expected && shed == 0 { problems.append("nothing was shed") }
        if expected && shed > 0 && probe.shed == 0 { problems.append("no shed answer sampled with its headers (\(probe.text))") }
        return Check(name: "shed", passed: problems.isEmpty,
                     detail: problems.isEmpty ? "\(shed) shed as 503 overloaded; headers sampled: \(probe.text)" : problems.joined(separator: "; "))
    }
}

/// `Optional` pairs: both values or nothing.
private func both<A, B>(_ a: A?, _ b: B?) -> (A, B)? {
    guard let a, let b else { return nil }
    return (a, b)
}
