/// A rate limit: `ratePerSecond` on average, bursts up to `burst`. Pure: the caller passes the time.
public struct TokenBucket: Sendable, Hashable {
    public let ratePerSecond: Double
    public let burst: Double
    private var tokens: Double
    private var lastSeconds: Double?

    public init(ratePerSecond: Double, burst: Double) {
        self.ratePerSecond = ratePerSecond
        self.burst = max(1, burst)
        self.tokens = max(1, burst)
    }

    /// Takes one token at `nowSeconds` (any monotonic clock); false when the limit is reached.
    public mutating func take(nowSeconds: Double) -> Bool {
        if let lastSeconds { tokens = min(burst, tokens + (nowSeconds - lastSeconds) * ratePerSecond) }
        lastSeconds = nowSeconds
        guard tokens >= 1 else { return false }
        tokens -= 1
        return true
    }

    /// Whether the bucket has refilled by `nowSeconds`: it is then the same as a new one.
    public func isFull(nowSeconds: Double) -> Bool {
        guard let lastSeconds else { return true }
        return tokens + (nowSeconds - lastSeconds) * ratePerSecond >= burst
    }

    /// Seconds until a token is available, for `Retry-After`.
    public var secondsUntilNextToken: Double { tokens >= 1 ? 0 : (1 - tokens) / ratePerSecond }
}
