import ArgumentParser
import BuyerFleet
import Foundation

/// Serves the mock buyers of a fleet file until SIGINT or SIGTERM.
@main
struct GavelBuyers: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "gavel-buyers",
        abstract: "Serve a fleet of mock ping-post buyers on one port.",
        discussion: """
            Each buyer answers POST /<buyer>/ping and POST /<buyer>/post; GET /stats returns \
            every buyer's counters as JSON. Runs until SIGINT or SIGTERM.
            """)

    @Option(help: "Fleet file (JSON) describing the buyers.")
    var fleet: String

    @Option(help: "Address to listen on.")
    var host = "127.0.0.1"

    @Option(help: "Port to listen on (0 picks a free one).")
    var port = 9100

    @Option(help: "Event-loop threads (default: one per core).")
    var threads: Int?

    @Option(help: "Seed for the buyers' random choices, for repeatable runs.")
    var seed: UInt64?

    @Option(help: "Print a one-line counter summary to stderr every this many seconds (0: never).")
    var statsInterval: Double = 0

    @Flag(help: "Print every buyer's counters as JSON to stdout on exit.")
    var printStatsOnExit = false

    func run() async throws {
        let file: FleetFile
        do {
            file = try FleetFile(contentsOf: URL(fileURLWithPath: fleet))
        } catch {
            throw ValidationError("cannot load fleet file \(fleet): \(Self.describe(error))")
        }

        // Ignore the signals before starting, so one arriving during startup is not fatal.
        let signals = TerminationSignals()
        let buyerFleet = BuyerFleet(
            buyers: file.buyers, host: host, port: port,
            threads: threads ?? BuyerFleet.defaultThreadCount, seed: seed)
        try await buyerFleet.start()

        Console.out("gavel-buyers listening on http://\(host):\(buyerFleet.port) (\(file.buyers.count) buyers)")
        for (id, behavior) in file.buyers.sorted(by: { $0.key < $1.key }) where behavior.fault == .refused {
            Console.out("\(id) refuses connections: \(try BuyerFleet.refusedURL())")
        }

        let reporter = statsInterval > 0 ? Task { await report(buyerFleet, every: statsInterval) } : nil
        let signal = await signals.next()
        reporter?.cancel()
        Console.err("gavel-buyers: \(signal.name), shutting down")

        let stats = buyerFleet.allStats()
        try await buyerFleet.shutdown()
        if printStatsOnExit {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
            Console.out(String(decoding: try encoder.encode(stats), as: UTF8.self))
        }
    }

    /// Prints fleet-wide totals, and the ping rate since the last line, until cancelled.
    private func report(_ fleet: BuyerFleet, every seconds: Double) async {
        var lastPings = 0
        while !Task.isCancelled {
            do { try await Task.sleep(for: .seconds(seconds)) } catch { return }
            let total = fleet.allStats().values.reduce(BuyerStats(), +)
            let rate = Double(total.pings - lastPings) / seconds
            lastPings = total.pings
            Console.err("""
                pings=\(total.pings) (\(Int(rate.rounded()))/s) bids=\(total.bids) no_bids=\(total.noBids) \
                posts=\(total.posts) accepted=\(total.accepted) rejected=\(total.rejected) \
                faults=\(total.faults) pii_violations=\(total.piiViolations)
                """)
        }
    }

    /// A one-line reason a fleet file did not load, naming the JSON path for decoding errors.
    private static func describe(_ error: any Error) -> String {
        switch error {
        case DecodingError.dataCorrupted(let context),
             DecodingError.keyNotFound(_, let context),
             DecodingError.typeMismatch(_, let context),
             DecodingError.valueNotFound(_, let context):
            let path = context.codingPath.map(\.stringValue).joined(separator: ".")
            return path.isEmpty ? context.debugDescription : "\(path): \(context.debugDescription)"
        default:
            return error.localizedDescription
        }
    }
}
