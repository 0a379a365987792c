import Foundation

/// The money of a piece of the books: counts of rounds and sales, and every amount a report shows.
/// margin = revenue − returned − payout + payout_reversed.
public struct BookFigures: Sendable, Hashable {
    /// Rounds run (leads, pings, calls), sold or not.
    public var rounds: Int64 = 0
    /// Rounds sold (a lead accepted, a call converted).
    public var sold: Int64 = 0
    /// What buyers paid.
    public var revenue = Money.zero
    /// What sellers earned.
    public var payout = Money.zero
    /// What returns credited back to buyers.
    public var returned = Money.zero
    /// The seller payouts taken back for those returns (per the campaign's return policy).
    public var payoutReversed = Money.zero

    public init(rounds: Int64 = 0, sold: Int64 = 0, revenue: Money = .zero, payout: Money = .zero, returned: Money = .zero,
                payoutReversed: Money = .zero) {
        self.rounds = rounds
        self.sold = sold
        self.revenue = revenue
        self.payout = payout
        self.returned = returned
        self.payoutReversed = payoutReversed
    }

    public var margin: Money { revenue - returned - payout + payoutReversed }

    public static func += (lhs: inout BookFigures, rhs: BookFigures) {
        lhs.rounds += rhs.rounds
        lhs.sold += rhs.sold
        lhs.revenue += rhs.revenue
        lhs.payout += rhs.payout
        lhs.returned += rhs.returned
        lhs.payoutReversed += rhs.payoutReversed
    }
}

/// What a P&L may be grouped by (`group_by`).
public enum ReportDimension: String, Sendable, Hashable, CaseIterable, Comparable {
    case hour, day, campaign, buyer, seller, source

    public static func < (lhs: ReportDimension, rhs: ReportDimension) -> Bool {
        allCases.firstIndex(of: lhs)! < allCases.firstIndex(of: rhs)!
    }
}

/// The books summed over one 15-minute slot (UTC) and one campaign, seller, buyer and source: what
/// a store hands the report. Rounds and their sales count in the slot the round ran in; returns
/// and adjustments in the slot they were made in. Every time zone in use today is offset from UTC
/// by a multiple of 15 minutes, so a slot lies inside one local hour and one local day.
public struct BookSlice: Sendable, Hashable {
    public static let slotMs: Int64 = 900_000

    /// Milliseconds since the epoch divided by `slotMs`.
    public var slot: Int64
    public var campaign: String?
    public var seller: String?
    /// The buyer that paid; nil for an unsold round.
    public var buyer: String?
    /// A call's attribution source or the seller's `source`.
    public var source: String?
    public var figures: BookFigures

    public init(slot: Int64, campaign: String?, seller: String?, buyer: String?, source: String?, figures: BookFigures) {
        self.slot = slot
        self.campaign = campaign
        self.seller = seller
        self.buyer = buyer
        self.source = source
        self.figures = figures
    }

    public static func slot(ofMs ms: Int64) -> Int64 { ms >= 0 ? ms / slotMs : (ms - slotMs + 1) / slotMs }
}

/// A calendar date (`YYYY-MM-DD`), as reports take `from` and `to`.
public struct LocalDate: Sendable, Hashable, Comparable, CustomStringConvertible {
    public var year: Int
    public var month: Int
    public var day: Int

    public init?(_ text: some StringProtocol) {
        let parts = text.split(separator: "-", omittingEmptySubsequences: false)
        guard text.count == 10, parts.count == 3, parts[0].count == 4, parts[1].count == 2, parts[2].count == 2,
              let year = Int(parts[0]), let month = Int(parts[1]), let day = Int(parts[2]),
              (1970...9999).contains(year), (1...12).contains(month), (1...LocalDate.days(inMonth: month, year: year)).contains(day)
        else { return nil }
        self.year = year
        self.month = month
        self.day = day
    }

    public init(year: Int, month: Int, day: Int) {
        self.year = year
        self.month = month
        self.day = day
    }

    static func days(inMonth month: Int, year: Int) -> Int {
        switch month {
        case 2: return (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 ? 29 : 28
        case 4, 6, 9, 11: return 30
        default: return 31
        }
    }

    public static func < (lhs: LocalDate, rhs: LocalDate) -> Bool { (lhs.year, lhs.month, lhs.day) < (rhs.year, rhs.month, rhs.day) }

    public var description: String { "\(LocalDate.pad(year, 4))-\(LocalDate.pad(month, 2))-\(LocalDate.pad(day, 2))" }

    static func pad(_ value: Int, _ width: Int) -> String {
        let text = String(value)
        return text.count >= width ? text : String(repeating: "0", count: width - text.count) + text
    }
}

/// The days a report covers, `from` to `to` inclusive, in a time zone: as epoch milliseconds
/// from the start of `from` to the start of the day after `to`.
public struct ReportRange: Sendable, Hashable {
    public var from: LocalDate
    public var to: LocalDate
    public var timeZone: TimeZone
    /// Inclusive.
    public var startMs: Int64
    /// Exclusive.
    public var endMs: Int64

    public init(from: LocalDate, to: LocalDate, timeZone: TimeZone) {
        self.from = from
        self.to = to
        self.timeZone = timeZone
        let calendar = ReportRange.calendar(timeZone)
        func startOfDay(_ date: LocalDate, plusDays: Int = 0) -> Int64 {
            let components = DateComponents(year: date.year, month: date.month, day: date.day + plusDays)
            let instant = calendar.date(from: components).map { calendar.startOfDay(for: $0) } ?? Date(timeIntervalSince1970: 0)
            return Int64((instant.timeIntervalSince1970 * 1000).rounded())
        }
        startMs = startOfDay(from)
        endMs = startOfDay(to, plusDays: 1)
    }

    public func contains(ms: Int64) -> Bool { ms >= startMs && ms < endMs }

    static func calendar(_ timeZone: TimeZone) -> Calendar {
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = timeZone
        return calendar
    }
}

/// The profit and loss of a range, grouped by any of `ReportDimension`: rows and their totals.
/// Pure: the store sums the books into `BookSlice`s; this groups them in the report's time zone.
public struct ProfitAndLoss: Sendable, Hashable {
    public struct Row: Sendable, Hashable {
        /// `YYYY-MM-DD` (grouped by day) or `YYYY-MM-DDTHH` (by hour); nil without a time grouping.
        public var period: String?
        public var campaign: String?
        public var buyer: String?
        public var seller: String?
        public var source: String?
        public var figures: BookFigures
    }

    /// The dimensions of each row, in `ReportDimension` order.
    public var groupBy: [ReportDimension]
    public var rows: [Row]
    public var totals: BookFigures

    private struct Key: Hashable {
        var period: String?
        var campaign: String?
        var buyer: String?
        var seller: String?
        var source: String?
    }

    /// Groups `slices` (those outside `range` are left out) by `groupBy`.
    public init(slices: some Sequence<BookSlice>, range: ReportRange, groupBy: Set<ReportDimension>) {
        self.groupBy = groupBy.sorted()
        let calendar = ReportRange.calendar(range.timeZone)
        let byHour = groupBy.contains(.hour)
        let byDay = groupBy.contains(.day)
        var periods: [Int64: String] = [:]
        func period(_ slot: Int64) -> String? {
            guard byHour || byDay else { return nil }
            if let known = periods[slot] { return known }
            let date = Date(timeIntervalSince1970: Double(slot * BookSlice.slotMs) / 1000)
            let parts = calendar.dateComponents([.year, .month, .day, .hour], from: date)
            var label = LocalDate(year: parts.year ?? 0, month: parts.month ?? 0, day: parts.day ?? 0).description
            if byHour { label += "T" + LocalDate.pad(parts.hour ?? 0, 2) }
            periods[slot] = label
            return label
        }
        var groups: [Key: BookFigures] = [:]
        var totals = BookFigures()
        let startSlot = BookSlice.slot(ofMs: range.startMs)
        let endSlot = BookSlice.slot(ofMs: range.endMs)
        for slice in slices where slice.slot >= startSlot && slice.slot < endSlot {
            let key = Key(
                period: period(slice.slot),
                campaign: groupBy.contains(.campaign) ? slice.campaign : nil,
                buyer: groupBy.contains(.buyer) ? slice.buyer : nil,
                seller: groupBy.contains(.seller) ? slice.seller : nil,
                source: groupBy.contains(.source) ? slice.source : nil)
            groups[key, default: BookFigures()] += slice.figures
            totals += slice.figures
        }
        self.totals = totals
        rows = groups.map { key, figures in
            Row(period: key.period, campaign: key.campaign, buyer: key.buyer, seller: key.seller, source: key.source, figures: figures)
        }.sorted(by: ProfitAndLoss.ordered)
    }

    /// Rows by period, campaign, buyer, seller, source; an absent value (an unsold round's buyer) first.
    static func ordered(_ lhs: Row, _ rhs: Row) -> Bool {
        func compare(_ a: String?, _ b: String?) -> Bool? {
            if a == b { return nil }
            guard let a else { return true }
            guard let b else { return false }
            return a < b
        }
        return compare(lhs.period, rhs.period) ?? compare(lhs.campaign, rhs.campaign) ?? compare(lhs.buyer, rhs.buyer)
            ?? compare(lhs.seller, rhs.seller) ?? compare(lhs.source, rhs.source) ?? false
    }
}
