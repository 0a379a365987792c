import BuyerFleet
import Foundation
import Testing

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

@Suite("Faults")
struct FaultTests {
    private func faulty(_ fault: BuyerBehavior.Fault) -> BuyerBehavior {
        instant { $0.fault = fault }
    }

    @Test func garbageAnswers200WithABodyThatIsNotJSON() async throws {
        try await withFleet(["g": faulty(.garbage)]) { fleet in
            let response = try await exchange(port: fleet.port, "POST", "/g/ping", body: cleanPing)
            #expect(response.status == 200)
            #expect(response.text == "<<<not json>>>")
            #expect(fleet.stats(for: "g").faults == 1)
            #expect(fleet.stats(for: "g").bids == 0)
        }
    }

    @Test func http500Answers500() async throws {
        try await withFleet(["e": faulty(.http500)]) { fleet in
            let ping = try await exchange(port: fleet.port, "POST", "/e/ping", body: cleanPing)
            let post = try await exchange(port: fleet.port, "POST", "/e/post", body: "{}")
            #expect(ping.status == 500)
            #expect(post.status == 500)
            #expect(fleet.stats(for: "e").faults == 2)
        }
    }

    @Test func resetAbortsTheConnectionWithoutAnAnswer() async throws {
        try await withFleet(["r": faulty(.reset)]) { fleet in
            let (outcome, received) = try await blocking { [port = fleet.port] in
                let connection = try RawHTTPConnection(port: port)
                try connection.write(RawHTTPConnection.request("POST", "/r/ping", body: cleanPing))
                return (connection.read(), connection.unconsumed.count)
            }
            #expect(outcome == .failed(errno: ECONNRESET))
            #expect(received == 0)
            #expect(fleet.stats(for: "r").faults == 1)
        }
    }

    @Test func hangNeverAnswers() async throws {
        try await withFleet(["h": faulty(.hang)]) { fleet in
            let outcome = try await blocking { [port = fleet.port] in
                let connection = try RawHTTPConnection(port: port, timeout: .milliseconds(300))
                try connection.write(RawHTTPConnection.request("POST", "/h/ping", body: cleanPing))
                return connection.read()
            }
            #expect(outcome == .timedOut)
            #expect(fleet.stats(for: "h").pings == 1)
            #expect(fleet.stats(for: "h").faults == 1)
        }
    }

    @Test func slowDripSendsAValidHeadThenTheBodySlowly() async throws {
        try await withFleet(["d": faulty(.slowDrip)]) { fleet in
            let (response, bodyBytesSoon) = try await blocking { [port = fleet.port] in
                let connection = try RawHTTPConnection(port: port, timeout: .milliseconds(50))
                try connection.write(RawHTTPConnection.request("POST", "/d/ping", body: cleanPing))
                // The head arrives at once; the body trickles at a byte per 100 ms.
                let deadline = ContinuousClock.now + .milliseconds(350)
                while ContinuousClock.now < deadline {
                    connection.read()
                }
                return (String(decoding: connection.unconsumed, as: UTF8.self), connection.unconsumed.count)
            }
            let head = response.components(separatedBy: "\r\n\r\n")[0]
            #expect(head.hasPrefix("HTTP/1.1 200"))
            let length = try #require(
                head.components(separatedBy: "\r\n").first { $0.lowercased().hasPrefix("content-length:") }
                    .flatMap { Int($0.split(separator: ":")[1].trimmingCharacters(in: .whitespaces)) })
            #expect(length > 40, "the announced body is a whole bid")
            #expect(bodyBytesSoon < head.utf8.count + 4 + length, "the whole body must not arrive within 350 ms")
        }
    }

    @Test func oversizedAnswersWithOneMebibyte() async throws {
        try await withFleet(["o": faulty(.oversized)]) { fleet in
            let response = try await exchange(port: fleet.port, "POST", "/o/ping", body: cleanPing)
            #expect(response.status == 200)
            #expect(response.body.count == 1 << 20)
            #expect(response.text.hasPrefix(#"{"bid""#))
        }
    }

    @Test func refusedBuyerInTheFleetIsClosedUnanswered() async throws {
        try await withFleet(["x": faulty(.refused)]) { fleet in
            let outcome = try await blocking { [port = fleet.port] in
                let connection = try RawHTTPConnection(port: port)
                try connection.write(RawHTTPConnection.request("POST", "/x/ping", body: cleanPing))
                return connection.read()
            }
            #expect(outcome == .closed)
        }
    }

    @Test func refusedURLReallyRefuses() async throws {
        let url = try BuyerFleet.refusedURL()
        #expect(url.hasPrefix("http://127.0.0.1:"))
        #expect(url.hasSuffix("/refused/ping"))
        #expect(throws: RawHTTPConnection.ConnectError(errno: ECONNREFUSED)) {
            _ = try RawHTTPConnection(url: url)
        }
    }

    @Test func faultRateZeroNeverFaultsAndPartialRateSometimesDoes() async throws {
        let buyers = [
            "never": instant { $0.fault = .http500; $0.faultRate = 0 },
            "sometimes": instant { $0.fault = .http500; $0.faultRate = 0.5 },
        ]
        try await withFleet(buyers) { fleet in
            var statuses: [String: Set<Int>] = [:]
            for buyer in ["never", "sometimes"] {
                statuses[buyer] = try await blocking { [port = fleet.port] in
                    let connection = try RawHTTPConnection(port: port)
                    var seen = Set<Int>()
                    for _ in 0..<60 {
                        try connection.write(RawHTTPConnection.request("POST", "/\(buyer)/ping", body: "{}"))
                        seen.insert(try connection.readResponse().status)
                    }
                    return seen
                }
            }
            #expect(statuses["never"] == [200])
            #expect(statuses["sometimes"] == [200, 500])
            #expect(fleet.stats(for: "never").faults == 0)
        }
    }
}
