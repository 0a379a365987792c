import Foundation
import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1
import NIOPosix

/// A fleet of mock buyers served on one port, told apart by path:
/// `POST /<buyer>/ping`, `POST /<buyer>/post`, and `GET /stats` for every buyer's counters.
///
/// Delays are event-loop timers, so thousands of slow answers in flight cost no threads and the fleet
/// is not what limits a load test. Connections are kept alive and may pipeline.
///
/// ```swift
/// let fleet = BuyerFleet(buyers: ["acme": BuyerBehavior(bidMin: "5", bidMax: "9")])
/// try await fleet.start()
/// let url = fleet.pingURL(for: "acme")   // http://127.0.0.1:<port>/acme/ping
/// // ... drive traffic at it, then read fleet.stats(for: "acme") ...
/// try await fleet.shutdown()             // always: it owns event-loop threads
/// ```
public final class BuyerFleet: Sendable {
    /// One event-loop thread per core.
    public static let defaultThreadCount = System.coreCount

    private let host: String
    private let requestedPort: Int
    private let threads: Int
    private let registry: BuyerRegistry
    private let lifecycle = NIOLockedValueBox(Lifecycle.idle)

    private enum Lifecycle {
        case idle
        case starting
        case running(group: MultiThreadedEventLoopGroup, channel: any Channel, port: Int)
        case stopped
    }

    /// Creates a fleet; nothing is bound until ``start()``.
    ///
    /// - Parameters:
    ///   - buyers: Behaviour by buyer id.
    ///   - host: Address to listen on.
    ///   - port: Port to listen on; 0 lets the kernel choose (read it from ``port`` after starting).
    ///   - threads: Event-loop threads.
    ///   - seed: Makes each buyer's random choices repeatable (for a given order of its requests);
    ///     nil draws a fresh seed.
    public init(
        buyers: [String: BuyerBehavior],
        host: String = "127.0.0.1",
        port: Int = 0,
        threads: Int = BuyerFleet.defaultThreadCount,
        seed: UInt64? = nil
    ) {
        self.host = host
        self.requestedPort = port
        self.threads = max(1, threads)
        self.registry = BuyerRegistry(buyers: buyers, seed: seed ?? .random(in: .min ... .max))
    }

    /// Binds the listening socket and starts serving. A fleet starts once.
    public func start() async throws {
        try lifecycle.withLockedValue { state in
            guard case .idle = state else { throw FleetError.alreadyStarted }
            state = .starting
        }
        let group = MultiThreadedEventLoopGroup(numberOfThreads: threads)
        let channel: any Channel
        do {
            channel = try await makeBootstrap(group: group).bind(host: host, port: requestedPort).get()
        } catch {
            lifecycle.withLockedValue { state in
                if case .starting = state { state = .idle }
            }
            try? await group.shutdownGracefully()
            throw error
        }

        let port = channel.localAddress?.port ?? requestedPort
        let stillWanted = lifecycle.withLockedValue { state in
            guard case .starting = state else { return false }
            state = .running(group: group, channel: channel, port: port)
            return true
        }
        guard stillWanted else {
            // shutdown() ran while this was binding: honour it.
            try? await channel.close()
            try? await group.shutdownGracefully()
            throw FleetError.shutDown
        }
    }

    private func makeBootstrap(group: MultiThreadedEventLoopGroup) -> ServerBootstrap {
        let registry = registry
        return ServerBootstrap(group: group)
            // Load tests open connections in bursts; the kernel caps this at somaxconn.
            .serverChannelOption(.backlog, value: 4096)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            // Answers are small and latency-sensitive: no Nagle.
            .childChannelOption(.socketOption(.tcp_nodelay), value: 1)
            .childChannelOption(.maxMessagesPerRead, value: 16)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.configureHTTPServerPipeline()
                    try channel.pipeline.syncOperations.addHandler(FleetHTTPHandler(registry: registry))
                }
            }
    }

    /// Stops listening, drops every open connection and stops the event-loop threads.
    /// Calling it again, or on a fleet never started, does nothing.
    public func shutdown() async throws {
        let previous = lifecycle.withLockedValue { state in
            defer { state = .stopped }
            return state
        }
        guard case .running(let group, let channel, _) = previous else { return }
        try? await channel.close()
        try await group.shutdownGracefully()
    }

    /// The port being served: the real one once started, the requested one before.
    public var port: Int {
        lifecycle.withLockedValue { state in
            if case .running(_, _, let port) = state { port } else { requestedPort }
        }
    }

    /// `http://HOST:PORT/<buyer>`, with a wildcard listen address replaced by loopback.
    public func baseURL(for buyer: String) -> String {
        let reachableHost = switch host {
        case "0.0.0.0", "": "127.0.0.1"
        case "::": "[::1]"
        case let ipv6 where ipv6.contains(":"): "[\(ipv6)]"
        default: host
        }
        return "http://\(reachableHost):\(port)/\(buyer)"
    }

    /// Where the buyer takes pings.
    public func pingURL(for buyer: String) -> String {
        baseURL(for: buyer) + "/ping"
    }

    /// Where the buyer takes posts.
    public func postURL(for buyer: String) -> String {
        baseURL(for: buyer) + "/post"
    }

    /// Every buyer, by id, with its current behaviour.
    public var buyers: [String: BuyerBehavior] {
        registry.all.mapValues(\.behavior)
    }

    /// Changes how a buyer answers from its next request on; an unknown id adds a buyer.
    public func setBehavior(_ behavior: BuyerBehavior, for buyer: String) {
        registry.setBehavior(behavior, for: buyer)
    }

    /// The buyer's counters; all zero for an unknown buyer.
    public func stats(for buyer: String) -> BuyerStats {
        registry[buyer]?.stats ?? BuyerStats()
    }

    /// Every buyer's counters, by id.
    public func allStats() -> [String: BuyerStats] {
        registry.allStats
    }

    /// Zeroes every counter and forgets recorded bodies. Bid ids and post references keep counting,
    /// so they stay unique across resets.
    public func resetStats() {
        for buyer in registry.all.values {
            buyer.resetStats()
        }
    }

    /// The last 200 ping bodies the buyer received, oldest first.
    public func recentPings(buyer: String) -> [Data] {
        registry[buyer]?.recentPings ?? []
    }

    /// The last 200 post bodies the buyer received, oldest first.
    public func recentPosts(buyer: String) -> [Data] {
        registry[buyer]?.recentPosts ?? []
    }
}

/// Misuse of a ``BuyerFleet``'s lifecycle.
public enum FleetError: Error, Equatable {
    /// ``BuyerFleet/start()`` was called on a fleet that had already been started.
    case alreadyStarted
    /// ``BuyerFleet/shutdown()`` was called while ``BuyerFleet/start()`` was still binding.
    case shutDown
}
