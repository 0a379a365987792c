import Foundation
import Testing
@testable import GavelCore

/// The call state machine without I/O: routing, events, and what each returns.
struct CallLifecycleTests {
    func lifecycle(bids: [(String, Int, Int?)] = [("a", 40, 90), ("b", 20, nil)]) -> CallLifecycle {
        var round = AuctionRound(id: "call_1", payoutRule: .share(basisPoints: 5000), considered: bids.map { id, _, _ in
            .pinged(.init(buyerID: id), tmaxMs: 100)
        })
        for (id, price, minimum) in bids {
            _ = round.receive(.bid(price: Money(price), bidID: nil, expiresInS: 30, destination: "+1800555\(String(format: "%04d", price))",
                                   minDurationS: minimum), from: id, latencyUs: 1)
        }
        _ = round.closeBidding(atMs: 1_000, method: .auction)
        return CallLifecycle(round: round, defaultMinDurationS: 60)
    }

    @Test func routesToTheBestBidAndConvertsPastTheMinimum() throws {
        var call = lifecycle()
        #expect(call.nextRoute(atMs: 1_001) == .reserve(call.round.ranking[0]))
        call.reserved(atMs: 1_002)
        #expect(call.isLive && call.status == "routed" && call.current?.buyerID == "a")
        #expect(throws: Never.self) { try call.connect(atMs: 1_003).get() }
        #expect(call.status == "connected")
        let (bid, converted) = try call.complete(atMs: 100_000, durationS: 95, recordingURL: nil).get()
        #expect(bid.buyerID == "a" && converted)
        #expect(call.ending == .converted && !call.isLive)
        #expect(call.events.map(\.type) == ["routed", "connected", "completed"])
        #expect(call.round.entry(for: "a")?.reason == .sold)
    }

    @Test func aShortCallIsNotConvertedAndUsesTheDefaultMinimum() throws {
        var call = lifecycle(bids: [("a", 40, nil)])
        _ = call.nextRoute(atMs: 1_001)
        call.reserved(atMs: 1_001)
        let (_, converted) = try call.complete(atMs: 2_000, durationS: 59, recordingURL: "https://rec/1").get()
        #expect(!converted)
        #expect(call.status == "not_converted")
        #expect(call.round.entry(for: "a")?.reason == .shortCall)
    }

    @Test func aFailedTransferFreesTheSlotAndRoutesOn() throws {
        var call = lifecycle()
        _ = call.nextRoute(atMs: 1_001)
        call.reserved(atMs: 1_001)
        let freed = try call.fail(atMs: 1_500, detail: "busy").get()
        #expect(freed.buyerID == "a")
        guard case .reserve(let next) = call.nextRoute(atMs: 1_501) else { Issue.record("expected the next bid"); return }
        #expect(next.buyerID == "b")
        call.denied(.capped, detail: "no slot")
        #expect(call.nextRoute(atMs: 1_502) == .unrouted)
        #expect(call.ending == .unrouted)
        #expect(call.round.entry(for: "a")?.reason == .postFailed)
        #expect(call.round.entry(for: "b")?.reason == .capped)
    }

    @Test func eventsThatDoNotFitAreRejected() throws {
        var call = lifecycle()
        #expect(throws: CallLifecycle.Rejection.self) { try call.connect(atMs: 1).get() }
        _ = call.nextRoute(atMs: 1_001)
        call.reserved(atMs: 1_001)
        _ = call.connect(atMs: 1_002)
        // A connected call can only complete; a repeated `connected` changes nothing.
        #expect(throws: CallLifecycle.Rejection.self) { _ = try call.fail(atMs: 1_003, detail: nil).get() }
        #expect(throws: Never.self) { try call.connect(atMs: 1_004).get() }
        #expect(call.events.count == 2)
        _ = call.complete(atMs: 200_000, durationS: 300, recordingURL: nil)
        #expect(throws: CallLifecycle.Rejection.self) { _ = try call.complete(atMs: 200_001, durationS: 300, recordingURL: nil).get() }
        #expect(call.abandon(atMs: 300_000, maxCallS: 60) == nil)
    }

    @Test func expiredBidsAreNotRoutedAndAbandonedCallsEnd() {
        var call = lifecycle()
        // Bids hold 30 s from when bidding closed (1 s): at 40 s both expired.
        #expect(call.nextRoute(atMs: 40_000) == .unrouted)
        var live = lifecycle()
        _ = live.nextRoute(atMs: 1_001)
        live.reserved(atMs: 1_001)
        #expect(live.abandon(atMs: 5_000_000, maxCallS: 3600)?.buyerID == "a")
        #expect(live.ending == .abandoned)
        #expect(live.round.entry(for: "a")?.reason == .postTimeout)
    }

    @Test func itSurvivesEncoding() throws {
        var call = lifecycle()
        _ = call.nextRoute(atMs: 1_001)
        call.reserved(atMs: 1_001)
        let data = try JSONEncoder().encode(call)
        var restored = try JSONDecoder().decode(CallLifecycle.self, from: data)
        #expect(restored.current == call.current)
        #expect(restored.status == "routed")
        _ = restored.fail(atMs: 2_000, detail: nil)
        guard case .reserve(let next) = restored.nextRoute(atMs: 2_001) else { Issue.record("expected the next bid"); return }
        #expect(next.buyerID == "b")
    }
}
