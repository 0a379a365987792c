import BuyerFleet
import Foundation
import Testing

@Suite("Connections")
struct ConnectionTests {
    @Test func keepAliveServesManyRequestsOnOneConnection() async throws {
        try await withFleet(["a": instant()]) { fleet in
            let ids = try await blocking { [port = fleet.port] in
                let connection = try RawHTTPConnection(port: port)
                return try (1...5).map { _ in
                    try connection.write(RawHTTPConnection.request("POST", "/a/ping", body: cleanPing))
                    return try connection.readResponse().json?["bid_id"] as? String
                }
            }
            #expect(ids == ["a-1", "a-2", "a-3", "a-4", "a-5"])
        }
    }

    @Test func pipelinedRequestsAreAnsweredInOrder() async throws {
        // The first buyer is the slowest, so answering as soon as ready would reorder them.
        let buyers = [
            "slow": BuyerBehavior(latency: .fixed(ms: 120)),
            "medium": BuyerBehavior(latency: .fixed(ms: 40)),
            "fast": instant(),
        ]
        try await withFleet(buyers) { fleet in
            let ids = try await blocking { [port = fleet.port] in
                let connection = try RawHTTPConnection(port: port)
                try connection.write(["slow", "medium", "fast"].map {
                    RawHTTPConnection.request("POST", "/\($0)/ping", body: cleanPing)
                }.joined())
                return try (0..<3).map { _ in try connection.readResponse().json?["bid_id"] as? String }
            }
            #expect(ids == ["slow-1", "medium-1", "fast-1"])
        }
    }

    @Test func connectionCloseIsRespected() async throws {
        try await withFleet(["a": instant()]) { fleet in
            let (response, after) = try await blocking { [port = fleet.port] in
                let connection = try RawHTTPConnection(port: port)
                let request = RawHTTPConnection.request("POST", "/a/ping", body: cleanPing, headers: ["Connection": "close"])
                try connection.write(request)
                return (try connection.readResponse(), connection.read())
            }
            #expect(response.status == 200)
            #expect(response.headers["connection"] == "close")
            #expect(after == .closed)
        }
    }

    @Test func http10WithoutKeepAliveIsClosedAfterTheAnswer() async throws {
        try await withFleet(["a": instant()]) { fleet in
            let (response, after) = try await blocking { [port = fleet.port] in
                let connection = try RawHTTPConnection(port: port)
                try connection.write("POST /a/ping HTTP/1.0\r\nContent-Length: 2\r\n\r\n{}")
                return (try connection.readResponse(), connection.read())
            }
            #expect(response.status == 200)
            #expect(after == .closed)
        }
    }

    @Test func bodiesOverOneMebibyteAreRefusedWith413() async throws {
        try await withFleet(["a": instant()]) { fleet in
            let padding = String(repeating: "x", count: 1 << 20)
            let response = try await exchange(port: fleet.port, "POST", "/a/ping", body: #"{"p": "\#(padding)"}"#)
            #expect(response.status == 413)
            #expect(fleet.stats(for: "a").pings == 0)

            let largestAllowed = String(repeating: "x", count: (1 << 20) - 9)
            let accepted = try await exchange(port: fleet.port, "POST", "/a/ping", body: #"{"p": "\#(largestAllowed)"}"#)
            #expect(accepted.status == 200)
        }
    }

    @Test func manyConcurrentSlowRequestsAreAllAnswered() async throws {
        // 200 connections waiting on 200 ms timers at once, on a single event-loop thread.
        try await withFleet(["slow": BuyerBehavior(latency: .fixed(ms: 200))]) { fleet in
            let statuses = try await withThrowingTaskGroup(of: [Int].self) { group in
                for _ in 0..<4 {
                    group.addTask {
                        try await blocking { [port = fleet.port] in
                            let connections = try (0..<50).map { _ in try RawHTTPConnection(port: port) }
                            for connection in connections {
                                try connection.write(RawHTTPConnection.request("POST", "/slow/ping", body: cleanPing))
                            }
                            return try connections.map { try $0.readResponse().status }
                        }
                    }
                }
                return try await group.reduce(into: []) { $0 += $1 }
            }
            #expect(statuses.count == 200)
            #expect(statuses.allSatisfy { $0 == 200 })
            #expect(fleet.stats(for: "slow").bids == 200)
        }
    }
}
