import Foundation
import GavelCore

/// Text for people: money with at least two decimals, times and dates in UTC.
enum Formatting {
    /// `12.50`, `0.0025`, `-3.00`, `1,250.00`: exact, at least two decimals, thousands grouped.
    static func money(_ money: Money) -> String {
        var text = money.description
        let negative = text.hasPrefix("-")
        if negative { text.removeFirst() }
        let parts = text.split(separator: ".", maxSplits: 1)
        var whole = String(parts[0])
        var fraction = parts.count > 1 ? String(parts[1]) : ""
        while fraction.count < 2 { fraction += "0" }
        var grouped = ""
        while whole.count > 3 {
            grouped = "," + whole.suffix(3) + grouped
            whole = String(whole.dropLast(3))
        }
        return (negative ? "-" : "") + whole + grouped + "." + fraction
    }

    private static let utc = TimeZone(identifier: "UTC")!

    private static func components(_ ms: Int64) -> DateComponents {
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = utc
        return calendar.dateComponents([.year, .month, .day, .hour, .minute, .second],
                                       from: Date(timeIntervalSince1970: Double(ms) / 1000))
    }

    private static func two(_ value: Int?) -> String { String(format: "%02d", value ?? 0) }

    /// `2026-11-30 14:05:09`
    static func dateTime(ms: Int64) -> String {
        let parts = components(ms)
        return "\(parts.year ?? 0)-\(two(parts.month))-\(two(parts.day)) \(two(parts.hour)):\(two(parts.minute)):\(two(parts.second))"
    }

    /// `14:05:09`
    static func time(ms: Int64) -> String {
        let parts = components(ms)
        return "\(two(parts.hour)):\(two(parts.minute)):\(two(parts.second))"
    }

    /// `14:05`
    static func minute(ms: Int64) -> String {
        let parts = components(ms)
        return "\(two(parts.hour)):\(two(parts.minute))"
    }

    /// `2026-11-30`
    static func day(ms: Int64) -> String {
        let parts = components(ms)
        return "\(parts.year ?? 0)-\(two(parts.month))-\(two(parts.day))"
    }

    /// Milliseconds at UTC midnight of `YYYY-MM-DD`, or nil when the text is not such a date.
    static func dayStart(_ text: String) -> Int64? {
        let parts = text.split(separator: "-")
        guard parts.count == 3, parts[0].count == 4, parts[1].count == 2, parts[2].count == 2,
              let year = Int(parts[0]), let month = Int(parts[1]), let day = Int(parts[2]),
              (1...12).contains(month), (1...31).contains(day) else { return nil }
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = utc
        guard let date = calendar.date(from: DateComponents(year: year, month: month, day: day)),
              calendar.component(.day, from: date) == day else { return nil }
        return Int64(date.timeIntervalSince1970 * 1000)
    }

    /// UTC midnight at or before `ms`.
    static func dayStart(ms: Int64) -> Int64 { ms - ((ms % 86_400_000) + 86_400_000) % 86_400_000 }

    /// `42 ms` or `1.3 ms` from microseconds.
    static func milliseconds(us: Int) -> String {
        us >= 10_000 ? "\(us / 1000) ms" : String(format: "%.1f ms", Double(us) / 1000)
    }

    /// `37.5%`, or `–` without a denominator.
    static func percent(_ part: Int, of whole: Int) -> String {
        guard whole > 0 else { return "–" }
        return String(format: "%.1f%%", Double(part) * 100 / Double(whole))
    }
}
