import BuyerFleet
import Foundation
import Testing

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

@Suite("Serving pings, posts and stats")
struct FleetServingTests {
    @Test func bidIsANumberInRangeWithTwoDecimalsAtMost() async throws {
        try await withFleet(["acme": instant { $0.bidMin = "12.00"; $0.bidMax = "15.50" }]) { fleet in
            for n in 1...20 {
                let response = try await exchange(port: fleet.port, "POST", "/acme/ping", body: cleanPing)
                #expect(response.status == 200)
                #expect(response.headers["content-type"] == "application/json")
                let json = try #require(response.json)
                let bid = try #require(json["bid"] as? Double)
                #expect((12.0...15.5).contains(bid))
                #expect(abs(bid * 100 - (bid * 100).rounded()) < 1e-6, "more than two decimals: \(bid)")
                #expect(!response.text.contains(#""bid": ""#), "bid must be a JSON number")
                #expect(json["bid_id"] as? String == "acme-\(n)")
                #expect(json["expires_in_s"] as? Int == 60)
                #expect(json["destination"] == nil)
            }
        }
    }

    @Test func callBuyerBidCarriesDestinationAndMinimumDuration() async throws {
        let behavior = instant {
            $0.destination = "sip:intake@fixhub.example"
            $0.minDurationS = 60
            $0.expiresInS = 20
        }
        try await withFleet(["fixhub": behavior]) { fleet in
            let response = try await exchange(port: fleet.port, "POST", "/fixhub/ping", body: "{}")
            let json = try #require(response.json)
            #expect(json["destination"] as? String == "sip:intake@fixhub.example")
            #expect(json["min_duration_s"] as? Int == 60)
            #expect(json["expires_in_s"] as? Int == 20)
        }
    }

    @Test func zeroBidProbabilityAnswers204() async throws {
        try await withFleet(["shy": instant { $0.bidProbability = 0 }]) { fleet in
            let response = try await exchange(port: fleet.port, "POST", "/shy/ping", body: cleanPing)
            #expect(response.status == 204)
            #expect(response.body.isEmpty)
            #expect(fleet.stats(for: "shy").noBids == 1)
            #expect(fleet.stats(for: "shy").bids == 0)
        }
    }

    @Test func fixedLatencyDelaysTheAnswer() async throws {
        try await withFleet(["slow": BuyerBehavior(latency: .fixed(ms: 150))]) { fleet in
            let clock = ContinuousClock()
            let start = clock.now
            let response = try await exchange(port: fleet.port, "POST", "/slow/ping", body: cleanPing)
            let elapsed = clock.now - start
            #expect(response.status == 200)
            // A lower bound only: a loaded machine may always be slower.
            #expect(elapsed >= .milliseconds(140))
        }
    }

    @Test func postsAreAcceptedOrRejectedByRate() async throws {
        let buyers = ["yes": instant { $0.postAcceptRate = 1 }, "no": instant { $0.postAcceptRate = 0 }]
        try await withFleet(buyers) { fleet in
            let response = try await exchange(port: fleet.port, "POST", "/yes/post", body: "{}")
            let accepted = try #require(response.json)
            #expect(accepted["accepted"] as? Bool == true)
            #expect(accepted["reference"] as? String == "yes-1")

            let rejected = try await exchange(port: fleet.port, "POST", "/no/post", body: "{}")
            #expect(rejected.status == 200)
            #expect(rejected.json?["accepted"] as? Bool == false)
            #expect(rejected.json?["reason"] as? String == "duplicate")
        }
    }

    @Test func countersCountAndResetAndStatsEndpointServesThem() async throws {
        let buyers = ["a": instant(), "b": instant { $0.bidProbability = 0; $0.postAcceptRate = 0 }]
        try await withFleet(buyers) { fleet in
            for _ in 0..<3 {
                _ = try await exchange(port: fleet.port, "POST", "/a/ping", body: cleanPing)
            }
            _ = try await exchange(port: fleet.port, "POST", "/a/post", body: #"{"lead": 1}"#)
            _ = try await exchange(port: fleet.port, "POST", "/b/ping", body: cleanPing)
            _ = try await exchange(port: fleet.port, "POST", "/b/post", body: "{}")

            var a = BuyerStats()
            (a.pings, a.bids, a.posts, a.accepted) = (3, 3, 1, 1)
            var b = BuyerStats()
            (b.pings, b.noBids, b.posts, b.rejected) = (1, 1, 1, 1)
            #expect(fleet.stats(for: "a") == a)
            #expect(fleet.stats(for: "b") == b)
            #expect(fleet.recentPings(buyer: "a").count == 3)
            #expect(fleet.recentPosts(buyer: "a") == [Data(#"{"lead": 1}"#.utf8)])

            let served = try await exchange(port: fleet.port, "GET", "/stats")
            #expect(served.status == 200)
            let decoded = try JSONDecoder().decode([String: BuyerStats].self, from: Data(served.body))
            #expect(decoded == ["a": a, "b": b])
            #expect(served.text.contains(#""no_bids":1"#))

            fleet.resetStats()
            #expect(fleet.allStats() == ["a": BuyerStats(), "b": BuyerStats()])
            #expect(fleet.recentPings(buyer: "a").isEmpty)
            // Ids keep counting across a reset, so they stay unique.
            let json = try await exchange(port: fleet.port, "POST", "/a/ping", body: cleanPing).json
            #expect(json?["bid_id"] as? String == "a-4")
        }
    }

    @Test func recentPingsKeepTheLast200() async throws {
        try await withFleet(["a": instant { $0.bidProbability = 0 }]) { fleet in
            try await blocking { [port = fleet.port] in
                let connection = try RawHTTPConnection(port: port)
                for n in 1...205 {
                    try connection.write(RawHTTPConnection.request("POST", "/a/ping", body: #"{"n": \#(n)}"#))
                    _ = try connection.readResponse()
                }
            }
            let recent = fleet.recentPings(buyer: "a")
            #expect(recent.count == 200)
            #expect(recent.first == Data(#"{"n": 6}"#.utf8))
            #expect(recent.last == Data(#"{"n": 205}"#.utf8))
        }
    }

    @Test func unknownBuyerAndOtherPathsAre404() async throws {
        try await withFleet(["a": instant()]) { fleet in
            let unknown = try await exchange(port: fleet.port, "POST", "/nobody/ping", body: cleanPing)
            #expect(unknown.status == 404)
            #expect(unknown.json?["error"] as? String == "unknown buyer")

            for (method, path) in [("GET", "/a/ping"), ("POST", "/a/bid"), ("POST", "/a"), ("GET", "/"), ("POST", "/stats")] {
                let response = try await exchange(port: fleet.port, method, path)
                #expect(response.status == 404, "\(method) \(path)")
            }
            #expect(fleet.stats(for: "a") == BuyerStats())
        }
    }

    @Test func setBehaviorChangesAnswersAndCanAddBuyers() async throws {
        try await withFleet(["a": instant()]) { fleet in
            let before = try await exchange(port: fleet.port, "POST", "/a/ping", body: "{}")
            #expect(before.status == 200)
            fleet.setBehavior(instant { $0.bidProbability = 0 }, for: "a")
            let after = try await exchange(port: fleet.port, "POST", "/a/ping", body: "{}")
            #expect(after.status == 204)

            fleet.setBehavior(instant { $0.bidMin = "3"; $0.bidMax = "3" }, for: "late")
            let json = try await exchange(port: fleet.port, "POST", "/late/ping", body: "{}").json
            #expect(json?["bid"] as? Double == 3)
            #expect(fleet.pingURL(for: "late") == "http://127.0.0.1:\(fleet.port)/late/ping")
            #expect(fleet.postURL(for: "late") == "http://127.0.0.1:\(fleet.port)/late/post")
        }
    }

    @Test func startingTwiceFailsAndPortIsReal() async throws {
        try await withFleet(["a": instant()]) { fleet in
            #expect(fleet.port > 0)
            await #expect(throws: FleetError.alreadyStarted) { try await fleet.start() }
        }
    }

    @Test func shutdownStopsServingAndIsSafeToRepeat() async throws {
        try await BuyerFleet(buyers: [:]).shutdown()

        let fleet = BuyerFleet(buyers: ["a": instant()], threads: 1)
        try await fleet.start()
        let port = fleet.port
        try await fleet.shutdown()
        try await fleet.shutdown()
        #expect(throws: RawHTTPConnection.ConnectError(errno: ECONNREFUSED)) {
            _ = try RawHTTPConnection(port: port)
        }
    }
}
