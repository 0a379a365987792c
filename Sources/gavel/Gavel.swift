import ArgumentParser
import Foundation
import GavelConfig
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
        subcommands: [Serve.self, Validate.self]
    )
}

struct Serve: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Run the exchange.")

    @Option(help: "The config directory (campaigns.yaml, sellers.yaml, buyers/).")
    var config = "buyer-configs"

    @Option(help: "The SQLite database file; created if missing.")
    var db = "gavel.sqlite"

    @Option(help: "The address to listen on.")
    var host = "127.0.0.1"

    @Option(help: "The port to listen on; 0 picks a free port.")
    var port = 8080

    @Option(help: "normal: a 200 survives a crash of the exchange (kill -9); full: also a power loss, at a cost per commit.")
    var durability = "normal"

    @Option(help: "Log level: trace, debug, info, notice, warning, error.")
    var logLevel = ProcessInfo.processInfo.environment["GAVEL_LOG_LEVEL"] ?? "info"

    func validate() throws {
        guard (0...65535).contains(port) else { throw ValidationError("--port must be between 0 and 65535") }
        guard RoundStore.Durability(rawValue: durability) != nil else { throw ValidationError("--durability must be normal or full") }
        guard Logger.Level(rawValue: logLevel) != nil else { throw ValidationError("--log-level must be one of trace, debug, info, notice, warning, error") }
    }

    func run() async throws {
        let level = Logger.Level(rawValue: logLevel) ?? .info
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = level
            return handler
        }
        let registry = PrometheusCollectorRegistry()
        MetricsSystem.bootstrap(PrometheusMetricsFactory(registry: registry))
        let logger = Logger(label: "gavel")

        var settings = ServerSettings()
        settings.configDirectory = config
        settings.databasePath = db
        settings.host = host
        settings.port = port
        settings.durability = RoundStore.Durability(rawValue: durability) ?? .normal
        if let key = ProcessInfo.processInfo.environment["GAVEL_HASH_KEY"], !key.isEmpty {
            settings.exchange.hashKey = key
        } else {
            logger.warning("GAVEL_HASH_KEY is not set: contact and caller hashes use the development key")
        }

        let server: GavelServer
        do {
            server = try await GavelServer(settings: settings, registry: registry, logger: logger)
        } catch let error as ConfigError {
            FileHandle.standardError.write(Data((error.description + "\n").utf8))
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
