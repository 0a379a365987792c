import BuyerFleet
import Foundation
import GavelCore
import GavelExchange
import GavelStore
import Testing

/// Live call auctions with real call buyers on loopback.
@Suite(.serialized)
struct CallAuctionTests {
    @Test func highestValidBidIsRoutedAndPingsCarryOnlyCoarseCallerData() async throws {
        let harness = try await TestExchange(buyers: [
            callBidder("rich", bid: "40.00", destination: "18005550101"),
            callBidder("sip", bid: "25.00", destination: "sip:intake@fixhub.example"),
        ])
        let routing = try await harness.runCall()
        #expect(routing.routed)
        #expect(routing.destination == "+18005550101")  // normalised to E.164
        #expect(routing.payout == Money(20))
        #expect(routing.minDurationS == 90)
        #expect(routing.expiresAtMs != nil)
        let round = try await harness.round(routing.callID)
        #expect(round.kind == "call")
        #expect(round.status == "routed")
        #expect(round.reason(of: "rich") == "routed")
        for id in ["rich", "sip"] {
            #expect(harness.fleet.stats(for: id).piiViolations == 0)
            let ping = try JSONValue.parse(try #require(harness.fleet.recentPings(buyer: id).last))
            #expect(ping["kind"] == "call")
            #expect(ping["caller"]?["area_code"] == "415")
            #expect(ping["caller"]?["state"] == "CA")
            #expect(ping["caller"]?["hash"]?.stringValue?.count == 32)
            #expect(!ping.serialized.contains("5550123"))
        }
        await harness.shutdown()
    }

    @Test func failedTransferFallsBackSkippingExpiredBids() async throws {
        let harness = try await TestExchange(buyers: [
            callBidder("first", bid: "50.00", destination: "+18005550101"),
            callBidder("brief", bid: "40.00", destination: "+18005550102", expiresInS: 1),
            callBidder("third", bid: "30.00", destination: "+18005550103"),
        ])
        let routing = try await harness.runCall()
        #expect(routing.destination == "+18005550101")
        try await Task.sleep(for: .milliseconds(1200))
        let outcome = try await harness.event(routing.callID, .failed)
        #expect(outcome.status == "routed")
        #expect(outcome.routing?.destination == "+18005550103")
        let round = try await harness.round(routing.callID)
        #expect(round.reason(of: "first") == "post_failed")
        #expect(round.reason(of: "brief") == "expired")
        #expect(round.reason(of: "third") == "routed")
        #expect(round.events.map(\.type) == ["routed", "failed", "routed"])

        // The last one fails too: nothing valid is left.
        let last = try await harness.event(routing.callID, .failed)
        #expect(last.status == "unrouted")
        #expect(try await harness.round(routing.callID).status == "unrouted")
        await harness.shutdown()
    }

    @Test func onlyCallsPastTheMinimumDurationConvertAndPay() async throws {
        let harness = try await TestExchange(buyers: [callBidder("buyer", bid: "40.00", destination: "+18005550101", minDuration: 90)])
        let short = try await harness.runCall(TestExchange.call(number: "+14155550001"))
        _ = try await harness.event(short.callID, .connected)
        let shortOutcome = try await harness.event(short.callID, .completed, duration: 89)
        #expect(shortOutcome.status == "not_converted")
        #expect(shortOutcome.payout == .zero)
        #expect(try await harness.round(short.callID).reason(of: "buyer") == "short_call")
        #expect(try await harness.store.counts().sales == 0)

        let long = try await harness.runCall(TestExchange.call(number: "+14155550002"))
        let longOutcome = try await harness.event(long.callID, .completed, duration: 90)
        #expect(longOutcome.status == "converted")
        #expect(longOutcome.payout == Money(20))
        let round = try await harness.round(long.callID)
        #expect(round.status == "converted")
        #expect(round.reason(of: "buyer") == "sold")
        #expect(round.payout == Money(20))
        #expect(try await harness.store.counts().sales == 1)
        // A finished call takes no more events.
        await #expect(throws: Exchange.PostError.self) { try await harness.event(long.callID, .failed) }
        await harness.shutdown()
    }

    @Test func concurrencyIsHeldUntilCompletedAndReleasedBySafetyTimeout() async throws {
        let harness = try await TestExchange(buyers: [
            callBidder("busy", bid: "40.00", destination: "+18005550101", yaml: "caps: {concurrent: 1}"),
            callBidder("spare", bid: "20.00", destination: "+18005550102"),
        ])
        let first = try await harness.runCall(TestExchange.call(number: "+14155550011"))
        #expect(first.destination == "+18005550101")
        let second = try await harness.runCall(TestExchange.call(number: "+14155550012"))
        #expect(second.destination == "+18005550102")
        #expect(try await harness.round(second.callID).reason(of: "busy") == "capped")

        _ = try await harness.event(first.callID, .completed, duration: 200)
        let third = try await harness.runCall(TestExchange.call(number: "+14155550013"))
        #expect(third.destination == "+18005550101")

        // No event for the third call: the safety timeout (max_call_s 60) frees the slot.
        #expect(await harness.exchange.releaseAbandonedCalls(at: Date().addingTimeInterval(30)) == 0)
        #expect(await harness.exchange.releaseAbandonedCalls(at: Date().addingTimeInterval(61)) >= 1)
        #expect(try await harness.round(third.callID).status == "abandoned")
        let fourth = try await harness.runCall(TestExchange.call(number: "+14155550014"))
        #expect(fourth.destination == "+18005550101")
        await harness.shutdown()
    }

    @Test func repeatCallsReuseBidsAndDuplicateCallersSkipTheBuyer() async throws {
        let harness = try await TestExchange(buyers: [
            callBidder("dedupes", bid: "40.00", destination: "+18005550101", yaml: "duplicate_window_days: 7"),
            callBidder("other", bid: "20.00", destination: "+18005550102"),
        ])
        let first = try await harness.runCall()
        #expect(first.destination == "+18005550101")
        _ = try await harness.event(first.callID, .completed, duration: 120)
        let again = try await harness.runCall()
        // The same caller again: the bids still valid are reused, no new ping...
        #expect(harness.fleet.stats(for: "dedupes").pings == 1)
        #expect(harness.fleet.stats(for: "other").pings == 1)
        // ...and the buyer that already had this caller is skipped.
        #expect(again.destination == "+18005550102")
        let round = try await harness.round(again.callID)
        #expect(round.reason(of: "dedupes") == "duplicate")
        #expect(round.buyers.first { $0.buyerID == "other" }?.detail?.hasPrefix("bid reused from") == true)
        await harness.shutdown()
    }

    @Test func fixedPriceDestinationsMixWithBidders() async throws {
        var noBid = BuyerBehavior(latency: .fixed(ms: 2))
        noBid.bidProbability = 0
        let harness = try await TestExchange(buyers: [
            TestExchange.BuyerSpec(id: "silent", behavior: noBid, campaign: "calls"),
            TestExchange.BuyerSpec(id: "ringtree", behavior: nil, yaml: "destination: \"+18005550155\"\nmin_duration_s: 120",
                                   campaign: "calls", fixedPrice: "18.00"),
        ])
        let routing = try await harness.runCall()
        #expect(routing.destination == "+18005550155")
        #expect(routing.minDurationS == 120)
        let round = try await harness.round(routing.callID)
        #expect(round.reason(of: "silent") == "no_bid")
        #expect(harness.fleet.stats(for: "ringtree").pings == 0)
        await harness.shutdown()
    }

    @Test func aCallToASessionsTrackingNumberIsAttributed() async throws {
        let harness = try await TestExchange(buyers: [callBidder("buyer", bid: "30.00", destination: "+18005550101")])
        let campaign = try #require(harness.exchange.config.campaigns["calls"])
        let session = await harness.exchange.assignTrackingNumber(
            campaign: campaign, tracking: try #require(campaign.tracking),
            visit: .init(source: "google", medium: "cpc", keyword: "water heater repair", gclid: "abc"))
        #expect(session.number == "+18005550201")
        #expect(session.exclusive)
        // A second visitor gets the next number of the pool; a third the source's fallback.
        let second = await harness.exchange.assignTrackingNumber(campaign: campaign, tracking: campaign.tracking!, visit: .init(source: "google"))
        let third = await harness.exchange.assignTrackingNumber(campaign: campaign, tracking: campaign.tracking!, visit: .init(source: "google"))
        #expect(second.number == "+18005550202")
        #expect(third.number == "+18005550299")
        #expect(!third.exclusive)

        // Campaign left out: the dialed tracking number names it.
        let body = #"{"caller": {"number": "+14155550199", "state": "CA"}, "dialed": "(800) 555-0201"}"#
        let routing = try await harness.runCall(body)
        #expect(routing.routed)
        let round = try await harness.round(routing.callID)
        let attribution = try JSONValue.parse(try #require(round.attributionJSON))
        #expect(attribution["match"] == "session")
        #expect(attribution["source"] == "google")
        #expect(attribution["keyword"] == "water heater repair")
        #expect(attribution["session_id"]?.stringValue == session.id)
        await harness.shutdown()
    }

    @Test func badCallInputIsRefusedByField() async throws {
        let harness = try await TestExchange(buyers: [callBidder("buyer", bid: "30.00", destination: "+18005550101")])
        let config = harness.exchange.config
        let seller = harness.seller
        func field(_ json: String) -> String? {
            do {
                _ = try CallSubmission.parse(Array(json.utf8), seller: seller, config: config)
                return nil
            } catch {
                return error.field
            }
        }
        #expect(field(#"{"campaign": "calls"}"#) == "caller")
        #expect(field(#"{"campaign": "calls", "caller": {"number": "12"}}"#) == "caller.number")
        #expect(field(#"{"campaign": "calls", "caller": {"number": "+14155550123", "zip": "1"}}"#) == "caller.zip")
        #expect(field(#"{"campaign": "autos", "caller": {"number": "+14155550123"}}"#) == "campaign")
        #expect(field(#"{"campaign": "calls", "caller": {"number": "+14155550123"}, "tags": {"email": "a@b.co"}}"#) == "tags.email")
        #expect(field(#"{"caller": {"number": "+14155550123"}}"#) == "campaign")
        #expect(throws: RequestError.self) { try CallEvent.parse(Array(#"{"type": "completed"}"#.utf8)) }
        #expect(throws: RequestError.self) { try CallEvent.parse(Array(#"{"type": "hangup"}"#.utf8)) }
        #expect(try CallEvent.parse(Array(#"{"type": "hung_up"}"#.utf8)).kind == .hungUp)
        await harness.shutdown()
    }
}
