/// The standard scenarios of `LoadTests/run.sh`; `--scenario` fills in their settings.
///
/// Each lead scenario has its own campaign and its own ten buyers in `LoadTests/fleets/scenarios.json`,
/// told apart by the buyer id's prefix; `make-config` writes the exchange config that wires them up.
struct Scenario: Sendable {
    var id: String
    var title: String
    /// `leads` against the exchange, or `raw` fan-out straight to the buyers.
    var mode: Mode
    var campaign: String
    /// Buyers whose fleet id starts with this take part.
    var buyerPrefix: String
    /// The round budget (`tmax_ms`).
    var tmaxMs: Int
    /// The buyers' own time in every round, subtracted to give the exchange's added latency.
    var buyerTimeMs: Double?
    var buyers = 10
    /// Every buyer is pinged in every round (no faults, so no health back-off): fewer pings per
    /// auction than buyers means the exchange backed buyers off, a sign of overload.
    var everyBuyerPinged = true
    /// Whether the buyers are the SwiftNIO fleet with its `GET /stats` (false: nginx, which only answers).
    var fleetStats = true

    enum Mode: String, Sendable { case leads, raw }

    /// When bidding closes: the exchange's default of 60% of the budget.
    var pingTimeoutMs: Int { max(1, tmaxMs * 6 / 10) }

    static let all: [Scenario] = [
        Scenario(id: "S0", title: "added latency", mode: .leads, campaign: "s0", buyerPrefix: "s0-", tmaxMs: 1000, buyerTimeMs: 10),
        Scenario(id: "S1", title: "capacity", mode: .leads, campaign: "s1", buyerPrefix: "s1-", tmaxMs: 150),
        Scenario(id: "S2", title: "faults", mode: .leads, campaign: "s2", buyerPrefix: "s2-", tmaxMs: 150,
                 everyBuyerPinged: false),
        Scenario(id: "S3", title: "raw fan-out ceiling", mode: .raw, campaign: "s1", buyerPrefix: "s1-", tmaxMs: 150),
        Scenario(id: "S4", title: "soak", mode: .leads, campaign: "s1", buyerPrefix: "s1-", tmaxMs: 150),
        // Ten buyers that cost almost nothing (nginx answering a fixed bid): what is left is the exchange.
        Scenario(id: "S5", title: "overhead (zero-latency nginx buyers)", mode: .leads, campaign: "s5", buyerPrefix: "s5-",
                 tmaxMs: 150, buyerTimeMs: 0, fleetStats: false),
        // S5's buyers at twice the rate S5 sustained (run.sh): the exchange must shed what it cannot
        // start in time (503 `overloaded`) and keep answering what it admits within the budget.
        Scenario(id: "S5X", title: "overload (2x the S5 sustained rate)", mode: .leads, campaign: "s5", buyerPrefix: "s5-",
                 tmaxMs: 150, buyerTimeMs: 0, fleetStats: false),
        // The same nginx buyers pinged by the bare engine: the ceiling S5 is compared with.
        Scenario(id: "S5R", title: "raw fan-out to nginx", mode: .raw, campaign: "s5", buyerPrefix: "s5-", tmaxMs: 150,
                 fleetStats: false),
    ]

    /// The nginx buyers of S5, by id.
    static let nginxBuyerIDs = (0..<10).map { "s5-0\($0)" }

    static func named(_ id: String) -> Scenario? {
        all.first { $0.id.caseInsensitiveCompare(id) == .orderedSame }
    }

    /// The campaigns the exchange config needs, each with its budget and buyer prefix.
    static var campaigns: [(id: String, tmaxMs: Int, buyerPrefix: String)] {
        var seen: Set<String> = []
        return all.compactMap { scenario in
            guard scenario.mode == .leads, scenario.fleetStats, seen.insert(scenario.campaign).inserted else { return nil }
            return (scenario.campaign, scenario.tmaxMs, scenario.buyerPrefix)
        }
    }
}
