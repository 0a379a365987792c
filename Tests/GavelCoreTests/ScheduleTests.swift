import Foundation
import Testing
@testable import GavelCore

/// Instants are fixed UTC timestamps (never the current clock).
enum Instant {
    /// 2024-07-10T00:00:00Z, a Wednesday (summer: New York is UTC-4).
    static let wed20240710: TimeInterval = 1_720_569_600
    /// 2024-01-10T00:00:00Z, a Wednesday (winter: New York is UTC-5).
    static let wed20240110: TimeInterval = 1_704_844_800

    static func date(_ dayStart: TimeInterval, plusDays days: Int = 0, hour: Int, minute: Int = 0) -> Date {
        Date(timeIntervalSince1970: dayStart + Double(days * 86_400 + hour * 3_600 + minute * 60))
    }
}

struct ScheduleTests {
    let utc = TimeZone(identifier: "UTC")!
    let newYork = TimeZone(identifier: "America/New_York")!

    @Test func fixedInstantsAreWhatTheyClaim() {
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = utc
        let parts = calendar.dateComponents([.year, .month, .day, .weekday, .hour], from: Instant.date(Instant.wed20240710, hour: 12))
        #expect(parts.year == 2024 && parts.month == 7 && parts.day == 10 && parts.hour == 12)
        #expect(parts.weekday == 4)  // Wednesday
        let winter = calendar.dateComponents([.month, .day, .weekday], from: Instant.date(Instant.wed20240110, hour: 0))
        #expect(winter.month == 1 && winter.day == 10 && winter.weekday == 4)
    }

    @Test func fullDayDefaultIsAlwaysOpen() {
        let schedule = Schedule(timeZone: utc)
        #expect(schedule.isOpen(at: Instant.date(Instant.wed20240710, hour: 0)))
        #expect(schedule.isOpen(at: Instant.date(Instant.wed20240710, hour: 23, minute: 59)))
        #expect(schedule.isOpen(at: Instant.date(Instant.wed20240710, plusDays: 3, hour: 12)))
    }

    @Test func sameInstantDiffersByTimeZone() {
        // 08:00-20:00 local.
        let ny = Schedule(timeZone: newYork, startMinute: 8 * 60, endMinute: 20 * 60)
        let inUTC = Schedule(timeZone: utc, startMinute: 8 * 60, endMinute: 20 * 60)
        // 10:00Z = 06:00 EDT: UTC open, New York closed.
        let tenZ = Instant.date(Instant.wed20240710, hour: 10)
        #expect(inUTC.isOpen(at: tenZ))
        #expect(!ny.isOpen(at: tenZ))
        // 22:00Z = 18:00 EDT: UTC closed, New York open.
        let tenPMZ = Instant.date(Instant.wed20240710, hour: 22)
        #expect(!inUTC.isOpen(at: tenPMZ))
        #expect(ny.isOpen(at: tenPMZ))
    }

    @Test func newYorkBoundariesInSummer() {
        let ny = Schedule(timeZone: newYork, startMinute: 8 * 60, endMinute: 20 * 60)
        #expect(!ny.isOpen(at: Instant.date(Instant.wed20240710, hour: 11, minute: 59)))  // 07:59 EDT
        #expect(ny.isOpen(at: Instant.date(Instant.wed20240710, hour: 12)))               // 08:00 EDT, start inclusive
        #expect(ny.isOpen(at: Instant.date(Instant.wed20240710, hour: 23, minute: 59)))   // 19:59 EDT
        #expect(!ny.isOpen(at: Instant.date(Instant.wed20240710, plusDays: 1, hour: 0)))  // 20:00 EDT, end exclusive
    }

    @Test func newYorkFollowsDaylightSavingTime() {
        let ny = Schedule(timeZone: newYork, startMinute: 8 * 60, endMinute: 20 * 60)
        // 12:30Z is 08:30 EDT in July (open) but 07:30 EST in January (closed).
        #expect(ny.isOpen(at: Instant.date(Instant.wed20240710, hour: 12, minute: 30)))
        #expect(!ny.isOpen(at: Instant.date(Instant.wed20240110, hour: 12, minute: 30)))
        #expect(ny.isOpen(at: Instant.date(Instant.wed20240110, hour: 13)))               // 08:00 EST
        #expect(ny.isOpen(at: Instant.date(Instant.wed20240110, plusDays: 1, hour: 0, minute: 59)))  // 19:59 EST
        #expect(!ny.isOpen(at: Instant.date(Instant.wed20240110, plusDays: 1, hour: 1)))  // 20:00 EST
    }

    @Test func weekdaysAreLocal() {
        // Monday to Friday, all day, New York.
        let weekdays = Schedule(timeZone: newYork, weekdays: [2, 3, 4, 5, 6])
        let weekdaysUTC = Schedule(timeZone: utc, weekdays: [2, 3, 4, 5, 6])
        // 2024-07-13T02:00Z: Saturday in UTC, still Friday 22:00 in New York.
        let saturdayEarlyUTC = Instant.date(Instant.wed20240710, plusDays: 3, hour: 2)
        #expect(weekdays.isOpen(at: saturdayEarlyUTC))
        #expect(!weekdaysUTC.isOpen(at: saturdayEarlyUTC))
        // 2024-07-13T12:00Z: Saturday everywhere.
        #expect(!weekdays.isOpen(at: Instant.date(Instant.wed20240710, plusDays: 3, hour: 12)))
        // 2024-07-15T03:00Z: Monday in UTC, Sunday 23:00 in New York.
        let mondayEarlyUTC = Instant.date(Instant.wed20240710, plusDays: 5, hour: 3)
        #expect(!weekdays.isOpen(at: mondayEarlyUTC))
        #expect(weekdaysUTC.isOpen(at: mondayEarlyUTC))
    }

    @Test func emptyWeekdaysNeverOpen() {
        let never = Schedule(timeZone: utc, weekdays: [])
        for day in 0..<7 { #expect(!never.isOpen(at: Instant.date(Instant.wed20240710, plusDays: day, hour: 12))) }
    }

    @Test func windowPastMidnightBelongsToItsStartDay() {
        // Fridays only, 22:00-06:00, UTC. Friday = 2024-07-12 (wed + 2).
        let fridayNights = Schedule(timeZone: utc, weekdays: [6], startMinute: 22 * 60, endMinute: 6 * 60)
        let friday = 2
        #expect(!fridayNights.isOpen(at: Instant.date(Instant.wed20240710, plusDays: friday, hour: 21, minute: 59)))
        #expect(fridayNights.isOpen(at: Instant.date(Instant.wed20240710, plusDays: friday, hour: 22)))
        #expect(fridayNights.isOpen(at: Instant.date(Instant.wed20240710, plusDays: friday, hour: 23, minute: 59)))
        // Saturday 00:00-05:59 is Friday night.
        #expect(fridayNights.isOpen(at: Instant.date(Instant.wed20240710, plusDays: friday + 1, hour: 0)))
        #expect(fridayNights.isOpen(at: Instant.date(Instant.wed20240710, plusDays: friday + 1, hour: 5, minute: 59)))
        #expect(!fridayNights.isOpen(at: Instant.date(Instant.wed20240710, plusDays: friday + 1, hour: 6)))
        // Saturday 22:00 starts a Saturday night: closed.
        #expect(!fridayNights.isOpen(at: Instant.date(Instant.wed20240710, plusDays: friday + 1, hour: 22)))
        // Friday 03:00 is Thursday night: closed.
        #expect(!fridayNights.isOpen(at: Instant.date(Instant.wed20240710, plusDays: friday, hour: 3)))
        // Midday is outside the window on any day.
        #expect(!fridayNights.isOpen(at: Instant.date(Instant.wed20240710, plusDays: friday, hour: 12)))
    }

    @Test func windowPastMidnightWrapsSaturdayToSunday() {
        // Saturday nights only: Sunday early morning belongs to Saturday (weekday 1 -> previous 7).
        let saturdayNights = Schedule(timeZone: utc, weekdays: [7], startMinute: 22 * 60, endMinute: 6 * 60)
        let sunday = 4  // 2024-07-14
        #expect(saturdayNights.isOpen(at: Instant.date(Instant.wed20240710, plusDays: sunday, hour: 2)))
        #expect(!saturdayNights.isOpen(at: Instant.date(Instant.wed20240710, plusDays: sunday, hour: 22)))
        // Sunday nights: Monday early morning is open.
        let sundayNights = Schedule(timeZone: utc, weekdays: [1], startMinute: 22 * 60, endMinute: 6 * 60)
        #expect(sundayNights.isOpen(at: Instant.date(Instant.wed20240710, plusDays: sunday + 1, hour: 2)))
        #expect(!sundayNights.isOpen(at: Instant.date(Instant.wed20240710, plusDays: sunday, hour: 2)))
    }

    @Test func windowPastMidnightInNewYork() {
        // Wednesday nights, 22:00-06:00 New York time.
        let wednesdayNights = Schedule(timeZone: newYork, weekdays: [4], startMinute: 22 * 60, endMinute: 6 * 60)
        // 2024-07-11T02:30Z = Wednesday 22:30 EDT.
        #expect(wednesdayNights.isOpen(at: Instant.date(Instant.wed20240710, plusDays: 1, hour: 2, minute: 30)))
        // 2024-07-11T09:30Z = Thursday 05:30 EDT: still Wednesday night.
        #expect(wednesdayNights.isOpen(at: Instant.date(Instant.wed20240710, plusDays: 1, hour: 9, minute: 30)))
        // 2024-07-11T10:00Z = Thursday 06:00 EDT: over.
        #expect(!wednesdayNights.isOpen(at: Instant.date(Instant.wed20240710, plusDays: 1, hour: 10)))
        // 2024-07-10T23:00Z = Wednesday 19:00 EDT: not yet (though 23:00 in UTC).
        #expect(!wednesdayNights.isOpen(at: Instant.date(Instant.wed20240710, hour: 23)))
    }

    @Test func weekdayNames() {
        #expect(Schedule.weekdayNames["sun"] == 1)
        #expect(Schedule.weekdayNames["mon"] == 2)
        #expect(Schedule.weekdayNames["sat"] == 7)
        #expect(Schedule.weekdayNames.count == 7)
    }
}
