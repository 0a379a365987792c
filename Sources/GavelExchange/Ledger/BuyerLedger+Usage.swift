import Foundation
import GavelCore

extension BuyerLedger {
    /// What a buyer has used of its caps in the current hour, day and month (its own time zone),
    /// sales in flight included.
    public struct CapUsage: Sendable, Hashable {
        public var hour: Int
        public var day: Int
        public var month: Int
        public var daySpend: Money

        public init(hour: Int = 0, day: Int = 0, month: Int = 0, daySpend: Money = .zero) {
            self.hour = hour
            self.day = day
            self.month = month
            self.daySpend = daySpend
        }
    }

    public func capUsage(buyer: Buyer, at date: Date) -> CapUsage {
        let windows = CapWindows(date: date, timeZone: buyer.capTimeZone)
        return withState { state in
            let day = state.usage(buyerID: buyer.id, window: windows.day)
            return CapUsage(hour: state.usage(buyerID: buyer.id, window: windows.hour).count, day: day.count,
                            month: state.usage(buyerID: buyer.id, window: windows.month).count, daySpend: day.spend)
        }
    }
}
