import Foundation
import GavelConfig
import GavelCore
import GavelExchange
import GavelPing
import GavelPostgres
import GavelStore
import GavelWeb
import Hummingbird
import Logging
import Metrics
import NIOCore
import Prometheus
import ServiceLifecycle
@_exported import UnixSignals

/// Settings of `gavel serve`, with the CONTRACT's defaults.
public struct ServerSettings: Sendable {
    public var configDirectory: String = "buyer-configs"
    public var databasePath: String = "gavel.sqlite"
    /// A PostgreSQL database (`postgres://USER@HOST[:PORT]/DB`, password from `PGPASSWORD`)
    /// instead of the SQLite file: several nodes on one database share caps, held pings and calls.
    public var databaseURL: String?
    /// PostgreSQL: a schema of the database to use (tests use one each); nil: the default.
    public var databaseSchema: String?
    /// This node's name on a cluster (post intents, claims, logs); nil: host name and port. Keep it
    /// stable across restarts: a restarted node settles its own posts left in flight at once.
    public var nodeID: String?
    /// PostgreSQL: the least time kept back from each round's budget for its commit.
    public static let postgresRecordReserveMs = 40
    public var host: String = "127.0.0.1"
    public var port: Int = 8080
    public var durability: RoundStore.Durability = .normal
    public var exchange: Exchange.Configuration = .init()
    /// Key for contact and caller hashes; nil: the database's own, made at random on first start.
    public var hashKey: String?
    /// Per client address on the public `POST /v1/dni/sessions` (browsers call it, so it takes no key).
    public var dniRateLimit = RateLimit(perSecond: 2, burst: 20)
    /// Peers whose `X-Forwarded-For` is believed (a load balancer, nginx); everyone else is the client.
    public var trustedProxies: Set<String> = []
    /// Marks the web pages' cookies `Secure`: set when browsers reach the exchange over HTTPS (behind TLS).
    public var secureCookies = false
    /// A connection idle this long is closed (slow or abandoned clients must not hold sockets).
    public var idleTimeoutS = 60
    /// Resolves buyer host names; nil (the default) uses the system resolver. Tests inject one.
    public var resolver: HostResolver?

    public init() {}
}

/// The running exchange: HTTP server, exchange, store and ping engine, wired as services that
/// shut down in reverse order (HTTP first, so rounds in flight finish and commit; then the store).
public struct GavelServer: Sendable {
    public let exchange: Exchange
    /// The store the server opened, as the exchange sees it.
    public let store: any ExchangeStore
    /// The SQLite store, when that is the backend: for the operator's and tests' reads the exchange
    /// does not make (`counts()`, `openPostIntents()`).
    public let sqlite: RoundStore?
    /// The PostgreSQL store, when that is the backend (it is also the cluster's shared state).
    public let postgres: PostgresStore?
    /// The store, for operators' and tests' reads the exchange does not make (`counts()`).
    public let inspection: any StoreInspection
    public let settings: ServerSettings
    let registry: PrometheusCollectorRegistry
    let logger: Logger

    /// Loads the config, opens the store and restores the ledger. Throws on a bad config or database.
    public init(settings: ServerSettings, registry: PrometheusCollectorRegistry = PrometheusCollectorRegistry(),
                logger: Logger = Logger(label: "gavel")) async throws {
        self.settings = settings
        self.registry = registry
        self.logger = logger
        let config = try ConfigLoader.load(directory: settings.configDirectory)
        var configuration = settings.exchange
        configuration.nodeID = settings.nodeID ?? GavelServer.defaultNodeID(port: settings.port)
        if let url = settings.databaseURL {
            // A commit to a database over a socket takes longer than to a local file: keep more of
            // each round's budget back for it, so a slow post still leaves time to record the round.
            configuration.recordReserveMs = max(configuration.recordReserveMs, ServerSettings.postgresRecordReserveMs)
            let postgres = try await PostgresStore.open(
                PostgresStore.Configuration(url: url, nodeID: configuration.nodeID, schema: settings.databaseSchema), logger: logger)
            store = postgres
            inspection = postgres
            sqlite = nil
            self.postgres = postgres
            if let key = settings.hashKey { configuration.hashKey = key } else { configuration.hashKey = try await postgres.hashKey() }
        } else {
            let sqlite = try RoundStore(path: settings.databasePath, durability: settings.durability, logger: logger)
            store = sqlite
            inspection = sqlite
            self.sqlite = sqlite
            postgres = nil
            configuration.hashKey = try settings.hashKey ?? sqlite.hashKey()
        }
        let engine = CurlMultiEngine(resolver: settings.resolver, logger: logger)
        exchange = Exchange(config: config, store: store, engine: engine, configuration: configuration, cluster: postgres, logger: logger)
        do {
            try await exchange.restoreState()
            // Learn the other nodes (and their usage) before taking traffic: rate limits and eligibility.
            await exchange.clusterBeat(reclaim: false)
        } catch {
            store.close()
            throw error
        }
    }

    /// A node's default name: the host's name and the port it serves on.
    static func defaultNodeID(port: Int) -> String {
        "\(ProcessInfo.processInfo.hostName):\(port)"
    }

    /// Builds the Hummingbird application; `onListening` receives the bound port.
    func application(onListening: @escaping @Sendable (Int) async -> Void) -> some ApplicationProtocol {
        let router = Router(context: GavelRequestContext.self)
        router.add(middleware: JSONErrorMiddleware())
        router.add(middleware: MethodNotAllowedMiddleware(router: router))  // before every route: 405 + Allow
        let sellerAPI = SellerAPI(exchange: exchange, idempotency: IdempotencyGate(exchange: exchange))
        sellerAPI.register(on: router)
        CallAPI(exchange: exchange, sellers: sellerAPI).register(on: router)
        TrackingAPI(exchange: exchange, limit: settings.dniRateLimit, trustedProxies: settings.trustedProxies).register(on: router)
        WebPages.register(on: router, exchange: exchange, logger: logger,  // /portal/ and /ui/
                          configuration: .init(secureCookies: settings.secureCookies))
        BooksAPI(exchange: exchange, idempotency: sellerAPI.idempotency).register(on: router)
        TwilioWebhooks(exchange: exchange, logger: logger).register(on: router)
        let registry = self.registry
        router.get("/healthz") { _, _ in JSONResponses.ok(["status": "ok"]) }
        router.get("/metrics") { _, _ in
            Response(
                status: .ok, headers: [.contentType: "text/plain; version=0.0.4"],
                body: ResponseBody(byteBuffer: ByteBuffer(bytes: registry.emitToBuffer()))
            )
        }
        var serverLogger = logger
        serverLogger.logLevel = max(logger.logLevel, .notice)
        return Application(
            router: router,
            // A burst of sellers' connections must queue, not be dropped: a dropped SYN costs the
            // caller a 1 s retransmit, which is the whole budget (Linux caps this at somaxconn).
            server: .http1(configuration: .init(idleTimeout: .seconds(Int64(settings.idleTimeoutS)))),
            configuration: .init(address: .hostname(settings.host, port: settings.port), serverName: "gavel", backlog: 4096),
            onServerRunning: { channel in await onListening(channel.localAddress?.port ?? 0) },
            logger: serverLogger
        )
    }

    /// Serves until SIGTERM/SIGINT; SIGHUP reloads the config directory.
    /// Tests pass no `signals` and cancel the task to stop it.
    public func run(
        signals: [UnixSignal] = [.sigterm, .sigint], onListening: @escaping @Sendable (Int) async -> Void
    ) async throws {
        let resources = ResourceService(exchange: exchange, postgres: postgres, logger: logger)
        let reload = ConfigReloadService(exchange: exchange, directory: settings.configDirectory, logger: logger)
        var services: [ServiceGroupConfiguration.ServiceConfiguration] = [
            .init(service: resources), .init(service: HousekeepingService(exchange: exchange)),
        ]
        if !signals.isEmpty { services.append(.init(service: reload)) }
        if let cluster = exchange.clusterState {
            services.append(.init(service: ClusterService(exchange: exchange, cluster: cluster, directory: settings.configDirectory, logger: logger)))
        }
        services.append(.init(service: application(onListening: onListening)))
        let group = ServiceGroup(
            configuration: .init(
                services: services,
                gracefulShutdownSignals: signals,
                logger: logger
            )
        )
        try await group.run()
    }
}

/// Owns the engine and the store: closes them last, after the HTTP server has drained.
struct ResourceService: Service {
    let exchange: Exchange
    /// PostgreSQL: waited for after the engine stops, so the last queued writes commit before exit.
    let postgres: PostgresStore?
    let logger: Logger

    func run() async throws {
        try? await gracefulShutdown()
        // Rounds kept after a failed commit get a last try: else they become post_unknown at start-up.
        await exchange.retryUnrecordedRounds()
        // Joining the curl thread and the store's writer blocks: do it off the cooperative pool.
        let exchange = self.exchange
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            DispatchQueue.global().async {
                exchange.shutdown()
                continuation.resume()
            }
        }
        await postgres?.closed()
        logger.info("gavel stopped: rounds committed, store closed")
    }
}

/// Once a second: frees the slots of calls whose `completed` never came (after `max_call_s`) and
/// commits again rounds whose commit failed; once a minute: drops expired idempotency keys, held
/// bids and tracking-number reservations from the store.
struct HousekeepingService: Service {
    let exchange: Exchange

    func run() async throws {
        var tick = 0
        while !Task.isShuttingDownGracefully && !Task.isCancelled {
            try? await Task.sleep(for: .seconds(1))
            tick += 1
            // On a cluster, the live calls of every node are read from the database: every 5 s.
            await exchange.releaseAbandonedCalls(shared: tick % 5 == 0)
            await exchange.retryUnrecordedRounds()
            if tick % 60 == 0 { await exchange.sweepStore() }
        }
    }
}

/// Reloads the config directory on SIGHUP; a bad directory keeps the old config and logs why.
struct ConfigReloadService: Service {
    let exchange: Exchange
    let directory: String
    let logger: Logger

    func run() async throws {
        let signals = await UnixSignalsSequence(trapping: .sighup)
        for await _ in signals.cancelOnGracefulShutdown() {
            guard ConfigReloadService.reload(exchange: exchange, directory: directory, logger: logger) else { continue }
            // The other nodes reload their own directories at once.
            if let cluster = exchange.clusterState {
                do { try await cluster.publish(.configReloaded) } catch {
                    logger.warning("reload not announced to the other nodes; their poll picks it up", metadata: ["error": "\(error)"])
                }
            }
        }
    }

    /// Loads the directory and swaps it in; false (the old config kept) on a bad directory.
    @discardableResult
    static func reload(exchange: Exchange, directory: String, logger: Logger) -> Bool {
        do {
            let config = try ConfigLoader.load(directory: directory)
            exchange.reload(config)
            logger.notice("config reloaded", metadata: ["summary": "\(ConfigLoader.summary(of: config))"])
            return true
        } catch {
            logger.error("config reload failed; keeping the previous config", metadata: ["problems": "\(error.problems.map(\.description))"])
            return false
        }
    }
}
