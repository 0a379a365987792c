import ArgumentParser
import Foundation
import GavelPing

/// `gavel-load`: an open-loop load generator for the exchange, and the raw fan-out baseline.
@main
struct GavelLoad: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "gavel-load",
        abstract: "Open-loop load generator for Gavel, and the raw libcurl fan-out baseline.",
        discussion: """
            Requests go out at a fixed rate whatever the answers; latency is measured from each request's \
            intended start and kept in an HdrHistogram. See LoadTests/README.md.
            """,
        subcommands: [Leads.self, Raw.self, EngineBench.self, MakeConfig.self, Summary.self, Get.self, CodecBench.self, Books.self])
}

/// `gavel-load leads`: sellers' `POST /v1/leads` against the exchange.
struct Leads: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Send leads to the exchange at fixed rates.")

    @OptionGroup var options: RunOptions

    @Option(help: "The exchange's base URL, e.g. http://127.0.0.1:8080.")
    var url: String

    @Option(help: "The seller API key.")
    var key = MakeConfig.apiKey

    @Option(help: "The campaign (default: the scenario's).")
    var campaign: String?

    @Option(help: "The round budget sent as tmax_ms; answers later than it are overruns (default: the scenario's, else 1000).")
    var tmaxMs: Int?

    @Option(help: "Traffic mix, kind=share pairs: leads=0.8,calls=0.2 (calls: signed Twilio webhooks to make-config's call campaign).")
    var mix = "leads=1.0"

    @Option(help: "Auctions per step read back via GET /v1/auctions/{id} (default: 50 with --verify, else 200).")
    var readback: Int?

    @Option(help: "Buyers every round must list in the read-back (default: the scenario's 10).")
    var expectBuyers: Int?

    @Option(help: "The buyers' own time per round in ms, subtracted to show the added latency (S0: 10).")
    var buyerTimeMs: Double?

    func run() async throws {
        let mix = try TrafficMix(parsing: mix)
        let scenario = options.scenarioDefinition
        guard let campaign = campaign ?? scenario?.campaign else { throw ValidationError("give --campaign or --scenario") }
        let tmaxMs = tmaxMs ?? scenario?.tmaxMs ?? 1000
        let exchangeURL = url.hasSuffix("/") ? String(url.dropLast()) : url
        let settings = options.stepSettings(tmaxMs: tmaxMs, readback: readback ?? (options.verify ? 50 : 200),
                                            defaultLabel: scenario?.id ?? "leads")
        let engine = CurlMultiEngine.forGenerator(maxInFlight: settings.maxInFlight)
        defer { engine.shutdown() }

        let runTag = RunTag.make()
        let leads = LeadWorkload(exchangeURL: exchangeURL, apiKey: key, campaign: campaign, tmaxMs: tmaxMs,
                                 clientTimeoutMs: settings.clientTimeoutMs, runTag: runTag, engine: engine)
        // With no call share every request is a lead, as before.
        let workload = MixedWorkload(
            leads: leads, calls: CallWorkload(exchangeURL: exchangeURL, clientTimeoutMs: settings.clientTimeoutMs, runTag: runTag, engine: engine),
            callShare: mix.callShare)
        // nginx buyers (S5) have no /stats: their counts come from the exchange alone.
        let probes = Probes(engine: engine, fleetURL: scenario?.fleetStats == false ? nil : options.fleetURL, exchangeURL: exchangeURL,
                            watchPID: options.watchPid, fleetPID: options.fleetPid)
        let buyerTime = buyerTimeMs ?? scenario?.buyerTimeMs
        let report = Report(
            title: "\(settings.label)\(scenario.map { " " + $0.title } ?? ""): leads to \(exchangeURL), campaign \(campaign), budget \(tmaxMs) ms",
            label: settings.label, buyerTimeMs: buyerTime)
        report.printHeader()
        let runner = StepRunner(
            settings: settings, workload: workload, probes: probes,
            readback: Readback(exchangeURL: exchangeURL, apiKey: key, expectedBuyers: expectBuyers ?? scenario?.buyers, engine: engine),
            pingsPerRequest: nil,
            expectedPingsPerAuction: scenario.flatMap { $0.everyBuyerPinged ? expectBuyers ?? $0.buyers : nil },
            onStep: report.printStep)
        let steps = await runner.run()

        let result = RunResult.make(
            mode: "leads", scenario: scenario?.id, label: settings.label, target: exchangeURL, campaign: campaign, tmaxMs: tmaxMs,
            buyers: expectBuyers ?? scenario?.buyers, mix: mix.shares, settings: settings, buyerTimeMs: buyerTime, steps: steps)
        try finish(result, report: report, path: options.resultPath(mode: "leads"))
    }
}

/// `gavel-load raw`: the same auctions done straight against the buyers, with no exchange.
struct Raw: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Raw fan-out baseline: ping every buyer at once, post to the best bid, no exchange.")

    @OptionGroup var options: RunOptions

    @Option(help: "Fleet file whose buyers to ping (with --buyer-prefix).")
    var fleet = "LoadTests/fleets/scenarios.json"

    @Option(help: "Ping the fleet buyers whose id starts with this (default: the scenario's, else all).")
    var buyerPrefix: String?

    @Option(help: "Buyer ids to ping, comma-separated (instead of --fleet/--buyer-prefix).")
    var buyers: String?

    @Option(help: "The round budget in ms (default: the scenario's, else 150).")
    var tmaxMs: Int?

    @Option(help: "When bidding closes, in ms (default: 60% of the budget, as the exchange).")
    var pingTimeoutMs: Int?

    func run() async throws {
        let scenario = options.scenarioDefinition
        guard let fleetURL = options.fleetURL.map({ $0.hasSuffix("/") ? String($0.dropLast()) : $0 }) else {
            throw ValidationError("give --fleet-url: the raw fan-out pings the fleet directly")
        }
        let buyerIDs: [String]
        if let buyers {
            buyerIDs = buyers.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }
        } else if scenario?.fleetStats == false {
            buyerIDs = Scenario.nginxBuyerIDs
        } else {
            let prefix = buyerPrefix ?? scenario?.buyerPrefix ?? ""
            buyerIDs = try FleetIDs.load(fleet).filter { $0.hasPrefix(prefix) }
        }
        guard !buyerIDs.isEmpty else { throw ValidationError("no buyers to ping") }
        let tmaxMs = tmaxMs ?? scenario?.tmaxMs ?? 150
        let pingTimeoutMs = pingTimeoutMs ?? max(1, tmaxMs * 6 / 10)
        let settings = options.stepSettings(tmaxMs: tmaxMs, readback: 0, defaultLabel: scenario?.id ?? "raw")
        let engine = CurlMultiEngine.forGenerator(maxInFlight: settings.maxInFlight)
        defer { engine.shutdown() }

        let workload = RawFanOut(buyersURL: fleetURL, buyerIDs: buyerIDs, tmaxMs: tmaxMs, pingTimeoutMs: pingTimeoutMs,
                                 runTag: RunTag.make(), engine: engine)
        let probes = Probes(engine: engine, fleetURL: fleetURL, exchangeURL: nil, watchPID: options.watchPid,
                            fleetPID: options.fleetPid)
        let report = Report(
            title: "\(settings.label) raw fan-out: \(buyerIDs.count) buyers at \(fleetURL), budget \(tmaxMs) ms (pings \(pingTimeoutMs) ms)",
            label: settings.label, buyerTimeMs: nil)
        report.printHeader()
        let runner = StepRunner(settings: settings, workload: workload, probes: probes, readback: nil,
                                pingsPerRequest: buyerIDs.count, expectedPingsPerAuction: nil, onStep: report.printStep)
        let steps = await runner.run()

        let result = RunResult.make(
            mode: "raw", scenario: scenario?.id, label: settings.label, target: fleetURL, campaign: nil, tmaxMs: tmaxMs,
            buyers: buyerIDs.count, mix: ["leads": 1], settings: settings, buyerTimeMs: nil, steps: steps)
        try finish(result, report: report, path: options.resultPath(mode: "raw"))
    }
}

/// Prints the footer, writes the JSON, and fails the command when a check failed.
private func finish(_ result: RunResult, report: Report, path: String) throws {
    report.printFooter(result)
    try Report.write(result, to: path)
    Console.out("result: \(path)")
    if result.checks.contains(where: { !$0.passed }) { throw ExitCode(3) }
}

/// A short tag that makes this run's emails and auction ids distinct from every other run's.
enum RunTag {
    static func make() -> String {
        String(UInt32.random(in: 0...UInt32.max), radix: 36)
    }
}

extension CurlMultiEngine {
    /// The generator's libcurl engine. It keeps as many idle connections as it may have requests in
    /// flight: with fewer, every burst would close connections and open new ones, and the closed
    /// ones would pile up in TIME_WAIT until the ephemeral ports ran out.
    static func forGenerator(maxInFlight: Int) -> CurlMultiEngine {
        CurlMultiEngine(configuration: .init(maxResponseBytes: 1 << 20, connectTimeoutMs: 5000,
                                             maxIdleConnections: maxInFlight + 64))
    }
}

extension RunResult {
    /// A run's result, with its sustained and peak rates worked out from the steps.
    static func make(mode: String, scenario: String?, label: String, target: String, campaign: String?, tmaxMs: Int,
                     buyers: Int?, mix: [String: Double], settings: StepSettings, buyerTimeMs: Double?,
                     steps: [StepResult]) -> RunResult {
        let good = steps.filter { !$0.saturated }.max { $0.achievedRate < $1.achievedRate }
        let peak = steps.max { $0.achievedRate < $1.achievedRate }
        let formatter = ISO8601DateFormatter()
        return RunResult(
            mode: mode, scenario: scenario, label: label, startedAt: formatter.string(from: Date()), command: CommandLine.arguments,
            machine: .current(), target: target, campaign: campaign, tmaxMs: tmaxMs, buyers: buyers, mix: mix,
            maxInFlight: settings.maxInFlight, buyerTimeMs: buyerTimeMs, warmupSeconds: settings.warmupSeconds, steps: steps,
            sustainedRate: settings.untilSaturated ? good?.achievedRate : nil,
            sustainedPingsPerSecond: settings.untilSaturated ? good?.pingsPerSecond : nil,
            peakRate: settings.untilSaturated ? peak?.achievedRate : nil,
            peakPingsPerSecond: settings.untilSaturated ? peak?.pingsPerSecond : nil,
            checks: steps.flatMap(\.checks))
    }
}
