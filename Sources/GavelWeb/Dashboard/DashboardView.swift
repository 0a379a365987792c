import Foundation
import GavelCore
import GavelExchange
import GavelStore

/// What the dashboard's live panel (`dashboard-live.mustache`) shows; rebuilt on every poll.
struct DashboardLive {
    struct Figure {
        let label: String
        let value: String
        let detail: String
        let name: String
    }

    struct BuyerRow {
        let id: String
        let status: String
        let statusClass: String
        let pinged: Int
        let bids: Int
        let bidRate: String
        let wins: Int
        let p50: String
        let p99: String
        let dayCount: String
        let budget: String
        let budgetMeter: Int
        let hasBudget: Bool
    }

    struct RoundRow {
        let id: String
        let href: String
        let time: String
        let campaign: String
        let kind: String
        let status: String
        let winner: String
        let price: String
        let buyers: Int
    }

    let updatedAt: String
    let windowLabel: String
    let figures: [Figure]
    let chart: Charts.Columns
    let reasons: Charts.Rows
    let buyers: [BuyerRow]
    let recent: [RoundRow]
    let problem: String?

    struct Inputs {
        var nowMs: Int64
        var windowMinutes: Int
        var activity: RoundStore.Activity
        var lastMinute: RoundStore.Activity
        var today: (rounds: Int, sold: Int)
        var pnl: WebProfitAndLoss?
        var recent: [RoundStore.RecentRound]
        var buyers: [(buyer: Buyer, usage: BuyerLedger.CapUsage, backedOffUntil: Date?, failures: Int, portalPaused: Bool)]
        var problem: String?
    }

    init(_ inputs: Inputs) {
        updatedAt = Formatting.time(ms: inputs.nowMs) + " UTC"
        windowLabel = "last \(inputs.windowMinutes) minutes"
        problem = inputs.problem
        let perSecond = Double(inputs.lastMinute.rounds) / 60
        let pnl = inputs.pnl
        figures = [
            Figure(label: "Rounds / s", value: String(format: "%.2f", perSecond), detail: "\(inputs.lastMinute.rounds) in the last minute",
                   name: "rounds-per-second"),
            Figure(label: "Sold today", value: Formatting.percent(inputs.today.sold, of: inputs.today.rounds),
                   detail: "\(inputs.today.sold) of \(inputs.today.rounds) rounds", name: "sold-percent"),
            Figure(label: "Revenue today", value: pnl.map { Formatting.money($0.revenue) } ?? "–",
                   detail: pnl.map { "payout \(Formatting.money($0.payout))" } ?? "books unavailable", name: "revenue"),
            Figure(label: "Margin today", value: pnl.map { Formatting.money($0.margin) } ?? "–",
                   detail: pnl.map { "returned \(Formatting.money($0.returned)), reversed \(Formatting.money($0.payoutReversed))" } ?? "",
                   name: "margin"),
        ]
        // One column per minute of the window, empty minutes included, oldest first.
        let lastStart = inputs.nowMs / 60_000 * 60_000
        let byStart = Dictionary(inputs.activity.minutes.map { ($0.startMs, $0) }, uniquingKeysWith: { first, _ in first })
        let series = (0..<inputs.windowMinutes).reversed().map { back -> (label: String, total: Int, sold: Int) in
            let start = lastStart - Int64(back) * 60_000
            let minute = byStart[start]
            return (Formatting.minute(ms: start), minute?.rounds ?? 0, minute?.sold ?? 0)
        }
        chart = Charts.columns(series)
        reasons = Charts.rows(inputs.activity.reasons.map { (label: $0.key, count: $0.value) })
        let nowDate = Date(timeIntervalSince1970: Double(inputs.nowMs) / 1000)
        buyers = inputs.buyers.map { entry in
            let figures = inputs.activity.buyers[entry.buyer.id] ?? RoundStore.Activity.Buyer()
            let status: String, statusClass: String
            if entry.buyer.paused {
                (status, statusClass) = ("paused (config)", "paused")
            } else if entry.portalPaused {
                (status, statusClass) = ("paused (portal)", "paused")
            } else if let until = entry.backedOffUntil {
                let seconds = Int(until.timeIntervalSince(nowDate).rounded(.up))
                (status, statusClass) = ("backed off \(seconds) s", "down")
            } else if entry.failures > 0 {
                (status, statusClass) = ("failing (\(entry.failures) in a row)", "warn")
            } else {
                (status, statusClass) = ("healthy", "ok")
            }
            let caps = entry.buyer.caps
            let budget = caps.dailyBudget
            return BuyerRow(
                id: entry.buyer.id, status: status, statusClass: statusClass, pinged: figures.pinged, bids: figures.bids,
                bidRate: Formatting.percent(figures.bids, of: figures.pinged), wins: figures.wins,
                p50: DashboardLive.percentile(figures.latenciesUs, 0.50), p99: DashboardLive.percentile(figures.latenciesUs, 0.99),
                dayCount: "\(entry.usage.day)" + (caps.daily.map { " / \($0)" } ?? ""),
                budget: Formatting.money(entry.usage.daySpend) + (budget.map { " / " + Formatting.money($0) } ?? ""),
                budgetMeter: budget.map { $0.units > 0 ? Int(min(1000, entry.usage.daySpend.units * 1000 / $0.units)) : 1000 } ?? 0,
                hasBudget: budget != nil)
        }
        recent = inputs.recent.map { round in
            RoundRow(id: round.id, href: "/ui/rounds/\(round.id)", time: Formatting.time(ms: round.createdAtMs), campaign: round.campaignID,
                     kind: round.kind, status: round.status, winner: round.winnerID ?? "–",
                     price: round.price.map(Formatting.money) ?? "–", buyers: round.buyers)
        }
    }

    /// The `fraction` percentile of ascending latencies (nearest rank), or `–`.
    static func percentile(_ sortedUs: [Int], _ fraction: Double) -> String {
        guard !sortedUs.isEmpty else { return "–" }
        let rank = min(sortedUs.count - 1, max(0, Int((fraction * Double(sortedUs.count)).rounded(.up)) - 1))
        return Formatting.milliseconds(us: sortedUs[rank])
    }
}

/// The whole dashboard page: the live panel inside the frame.
struct DashboardPage {
    let title = "Operator dashboard"
    let base = "/ui/"
    let area = "dashboard"
    let csrf: String
    let who: String
    let live: DashboardLive
    let refreshMs: Int
}

/// One round, every buyer considered and every post (`round.mustache`). No PII: the contact is
/// not part of a stored round's view.
struct RoundPage {
    struct BuyerRow {
        let buyer: String
        let reason: String
        let reasonClass: String
        let bid: String
        let latency: String
        let tmax: String
        let detail: String
        let winner: Bool
    }

    struct PostRow {
        let sequence: Int
        let buyer: String
        let price: String
        let result: String
        let latency: String
        let detail: String
    }

    struct EventRow {
        let type: String
        let at: String
        let buyer: String
        let detail: String
    }

    struct Field {
        let name: String
        let value: String
    }

    let title: String
    let base = "/ui/"
    let area = "dashboard"
    let csrf: String
    let who: String
    let id: String
    let kind: String
    let campaign: String
    let seller: String
    let status: String
    let phase: String
    let createdAt: String
    let duration: String
    let winner: String
    let price: String
    let payout: String
    let source: String?
    let lead: [Field]
    let buyers: [BuyerRow]
    let posts: [PostRow]
    let hasPosts: Bool
    let events: [EventRow]
    let hasEvents: Bool

    init(_ round: StoredRound, session: WebSession) {
        title = "Round \(round.id)"
        csrf = session.csrfToken
        who = session.principal.id
        id = round.id
        kind = round.kind
        campaign = round.campaignID
        seller = round.sellerID
        status = round.status
        phase = round.phase
        createdAt = Formatting.dateTime(ms: round.createdAtMs) + " UTC"
        duration = Formatting.milliseconds(us: round.durationUs)
        winner = round.winnerID ?? "–"
        price = round.price.map(Formatting.money) ?? "–"
        payout = Formatting.money(round.payout ?? .zero)
        source = round.source
        if case .object(let fields)? = try? JSONValue.parse(round.leadJSON) {
            lead = fields.map { Field(name: $0.key, value: $0.value.stringValue ?? $0.value.serialized) }
        } else {
            lead = []
        }
        buyers = round.buyers.map { buyer in
            BuyerRow(buyer: buyer.buyerID, reason: buyer.reason,
                     reasonClass: ["sold", "outbid"].contains(buyer.reason) ? "ok" : (buyer.bid == nil ? "muted" : "warn"),
                     bid: buyer.bid.map(Formatting.money) ?? "–", latency: buyer.latencyUs.map(Formatting.milliseconds(us:)) ?? "–",
                     tmax: buyer.tmaxMs.map { "\($0) ms" } ?? "–",
                     detail: [buyer.detail, buyer.buyerReason.map { "buyer: \($0)" }].compactMap { $0 }.joined(separator: "; "),
                     winner: buyer.buyerID == round.winnerID)
        }
        posts = round.posts.map { post in
            PostRow(sequence: post.sequence, buyer: post.buyerID, price: Formatting.money(post.price), result: post.result,
                    latency: Formatting.milliseconds(us: post.latencyUs),
                    detail: [post.reference.map { "ref \($0)" }, post.detail, post.buyerReason.map { "buyer: \($0)" }]
                        .compactMap { $0 }.joined(separator: "; "))
        }
        hasPosts = !posts.isEmpty
        events = round.events.map { event in
            EventRow(type: event.type, at: Formatting.time(ms: event.atMs), buyer: event.buyerID ?? "",
                     detail: [event.durationS.map { "\($0) s" }, event.detail].compactMap { $0 }.joined(separator: "; "))
        }
        hasEvents = !events.isEmpty
    }
}
