import Foundation

/// Calendar time as the exchange reads it: bid expiry, cap windows, idempotency and call
/// deadlines. Injected, so tests move time forward instead of sleeping. (Budgets within a round
/// use the monotonic `ContinuousClock`: they must not jump with the wall clock.)
public protocol WallClock: Sendable {
    /// Milliseconds since the Unix epoch.
    var nowMs: Int64 { get }
}

extension WallClock {
    public var now: Date { Date(timeIntervalSince1970: Double(nowMs) / 1000) }
}

/// The system's clock.
public struct SystemWallClock: WallClock {
    public init() {}
    public var nowMs: Int64 { Int64(Date().timeIntervalSince1970 * 1000) }
}
