import Foundation
import Logging
import Synchronization

/// Resolves buyer host names on threads of its own and keeps the answers, so the libcurl engine
/// never resolves a name itself.
///
/// libcurl's threaded resolver makes the engine thread wait for an abandoned lookup when a transfer
/// ends mid-resolve, which freezes every other transfer. Here a slow lookup delays only the
/// transfers to its own host: the engine pins the cached addresses on each transfer
/// (`CURLOPT_RESOLVE`) and refuses to let libcurl look anything up.
///
/// - A host's addresses are looked up again every `refreshInterval` while the host is in use; a
///   failed refresh keeps the last good addresses, so a DNS hiccup does not take a buyer away.
/// - A host that never resolved is remembered as failed for `failureTTL`: transfers to it fail at
///   once meanwhile, and the lookup is retried in the background.
/// - A host unused for `idleTimeout` is forgotten.
/// - `localhost` and `*.localhost` are loopback without a lookup, as in libcurl.
public final class HostResolver: Sendable {
    public struct Configuration: Sendable {
        /// How often a host in use is looked up again. Default 60 s.
        public var refreshInterval: Duration
        /// How long a host that did not resolve keeps failing at once before the next try. Default 5 s.
        public var failureTTL: Duration
        /// A host neither prepared nor used for this long is dropped from the cache. Default 10 min.
        public var idleTimeout: Duration
        /// Lookups running at once, each on its own thread; more wait their turn. Default 8.
        public var maxConcurrentLookups: Int

        public init(refreshInterval: Duration = .seconds(60), failureTTL: Duration = .seconds(5),
                    idleTimeout: Duration = .seconds(600), maxConcurrentLookups: Int = 8) {
            self.refreshInterval = refreshInterval
            self.failureTTL = failureTTL
            self.idleTimeout = idleTimeout
            self.maxConcurrentLookups = max(1, maxConcurrentLookups)
        }
    }

    /// Looks a host name up and returns its addresses as text (IPv4 or IPv6), empty when it does
    /// not resolve. It may block for as long as it likes: it runs on a lookup thread.
    public typealias Resolve = @Sendable (String) -> [String]

    /// What the cache knows of a host right now.
    enum Answer: Sendable, Equatable {
        case addresses([String])
        /// The last lookup failed and no earlier one succeeded.
        case failed
        /// The first lookup has not finished.
        case pending
    }

    private struct Entry {
        /// The last good answer; empty until a lookup succeeds.
        var addresses: [String] = []
        /// Set when a lookup failed and there is no good answer to fall back on.
        var failedAt: ContinuousClock.Instant?
        /// A lookup is running or waiting for a free lookup thread.
        var lookingUp = false
        var lastUsed: ContinuousClock.Instant
        /// Bumped by each finished lookup, so only the latest one's scheduled refresh runs.
        var generation = 0
        /// Transfers waiting for the first answer, by waiter id.
        var waiters: [UInt64: CheckedContinuation<Answer, Never>] = [:]
    }

    private struct State {
        var entries: [String: Entry] = [:]
        var running = 0
        var backlog: [String] = []
        var nextWaiter: UInt64 = 0
    }

    private let configuration: Configuration
    private let resolve: Resolve
    private let logger: Logger
    private let state = Mutex(State())
    /// Refreshes and waiters' deadlines; its work never blocks, lookups run on threads of their own.
    private let timers = DispatchQueue(label: "gavel.resolver.timers")

    /// - Parameter resolve: the lookup; `systemResolve` (getaddrinfo) unless a test brings its own.
    public init(configuration: Configuration = Configuration(), resolve: @escaping Resolve = HostResolver.systemResolve,
                logger: Logger = Logger(label: "gavel.ping")) {
        self.configuration = configuration
        self.resolve = resolve
        self.logger = logger
    }

    /// Starts looking up `hosts` that the cache does not know yet, and marks them all in use, so
    /// transfers to them find an answer waiting. Never blocks.
    public func prepare(hosts: some Sequence<String>) {
        let now = ContinuousClock.now
        let starts = state.withLock { state in
            var starts: [String] = []
            for host in Set(hosts.map { $0.lowercased() }) where Self.loopbackAnswer(host) == nil {
                var entry = state.entries[host] ?? Entry(lastUsed: now)
                entry.lastUsed = now
                if entry.addresses.isEmpty && !entry.lookingUp && Self.expired(entry.failedAt, now, configuration.failureTTL) {
                    entry.lookingUp = true
                    if Self.admit(host, &state, limit: configuration.maxConcurrentLookups) { starts.append(host) }
                }
                state.entries[host] = entry
            }
            return starts
        }
        for host in starts { spawnLookup(host) }
    }

    /// The cache's answer for `host` now; starts a lookup when there is none, or the failure is old. Never blocks.
    func answer(for host: String) -> Answer {
        let host = host.lowercased()
        if let loopback = Self.loopbackAnswer(host) { return loopback }
        let now = ContinuousClock.now
        let (answer, start) = state.withLock { state -> (Answer, Bool) in
            var entry = state.entries[host] ?? Entry(lastUsed: now)
            entry.lastUsed = now
            defer { state.entries[host] = entry }
            if !entry.addresses.isEmpty { return (.addresses(entry.addresses), false) }
            let answer: Answer = entry.failedAt == nil ? .pending : .failed
            guard !entry.lookingUp, Self.expired(entry.failedAt, now, configuration.failureTTL) else { return (answer, false) }
            entry.lookingUp = true
            return (answer, Self.admit(host, &state, limit: configuration.maxConcurrentLookups))
        }
        if start { spawnLookup(host) }
        return answer
    }

    /// Like `answer(for:)`, but waits up to `timeout` for a host's first lookup to finish.
    func answer(for host: String, waitingAtMost timeout: Duration) async -> Answer {
        let first = answer(for: host)
        guard first == .pending, timeout > .zero else { return first }
        let host = host.lowercased()
        return await withCheckedContinuation { continuation in
            let waiter = state.withLock { state -> UInt64? in
                guard var entry = state.entries[host], entry.addresses.isEmpty, entry.failedAt == nil else { return nil }
                let id = state.nextWaiter
                state.nextWaiter += 1
                entry.waiters[id] = continuation
                state.entries[host] = entry
                return id
            }
            guard let waiter else {
                // The lookup finished between the two looks.
                continuation.resume(returning: answer(for: host))
                return
            }
            timers.asyncAfter(deadline: .now() + timeout.dispatchInterval) { [weak self] in
                self?.giveUp(waiter, host: host)
            }
        }
    }

    // MARK: Lookups

    /// Counts a lookup as running if a slot is free (the caller then spawns it), else queues it.
    private static func admit(_ host: String, _ state: inout State, limit: Int) -> Bool {
        guard state.running < limit else {
            state.backlog.append(host)
            return false
        }
        state.running += 1
        return true
    }

    /// A thread per lookup: getaddrinfo blocks, and must block neither the engine nor Swift's shared pool.
    private func spawnLookup(_ host: String) {
        let thread = Thread { [self] in
            let addresses = resolve(host).filter(Self.isAddress)
            finishLookup(host, addresses: addresses)
        }
        thread.name = "gavel-resolve"
        thread.start()
    }

    private func finishLookup(_ host: String, addresses: [String]) {
        let now = ContinuousClock.now
        let limit = configuration.maxConcurrentLookups
        let (waiters, answer, generation, next) = state.withLock { state in
            state.running -= 1
            var next: [String] = []
            while state.running < limit, !state.backlog.isEmpty {
                let queued = state.backlog.removeFirst()
                guard state.entries[queued] != nil else { continue }
                state.running += 1
                next.append(queued)
            }
            guard var entry = state.entries[host] else { return ([CheckedContinuation<Answer, Never>](), Answer.failed, 0, next) }
            entry.lookingUp = false
            entry.generation += 1
            if !addresses.isEmpty {
                entry.addresses = addresses
                entry.failedAt = nil
            } else if entry.addresses.isEmpty {
                entry.failedAt = now
            }
            let answer: Answer = entry.addresses.isEmpty ? .failed : .addresses(entry.addresses)
            let waiters = Array(entry.waiters.values)
            entry.waiters.removeAll()
            state.entries[host] = entry
            return (waiters, answer, entry.generation, next)
        }
        for waiter in waiters { waiter.resume(returning: answer) }
        for queued in next { spawnLookup(queued) }
        if addresses.isEmpty {
            logger.debug("host did not resolve", metadata: ["host": "\(host)", "keeping": "\(answer)"])
        } else {
            logger.trace("host resolved", metadata: ["host": "\(host)", "addresses": "\(addresses.joined(separator: ","))"])
        }
        guard generation > 0 else { return }
        // A failure is retried sooner than a good answer is refreshed.
        let delay = addresses.isEmpty ? configuration.failureTTL : configuration.refreshInterval
        timers.asyncAfter(deadline: .now() + delay.dispatchInterval) { [weak self] in
            self?.refresh(host, generation: generation)
        }
    }

    /// Looks a host up again if it is still in use, or forgets it.
    private func refresh(_ host: String, generation: Int) {
        let now = ContinuousClock.now
        let start = state.withLock { state -> Bool in
            guard var entry = state.entries[host], entry.generation == generation, !entry.lookingUp else { return false }
            guard now - entry.lastUsed < configuration.idleTimeout || !entry.waiters.isEmpty else {
                state.entries[host] = nil
                return false
            }
            entry.lookingUp = true
            state.entries[host] = entry
            return Self.admit(host, &state, limit: configuration.maxConcurrentLookups)
        }
        if start { spawnLookup(host) }
    }

    /// A waiter's deadline passed before the first answer.
    private func giveUp(_ waiter: UInt64, host: String) {
        let continuation = state.withLock { state in state.entries[host]?.waiters.removeValue(forKey: waiter) }
        continuation?.resume(returning: .pending)
    }

    // MARK: Helpers

    private static func expired(_ failedAt: ContinuousClock.Instant?, _ now: ContinuousClock.Instant, _ ttl: Duration) -> Bool {
        guard let failedAt else { return true }
        return now - failedAt >= ttl
    }

    /// libcurl answers these names itself with loopback; answering alike keeps them out of the cache.
    private static func loopbackAnswer(_ host: String) -> Answer? {
        host == "localhost" || host.hasSuffix(".localhost") ? .addresses(["127.0.0.1", "::1"]) : nil
    }

    /// Only numeric addresses may reach `CURLOPT_RESOLVE`; a scoped IPv6 address cannot be pinned.
    static func isAddress(_ text: String) -> Bool {
        var v4 = in_addr()
        var v6 = in6_addr()
        return inet_pton(AF_INET, text, &v4) == 1 || inet_pton(AF_INET6, text, &v6) == 1
    }

    /// The system resolver (`getaddrinfo`): every address of `host`, IPv4 and IPv6, in its order.
    public static func systemResolve(_ host: String) -> [String] {
        var hints = addrinfo()
        hints.ai_family = AF_UNSPEC
        #if os(Linux)
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        #else
        hints.ai_socktype = SOCK_STREAM
        #endif
        var list: UnsafeMutablePointer<addrinfo>?
        guard getaddrinfo(host, nil, &hints, &list) == 0, let list else { return [] }
        defer { freeaddrinfo(list) }
        var addresses: [String] = []
        var cursor: UnsafeMutablePointer<addrinfo>? = list
        while let info = cursor {
            var buffer = [CChar](repeating: 0, count: 128)
            if let address = info.pointee.ai_addr,
               getnameinfo(address, info.pointee.ai_addrlen, &buffer, socklen_t(buffer.count), nil, 0, NI_NUMERICHOST) == 0 {
                let text = buffer.withUnsafeBufferPointer { String(cString: $0.baseAddress!) }
                if !addresses.contains(text) { addresses.append(text) }
            }
            cursor = info.pointee.ai_next
        }
        return addresses
    }
}

extension Duration {
    fileprivate var dispatchInterval: DispatchTimeInterval {
        let (seconds, attoseconds) = components
        return .nanoseconds(Int(seconds) * 1_000_000_000 + Int(attoseconds / 1_000_000_000))
    }
}
