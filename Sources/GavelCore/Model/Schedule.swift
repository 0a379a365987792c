import Foundation

/// When a buyer takes leads: days of the week and a daily window, in the buyer's own time zone.
public struct Schedule: Sendable, Hashable {
    public var timeZone: TimeZone
    /// 1 = Sunday ... 7 = Saturday (Gregorian `weekday`).
    public var weekdays: Set<Int>
    /// Minutes after local midnight; `end` is exclusive. `start > end` spans midnight (22:00-06:00).
    public var startMinute: Int
    public var endMinute: Int
    /// Built once: making a `Calendar` per check costs more than the check.
    private let calendar: Calendar

    public init(timeZone: TimeZone, weekdays: Set<Int> = Set(1...7), startMinute: Int = 0, endMinute: Int = 24 * 60) {
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = timeZone
        self.calendar = calendar
        self.timeZone = timeZone
        self.weekdays = weekdays
        self.startMinute = startMinute
        self.endMinute = endMinute
    }

    public static let weekdayNames = ["sun": 1, "mon": 2, "tue": 3, "wed": 4, "thu": 5, "fri": 6, "sat": 7]

    /// Whether `date` falls inside the schedule. For a window past midnight, the hours after
    /// midnight belong to the day the window started on.
    public func isOpen(at date: Date) -> Bool {
        let parts = calendar.dateComponents([.weekday, .hour, .minute], from: date)
        guard let weekday = parts.weekday, let hour = parts.hour, let minute = parts.minute else { return false }
        let minuteOfDay = hour * 60 + minute
        if startMinute <= endMinute {
            return weekdays.contains(weekday) && minuteOfDay >= startMinute && minuteOfDay < endMinute
        }
        if minuteOfDay >= startMinute { return weekdays.contains(weekday) }
        if minuteOfDay < endMinute {
            let previousDay = weekday == 1 ? 7 : weekday - 1
            return weekdays.contains(previousDay)
        }
        return false
    }
}
