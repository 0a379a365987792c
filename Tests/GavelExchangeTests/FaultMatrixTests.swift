import BuyerFleet
import Foundation
import GavelCore
import GavelExchange
import GavelPing
import GavelStore
import Synchronization
import Testing

/// Every way a buyer can fail, through the whole exchange (real loopback buyers, a real SQLite file,
/// and once the HTTP server): the exchange keeps serving, the faulty buyer gets the reason code the
/// README documents, an honest buyer in the same round still sells, and the answer comes within the
/// round's budget.
///
/// Rounds run in campaign `tiny` (tmax 300 ms, ping phase 200 ms). The time checks allow the budget
/// plus half a second: they catch a buyer that holds the answer (its own timeouts are 2 s for pings
/// and 8 s for posts, a slow lookup 10 s), not scheduling jitter.
@Suite(.serialized)
struct FaultMatrixTests {
    static let margin = Duration.milliseconds(500)

    /// How a buyer fails. A ping fault makes its pings fail; as a post fault the buyer bids the
    /// highest and fails only its post.
    enum Fault: String, CaseIterable, Sendable, CustomTestStringConvertible {
        case hang, reset, garbage, http5xx, slowDrip, huge, redirect, refused, unresolvable, slowDNS

        var testDescription: String { rawValue }

        /// The reason the faulty buyer gets when its ping fails so.
        var pingReason: String {
            switch self {
            case .hang, .slowDrip: "timeout"
            case .reset, .refused, .unresolvable: "unreachable"
            // The name did not resolve within the ping's deadline (README: "the name did not resolve").
            case .slowDNS: "unreachable"
            case .garbage, .huge: "bad_response"
            // A 3xx is not followed: it is an answer that is not a 2xx.
            case .http5xx, .redirect: "http_error"
            }
        }

        /// The reason when its post fails so (nil: not a fault a post can show here, the post URL
        /// being the fleet's). A post that times out takes what is left of the budget, so nothing
        /// after it in the waterfall can be posted.
        var postReason: String? {
            switch self {
            case .hang, .slowDrip: "post_timeout"
            case .reset, .garbage, .http5xx, .huge, .redirect: "post_failed"
            case .refused, .unresolvable, .slowDNS: nil
            }
        }

        /// The fleet's fault, for the faults the fleet plays.
        var fleetFault: BuyerBehavior.Fault? {
            switch self {
            case .hang: .hang
            case .reset: .reset
            case .garbage: .garbage
            case .http5xx: .http500
            case .slowDrip: .slowDrip
            case .huge: .oversized
            case .redirect: .redirect
            case .refused, .unresolvable, .slowDNS: nil
            }
        }

        static var postFaults: [Fault] { allCases.filter { $0.postReason != nil } }
    }

    static let honest = "honest"
    static let honestBid = "10.00"

    static func honestBuyer(id: String = FaultMatrixTests.honest, campaign: String = "tiny") -> TestExchange.BuyerSpec {
        TestExchange.BuyerSpec(id: id, behavior: BuyerBehavior(latency: .fixed(ms: 2), bidMin: honestBid, bidMax: honestBid),
                               campaign: campaign)
    }

    /// A buyer that fails its pings with `fault`.
    static func pingFaulty(_ fault: Fault, id: String) throws -> TestExchange.BuyerSpec {
        let refused = try BuyerFleet.refusedURL()
        switch fault {
        case .refused:
            return TestExchange.BuyerSpec(id: id, behavior: nil, pingURL: refused, campaign: "tiny")
        case .unresolvable:
            return TestExchange.BuyerSpec(id: id, behavior: nil, pingURL: refused.replacingOccurrences(of: "127.0.0.1", with: FakeDNS.unresolvableHost),
                                          campaign: "tiny")
        case .slowDNS:
            return TestExchange.BuyerSpec(id: id, behavior: nil, pingURL: refused.replacingOccurrences(of: "127.0.0.1", with: FakeDNS.slowHost),
                                          campaign: "tiny")
        default:
            var behavior = BuyerBehavior(latency: .fixed(ms: 1), bidMin: "20", bidMax: "20")
            behavior.fault = fault.fleetFault
            behavior.oversizedBytes = 20 << 20
            // Were it followed, the honest buyer would be pinged twice and this buyer would bid.
            behavior.redirectTo = "/\(honest)/ping"
            return TestExchange.BuyerSpec(id: id, behavior: behavior, campaign: "tiny")
        }
    }

    /// A buyer that bids 20 (above the honest 10) and fails its post with `fault`.
    static func postFaulty(_ fault: Fault, id: String) -> TestExchange.BuyerSpec {
        var behavior = BuyerBehavior(latency: .fixed(ms: 1), bidMin: "20", bidMax: "20")
        behavior.postFault = fault.fleetFault
        behavior.oversizedBytes = 20 << 20
        // Were it followed, the honest buyer would take this post and the lead would sell to this buyer.
        behavior.redirectTo = "/\(honest)/post"
        return TestExchange.BuyerSpec(id: id, behavior: behavior, campaign: "tiny")
    }

    /// Runs `body` and returns its value with the wall time it took.
    static func timed<T>(_ body: () async throws -> T) async rethrows -> (T, Duration) {
        let started = ContinuousClock.now
        let value = try await body()
        return (value, started.duration(to: .now))
    }

    /// The round's recorded duration and the caller's wall time are both within its budget plus the margin.
    static func expectWithinBudget(_ round: StoredRound, wall: Duration, _ comment: Comment? = nil,
                                   sourceLocation: SourceLocation = #_sourceLocation) {
        let limit = Duration.milliseconds(round.tmaxMs) + margin
        #expect(round.tmaxMs == 300, comment, sourceLocation: sourceLocation)
        #expect(Duration.microseconds(round.durationUs) < limit, comment, sourceLocation: sourceLocation)
        #expect(wall < limit, comment, sourceLocation: sourceLocation)
    }

    // MARK: Pings

    @Test(arguments: Fault.allCases)
    func aFailingPingGetsItsReasonAndTheHonestBuyerSells(_ fault: Fault) async throws {
        let dns = FakeDNS()
        defer { dns.release() }
        let harness = try await TestExchange(buyers: [try Self.pingFaulty(fault, id: "faulty"), Self.honestBuyer()], resolver: dns.makeResolver())
        for index in 0..<2 {  // twice: the first failure must leave nothing broken for the next round
            let (result, wall) = try await Self.timed {
                try await harness.runLead(TestExchange.lead(email: "\(fault)-\(index)@example.com", campaign: "tiny"))
            }
            let round = try await harness.round(result.auctionID)
            #expect(round.reason(of: "faulty") == fault.pingReason, "round \(index)")
            #expect(round.reason(of: Self.honest) == "sold", "round \(index)")
            #expect(result.sold)
            #expect(round.winnerID == Self.honest)
            #expect(round.posts.map(\.buyerID) == [Self.honest])
            Self.expectWithinBudget(round, wall: wall, "round \(index)")
        }
        // Not followed: the honest buyer saw its own two pings and nothing more.
        #expect(harness.fleet.stats(for: Self.honest).pings == 2)
        #expect(harness.fleet.stats(for: Self.honest).posts == 2)
        if fault == .slowDNS { #expect(dns.slowLookupsAnswered == 0, "both rounds ran while the lookup was pending") }
        await harness.shutdown()
    }

    // MARK: Posts

    @Test(arguments: Fault.postFaults)
    func aFailingPostGetsItsReasonAndTheRoundFallsBack(_ fault: Fault) async throws {
        let harness = try await TestExchange(buyers: [Self.postFaulty(fault, id: "faulty"), Self.honestBuyer()])
        let expected = try #require(fault.postReason)
        // A timed-out post used the rest of the budget: the honest bid behind it is never posted.
        let timesOut = expected == "post_timeout"

        // A full lead: the post follows the pings in the same request.
        let (lead, leadWall) = try await Self.timed {
            try await harness.runLead(TestExchange.lead(email: "\(fault)-lead@example.com", campaign: "tiny"))
        }
        let leadRound = try await harness.round(lead.auctionID)
        #expect(leadRound.reason(of: "faulty") == expected)
        #expect(leadRound.posts.first?.buyerID == "faulty")
        #expect(leadRound.posts.first?.result == expected)
        if timesOut {
            #expect(!lead.sold)
            #expect(leadRound.reason(of: Self.honest) == "budget_exhausted")
        } else {
            #expect(lead.sold)
            #expect(leadRound.winnerID == Self.honest)
            #expect(leadRound.reason(of: Self.honest) == "sold")
        }
        Self.expectWithinBudget(leadRound, wall: leadWall, "lead")

        // Two-phase: the bids are held, then `POST /v1/posts` posts to the faulty buyer first.
        let ping = try await harness.exchange.runPing(
            harness.submission(#"{"campaign": "tiny", "lead": {"zip": "94107", "state": "CA"}}"#, shape: .pingOnly),
            seller: harness.seller, arrival: .now)
        #expect(ping.hasBid)
        let contact = JSONObject(["first_name": .string("Jo"), "email": .string("\(fault)-post@example.com"), "phone": .string("+15551234567")])
        let (post, postWall) = try await Self.timed {
            try await harness.exchange.runPost(pingID: ping.pingID, lead: nil, contact: contact, seller: harness.seller, arrival: .now)
        }
        let postRound = try await harness.round(ping.pingID)
        #expect(postRound.reason(of: "faulty") == expected)
        #expect(postRound.posts.first?.result == expected)
        #expect(post.sold == !timesOut)
        #expect(postRound.reason(of: Self.honest) == (timesOut ? "budget_exhausted" : "sold"))
        Self.expectWithinBudget(postRound, wall: postWall, "post")

        // Exactly the fallback posts reached the honest buyer: a redirect was not followed to it.
        #expect(harness.fleet.stats(for: Self.honest).posts == (timesOut ? 0 : 2))
        await harness.shutdown()
    }

    /// A post carries the contact and may sell the lead: the exchange sends it once, and a buyer
    /// that resets the connection gets it once too, not again on another connection. The fleet
    /// serves every buyer on one host and port, so after a round the engine holds several idle
    /// connections to it, the way it does to a real buyer with ping and post on one host.
    /// (libcurl re-sends a request whose reused connection dies before any answer: "Connection
    /// died, retrying a fresh connect". Posts go on a fresh connection for that reason; pings keep
    /// their kept-alive connections, so a buyer that resets may see a ping more than once.)
    @Test func aRequestThatIsResetIsNotSentAgain() async throws {
        let harness = try await TestExchange(buyers: [
            try Self.pingFaulty(.reset, id: "resets-pings"), Self.postFaulty(.reset, id: "resets-posts"), Self.honestBuyer(),
        ])
        let rounds = 3
        for index in 0..<rounds {
            let result = try await harness.runLead(TestExchange.lead(email: "reset-\(index)@example.com", campaign: "tiny"))
            let round = try await harness.round(result.auctionID)
            #expect(round.reason(of: "resets-pings") == "unreachable")
            #expect(round.reason(of: "resets-posts") == "post_failed")
            #expect(round.reason(of: Self.honest) == "sold")
            #expect(round.posts.map(\.buyerID) == ["resets-posts", Self.honest])
        }
        #expect(harness.fleet.stats(for: "resets-posts").posts == rounds, "posts sent to the buyer that resets")
        #expect(harness.fleet.stats(for: "resets-pings").pings >= rounds, "pings sent to the buyer that resets")
        #expect(harness.fleet.stats(for: Self.honest).posts == rounds)
        await harness.shutdown()
    }

    // MARK: Everything at once, over HTTP

    @Test func everyFaultInOneRoundOverHTTP() async throws {
        let dns = FakeDNS()
        defer { dns.release() }
        let faulty = try Fault.allCases.map { try Self.pingFaulty($0, id: "faulty-\($0)") }
        let harness = try await TestExchange(buyers: faulty + [Self.honestBuyer()], resolver: dns.makeResolver())
        try await harness.startHTTP()
        for index in 0..<2 {
            let (response, wall) = try await Self.timed {
                try await harness.http(.post, "/v1/leads", body: TestExchange.lead(email: "all-\(index)@example.com", campaign: "tiny"))
            }
            #expect(response.status == 200)
            #expect(response.json["status"] == .string("sold"))
            let id = try #require(response.json["auction_id"]?.stringValue)
            let round = try await harness.round(id)
            for fault in Fault.allCases {
                #expect(round.reason(of: "faulty-\(fault)") == fault.pingReason, "\(fault), round \(index)")
            }
            #expect(round.reason(of: Self.honest) == "sold")
            Self.expectWithinBudget(round, wall: wall, "round \(index)")
        }
        #expect(harness.fleet.stats(for: Self.honest).pings == 2)
        #expect(try await harness.http(.get, "/healthz", key: nil).status == 200)
        await harness.shutdown()
    }

    // MARK: Slow DNS does not spread

    @Test func aSlowLookupDelaysNoOtherRound() async throws {
        let dns = FakeDNS()
        defer { dns.release() }
        let harness = try await TestExchange(buyers: [
            try Self.pingFaulty(.slowDNS, id: "slow-dns"), Self.honestBuyer(),
            Self.honestBuyer(id: "steady", campaign: "autos"),
        ], resolver: dns.makeResolver())
        // The exchange starts looking buyers up when it opens; the slow lookup is now under way.
        try await dns.waitForSlowLookup()

        // A round to the slow host and, at the same time, a round in another campaign (tmax 5 s,
        // ping phase 3 s) to an honest buyer only. Were the engine held up by the lookup, that
        // buyer would time out after 3 s.
        async let slow = Self.timed { try await harness.runLead(TestExchange.lead(email: "slow@example.com", campaign: "tiny")) }
        async let other = Self.timed { try await harness.runLead(TestExchange.lead(email: "other@example.com", campaign: "autos")) }
        let ((slowResult, slowWall), (otherResult, otherWall)) = try await (slow, other)

        #expect(dns.slowLookupsAnswered == 0, "the lookup was still pending")
        let otherRound = try await harness.round(otherResult.auctionID)
        #expect(otherResult.sold)
        #expect(otherRound.reason(of: "steady") == "sold")
        #expect(otherWall < .milliseconds(2000))
        #expect(Duration.microseconds(otherRound.durationUs) < .milliseconds(2000))

        let slowRound = try await harness.round(slowResult.auctionID)
        #expect(slowRound.reason(of: "slow-dns") == "unreachable")
        #expect(slowRound.reason(of: Self.honest) == "sold")
        Self.expectWithinBudget(slowRound, wall: slowWall)
        await harness.shutdown()
    }
}

/// A resolver for the DNS faults: `FakeDNS.unresolvableHost` has no address; a lookup of
/// `FakeDNS.slowHost` hangs for 10 s (or until `release()`), then answers loopback. Any other name
/// does not resolve either: the tests' honest buyers are addressed by IP.
final class FakeDNS: Sendable {
    static let unresolvableHost = "nowhere.invalid"
    static let slowHost = "slow-dns.test"

    private let gate = DispatchSemaphore(value: 0)
    private let counts = Mutex((started: 0, answered: 0))

    /// A new resolver over this fake, for one exchange.
    func makeResolver() -> HostResolver { HostResolver(resolve: { [self] in resolve($0) }) }

    /// Slow lookups that have returned.
    var slowLookupsAnswered: Int { counts.withLock { $0.answered } }

    private func resolve(_ host: String) -> [String] {
        guard host == Self.slowHost else { return [] }
        counts.withLock { $0.started += 1 }
        _ = gate.wait(timeout: .now() + 10)
        gate.signal()  // every later lookup of it returns at once too
        counts.withLock { $0.answered += 1 }
        return ["127.0.0.1"]
    }

    /// Returns once a lookup of the slow host has started.
    func waitForSlowLookup() async throws {
        let deadline = ContinuousClock.now + .seconds(5)
        while counts.withLock({ $0.started }) == 0 {
            try #require(ContinuousClock.now < deadline, "no lookup of \(Self.slowHost) started")
            try await Task.sleep(for: .milliseconds(5))
        }
    }

    /// Ends the slow lookups now, so no lookup thread outlives the test by 10 s.
    func release() { gate.signal() }
}
