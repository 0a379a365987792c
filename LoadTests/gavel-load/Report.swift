import Foundation

/// The human table of one run, printed a row at a time as steps finish, and the run's JSON file.
struct Report: Sendable {
    /// The columns every table shares (per run and in the summary).
    static let header = [
        pad("target/s", 9), pad("achieved/s", 11), pad("p50", 8), pad("p90", 8), pad("p99", 8), pad("p99.9", 8),
        pad("max", 9), pad("sold%", 7), pad("unsold%", 8), pad("errors", 7), pad("overruns", 9), pad("pings/s", 9),
    ].joined(separator: " ")

    var title: String
    var label: String
    /// S0: the buyers' own time, shown as "added" latency under each row.
    var buyerTimeMs: Double?

    func printHeader() {
        Console.out(title)
        Console.out("latency in ms from each request's intended start (open loop); answered requests only")
        Console.out(Self.header)
    }

    func printStep(_ step: StepResult) {
        Console.out(Self.row(step) + (step.saturated ? "  saturated: " + step.saturationReasons.joined(separator: ", ") : ""))
        if let buyerTimeMs {
            Console.out("          added latency (minus the buyers' \(Self.ms(buyerTimeMs)) ms): p50 \(Self.ms(step.latency.p50 - buyerTimeMs))"
                        + " p99 \(Self.ms(step.latency.p99 - buyerTimeMs)) p99.9 \(Self.ms(step.latency.p999 - buyerTimeMs))")
        }
        if let readback = step.readback, let duration = readback.exchangeDuration, let overhead = readback.exchangeOverhead {
            Console.out("          exchange's own view (\(duration.count) rounds read back): round duration p50 \(Self.ms(duration.p50))"
                        + " p99 \(Self.ms(duration.p99)); slowest ping p50 \(Self.ms(readback.slowestPing?.p50 ?? 0)) p99 \(Self.ms(readback.slowestPing?.p99 ?? 0));"
                        + " duration less slowest ping and posts: p50 \(Self.ms(overhead.p50)) p99 \(Self.ms(overhead.p99))")
        }
        if step.overruns > 0 {
            Console.out("          overruns past the budget: \(step.overruns), by p99 \(Self.ms(step.overrun.p99)) max \(Self.ms(step.overrun.max)) ms")
        }
        if let overload = Self.overload(step) { Console.out("          " + overload) }
        if let probe = step.shedProbe {
            Console.out("          shed form (URLSession, bursts of \(ShedProbe.burst) while shedding): " + probe.text)
        }
        if !step.errorKinds.isEmpty {
            Console.out("          errors: " + step.errorKinds.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }.joined(separator: ", "))
        }
        if let rss = step.rss {
            Console.out("          exchange RSS: start \(Self.mib(rss.startKiB)) MiB, end \(Self.mib(rss.endKiB)) MiB, max \(Self.mib(rss.maxKiB)) MiB")
        }
        if let cpu = step.cpu, cpu.exchange != nil || cpu.fleet != nil {
            Console.out("          CPU (% of one core): " + Report.cpu(cpu))
        }
        if let threads = step.threads, !threads.isEmpty {
            Console.out("          exchange threads per auction: " + Report.threads(threads))
        }
        for window in step.windows {
            Console.out("          window \(Int(window.startS))-\(Int(window.startS + window.seconds)) s: p50 \(Self.ms(window.latency.p50))"
                        + " p99 \(Self.ms(window.latency.p99)) max \(Self.ms(window.latency.max))"
                        + (window.rssKiB.map { ", RSS \(Self.mib($0)) MiB" } ?? ""))
        }
        if step.dispatcherMaxLateMs > 5 {
            Console.out("          note: the generator started some requests up to \(Self.ms(step.dispatcherMaxLateMs)) ms late (counted in the latency)")
        }
        for check in step.checks {
            Console.out("check \(label) \(Int(step.targetRate))/s \(check.name): \(check.passed ? "ok" : "FAILED") (\(check.detail))")
        }
    }

    func printFooter(_ result: RunResult) {
        guard result.peakRate != nil else { return }
        if let sustained = result.sustainedRate {
            Console.out("sustained: \(Self.count(sustained)) /s" + (result.sustainedPingsPerSecond.map { " (\(Self.count($0)) pings/s)" } ?? ""))
        } else {
            Console.out("sustained: none of the rates (the first step already saturated)")
        }
    }

    /// Writes `result` as pretty JSON, creating the directory.
    static func write(_ result: RunResult, to path: String) throws {
        let url = URL(fileURLWithPath: path)
        try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        try encoder.encode(result).write(to: url)
    }

    static func read(_ path: String) throws -> RunResult {
        try JSONDecoder().decode(RunResult.self, from: Data(contentsOf: URL(fileURLWithPath: path)))
    }

    // MARK: Formatting

    /// One row of the shared columns.
    static func row(_ step: StepResult) -> String {
        [
            pad(count(step.targetRate), 9), pad(String(format: "%.1f", step.achievedRate), 11),
            pad(ms(step.latency.p50), 8), pad(ms(step.latency.p90), 8), pad(ms(step.latency.p99), 8),
            pad(ms(step.latency.p999), 8), pad(ms(step.latency.max), 9),
            pad(String(format: "%.1f", step.soldPercent), 7), pad(String(format: "%.1f", step.unsoldPercent), 8),
            pad(String(step.errors), 7), pad(String(step.overruns), 9), pad(step.pingsPerSecond.map(count) ?? "-", 9),
        ].joined(separator: " ")
    }

    /// The overload view of a step that shed rounds: what was offered, admitted and shed per second,
    /// how the admitted fared against the budget + grace, and how fast the shed were refused.
    static func overload(_ step: StepResult) -> String? {
        guard let shed = step.shed, shed > 0 else { return nil }
        var line = "overload: offered \(count(step.targetRate))/s, admitted \(String(format: "%.1f", step.achievedRate))/s,"
            + " shed \(String(format: "%.1f", step.shedRate ?? 0))/s (\(shed)); admitted p50 \(ms(step.latency.p50)) p99 \(ms(step.latency.p99))"
            + " max \(ms(step.latency.max)) ms"
        if let within = step.withinGracePercent, let grace = step.graceMs {
            line += String(format: ", %.2f%% within budget+%d ms", within, grace) + " (max overrun \(ms(step.overrun.max)) ms)"
        }
        line += String(format: ", sold %.1f%% of admitted", step.soldPercent)
        if let latency = step.shedLatency { line += "; shed answered in p50 \(ms(latency.p50)) p99 \(ms(latency.p99)) max \(ms(latency.max)) ms" }
        return line
    }

    /// `exchange 95% buyers 60% generator 40%`, for the processes measured.
    /// `curl engine 705 µs 4.1+5.4 switches, …` (voluntary + involuntary), and the total.
    static func threads(_ shares: [ThreadShare]) -> String {
        let total = shares.reduce((0.0, 0.0)) { ($0.0 + $1.cpuMicros, $0.1 + $1.voluntarySwitches + $1.involuntarySwitches) }
        return shares.map { String(format: "%@ %.0f µs %.1f+%.1f switches", $0.threads, $0.cpuMicros, $0.voluntarySwitches, $0.involuntarySwitches) }
            .joined(separator: ", ") + String(format: "; total %.0f µs, %.1f switches", total.0, total.1)
    }

    static func cpu(_ share: CPUShare) -> String {
        [("exchange", share.exchange), ("buyers", share.fleet), ("generator", share.generator)]
            .compactMap { name, value in value.map { "\(name) \(Int($0.rounded()))%" } }
            .joined(separator: ", ")
    }

    static func pad(_ text: String, _ width: Int) -> String {
        text.count >= width ? text : String(repeating: " ", count: width - text.count) + text
    }

    static func ms(_ value: Double) -> String { String(format: value >= 100 ? "%.1f" : "%.2f", value) }

    static func mib(_ kib: Int) -> String { String(format: "%.1f", Double(kib) / 1024) }

    /// A rate or count, rounded, with thousands separators.
    static func count(_ value: Double) -> String {
        let rounded = Int(value.rounded())
        let digits = String(abs(rounded))
        var grouped = ""
        for (index, digit) in digits.enumerated() {
            if index > 0 && (digits.count - index) % 3 == 0 { grouped += "," }
            grouped.append(digit)
        }
        return (rounded < 0 ? "-" : "") + grouped
    }
}
