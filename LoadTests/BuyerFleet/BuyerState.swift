import Foundation
import NIOConcurrencyHelpers
import NIOCore

/// One buyer's behaviour, counters, recent bodies and random stream, behind one lock.
///
/// Each request takes the lock once, to count itself and draw every random choice it needs; the
/// slow parts (PII scan, encoding, writing) happen outside it.
final class BuyerState: Sendable {
    /// How many request bodies of each kind are kept for tests.
    static let recentCapacity = 200

    let id: String
    private let state: NIOLockedValueBox<Mutable>

    private struct Mutable: Sendable {
        var behavior: BuyerBehavior
        var stats = BuyerStats()
        var recentPings = RingBuffer<Data>(capacity: BuyerState.recentCapacity)
        var recentPosts = RingBuffer<Data>(capacity: BuyerState.recentCapacity)
        // Not reset with the stats, so ids stay unique for the life of the fleet.
        var bidSequence = 0
        var referenceSequence = 0
        var rng: SeededGenerator
    }

    init(id: String, behavior: BuyerBehavior, seed: UInt64) {
        self.id = id
        state = NIOLockedValueBox(Mutable(behavior: behavior, rng: SeededGenerator(seed: seed, buyer: id)))
    }

    var behavior: BuyerBehavior {
        get { state.withLockedValue { $0.behavior } }
        set { state.withLockedValue { $0.behavior = newValue } }
    }

    var stats: BuyerStats {
        state.withLockedValue { $0.stats }
    }

    var recentPings: [Data] {
        state.withLockedValue { $0.recentPings.elements }
    }

    var recentPosts: [Data] {
        state.withLockedValue { $0.recentPosts.elements }
    }

    func resetStats() {
        state.withLockedValue {
            $0.stats = BuyerStats()
            $0.recentPings.removeAll()
            $0.recentPosts.removeAll()
        }
    }

    /// Counts a ping and decides its answer.
    func answerPing(body: Data, containsPII: Bool) -> Reply {
        state.withLockedValue { s in
            s.stats.pings += 1
            s.recentPings.append(body)
            if containsPII {
                s.stats.piiViolations += 1
            }
            let behavior = s.behavior
            let delay = TimeAmount(milliseconds: behavior.latency.sampleMilliseconds(using: &s.rng))
            let isFault = behavior.fault != nil && s.rng.chance(behavior.faultRate)
            if !isFault && !s.rng.chance(behavior.bidProbability) {
                s.stats.noBids += 1
                return Reply(delay: delay, action: .respond(.noContent, body: nil))
            }

            s.bidSequence += 1
            if let raw = behavior.rawBid {
                s.stats.bids += 1
                return Reply(delay: delay, action: .respond(.ok, body: ByteBuffer(string: raw)))
            }
            let low = Cents(decimal: behavior.bidMin) ?? Cents(0)
            let high = Cents(decimal: behavior.bidMax) ?? Cents(0)
            let bid = ResponseBody.bid(
                amount: .random(between: low, and: high, using: &s.rng),
                bidID: "\(id)-\(s.bidSequence)",
                expiresInS: behavior.expiresInS,
                destination: behavior.destination,
                minDurationS: behavior.minDurationS)
            if isFault, let fault = behavior.fault {
                s.stats.faults += 1
                return .fault(fault, delay: delay, validBody: bid, behavior: behavior)
            }
            s.stats.bids += 1
            return Reply(delay: delay, action: .respond(.ok, body: ByteBuffer(string: bid)))
        }
    }

    /// Counts a post and decides its answer.
    func answerPost(body: Data) -> Reply {
        state.withLockedValue { s in
            s.stats.posts += 1
            s.recentPosts.append(body)
            let behavior = s.behavior
            let delay = TimeAmount(milliseconds: behavior.postLatency.sampleMilliseconds(using: &s.rng))
            if let fault = behavior.postFault ?? behavior.fault, s.rng.chance(behavior.faultRate) {
                s.stats.faults += 1
                return .fault(fault, delay: delay, validBody: ResponseBody.rejected, behavior: behavior)
            }
            guard s.rng.chance(behavior.postAcceptRate) else {
                s.stats.rejected += 1
                return Reply(delay: delay, action: .respond(.ok, body: ByteBuffer(string: ResponseBody.rejected)))
            }
            s.stats.accepted += 1
            s.referenceSequence += 1
            let accepted = ResponseBody.accepted(reference: "\(id)-\(s.referenceSequence)")
            return Reply(delay: delay, action: .respond(.ok, body: ByteBuffer(string: accepted)))
        }
    }
}
