import BuyerFleet
import Foundation
import GavelPing
import Testing

/// The libcurl engine against real servers on loopback.
struct CurlMultiEngineTests {
    static func withFleet(_ buyers: [String: BuyerBehavior], resolver: HostResolver? = nil,
                          _ body: (BuyerFleet, CurlMultiEngine) async throws -> Void) async throws {
        let fleet = BuyerFleet(buyers: buyers, seed: 7)
        try await fleet.start()
        let engine = CurlMultiEngine(resolver: resolver)
        do {
            try await body(fleet, engine)
        } catch {
            engine.shutdown()
            try await fleet.shutdown()
            throw error
        }
        engine.shutdown()
        try await fleet.shutdown()
    }

    @Test func postsJSONAndReadsTheAnswer() async throws {
        try await Self.withFleet(["b": BuyerBehavior(latency: .fixed(ms: 1), bidMin: "12.5", bidMax: "12.5")]) { fleet, engine in
            let result = await engine.send(.json(url: fleet.pingURL(for: "b"), body: #"{"lead":{"zip":"94107"}}"#, headers: ["X-Token": "t"], timeoutMs: 2000))
            let response = try result.get()
            #expect(response.status == 200)
            let text = String(decoding: response.body, as: UTF8.self)
            #expect(text.contains("12.5"))
            #expect(response.latencyUs > 0)
            let received = try #require(fleet.recentPings(buyer: "b").last)
            #expect(String(decoding: received, as: UTF8.self) == #"{"lead":{"zip":"94107"}}"#)
        }
    }

    @Test func aBatchAnswersInRequestOrderWhenTheLastIsIn() async throws {
        try await Self.withFleet([
            "slow": BuyerBehavior(latency: .fixed(ms: 80), bidMin: "1", bidMax: "1"),
            "fast": BuyerBehavior(latency: .fixed(ms: 1), bidMin: "2", bidMax: "2"),
            "hang": BuyerBehavior(fault: .hang),
        ]) { fleet, engine in
            let requests = ["slow", "fast", "hang"].map { HTTPRequest.json(url: fleet.pingURL(for: $0), body: "{}", timeoutMs: 300) }
                + [HTTPRequest.json(url: "ftp://nowhere/x", body: "{}", timeoutMs: 300)]
            let results = await engine.send(all: requests)
            #expect(results.count == 4)
            let slow = try results[0].get(), fast = try results[1].get()
            #expect(String(decoding: slow.body, as: UTF8.self).contains("\"bid\": 1"))
            #expect(String(decoding: fast.body, as: UTF8.self).contains("\"bid\": 2"))
            #expect(throws: HTTPTransferError.self) { try results[2].get() }  // its own deadline
            #expect(throws: HTTPTransferError.self) { try results[3].get() }  // refused before it was sent
            #expect(await engine.send(all: []).isEmpty)
        }
    }

    @Test func timesOutAHangingPeerAtItsDeadline() async throws {
        var hang = BuyerBehavior()
        hang.fault = .hang
        try await Self.withFleet(["h": hang]) { fleet, engine in
            let started = ContinuousClock.now
            let result = await engine.send(.json(url: fleet.pingURL(for: "h"), body: "{}", timeoutMs: 150))
            let elapsed = started.duration(to: .now)
            guard case .failure(let error) = result else { Issue.record("expected a timeout"); return }
            #expect(error.isTimeout)
            #expect(error.shortDescription == "timeout")
            #expect(elapsed >= .milliseconds(140))
            #expect(elapsed < .seconds(2))
        }
    }

    @Test func classifiesTransportFailures() async throws {
        var reset = BuyerBehavior()
        reset.fault = .reset
        var oversized = BuyerBehavior()
        oversized.fault = .oversized
        try await Self.withFleet(["r": reset, "o": oversized]) { fleet, engine in
            let refused = try BuyerFleet.refusedURL()
            guard case .failure(let refusedError) = await engine.send(.json(url: refused, body: "{}", timeoutMs: 1000)) else {
                Issue.record("expected refused"); return
            }
            #expect(refusedError.isUnreachable)
            #expect(refusedError.shortDescription == "refused")

            guard case .failure(let resetError) = await engine.send(.json(url: fleet.pingURL(for: "r"), body: "{}", timeoutMs: 1000)) else {
                Issue.record("expected reset"); return
            }
            #expect(resetError.isUnreachable)

            guard case .failure(let largeError) = await engine.send(.json(url: fleet.pingURL(for: "o"), body: "{}", timeoutMs: 2000)) else {
                Issue.record("expected too large"); return
            }
            #expect(largeError.isTooLarge)

            guard case .failure(let schemeError) = await engine.send(.json(url: "ftp://127.0.0.1/x", body: "{}", timeoutMs: 1000)) else {
                Issue.record("expected bad URL"); return
            }
            #expect(schemeError.shortDescription == "bad_url")

            guard case .failure(let dnsError) = await engine.send(.json(url: "http://no-such-host.invalid/ping", body: "{}", timeoutMs: 2000)) else {
                Issue.record("expected dns failure"); return
            }
            #expect(dnsError.isUnreachable)
        }
    }

    @Test func handlesThousandsOfTransfersInFlightAndReusesConnections() async throws {
        try await Self.withFleet(["b": BuyerBehavior(latency: .fixed(ms: 20))]) { fleet, engine in
            let url = fleet.pingURL(for: "b")
            let statuses = await withTaskGroup(of: Int.self) { group in
                for _ in 0..<2000 {
                    group.addTask {
                        (try? await engine.send(.json(url: url, body: "{}", timeoutMs: 10_000)).get().status) ?? -1
                    }
                }
                return await group.reduce(into: [Int]()) { $0.append($1) }
            }
            #expect(statuses.count == 2000)
            #expect(statuses.allSatisfy { $0 == 200 })
            #expect(fleet.stats(for: "b").pings == 2000)
            // Warm now: sequential requests reuse the kept-alive connections.
            for _ in 0..<20 {
                let response = try await engine.send(.json(url: url, body: "{}", timeoutMs: 5000)).get()
                #expect(response.newConnections == 0)
            }
        }
    }

    @Test func shutdownRefusesNewTransfers() async throws {
        let engine = CurlMultiEngine()
        engine.shutdown()
        let result = await engine.send(.json(url: "http://127.0.0.1:1/x", body: "{}", timeoutMs: 100))
        guard case .failure(let error) = result else { Issue.record("expected shutdown error"); return }
        #expect(error.shortDescription == "shutdown")
    }
}
