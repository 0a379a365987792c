import BuyerFleet
import Foundation
@testable import GavelPing
import Synchronization
import Testing

/// A resolver hook for tests: fixed answers, a host that hangs, and a count of lookups per host.
final class FakeDNS: Sendable {
    private let answers: [String: [String]]
    private let hanging: Set<String>
    private let counts = Mutex<[String: Int]>([:])
    /// Holds hanging lookups for up to 10 s; `release()` lets them go when the test ends.
    private let gate = DispatchSemaphore(value: 0)

    init(_ answers: [String: [String]], hanging: Set<String> = []) {
        self.answers = answers
        self.hanging = hanging
    }

    func lookups(of host: String) -> Int { counts.withLock { $0[host, default: 0] } }

    func release() { for _ in hanging { gate.signal() } }

    var resolve: HostResolver.Resolve {
        { [self] host in
            counts.withLock { $0[host, default: 0] += 1 }
            if hanging.contains(host) { _ = gate.wait(timeout: .now() + 10) }
            return answers[host] ?? []
        }
    }
}

/// A count shared with `@Sendable` closures.
final class Counter: Sendable {
    private let atomic = Atomic<Int>(0)
    /// Adds one and returns the new count.
    @discardableResult func next() -> Int { atomic.add(1, ordering: .sequentiallyConsistent).newValue }
    var value: Int { atomic.load(ordering: .sequentiallyConsistent) }
}

/// Host names are resolved off the engine thread and pinned; the engine never looks a name up.
struct HostResolverTests {
    /// `url` with its host replaced by `host`: the fleet listens on 127.0.0.1.
    static func url(_ url: String, host: String) -> String {
        url.replacingOccurrences(of: "127.0.0.1", with: host)
    }

    @Test func aHangingLookupDelaysNoOtherBuyer() async throws {
        let dns = FakeDNS(["fast.buyer.test": ["127.0.0.1"]], hanging: ["slow.buyer.test"])
        defer { dns.release() }
        let resolver = HostResolver(resolve: dns.resolve)
        try await CurlMultiEngineTests.withFleet(["b": BuyerBehavior(latency: .fixed(ms: 1))], resolver: resolver) { fleet, engine in
            let fast = Self.url(fleet.pingURL(for: "b"), host: "fast.buyer.test")
            let slow = Self.url(fleet.pingURL(for: "b"), host: "slow.buyer.test")
            let slowDone = Counter()
            let started = ContinuousClock.now
            @Sendable func sendSlow() async -> HTTPResult {
                defer { slowDone.next() }
                return await engine.send(.json(url: slow, body: "{}", timeoutMs: 4000))
            }
            async let slowResult = sendSlow()
            // Short deadlines that pass while the lookup hangs: under libcurl's own resolver this is
            // what froze the engine thread.
            let expired = await withTaskGroup(of: HTTPResult.self) { group in
                for _ in 0..<5 { group.addTask { await engine.send(.json(url: slow, body: "{}", timeoutMs: 100)) } }
                return await group.reduce(into: [HTTPResult]()) { $0.append($1) }
            }
            for result in expired {
                guard case .failure(let error) = result else { Issue.record("expected a dns failure"); continue }
                #expect(error.shortDescription == "dns")
            }
            for _ in 0..<20 {
                let response = try await engine.send(.json(url: fast, body: "{}", timeoutMs: 2000)).get()
                #expect(response.status == 200)
            }
            #expect(slowDone.value == 0, "fast transfers finished while the slow host was still resolving")
            #expect(fleet.stats(for: "b").pings == 20)

            guard case .failure(let error) = await slowResult else { Issue.record("expected a dns failure"); return }
            #expect(error.shortDescription == "dns")
            #expect(error.isUnreachable)
            // Failed at its own deadline, not after the 10 s lookup.
            #expect(started.duration(to: .now) < .seconds(8))
            #expect(dns.lookups(of: "slow.buyer.test") == 1)
            #expect(dns.lookups(of: "fast.buyer.test") == 1)
        }
    }

    @Test func anUnresolvableHostFailsFastAndIsRemembered() async throws {
        let dns = FakeDNS([:])
        let engine = CurlMultiEngine(resolver: HostResolver(resolve: dns.resolve))
        defer { engine.shutdown() }
        let url = "http://nowhere.buyer.test:8080/ping"
        for _ in 0..<3 {
            let started = ContinuousClock.now
            guard case .failure(let error) = await engine.send(.json(url: url, body: "{}", timeoutMs: 5000)) else {
                Issue.record("expected a dns failure"); return
            }
            #expect(error.shortDescription == "dns")
            #expect(error.detail == "host did not resolve")
            #expect(started.duration(to: .now) < .seconds(2))
        }
        // Negative cache: one lookup for three transfers.
        #expect(dns.lookups(of: "nowhere.buyer.test") == 1)
    }

    @Test func aPreparedHostIsPinnedAndReached() async throws {
        // `.invalid` never resolves, so the request can reach the buyer only through the pin.
        let dns = FakeDNS(["buyer.invalid": ["127.0.0.1"]])
        try await CurlMultiEngineTests.withFleet(["b": BuyerBehavior(latency: .fixed(ms: 1))], resolver: HostResolver(resolve: dns.resolve)) { fleet, engine in
            let url = Self.url(fleet.pingURL(for: "b"), host: "Buyer.Invalid")
            engine.prepare(urls: [url, fleet.pingURL(for: "b"), "not a url"])
            for _ in 0..<3 {
                let response = try await engine.send(.json(url: url, body: #"{"n":1}"#, timeoutMs: 2000)).get()
                #expect(response.status == 200)
            }
            #expect(fleet.stats(for: "b").pings == 3)
            #expect(dns.lookups(of: "buyer.invalid") == 1)
        }
    }

    @Test func localhostIsLoopbackWithoutALookup() async throws {
        let dns = FakeDNS([:])
        try await CurlMultiEngineTests.withFleet(["b": BuyerBehavior(latency: .fixed(ms: 1))], resolver: HostResolver(resolve: dns.resolve)) { fleet, engine in
            let response = try await engine.send(.json(url: Self.url(fleet.pingURL(for: "b"), host: "localhost"), body: "{}", timeoutMs: 2000)).get()
            #expect(response.status == 200)
            #expect(dns.lookups(of: "localhost") == 0)
        }
    }

    @Test func proxyEnvironmentVariablesAreIgnored() async throws {
        let names = ["http_proxy", "https_proxy", "all_proxy", "no_proxy", "NO_PROXY"]
        let saved = names.map { ($0, getenv($0).map { String(cString: $0) }) }
        defer {
            for (name, value) in saved {
                if let value { setenv(name, value, 1) } else { unsetenv(name) }
            }
        }
        // Nothing listens on port 1: a transfer that honoured these would fail to connect.
        setenv("http_proxy", "http://127.0.0.1:1", 1)
        setenv("all_proxy", "http://127.0.0.1:1", 1)
        unsetenv("no_proxy")
        unsetenv("NO_PROXY")
        let dns = FakeDNS(["buyer.test": ["127.0.0.1"]])
        try await CurlMultiEngineTests.withFleet(["b": BuyerBehavior(latency: .fixed(ms: 1))], resolver: HostResolver(resolve: dns.resolve)) { fleet, engine in
            let literal = try await engine.send(.json(url: fleet.pingURL(for: "b"), body: "{}", timeoutMs: 2000)).get()
            #expect(literal.status == 200)
            let named = try await engine.send(.json(url: Self.url(fleet.pingURL(for: "b"), host: "buyer.test"), body: "{}", timeoutMs: 2000)).get()
            #expect(named.status == 200)
            #expect(fleet.stats(for: "b").pings == 2)
        }
    }

    // MARK: The resolver alone

    @Test func aFailedRefreshKeepsTheLastAddresses() async throws {
        let calls = Counter()
        let resolver = HostResolver(configuration: .init(refreshInterval: .milliseconds(20), failureTTL: .milliseconds(20)), resolve: { _ in
            calls.next() == 1 ? ["10.0.0.7"] : []
        })
        #expect(await resolver.answer(for: "buyer.test", waitingAtMost: .seconds(2)) == .addresses(["10.0.0.7"]))
        // Refreshes fail from now on; the host stays in use meanwhile.
        let deadline = ContinuousClock.now + .seconds(5)
        while calls.value < 3 && ContinuousClock.now < deadline {
            #expect(resolver.answer(for: "buyer.test") == .addresses(["10.0.0.7"]))
            try await Task.sleep(for: .milliseconds(10))
        }
        #expect(calls.value >= 3)
        #expect(resolver.answer(for: "buyer.test") == .addresses(["10.0.0.7"]))
    }

    @Test func aFailureIsRetriedAfterItsTTL() async throws {
        let calls = Counter()
        let resolver = HostResolver(configuration: .init(failureTTL: .milliseconds(50)), resolve: { _ in
            calls.next() == 1 ? [] : ["10.0.0.8"]
        })
        #expect(await resolver.answer(for: "buyer.test", waitingAtMost: .seconds(2)) == .failed)
        #expect(resolver.answer(for: "buyer.test") == .failed)
        let deadline = ContinuousClock.now + .seconds(5)
        while resolver.answer(for: "buyer.test") != .addresses(["10.0.0.8"]) && ContinuousClock.now < deadline {
            try await Task.sleep(for: .milliseconds(10))
        }
        #expect(resolver.answer(for: "buyer.test") == .addresses(["10.0.0.8"]))
    }

    @Test func invalidAddressesFromTheHookAreDropped() async {
        let resolver = HostResolver(resolve: { _ in ["not-an-ip", "::1", "127.0.0.1", "fe80::1%eth0"] })
        #expect(await resolver.answer(for: "buyer.test", waitingAtMost: .seconds(2)) == .addresses(["::1", "127.0.0.1"]))
    }

    @Test func theSystemResolverAnswersAddressLiterals() {
        #expect(HostResolver.systemResolve("127.0.0.1") == ["127.0.0.1"])
        #expect(HostResolver.systemResolve("::1") == ["::1"])
    }
}

/// URLs read the way libcurl reads them, so pins match what libcurl looks up.
struct TransferTargetTests {
    @Test func namesArePinnedWithTheirPort() throws {
        let named = try #require(TransferTarget(url: "http://Buyer.Example:8080/ping?x=1"))
        #expect(named.hostName == "buyer.example")
        #expect(named.port == 8080)
        #expect(named.pin(["10.0.0.1", "2001:db8::1"]) == "buyer.example:8080:10.0.0.1,[2001:db8::1]")
        #expect(TransferTarget(url: "https://buyer.example/ping")?.port == 443)
        #expect(TransferTarget(url: "http://buyer.example/ping")?.port == 80)
        #expect(named.pin([]) == nil)
    }

    @Test func addressLiteralsNeedNoLookup() {
        for url in ["http://127.0.0.1:9/x", "http://127.1/x", "http://[::1]:9/x", "https://10.1.2.3/x"] {
            #expect(TransferTarget(url: url)?.hostName == nil, "\(url)")
            #expect(TransferTarget(url: url) != nil, "\(url)")
        }
    }

    @Test func unparsableURLsAreLeftToLibcurl() {
        #expect(TransferTarget(url: "not a url") == nil)
        #expect(TransferTarget(url: "http://") == nil)
    }
}
