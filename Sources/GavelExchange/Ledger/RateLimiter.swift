import Foundation
import GavelCore
import Synchronization

/// Token buckets by key (seller or buyer id, client address), behind one lock: taken on every
/// request, so no actor hop. Bounded: at `capacity` keys, buckets that have refilled (the same as
/// new ones) are dropped; if every bucket is still in use, a new key is refused as over its limit.
public final class RateLimiter: Sendable {
    private let buckets = Mutex<[String: TokenBucket]>([:])
    private let start = ContinuousClock.now
    public let capacity: Int

    public init(capacity: Int = 100_000) { self.capacity = capacity }

    /// Takes one token for `key` under `limit`; nil when allowed, else the seconds to wait.
    public func take(_ key: String, limit: RateLimit) -> Double? {
        let (seconds, attoseconds) = start.duration(to: .now).components
        let now = Double(seconds) + Double(attoseconds) / 1e18
        return buckets.withLock { buckets in
            var bucket: TokenBucket
            if let existing = buckets[key], existing.ratePerSecond == limit.perSecond, existing.burst == max(1, Double(limit.burst)) {
                bucket = existing
            } else {
                // A new key, or the config changed on reload: start the limit afresh.
                if buckets[key] == nil, buckets.count >= capacity {
                    buckets = buckets.filter { !$0.value.isFull(nowSeconds: now) }
                    guard buckets.count < capacity else { return 1 }
                }
                bucket = TokenBucket(ratePerSecond: limit.perSecond, burst: Double(limit.burst))
            }
            defer { buckets[key] = bucket }
            return bucket.take(nowSeconds: now) ? nil : bucket.secondsUntilNextToken
        }
    }

}
