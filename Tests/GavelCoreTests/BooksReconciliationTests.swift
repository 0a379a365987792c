import Foundation
import Testing
@testable import GavelCore

/// A million simulated rounds (leads sold or not, sales after a fallback, calls converting or not,
/// returns under both policies, days after the sale) summed the way the store sums them (per
/// 15-minute slot and campaign, seller, buyer, source) and reported by `ProfitAndLoss` in time
/// zones 30 and 45 minutes off the hour, across a DST change: every total equals the sum of its
/// rounds to the unit, every grouping's rows add up to the totals, and each row equals the sum
/// of the rounds that fall in it. Seeded, pure, no I/O.
struct BooksReconciliationTests {

    struct SimulatedCampaign {
        var id: String
        var kind: AuctionKind
        var payout: PayoutRule
        var policy: ReturnPolicy
    }

    static let campaigns = [
        SimulatedCampaign(id: "autos", kind: .lead, payout: .share(basisPoints: 7000), policy: .reversePayout),
        SimulatedCampaign(id: "legal", kind: .lead, payout: .fixed(Money(12)), policy: .keepPayout),
        SimulatedCampaign(id: "calls", kind: .call, payout: .share(basisPoints: 5555), policy: .reversePayout),
    ]
    static let sellers = ["acme", "brightpath", "cobalt"]
    static let buyers = ["b1", "b2", "b3", "b4", "b5", "b6"]
    static let sources: [String?] = [nil, "google", "facebook", "pub-7"]

    /// One round and its money, as small numbers (indexes into the lists above).
    struct Round {
        var createdMs: Int64
        var campaign: Int
        var seller: Int
        var source: Int
        /// -1: unsold.
        var buyer: Int
        var price: Int64
        var payout: Int64
        /// 0: not returned.
        var returnedMs: Int64
        var reversed: Int64
    }

    /// 2026-03-01T00:00Z: the span covers the US DST change of 8 March.
    static let startMs: Int64 = 1_772_323_200_000
    static let spanMs: Int64 = 14 * 86_400_000

    static func simulate(rounds count: Int, seed: UInt64) -> [Round] {
        var random = SplitMix64(seed: seed)
        var rounds: [Round] = []
        rounds.reserveCapacity(count)
        for _ in 0..<count {
            let campaignIndex = Int.random(in: 0..<campaigns.count, using: &random)
            let campaign = campaigns[campaignIndex]
            var round = Round(
                createdMs: startMs + Int64.random(in: 0..<spanMs, using: &random), campaign: campaignIndex,
                seller: Int.random(in: 0..<sellers.count, using: &random), source: Int.random(in: 0..<sources.count, using: &random),
                buyer: -1, price: 0, payout: 0, returnedMs: 0, reversed: 0)
            let bids = (0..<Int.random(in: 0...3, using: &random)).map { _ in
                (buyer: Int.random(in: 0..<buyers.count, using: &random), price: Int64.random(in: 5_000...900_000, using: &random))
            }.sorted { $0.price > $1.price }
            var sale: (buyer: Int, price: Int64)?
            switch campaign.kind {
            case .lead:
                // Posts down the ranking: each may be rejected, and the next bid is the fallback.
                for bid in bids where Double.random(in: 0..<1, using: &random) < 0.7 {
                    sale = bid
                    break
                }
            case .call:
                // The call goes to the first bid; it is sold only when it converts.
                if let first = bids.first, Double.random(in: 0..<1, using: &random) < 0.55 { sale = first }
            }
            if let sale {
                round.buyer = sale.buyer
                round.price = sale.price
                round.payout = campaign.payout.payout(forPrice: Money(units: sale.price)).units
                if Double.random(in: 0..<1, using: &random) < 0.12 {
                    round.returnedMs = round.createdMs + Int64.random(in: 60_000...(9 * 86_400_000), using: &random)
                    round.reversed = campaign.policy.reversal(of: Money(units: round.payout)).units
                }
            }
            rounds.append(round)
        }
        return rounds
    }

    /// What a store hands the report: the rounds summed per slot and dimensions (returns in the
    /// slot they were made in).
    static func slices(of rounds: [Round]) -> [BookSlice] {
        var sums: [Int64: BookFigures] = [:]
        func key(slot: Int64, _ round: Round) -> Int64 {
            (((slot * 4 + Int64(round.campaign)) * 4 + Int64(round.seller)) * 8 + Int64(round.buyer + 1)) * 4 + Int64(round.source)
        }
        for round in rounds {
            var figures = BookFigures(rounds: 1)
            if round.buyer >= 0 {
                figures.sold = 1
                figures.revenue = Money(units: round.price)
                figures.payout = Money(units: round.payout)
            }
            sums[key(slot: BookSlice.slot(ofMs: round.createdMs), round), default: BookFigures()] += figures
            if round.returnedMs > 0 {
                sums[key(slot: BookSlice.slot(ofMs: round.returnedMs), round), default: BookFigures()] +=
                    BookFigures(returned: Money(units: round.price), payoutReversed: Money(units: round.reversed))
            }
        }
        return sums.map { key, figures in
            var rest = key
            let source = Int(rest % 4); rest /= 4
            let buyer = Int(rest % 8) - 1; rest /= 8
            let seller = Int(rest % 4); rest /= 4
            let campaign = Int(rest % 4); rest /= 4
            return BookSlice(slot: rest, campaign: campaigns[campaign].id, seller: sellers[seller], buyer: buyer >= 0 ? buyers[buyer] : nil,
                             source: sources[source], figures: figures)
        }
    }

    /// The local period of a moment, computed apart from the report's own code: the zone's offset
    /// at that moment (one per slot), then civil-from-days.
    final class Periods {
        let timeZone: TimeZone
        let hours: Bool
        var bySlot: [Int64: String] = [:]
        init(timeZone: TimeZone, hours: Bool) {
            self.timeZone = timeZone
            self.hours = hours
        }
        func label(_ ms: Int64) -> String {
            let slot = BookSlice.slot(ofMs: ms)
            if let label = bySlot[slot] { return label }
            let offsetMs = Int64(timeZone.secondsFromGMT(for: Date(timeIntervalSince1970: Double(slot * BookSlice.slotMs) / 1000))) * 1000
            let local = slot * BookSlice.slotMs + offsetMs
            let days = local / 86_400_000
            // Howard Hinnant's civil_from_days.
            let z = days + 719_468
            let era = (z >= 0 ? z : z - 146_096) / 146_097
            let doe = z - era * 146_097
            let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365
            let doy = doe - (365 * yoe + yoe / 4 - yoe / 100)
            let mp = (5 * doy + 2) / 153
            let day = Int(doy - (153 * mp + 2) / 5 + 1)
            let month = Int(mp < 10 ? mp + 3 : mp - 9)
            let year = Int(yoe + era * 400 + (month <= 2 ? 1 : 0))
            var label = LocalDate(year: year, month: month, day: day).description
            if hours { label += "T" + LocalDate.pad(Int((local % 86_400_000) / 3_600_000), 2) }
            bySlot[slot] = label
            return label
        }
    }

    struct ExpectedKey: Hashable {
        var period: String?
        var campaign: String?
        var buyer: String?
        var seller: String?
        var source: String?
    }

    static func expectedRows(_ rounds: [Round], range: ReportRange, groupBy: Set<ReportDimension>) -> [ExpectedKey: BookFigures] {
        let periods = groupBy.contains(.hour) || groupBy.contains(.day)
            ? Periods(timeZone: range.timeZone, hours: groupBy.contains(.hour)) : nil
        // Keys packed into an integer while summing (a million rounds), spelled out at the end.
        var labels: [String] = []
        var labelIndex: [String: Int64] = [:]
        var slotIndex: [Int64: Int64] = [:]
        func period(_ ms: Int64) -> Int64 {
            guard let periods else { return 0 }
            let slot = BookSlice.slot(ofMs: ms)
            if let index = slotIndex[slot] { return index }
            let label = periods.label(ms)
            let index = labelIndex[label] ?? {
                labels.append(label)
                labelIndex[label] = Int64(labels.count)
                return Int64(labels.count)
            }()
            slotIndex[slot] = index
            return index
        }
        let byCampaign = groupBy.contains(.campaign), byBuyer = groupBy.contains(.buyer)
        let bySeller = groupBy.contains(.seller), bySource = groupBy.contains(.source)
        func key(_ round: Round, at ms: Int64) -> Int64 {
            var key = period(ms)
            key = key * 8 + (byCampaign ? Int64(round.campaign + 1) : 0)
            key = key * 8 + (byBuyer ? Int64(round.buyer + 1) : 0)
            key = key * 8 + (bySeller ? Int64(round.seller + 1) : 0)
            key = key * 8 + (bySource ? Int64(round.source + 1) : 0)
            return key
        }
        var sums: [Int64: BookFigures] = [:]
        for round in rounds {
            if range.contains(ms: round.createdMs) {
                var figures = BookFigures(rounds: 1)
                if round.buyer >= 0 {
                    figures.sold = 1
                    figures.revenue = Money(units: round.price)
                    figures.payout = Money(units: round.payout)
                }
                sums[key(round, at: round.createdMs), default: BookFigures()] += figures
            }
            if round.returnedMs > 0, range.contains(ms: round.returnedMs) {
                sums[key(round, at: round.returnedMs), default: BookFigures()] +=
                    BookFigures(returned: Money(units: round.price), payoutReversed: Money(units: round.reversed))
            }
        }
        var expected: [ExpectedKey: BookFigures] = [:]
        for (packed, figures) in sums {
            var rest = packed
            let source = Int(rest % 8) - 1; rest /= 8
            let seller = Int(rest % 8) - 1; rest /= 8
            let buyer = Int(rest % 8) - 1; rest /= 8
            let campaign = Int(rest % 8) - 1; rest /= 8
            let key = ExpectedKey(
                period: rest > 0 ? labels[Int(rest) - 1] : nil,
                campaign: campaign >= 0 ? campaigns[campaign].id : nil,
                buyer: buyer >= 0 ? buyers[buyer] : nil,
                seller: seller >= 0 ? sellers[seller] : nil,
                source: bySource && source >= 0 ? sources[source] : nil)
            expected[key, default: BookFigures()] += figures
        }
        return expected
    }

    @Test func everyReportTotalIsTheSumOfItsRoundsToTheUnit() throws {
        let rounds = Self.simulate(rounds: 1_000_000, seed: 20_261_130)
        let slices = Self.slices(of: rounds)
        #expect(rounds.filter { $0.buyer >= 0 }.count > 300_000)
        #expect(rounds.filter { $0.returnedMs > 0 }.count > 30_000)

        let reports: [(zone: String, from: String, to: String, groupBy: Set<ReportDimension>)] = [
            ("UTC", "2026-03-01", "2026-03-14", [.day]),
            ("America/New_York", "2026-03-02", "2026-03-10", [.hour, .campaign]),
            ("Asia/Kolkata", "2026-03-03", "2026-03-09", [.day, .buyer, .seller]),
            ("Asia/Kathmandu", "2026-03-01", "2026-03-05", [.source, .buyer]),
            ("Australia/Lord_Howe", "2026-03-04", "2026-03-12", [.hour, .day, .campaign, .buyer]),
            ("Europe/London", "2026-03-06", "2026-03-08", [.hour, .campaign, .buyer, .seller, .source]),
            ("Pacific/Chatham", "2026-02-27", "2026-03-20", []),
        ]
        for report in reports {
            let zone = try #require(TimeZone(identifier: report.zone))
            let range = ReportRange(from: LocalDate(report.from)!, to: LocalDate(report.to)!, timeZone: zone)
            let pnl = ProfitAndLoss(slices: slices, range: range, groupBy: report.groupBy)
            let expected = Self.expectedRows(rounds, range: range, groupBy: report.groupBy)

            var all = BookFigures()
            for figures in expected.values { all += figures }
            #expect(pnl.totals == all, "\(report.zone) \(report.groupBy)")
            var summed = BookFigures()
            for row in pnl.rows { summed += row.figures }
            #expect(summed == pnl.totals)
            #expect(pnl.totals.margin == pnl.totals.revenue - pnl.totals.returned - pnl.totals.payout + pnl.totals.payoutReversed)

            let got = Dictionary(uniqueKeysWithValues: pnl.rows.map { row in
                (ExpectedKey(period: row.period, campaign: row.campaign, buyer: row.buyer, seller: row.seller, source: row.source), row.figures)
            })
            #expect(got.count == expected.count, "\(report.zone) \(report.groupBy)")
            let mismatched = expected.filter { got[$0.key] != $0.value }
            #expect(mismatched.isEmpty, "\(report.zone) \(report.groupBy): \(mismatched.prefix(3))")
        }
    }

    @Test(arguments: [
        ("UTC", "2026-03-08", Int64(1_772_928_000_000), Int64(1_773_014_400_000)),
        // The US spring-forward day has 23 hours.
        ("America/New_York", "2026-03-08", Int64(1_772_946_000_000), Int64(1_773_028_800_000)),
        ("Asia/Kathmandu", "2026-03-08", Int64(1_772_907_300_000), Int64(1_772_993_700_000)),
    ])
    func aRangeIsItsLocalDays(_ zone: String, _ day: String, _ startMs: Int64, _ endMs: Int64) {
        let range = ReportRange(from: LocalDate(day)!, to: LocalDate(day)!, timeZone: TimeZone(identifier: zone)!)
        #expect(range.startMs == startMs)
        #expect(range.endMs == endMs)
    }

    @Test func datesAreStrict() {
        #expect(LocalDate("2026-02-29") == nil)
        #expect(LocalDate("2028-02-29") != nil)
        #expect(LocalDate("2026-1-01") == nil)
        #expect(LocalDate("2026-13-01") == nil)
        #expect(LocalDate("yesterday") == nil)
        #expect(LocalDate("2026-03-08")?.description == "2026-03-08")
    }
}
