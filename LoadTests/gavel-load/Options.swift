import ArgumentParser
import Foundation

/// Options every load run shares: the rates, the step length, what to measure and where to write it.
struct RunOptions: ParsableArguments {
    @Option(help: "Scenario S0…S4: fills in the campaign, budget, buyers and labels (see LoadTests/README.md).")
    var scenario: String?

    @Option(help: "Target rate in requests per second (one step).")
    var rate: Double?

    @Option(help: "Rates to step through, comma-separated (e.g. 500,1000,2000).")
    var rates: String?

    @Option(help: "Seconds per step.")
    var seconds: Double = 10

    @Option(help: "Seconds of unrecorded traffic at the first rate before the first step.")
    var warmupSeconds: Double = 2

    @Flag(help: "Stop at the first saturated step (achieved < 95% of target, p99 over the budget, > 1% errors, or buyers backed off).")
    var untilSaturated = false

    @Option(help: "With --until-saturated: extra steps that bisect between the last good rate and the saturated one.")
    var refine = 1

    @Option(help: "Seconds of quiet between steps.")
    var pauseSeconds: Double = 1

    @Option(help: "Most requests in flight; requests due beyond it are dropped and counted as errors.")
    var maxInFlight = 10_000

    @Option(help: "The generator's own timeout per request, in ms (default: the budget + 5000).")
    var timeoutMs: Int?

    @Option(help: "Keep latency apart per window of this many seconds (soak drift).")
    var windowSeconds: Double?

    @Option(help: "The exchange's pid: its VmRSS is sampled each second, and its CPU use reported.")
    var watchPid: Int32?

    @Option(help: "gavel-buyers pid, for its CPU use.")
    var fleetPid: Int32?

    @Option(help: "gavel-buyers base URL, for its /stats counters (pings/s, PII).")
    var fleetURL: String?

    @Flag(help: "Run the functional checks (HTTP errors, lost auctions, counts, PII) and print them as `check` lines.")
    var verify = false

    @Flag(help: "With --verify: the exchange must shed rounds (503 overloaded with Retry-After); the overload step's check.")
    var expectShed = false

    @Option(help: "The JSON result file (default: loadtest-results/<mode>-<scenario>-<time>.json).")
    var json: String?

    @Option(help: "A label for the tables (default: the scenario id or the mode).")
    var label: String?

    @Flag(help: "No progress lines on stderr.")
    var quiet = false

    mutating func validate() throws {
        if let scenario, Scenario.named(scenario) == nil {
            throw ValidationError("unknown scenario \(scenario); known: \(Scenario.all.map(\.id).joined(separator: ", "))")
        }
        guard !parsedRates().isEmpty else { throw ValidationError("give --rate or --rates") }
        guard parsedRates().allSatisfy({ $0 > 0 }) else { throw ValidationError("rates must be positive numbers") }
        guard seconds > 0 else { throw ValidationError("--seconds must be positive") }
        guard maxInFlight > 0 else { throw ValidationError("--max-in-flight must be positive") }
    }

    var scenarioDefinition: Scenario? { scenario.flatMap(Scenario.named) }

    func parsedRates() -> [Double] {
        if let rates {
            return rates.split(separator: ",").compactMap { Double($0.trimmingCharacters(in: .whitespaces)) }
        }
        return rate.map { [$0] } ?? []
    }

    /// The step settings for a run with budget `tmaxMs`.
    func stepSettings(tmaxMs: Int, readback: Int, defaultLabel: String) -> StepSettings {
        StepSettings(
            label: label ?? defaultLabel, rates: parsedRates(), stepSeconds: seconds, warmupSeconds: warmupSeconds,
            untilSaturated: untilSaturated, refine: refine, pauseSeconds: pauseSeconds, maxInFlight: maxInFlight,
            tmaxMs: tmaxMs, clientTimeoutMs: timeoutMs ?? tmaxMs + 5000, windowSeconds: windowSeconds,
            readbackSize: readback, verify: verify, expectShed: expectShed, showProgress: !quiet)
    }

    /// Where the JSON result goes.
    func resultPath(mode: String) -> String {
        if let json { return json }
        let formatter = DateFormatter()
        formatter.dateFormat = "yyyyMMdd-HHmmss"
        formatter.locale = Locale(identifier: "en_US_POSIX")
        let name = [mode, scenario?.uppercased()].compactMap { $0 }.joined(separator: "-")
        return "loadtest-results/\(name)-\(formatter.string(from: Date())).json"
    }
}

/// `--mix leads=0.8,calls=0.2`: the share of each kind of traffic. Calls are signed Twilio voice and
/// dial-status webhooks to the call campaign `make-config` writes (`CallWorkload`).
struct TrafficMix: Sendable {
    var shares: [String: Double]
    var callShare: Double { shares["calls"] ?? 0 }

    init(parsing text: String) throws {
        var shares: [String: Double] = [:]
        for part in text.split(separator: ",") {
            let pair = part.split(separator: "=", maxSplits: 1).map { $0.trimmingCharacters(in: .whitespaces) }
            guard pair.count == 2, let share = Double(pair[1]), (0...1).contains(share) else {
                throw ValidationError("--mix wants kind=share pairs such as leads=1.0, got \(part)")
            }
            guard ["leads", "calls"].contains(pair[0]) else { throw ValidationError("--mix: unknown kind \(pair[0]) (leads, calls)") }
            shares[pair[0]] = share
        }
        guard abs(shares.values.reduce(0, +) - 1) < 0.0001 else { throw ValidationError("--mix shares must add up to 1") }
        self.shares = shares
    }
}
