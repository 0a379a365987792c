import Foundation
import GavelCore
import GavelExchange
import GavelServer
import Synchronization
import Testing

/// A wall clock the test moves: expiry without sleeping.
final class ManualWallClock: WallClock {
    private let current = Mutex<Int64>(Int64(Date().timeIntervalSince1970 * 1000))
    var nowMs: Int64 { current.withLock { $0 } }
    func advance(seconds: Int64) { current.withLock { $0 += seconds * 1000 } }
}

@Suite(.serialized)
struct ClockTests {
    @Test func heldBidsAndIdempotencyKeysExpireByTheExchangesClock() async throws {
        let clock = ManualWallClock()
        let harness = try await TestExchange(buyers: [bidder("buyer", bid: "10.00")])
        harness.configureSettings = { $0.exchange.clock = clock }
        await harness.stopServer()
        try await harness.openServer()
        try await harness.startHTTP()

        let ping = #"{"campaign": "autos", "lead": {"zip": "94107", "state": "CA"}}"#
        let pinged = try await harness.http(.post, "/v1/pings", body: ping, headers: [("Idempotency-Key", "clock-1")])
        let pingID = try #require(pinged.json["ping_id"]?.stringValue)
        // The buyer holds its bid 60 s (the fleet's default expires_in_s): a minute later it is gone.
        clock.advance(seconds: 61)
        let late = try await harness.http(.post, "/v1/posts", body: #"{"ping_id": "\#(pingID)", "contact": {"email": "jo@example.com"}}"#)
        #expect(late.status == 410)
        #expect(late.json["error"]?["code"] == .string("ping_expired"))

        // Within 24 h the key answers the first ping again; after it, the key is new.
        let again = try await harness.http(.post, "/v1/pings", body: ping, headers: [("Idempotency-Key", "clock-1")])
        #expect(again.json["ping_id"]?.stringValue == pingID)
        clock.advance(seconds: 24 * 3600)
        #expect(await harness.exchange.sweepIdempotencyKeys() == 1)
        let fresh = try await harness.http(.post, "/v1/pings", body: ping, headers: [("Idempotency-Key", "clock-1")])
        #expect(fresh.status == 200)
        #expect(fresh.json["ping_id"]?.stringValue != pingID)
        await harness.shutdown()
    }
}

struct TimestampTests {
    @Test(arguments: [(Int64(0), "1970-01-01T00:00:00.000Z"), (1_795_000_000_123, "2026-11-18T11:06:40.123Z"), (-1, "1969-12-31T23:59:59.999Z")])
    func rfc3339WithMilliseconds(_ ms: Int64, _ expected: String) {
        #expect(Timestamps.rfc3339(ms: ms) == expected)
    }
}
