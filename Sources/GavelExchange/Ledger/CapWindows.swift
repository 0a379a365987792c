import Foundation
import GavelCore
import Synchronization

/// The hour, day and month a moment falls in, in a buyer's own time zone: the keys cap counters
/// are stored under (`H:2026-11-29T14`, `D:2026-11-29`, `M:2026-11`).
struct CapWindows: Hashable, Sendable, Codable {
    var hour: String
    var day: String
    var month: String

    init(date: Date, timeZone: TimeZone) {
        self.init(date: date, calendar: CapWindows.calendar(for: timeZone))
    }

    init(date: Date, calendar: Calendar) {
        let parts = calendar.dateComponents([.year, .month, .day, .hour], from: date)
        let year = parts.year ?? 0
        let month = CapWindows.twoDigits(parts.month ?? 0)
        let day = CapWindows.twoDigits(parts.day ?? 0)
        self.month = "M:\(year)-\(month)"
        self.day = "D:\(year)-\(month)-\(day)"
        self.hour = "H:\(year)-\(month)-\(day)T\(CapWindows.twoDigits(parts.hour ?? 0))"
    }

    static let utc = TimeZone(identifier: "UTC")!

    /// One calendar per time zone, made once.
    private static let calendars = Mutex<[TimeZone: Calendar]>([:])

    static func calendar(for timeZone: TimeZone) -> Calendar {
        calendars.withLock { cache in
            if let calendar = cache[timeZone] { return calendar }
            var calendar = Calendar(identifier: .gregorian)
            calendar.timeZone = timeZone
            cache[timeZone] = calendar
            return calendar
        }
    }

    private static func twoDigits(_ value: Int) -> String { value < 10 ? "0\(value)" : "\(value)" }
}

extension Buyer {
    /// Caps count in the buyer's schedule time zone, so "daily" means the buyer's day.
    var capTimeZone: TimeZone { filters.schedule?.timeZone ?? CapWindows.utc }
}
