import ArgumentParser
import Foundation

/// `gavel-load summary DIR`: the one table of a `run.sh` run, and the targets met or missed.
struct Summary: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Print one table for the scenario results (S0…S5X) in a directory, and the targets.")

    @Argument(help: "Directory holding the JSON results of gavel-load leads/raw.")
    var directory: String

    func run() throws {
        let files = try FileManager.default.contentsOfDirectory(atPath: directory).filter { $0.hasSuffix(".json") }.sorted()
        var byScenario: [String: RunResult] = [:]
        for file in files {
            guard let result = try? Report.read((directory as NSString).appendingPathComponent(file)),
                  let scenario = result.scenario else { continue }
            if let existing = byScenario[scenario], existing.startedAt > result.startedAt { continue }
            byScenario[scenario] = result
        }
        guard !byScenario.isEmpty else { throw ValidationError("no scenario results in \(directory)") }
        for line in SummaryTable(results: byScenario).lines() { Console.out(line) }
    }
}

/// Builds the summary's lines from the latest result of each scenario.
struct SummaryTable {
    var results: [String: RunResult]

    func lines() -> [String] {
        var lines: [String] = []
        if let machine = results.values.first?.machine {
            lines.append("machine: \(machine.cpuModel), \(machine.cores) cores, \(String(format: "%.1f", machine.memoryGiB)) GiB, Linux \(machine.kernel);"
                         + " generator, buyers and exchange share it"
                         + (machine.loadAverage.map { String(format: "; load average %.2f at the start", $0) } ?? ""))
        }
        lines.append("latency in ms from each request's intended start (open loop); S0 rows show the added latency (minus the buyers' 10 ms)")
        lines.append(Report.pad("scenario", 14) + " " + Report.header)
        for id in ["S0", "S1", "S2", "S3", "S4", "S5", "S5X", "S5R"] {
            guard let result = results[id] else { continue }
            let name = Scenario.named(id).map { "\(id) \($0.title.split(separator: " ").first ?? "")" } ?? id
            for step in result.steps {
                var shown = step
                if let buyerTime = result.buyerTimeMs { shown.latency = shown.latency.shifted(by: -buyerTime) }
                lines.append(Report.pad(name, 14) + " " + Report.row(shown) + (Self.marksSaturation(step, in: result) ? "  (saturated)" : ""))
            }
        }
        lines.append(contentsOf: overloadTable())
        lines.append("")
        lines.append(contentsOf: notes())
        lines.append("")
        lines.append("targets (2 cores, generator + buyers + exchange on one machine):")
        lines.append(contentsOf: targets().map { target in
            let verdict = target.met.map { $0 ? "MET" : "MISSED" } ?? "n/a"
            return "  [\(verdict)] \(target.name): \(target.detail)"
        })
        return lines
    }

    /// Step searches (S1, S3) mark every saturated step; fixed-rate scenarios only real overload, since a
    /// p99 at the budget is what S2 measures, and its overruns column says so already.
    static func marksSaturation(_ step: StepResult, in result: RunResult) -> Bool {
        // The overload step is past saturation by design: its own table says how it held.
        guard step.saturated, result.scenario != "S5X" else { return false }
        return result.peakRate != nil || step.saturationReasons.contains { !$0.hasPrefix("p99") }
    }

    // MARK: Overload (S5X)

    /// The rate S5X is judged against: what S5 sustained, else half of what S5X offered (twice the
    /// sustained rate by construction), with a word on which.
    private func overloadReference(_ step: StepResult) -> (rate: Double, text: String) {
        if let sustained = results["S5"]?.sustainedRate {
            return (sustained, "S5's sustained \(Report.count(sustained))/s")
        }
        return (step.targetRate / 2, "half the offered rate, \(Report.count(step.targetRate / 2))/s (no S5 sustained rate in this run)")
    }

    static let overloadHeader = [
        Report.pad("offered/s", 10), Report.pad("admitted/s", 11), Report.pad("of sust.", 9), Report.pad("shed/s", 9),
        Report.pad("p50", 8), Report.pad("p99", 8), Report.pad("max", 9), Report.pad("in budget+5", 12), Report.pad("max over", 9),
        Report.pad("sold%", 7), Report.pad("shed p99", 9), Report.pad("errors", 7), Report.pad("RSS max", 8),
    ].joined(separator: " ")

    private func overloadTable() -> [String] {
        guard let s5x = results["S5X"], !s5x.steps.isEmpty else { return [] }
        var lines = ["", "S5X overload, budget \(s5x.tmaxMs) ms: admitted = answered 200, shed = refused at once with 503 overloaded;"
                     + " latency in ms of the admitted; of sust. = admitted over \(overloadReference(s5x.steps[0]).text)",
                     Report.pad("", 14) + " " + Self.overloadHeader]
        for step in s5x.steps {
            let reference = overloadReference(step).rate
            lines.append(Report.pad("S5X overload", 14) + " " + [
                Report.pad(Report.count(step.targetRate), 10), Report.pad(String(format: "%.1f", step.achievedRate), 11),
                Report.pad(reference > 0 ? String(format: "%.0f%%", step.achievedRate * 100 / reference) : "-", 9),
                Report.pad(step.shedRate.map { String(format: "%.1f", $0) } ?? "-", 9),
                Report.pad(Report.ms(step.latency.p50), 8), Report.pad(Report.ms(step.latency.p99), 8), Report.pad(Report.ms(step.latency.max), 9),
                Report.pad(step.withinGracePercent.map { String(format: "%.2f%%", $0) } ?? "-", 12), Report.pad(Report.ms(step.overrun.max), 9),
                Report.pad(String(format: "%.1f", step.soldPercent), 7), Report.pad(step.shedLatency.map { Report.ms($0.p99) } ?? "-", 9),
                Report.pad(String(step.errors), 7), Report.pad(step.rss.map { Report.mib($0.maxKiB) } ?? "-", 8),
            ].joined(separator: " "))
        }
        return lines
    }

    /// Issue 8, "past saturation, no collapse": at twice the sustained rate the exchange admits at least
    /// 90% of the sustained rate, answers every admitted round within its budget + 5 ms, refuses the
    /// rest at once with 503 `overloaded` and `Retry-After`, and stays under 150 MiB.
    private func overloadTargets() -> [Target] {
        guard let s5x = results["S5X"], let step = s5x.steps.last else {
            return [Target(name: "past saturation, no collapse (S5X at 2x the S5 sustained rate)", met: nil, detail: "S5X not run")]
        }
        var targets: [Target] = []
        let reference = overloadReference(step)
        let share = reference.rate > 0 ? step.achievedRate / reference.rate : 0
        targets.append(Target(name: "S5X admitted >= 90% of sustained", met: share >= 0.9,
                              detail: "\(Report.count(step.achievedRate))/s admitted of \(Report.count(step.targetRate))/s offered"
                                  + String(format: " = %.0f%% of ", share * 100) + reference.text))

        if let within = step.withinGrace, let grace = step.graceMs {
            let late = step.ok - within
            var detail = String(format: "%.2f%%", step.withinGracePercent ?? 0) + " of \(Report.count(Double(step.ok)))"
                + (late > 0 ? " (\(late) later)" : "") + ", max overrun \(Report.ms(step.overrun.max)) ms"
            if step.errors > 0 { detail += "; \(step.errors) errors: " + Self.kinds(step.errorKinds) }
            targets.append(Target(name: "S5X admitted answered within budget+\(grace) ms (all of them)",
                                  met: late == 0 && step.ok > 0 && step.errors == 0, detail: detail))
        } else {
            targets.append(Target(name: "S5X admitted answered within budget+5 ms (all of them)", met: nil, detail: "result written before shed answers were counted"))
        }

        let shed = step.shed ?? 0
        let serverErrors = step.errorKinds.filter { $0.key.hasPrefix("http_5") }
        let probe = step.shedProbe ?? ShedProbeResult()
        if shed == 0 && serverErrors.isEmpty {
            targets.append(Target(name: "S5X shed answers 503 overloaded with Retry-After", met: nil,
                                  detail: step.shed == nil ? "result written before shed answers were counted" : "nothing was shed at this rate"))
        } else {
            var detail = shed == 0 ? "nothing shed" : "\(shed) shed"
            detail += step.shedLatency.map { ", answered in p99 \(Report.ms($0.p99)) max \(Report.ms($0.max)) ms" } ?? ""
            if probe.sent > 0 { detail += "; sampled with headers: " + probe.text }
            detail += serverErrors.isEmpty ? "; no other 5xx" : "; other 5xx: " + Self.kinds(serverErrors)
            targets.append(Target(name: "S5X shed answers 503 overloaded with Retry-After",
                                  met: serverErrors.isEmpty && probe.wrong.isEmpty && probe.shed > 0, detail: detail))
        }

        if let rss = step.rss {
            let limitKiB = 150 * 1024
            targets.append(Target(name: "S5X RSS < 150 MiB", met: rss.maxKiB < limitKiB,
                                  detail: "max \(Report.mib(rss.maxKiB)) MiB (start \(Report.mib(rss.startKiB)), end \(Report.mib(rss.endKiB)))"))
        } else {
            targets.append(Target(name: "S5X RSS < 150 MiB", met: nil, detail: "S5X not run with --watch-pid"))
        }
        return targets
    }

    static func kinds(_ counts: [String: Int]) -> String {
        counts.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }.joined(separator: ", ")
    }

    // MARK: Notes per scenario

    private func notes() -> [String] {
        var notes: [String] = []
        if let s0 = results["S0"] {
            for step in s0.steps {
                guard let readback = step.readback, let duration = readback.exchangeDuration, let overhead = readback.exchangeOverhead else { continue }
                notes.append("S0 \(Report.count(step.targetRate))/s, exchange's own view (\(duration.count) rounds read back): round duration p50 \(Report.ms(duration.p50))"
                             + " p99 \(Report.ms(duration.p99)); slowest ping p50 \(Report.ms(readback.slowestPing?.p50 ?? 0)) p99 \(Report.ms(readback.slowestPing?.p99 ?? 0));"
                             + " duration less slowest ping and posts p50 \(Report.ms(overhead.p50)) p99 \(Report.ms(overhead.p99)) ms")
            }
        }
        if let s1 = results["S1"] {
            notes.append("S1 capacity: " + capacity(s1))
        }
        if let s5 = results["S5"] {
            for step in s5.steps {
                var line = "S5 \(Report.count(step.targetRate))/s (nginx buyers, 10 per auction): p50 \(Report.ms(step.latency.p50)) p99 \(Report.ms(step.latency.p99)) ms"
                if let cpu = step.cpu?.exchange, step.achievedRate > 0 {
                    line += String(format: "; exchange CPU %.0f%% of a core = %.0f µs per auction", cpu, cpu / 100 * 1_000_000 / step.achievedRate)
                }
                if let overhead = step.readback?.exchangeOverhead {
                    line += "; inside the round, less pings and posts: p50 \(Report.ms(overhead.p50)) p99 \(Report.ms(overhead.p99)) ms"
                }
                notes.append(line)
                if let threads = step.threads, !threads.isEmpty {
                    notes.append("  threads per auction: " + Report.threads(threads))
                }
            }
            if s5.peakRate != nil { notes.append("S5 capacity: " + capacity(s5)) }
        }
        if let raw = results["S5R"] {
            notes.append("S5R ceiling: raw fan-out to the same nginx buyers " + capacity(raw))
        }
        if let s2 = results["S2"], let step = s2.steps.last {
            notes.append("S2 faults (budget \(s2.tmaxMs) ms, 2 hanging, 1 garbage, 1 resetting buyer): \(step.overruns) of \(step.ok) answers past the budget"
                         + String(format: " (%.2f%%)", step.ok == 0 ? 0 : Double(step.overruns) * 100 / Double(step.ok))
                         + "; overrun p99 \(Report.ms(step.overrun.p99)) ms, p99.9 \(Report.ms(step.overrun.p999)) ms, max \(Report.ms(step.overrun.max)) ms;"
                         + " latency p99 \(Report.ms(step.latency.p99)), max \(Report.ms(step.latency.max)) ms")
        }
        if let s3 = results["S3"] {
            var line = "S3 ceiling: raw fan-out " + capacity(s3)
            if let ratio = ceilingRatio() {
                line += String(format: "; exchange (S1) at %.0f%% of the raw pings/s", ratio * 100)
            }
            notes.append(line)
        }
        if let s4 = results["S4"], let step = s4.steps.first {
            var line = "S4 soak \(Int(step.seconds)) s at \(Report.count(step.targetRate))/s:"
            if let rss = step.rss {
                line += " RSS start \(Report.mib(rss.startKiB)) MiB"
                if let warm = step.windows.first?.rssKiB { line += ", after the first window \(Report.mib(warm)) MiB" }
                line += ", end \(Report.mib(rss.endKiB)) MiB, max \(Report.mib(rss.maxKiB)) MiB;"
            }
            if let first = step.windows.first, let last = step.windows.last, step.windows.count > 1 {
                line += " p99 first \(Int(first.seconds)) s \(Report.ms(first.latency.p99)) ms, last \(Int(last.seconds)) s \(Report.ms(last.latency.p99)) ms"
            }
            notes.append(line)
        }
        return notes
    }

    private func capacity(_ result: RunResult) -> String {
        var text: String
        if let sustained = result.sustainedRate {
            text = "sustained \(Report.count(sustained)) auctions/s"
            if let pings = result.sustainedPingsPerSecond { text += " = \(Report.count(pings)) pings/s" }
        } else {
            text = "no step below saturation"
        }
        if let saturated = result.steps.first(where: \.saturated) {
            text += "; \(Report.count(saturated.targetRate))/s saturated: achieved \(Report.count(saturated.achievedRate))/s"
                + String(format: ", %.0f%% sold", saturated.soldPercent)
                + (saturated.pingsPerSecond.map { ", \(Report.count($0)) pings/s" } ?? "")
                + " (" + saturated.saturationReasons.joined(separator: "; ") + ")"
        } else {
            text += " (never saturated: raise the rates)"
        }
        return text
    }

    /// Exchange pings/s at its sustained rate over raw fan-out pings/s at its sustained rate.
    private func ceilingRatio() -> Double? {
        guard let exchange = results["S1"]?.sustainedPingsPerSecond, let raw = results["S3"]?.sustainedPingsPerSecond, raw > 0 else { return nil }
        return exchange / raw
    }

    // MARK: Targets

    struct Target {
        var name: String
        /// nil: not measured in this run.
        var met: Bool?
        var detail: String
    }

    /// A soak shorter than this says little about memory: SQLite's caches are still filling.
    static let shortestConclusiveSoak = 300.0

    func targets() -> [Target] {
        var targets: [Target] = []

        let s0 = results["S0"].flatMap { result in result.steps.first { $0.targetRate == 1000 }.map { (result, $0) } }
        if let (result, step) = s0 {
            let added = step.latency.p99 - (result.buyerTimeMs ?? 0)
            targets.append(Target(name: "added latency p99 <= 1 ms at 1,000 auctions/s x 10 buyers", met: added <= 1 && !step.saturated,
                                  detail: "\(Report.ms(added)) ms" + (added > 1 ? " (over by \(Report.ms(added - 1)) ms)" : "")
                                      + (step.saturated ? "; step saturated" : "")))
        } else {
            targets.append(Target(name: "added latency p99 <= 1 ms at 1,000 auctions/s x 10 buyers", met: nil, detail: "S0 at 1,000/s not run"))
        }

        if let s2 = results["S2"], let step = s2.steps.last {
            let overrun = step.overrun.p99
            targets.append(Target(name: "budget overrun p99 <= 2 ms with hanging buyers", met: overrun <= 2,
                                  detail: "\(Report.ms(overrun)) ms at \(Report.count(step.targetRate))/s, max \(Report.ms(step.overrun.max)) ms"
                                      + (overrun > 2 ? " (over by \(Report.ms(overrun - 2)) ms)" : "")))
        } else {
            targets.append(Target(name: "budget overrun p99 <= 2 ms with hanging buyers", met: nil, detail: "S2 not run"))
        }

        if let s1 = results["S1"] {
            let sustained = s1.sustainedRate ?? 0
            targets.append(Target(name: "saturation >= 3,000 auctions/s x 10 buyers", met: sustained >= 3000,
                                  detail: "\(Report.count(sustained)) auctions/s" + (sustained < 3000 ? String(format: " (%.0f%% of the target)", sustained / 30) : "")))
        } else {
            targets.append(Target(name: "saturation >= 3,000 auctions/s x 10 buyers", met: nil, detail: "S1 not run"))
        }

        if let ratio = ceilingRatio() {
            targets.append(Target(name: ">= 60% of the raw fan-out ceiling (pings/s)", met: ratio >= 0.6,
                                  detail: String(format: "%.0f%%", ratio * 100) + (ratio < 0.6 ? String(format: " (short by %.0f points)", (0.6 - ratio) * 100) : "")))
        } else {
            targets.append(Target(name: ">= 60% of the raw fan-out ceiling (pings/s)", met: nil, detail: "S1 and S3 both needed"))
        }

        if let step = results["S4"]?.steps.first, let rss = step.rss {
            let warm = step.windows.first?.rssKiB ?? rss.startKiB
            let growth = Double(rss.endKiB - warm) / Double(max(1, warm))
            let detail = "\(Report.mib(warm)) -> \(Report.mib(rss.endKiB)) MiB (" + String(format: "%+.1f%%", growth * 100) + ")"
            if step.seconds < Self.shortestConclusiveSoak {
                targets.append(Target(name: "RSS flat over the soak once warm", met: nil,
                                      detail: detail + "; a \(Int(step.seconds)) s soak is too short to judge (\(Int(Self.shortestConclusiveSoak)) s or more)"))
            } else {
                targets.append(Target(name: "RSS flat over the soak once warm (<= 10% growth after the first window)", met: growth <= 0.10,
                                      detail: detail))
            }
        } else {
            targets.append(Target(name: "RSS flat over the soak once warm", met: nil, detail: "S4 not run with --watch-pid"))
        }
        targets.append(contentsOf: overloadTargets())
        return targets
    }
}

extension LatencySummary {
    /// Every percentile moved by `ms` (never below zero): S0's added latency.
    func shifted(by ms: Double) -> LatencySummary {
        var copy = self
        func shift(_ value: Double) -> Double { Swift.max(0, ((value + ms) * 1000).rounded() / 1000) }
        copy.p50 = shift(p50)
        copy.p90 = shift(p90)
        copy.p99 = shift(p99)
        copy.p999 = shift(p999)
        copy.max = shift(max)
        copy.mean = shift(mean)
        return copy
    }
}

/// `gavel-load get FILE KEY`: one top-level number of a result file, for scripts (e.g. S4's rate).
struct Get: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Print one top-level value of a result file (e.g. sustainedRate).")

    @Argument(help: "A JSON result file.")
    var file: String

    @Argument(help: "A top-level key: sustainedRate, peakRate, sustainedPingsPerSecond, tmaxMs, …")
    var key: String

    func run() throws {
        let object = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: file))) as? [String: Any]
        guard let value = object?[key], !(value is NSNull) else { throw ExitCode(1) }
        if let number = value as? Double {
            Console.out(number.rounded() == number ? String(Int(number)) : String(number))
        } else {
            Console.out("\(value)")
        }
    }
}
