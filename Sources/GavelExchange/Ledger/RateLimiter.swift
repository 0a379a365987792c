import Foundation
import GavelCore
import Synchronization

/// Token buckets by key (seller or buyer id), behind one lock: taken on every request, so no actor hop.
final class RateLimiter: Sendable {
    private let buckets = Mutex<[String: TokenBucket]>([:])
    private let start = ContinuousClock.now

    /// Takes one token for `key` under `limit`; nil when allowed, else the seconds to wait.
    func take(_ key: String, limit: RateLimit) -> Double? {
        let (seconds, attoseconds) = start.duration(to: .now).components
        let now = Double(seconds) + Double(attoseconds) / 1e18
        return buckets.withLock { buckets in
            var bucket = buckets[key] ?? TokenBucket(ratePerSecond: limit.perSecond, burst: Double(limit.burst))
            if bucket.ratePerSecond != limit.perSecond || bucket.burst != max(1, Double(limit.burst)) {
                // The config changed on reload: start the new limit afresh.
                bucket = TokenBucket(ratePerSecond: limit.perSecond, burst: Double(limit.burst))
            }
            defer { buckets[key] = bucket }
            return bucket.take(nowSeconds: now) ? nil : bucket.secondsUntilNextToken
        }
    }
}
