/// How many rounds may run at once, adapted to what the machine keeps up with.
///
/// A round admitted past what the exchange can work through starts late, pings late, and ends
/// unsold: past saturation every round suffers and almost nothing sells. So rounds beyond the limit
/// are refused at once (503 `overloaded`), and the limit follows a congestion signal the runner
/// observes — how late a round got its pings out, measured from the request's arrival — by
/// additive increase and multiplicative decrease (the scheme TCP uses for its window): each
/// uncongested round adds 1/limit, a congested one cuts the limit by `decrease`, at most once per
/// `cooldownMs`. As in TCP, it starts small and doubles (+1 per uncongested round) until the first
/// congestion ("slow start"), and grows only while it is in use (at least half of it in flight): a
/// limit far above what the exchange ever ran would let a sudden burst in whole, and a burst of
/// thousands of rounds holds thousands of connections' memory before the first cut (LoadTests S5X:
/// 262 MiB). No I/O, no clock of its own.
public struct AdmissionLimit: Sendable {
    public struct Settings: Sendable, Hashable {
        /// The limit never goes below this: a slow moment must not shut the exchange.
        public var minLimit: Int
        /// Nor above this: a hard bound on memory (`Exchange.Configuration.maxRoundsInFlight`).
        public var maxLimit: Int
        /// Where it starts (within the bounds).
        public var initialLimit: Int
        /// A round whose pings went out later than this after its arrival signals congestion...
        public var lateStartMs: Int
        /// ...or later than this share of its budget, whichever is larger.
        public var lateStartShareOfBudget: Double
        public var decrease: Double
        public var cooldownMs: Int64

        public init(minLimit: Int = 8, maxLimit: Int = 4_096, initialLimit: Int = 64, lateStartMs: Int = 5,
                    lateStartShareOfBudget: Double = 0.05, decrease: Double = 0.9, cooldownMs: Int64 = 20) {
            self.minLimit = max(1, min(minLimit, maxLimit))
            self.maxLimit = max(1, maxLimit)
            self.initialLimit = min(max(initialLimit, self.minLimit), self.maxLimit)
            self.lateStartMs = lateStartMs
            self.lateStartShareOfBudget = lateStartShareOfBudget
            self.decrease = decrease
            self.cooldownMs = cooldownMs
        }
    }

    public let settings: Settings
    public private(set) var limit: Double
    public private(set) var inFlight = 0
    private var lastDecreaseMs: Int64?
    /// No congestion seen yet: the limit doubles while in use instead of creeping up.
    public private(set) var slowStart = true

    public init(settings: Settings = Settings()) {
        self.settings = settings
        self.limit = Double(settings.initialLimit)
    }

    /// Takes a place for a round; false: refuse it.
    public mutating func admit() -> Bool {
        guard inFlight < max(settings.minLimit, Int(limit)) else { return false }
        inFlight += 1
        return true
    }

    /// Whether a round whose pings went out `startDelayMs` after its arrival, with `budgetMs`, ran congested.
    public func isLate(startDelayMs: Double, budgetMs: Int) -> Bool {
        startDelayMs > max(Double(settings.lateStartMs), Double(budgetMs) * settings.lateStartShareOfBudget)
    }

    /// A round got its pings out (or had none to send) `startDelayMs` after arrival: adapt the limit.
    public mutating func observe(startDelayMs: Double, budgetMs: Int, nowMs: Int64) {
        if isLate(startDelayMs: startDelayMs, budgetMs: budgetMs) {
            observeCongestion(nowMs: nowMs)
        } else if Double(inFlight * 2) >= limit {
            limit = min(Double(settings.maxLimit), limit + (slowStart ? 1 : 1 / max(1, limit)))
        }
    }

    /// The exchange's own overload showed (a late start, a late commit, most buyers timing out
    /// together): cut the limit, at most once per `cooldownMs`.
    public mutating func observeCongestion(nowMs: Int64) {
        slowStart = false
        if let last = lastDecreaseMs, nowMs - last < settings.cooldownMs { return }
        lastDecreaseMs = nowMs
        limit = max(Double(settings.minLimit), limit * settings.decrease)
    }

    /// A round admitted earlier has ended.
    public mutating func release() { inFlight = max(0, inFlight - 1) }
}
