import ArgumentParser
import Foundation
import GavelConfig
import GavelCore
import GavelExchange
import GavelPing
import GavelServer
import GavelStore
import Logging
import Metrics
import Prometheus

@main
struct Gavel: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "gavel",
        abstract: "A real-time ping-post auction exchange for leads and calls.",
        subcommands: [Serve.self, Validate.self, TryBuyer.self]
    )
}

struct Serve: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Run the exchange.")

    @Option(help: "The config directory (campaigns.yaml, sellers.yaml, buyers/).")
    var config = "buyer-configs"

    @Option(help: ArgumentHelp(
        "The SQLite database file (created if missing), or a PostgreSQL URL postgres://USER@HOST[:PORT]/DB for several nodes.",
        discussion: "Default: GAVEL_DATABASE_URL when set, else gavel.sqlite. The PostgreSQL password comes only from PGPASSWORD."))
    var db = ProcessInfo.processInfo.environment["GAVEL_DATABASE_URL"].flatMap { $0.isEmpty ? nil : $0 } ?? "gavel.sqlite"

    @Option(help: "This node's name on a cluster (default: host name and port); keep it stable across restarts.")
    var nodeID: String?

    @Option(help: "Cluster: milliseconds past its round before a stopped node's cap claims and posts are settled by the others.")
    var claimGraceMs = 30_000

    @Option(help: "The address to listen on.")
    var host = "127.0.0.1"

    @Option(help: "The port to listen on; 0 picks a free port.")
    var port = 8080

    @Option(help: "normal: a 200 survives a crash of the exchange (kill -9); full: also a power loss, at a cost per commit.")
    var durability = "normal"

    @Option(help: "Log level: trace, debug, info, notice, warning, error.")
    var logLevel = ProcessInfo.processInfo.environment["GAVEL_LOG_LEVEL"] ?? "info"

    @Option(help: "Tracking-number requests (POST /v1/dni/sessions) per second per client address; bursts of ten times as many.")
    var dniRateLimit = 2

    @Option(help: "A proxy whose X-Forwarded-For is believed for client addresses (repeatable).")
    var trustedProxy: [String] = []

    @Option(help: "Seconds an idle client connection is kept open.")
    var idleTimeoutS = 60

    @Flag(help: "Mark the portal's and dashboard's session cookies Secure (browsers reach the exchange over HTTPS, behind TLS).")
    var secureCookies = false

    @Option(help: "Rounds running at once, at most (default 4096); below it the admission limit adapts, past it 503 overloaded.")
    var maxRoundsInFlight = 4_096

    @Option(help: "Log lines on stderr: text, or json (one object per line: time, level, message, auction_id, buyer, ...).")
    var logFormat = ProcessInfo.processInfo.environment["GAVEL_LOG_FORMAT"] ?? "text"

    func validate() throws {
        guard (0...65535).contains(port) else { throw ValidationError("--port must be between 0 and 65535") }
        guard RoundStore.Durability(rawValue: durability) != nil else { throw ValidationError("--durability must be normal or full") }
        guard Logger.Level(rawValue: logLevel) != nil else { throw ValidationError("--log-level must be one of trace, debug, info, notice, warning, error") }
        guard ["text", "json"].contains(logFormat) else { throw ValidationError("--log-format must be text or json") }
        guard (1...1_000_000).contains(dniRateLimit) else { throw ValidationError("--dni-rate-limit must be between 1 and 1000000") }
        guard (1...86_400).contains(idleTimeoutS) else { throw ValidationError("--idle-timeout-s must be between 1 and 86400") }
        guard (1_000...3_600_000).contains(claimGraceMs) else { throw ValidationError("--claim-grace-ms must be between 1000 and 3600000") }
        guard (1...1_000_000).contains(maxRoundsInFlight) else { throw ValidationError("--max-rounds-in-flight must be between 1 and 1000000") }
        if let nodeID, nodeID.isEmpty || nodeID.count > 100 { throw ValidationError("--node-id must be 1 to 100 characters") }
    }

    func run() async throws {
        let level = Logger.Level(rawValue: logLevel) ?? .info
        let json = logFormat == "json"
        LoggingSystem.bootstrap { label in
            if json {
                var handler = JSONLogHandler(label: label)
                handler.logLevel = level
                return handler
            }
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = level
            return handler
        }
        let registry = PrometheusCollectorRegistry()
        MetricsSystem.bootstrap(PrometheusMetricsFactory(registry: registry))
        let logger = Logger(label: "gavel")

        var settings = ServerSettings()
        settings.configDirectory = config
        if db.hasPrefix("postgres://") || db.hasPrefix("postgresql://") {
            settings.databaseURL = db
        } else {
            settings.databasePath = db
        }
        settings.nodeID = nodeID
        settings.exchange.claimGraceMs = Int64(claimGraceMs)
        settings.exchange.maxRoundsInFlight = maxRoundsInFlight
        settings.host = host
        settings.port = port
        settings.durability = RoundStore.Durability(rawValue: durability) ?? .normal
        if let key = ProcessInfo.processInfo.environment["GAVEL_HASH_KEY"], !key.isEmpty {
            settings.hashKey = key  // else the database's own random key
        }
        settings.dniRateLimit = RateLimit(perSecond: Double(dniRateLimit), burst: dniRateLimit * 10)
        settings.trustedProxies = Set(trustedProxy)
        settings.idleTimeoutS = idleTimeoutS
        settings.secureCookies = secureCookies

        let server: GavelServer
        do {
            server = try await GavelServer(settings: settings, registry: registry, logger: logger)
        } catch let error as ConfigError {
            FileHandle.standardError.write(Data((error.description + "\n").utf8))
            throw ExitCode(1)
        } catch let error as StoreError {
            FileHandle.standardError.write(Data("gavel: the database could not be opened: \(error)\n".utf8))
            throw ExitCode(1)
        }
        let host = self.host
        try await server.run { port in
            // Written straight to fd 1, unbuffered: scripts wait for this line to know the exchange is ready.
            FileHandle.standardOutput.write(Data("gavel listening on http://\(host):\(port)\n".utf8))
        }
    }
}

struct Validate: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Check a config directory and list every problem.")

    @Option(help: "The config directory to check.")
    var config = "buyer-configs"

    func run() throws {
        do {
            let loaded = try ConfigLoader.load(directory: config)
            print(ConfigLoader.summary(of: loaded))
        } catch {
            for problem in error.problems { print(problem.description) }
            throw ExitCode(1)
        }
    }
}

struct TryBuyer: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "try-buyer",
        abstract: "Send one sample ping (and with --post a post) to a buyer; print the request, the answer and how Gavel read it.",
        discussion: """
            A ping never carries personal data. --post sends the sample lead (or --lead FILE) to the buyer's \
            post.test_url; a buyer without one is refused unless --live is given.
            """
    )

    @Argument(help: "The buyer's id.")
    var buyer: String

    @Option(help: "The config directory.")
    var config = "buyer-configs"

    @Option(help: "A seller request body to use (as for POST /v1/leads, or POST /v1/calls for a call buyer).")
    var lead: String?

    @Flag(help: "Also post the lead to the buyer's post.test_url.")
    var post = false

    @Flag(help: "With --post: post to the live post.url when the buyer has no test_url.")
    var live = false

    @Option(help: "Milliseconds to wait for each answer (default: the endpoint's timeout_ms).")
    var timeoutMs: Int?

    func validate() throws {
        if live && !post { throw ValidationError("--live only goes with --post") }
        if let timeoutMs, !(1...60_000).contains(timeoutMs) { throw ValidationError("--timeout-ms must be between 1 and 60000") }
    }

    func run() async throws {
        let loaded: ExchangeConfig
        do { loaded = try ConfigLoader.load(directory: config) } catch {
            for problem in error.problems { print(problem.description) }
            throw ExitCode(1)
        }
        var requestJSON: String?
        if let lead {
            guard let data = FileManager.default.contents(atPath: lead) else {
                FileHandle.standardError.write(Data("gavel try-buyer: cannot read \(lead)\n".utf8))
                throw ExitCode(1)
            }
            requestJSON = String(decoding: data, as: UTF8.self)
        }
        let engine = CurlMultiEngine()
        defer { engine.shutdown() }
        engine.prepare(urls: [loaded.buyer(id: buyer)?.ping?.url, loaded.buyer(id: buyer)?.post?.url, loaded.buyer(id: buyer)?.post?.testURL].compactMap { $0 })
        do {
            let report = try await BuyerTrial(config: loaded, engine: engine)
                .run(buyerID: buyer, options: .init(requestJSON: requestJSON, post: post, live: live, timeoutMs: timeoutMs))
            print(report, terminator: "")
        } catch {
            FileHandle.standardError.write(Data("gavel try-buyer: \(error)\n".utf8))
            throw ExitCode(1)
        }
    }
}
