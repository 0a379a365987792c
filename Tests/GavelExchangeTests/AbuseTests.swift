import BuyerFleet
import Foundation
import GavelCore
import GavelExchange
import GavelPing
import GavelServer
import GavelStore
import Testing

/// What a hostile or careless client can do: unknown keys, a bot draining tracking numbers, idle sockets.
@Suite(.serialized)
struct AbuseTests {
    @Test func unknownKeysAreRefusedBeforeAnythingIsTouched() async throws {
        let harness = try await TestExchange(buyers: [bidder("buyer", bid: "10.00")])
        try await harness.startHTTP()
        let paths = ["/v1/leads", "/v1/pings", "/v1/posts", "/v1/calls", "/v1/calls/call_x/events"]
        var unauthorized = 0
        for batch in 0..<50 {
            try await withThrowingTaskGroup(of: Int.self) { group in
                for request in 0..<200 {
                    let path = paths[(batch + request) % paths.count]
                    let key: String? = request % 2 == 0 ? nil : "stolen-\(request)"
                    group.addTask {
                        try await harness.rawHTTP(.post, path, body: TestExchange.lead(), key: key,
                                                  headers: [("Idempotency-Key", "k-\(batch)-\(request)")]).status
                    }
                }
                for try await status in group where status == 401 { unauthorized += 1 }
            }
        }
        #expect(unauthorized == 10_000)
        let counts = try await harness.store.counts()
        #expect(counts.rounds == 0 && counts.sales == 0)
        #expect(harness.fleet.stats(for: "buyer").pings == 0)
        #expect(try await harness.exchange.store.answer(scope: "seller-one POST /v1/leads k-0-1", notBeforeMs: 0) == nil)
        await harness.shutdown()
    }

    @Test func theDNIEndpointIsLimitedPerClient() async throws {
        let harness = try await TestExchange(buyers: [callBidder("buyer", bid: "30.00", destination: "+18005550101")])
        harness.configureSettings = { $0.dniRateLimit = RateLimit(perSecond: 1, burst: 3) }
        await harness.stopServer()
        try await harness.openServer()
        try await harness.startHTTP()
        let visit = #"{"campaign": "calls", "source": "google"}"#
        var statuses: [Int] = []
        for hop in 0..<4 {
            // A forged X-Forwarded-For from an untrusted peer changes nothing.
            statuses.append(try await harness.http(.post, "/v1/dni/sessions", body: visit, key: nil,
                                                   headers: [("X-Forwarded-For", "203.0.113.\(hop)")]).status)
        }
        #expect(statuses == [200, 200, 200, 429])
        let limited = try await harness.rawHTTP(.post, "/v1/dni/sessions", body: visit, key: nil)
        #expect(limited.status == 429)
        #expect(try JSONValue.parse(limited.body)["error"]?["code"] == .string("rate_limited"))
        await harness.shutdown()
    }

    @Test func behindATrustedProxyEachForwardedClientHasItsOwnLimit() async throws {
        let harness = try await TestExchange(buyers: [callBidder("buyer", bid: "30.00", destination: "+18005550101")])
        harness.configureSettings = {
            $0.dniRateLimit = RateLimit(perSecond: 1, burst: 1)
            $0.trustedProxies = ["127.0.0.1"]
        }
        await harness.stopServer()
        try await harness.openServer()
        try await harness.startHTTP()
        let visit = #"{"campaign": "calls", "source": "google"}"#
        func session(from client: String) async throws -> Int {
            try await harness.http(.post, "/v1/dni/sessions", body: visit, key: nil, headers: [("X-Forwarded-For", "\(client), 127.0.0.1")]).status
        }
        #expect(try await session(from: "198.51.100.1") == 200)
        #expect(try await session(from: "198.51.100.2") == 200)
        #expect(try await session(from: "198.51.100.1") == 429)
        await harness.shutdown()
    }

    @Test func idleConnectionsAreClosed() async throws {
        let harness = try await TestExchange(buyers: [bidder("buyer", bid: "10.00")])
        harness.configureSettings = { $0.idleTimeoutS = 1 }
        await harness.stopServer()
        try await harness.openServer()
        try await harness.startHTTP()
        let socket = try IdleSocket(port: harness.port)
        // The server closes the connection on its own: recv sees the end of the stream.
        #expect(socket.waitForClose(seconds: 10))
        await harness.shutdown()
    }

    @Test func theHashKeyIsRandomAndKept() async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("gavel-key-\(UUID().uuidString).sqlite")
        defer { try? FileManager.default.removeItem(at: directory) }
        let first = try RoundStore(path: directory.path)
        let key = try first.hashKey()
        first.close()
        let second = try RoundStore(path: directory.path)
        #expect(try second.hashKey() == key)
        second.close()
        #expect(key.count == 64 && key != Exchange.Configuration().hashKey)
    }
}

/// A TCP connection that sends nothing, to see whether the server closes it.
struct IdleSocket {
    let descriptor: Int32

    init(port: Int) throws {
        descriptor = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(descriptor, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard connected == 0 else { throw POSIXError(.ECONNREFUSED) }
        var timeout = timeval(tv_sec: 1, tv_usec: 0)
        setsockopt(descriptor, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
    }

    /// True once the peer closed within `seconds` (recv returned 0).
    func waitForClose(seconds: Int) -> Bool {
        defer { close(descriptor) }
        var buffer = [UInt8](repeating: 0, count: 64)
        for _ in 0..<seconds {
            let received = recv(descriptor, &buffer, buffer.count, 0)
            if received == 0 { return true }
        }
        return false
    }
}
