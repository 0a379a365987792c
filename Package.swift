// swift-tools-version:6.1
import PackageDescription

// Data path, target by target:
//   GavelServer (seller HTTP API) -> GavelExchange (eligibility, fan-out, post/fallback, record)
//     (GavelConfig reads the YAML; GavelIntegration builds each buyer's codec: templates, answers)
//     -> GavelCore (pure auction logic: money, config model, eligibility, ranking, round state machine)
//     -> GavelPing (libcurl multi engine on its own thread) / GavelStore (SQLite on its own queue)
let package = Package(
    name: "gavel",
    platforms: [.macOS(.v14)],
    products: [
        .executable(name: "gavel", targets: ["gavel"]),
        .executable(name: "gavel-buyers", targets: ["gavel-buyers"]),
        .executable(name: "gavel-load", targets: ["gavel-load"]),
    ],
    dependencies: [
        .package(url: "https://github.com/hummingbird-project/hummingbird.git", from: "2.28.1"),
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-metrics.git", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus.git", from: "2.4.1"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle.git", from: "2.13.0"),
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.2"),
        .package(url: "https://github.com/jpsim/Yams.git", from: "6.2.2"),
        .package(url: "https://github.com/groue/GRDB.swift.git", from: "7.10.0"),
        .package(url: "https://github.com/apple/swift-crypto.git", from: "3.12.3"),
        .package(url: "https://github.com/HdrHistogram/hdrhistogram-swift.git", from: "0.2.0"),
        .package(url: "https://github.com/hummingbird-project/swift-mustache.git", from: "2.1.1"),
        .package(url: "https://github.com/vapor/postgres-nio.git", from: "1.33.2"),
    ],
    targets: [
        // libcurl, through typed shims around its variadic setopt calls.
        .systemLibrary(
            name: "CCurl",
            pkgConfig: "libcurl",
            providers: [.apt(["libcurl4-openssl-dev"])]
        ),
        // Pure auction logic: no I/O, no clocks of its own.
        .target(name: "GavelCore"),
        // Buyers connected by config: request templates, JSON/XML/text answers, accept rules.
        .target(name: "GavelIntegration", dependencies: ["GavelCore"]),
        // Reads and validates the YAML config directory.
        .target(name: "GavelConfig", dependencies: [
            "GavelCore", "GavelIntegration",
            .product(name: "Yams", package: "Yams"),
        ]),
        // Outgoing HTTP over libcurl multi, one dedicated thread.
        .target(name: "GavelPing", dependencies: [
            "CCurl",
            .product(name: "Logging", package: "swift-log"),
        ]),
        // SQLite persistence: rounds, bids, posts, sales, cap counters.
        .target(name: "GavelStore", dependencies: [
            "GavelCore",
            .product(name: "GRDB", package: "GRDB.swift"),
            .product(name: "Logging", package: "swift-log"),
        ]),
        // PostgreSQL persistence: the same store protocols, plus the state several nodes share.
        .target(name: "GavelPostgres", dependencies: [
            "GavelCore", "GavelStore",
            .product(name: "PostgresNIO", package: "postgres-nio"),
            .product(name: "NIOCore", package: "swift-nio"),
            .product(name: "Logging", package: "swift-log"),
        ]),
        // Runs auctions: eligibility -> pings -> ranking -> post/fallback -> record.
        .target(name: "GavelExchange", dependencies: [
            "GavelCore", "GavelPing", "GavelStore",
            .product(name: "Logging", package: "swift-log"),
            .product(name: "Metrics", package: "swift-metrics"),
            .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            .product(name: "Crypto", package: "swift-crypto"),
        ]),
        // Web pages: the buyer portal and the operator dashboard (sessions, Mustache templates, static assets).
        .target(name: "GavelWeb", dependencies: [
            "GavelCore", "GavelExchange", "GavelStore",
            .product(name: "Hummingbird", package: "hummingbird"),
            .product(name: "Mustache", package: "swift-mustache"),
            .product(name: "Crypto", package: "swift-crypto"),
            .product(name: "Logging", package: "swift-log"),
            .product(name: "NIOCore", package: "swift-nio"),
        ], resources: [.copy("Templates"), .copy("Static")]),
        // The seller HTTP API.
        .target(name: "GavelServer", dependencies: [
            "GavelCore", "GavelConfig", "GavelExchange", "GavelStore", "GavelPostgres", "GavelWeb",
            .product(name: "Hummingbird", package: "hummingbird"),
            .product(name: "Prometheus", package: "swift-prometheus"),
            .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            .product(name: "UnixSignals", package: "swift-service-lifecycle"),
            .product(name: "Logging", package: "swift-log"),
            .product(name: "Metrics", package: "swift-metrics"),
            .product(name: "NIOCore", package: "swift-nio"),
        ]),
        .executableTarget(name: "gavel", dependencies: [
            "GavelServer", "GavelConfig", "GavelCore", "GavelExchange", "GavelPing",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
        ]),

        // Load tools (LoadTests/): a mock buyer fleet on SwiftNIO timers.
        .target(name: "BuyerFleet", dependencies: [
            .product(name: "NIOCore", package: "swift-nio"),
            .product(name: "NIOPosix", package: "swift-nio"),
            .product(name: "NIOHTTP1", package: "swift-nio"),
            .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
        ], path: "LoadTests/BuyerFleet"),
        .executableTarget(name: "gavel-buyers", dependencies: [
            "BuyerFleet",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
        ], path: "LoadTests/gavel-buyers"),
        // Open-loop load generator and raw libcurl fan-out baseline.
        .executableTarget(name: "gavel-load", dependencies: [
            "GavelPing", "GavelCore", "GavelConfig", "GavelStore", "GavelPostgres", "GavelServer",
            .product(name: "Crypto", package: "swift-crypto"),
            .product(name: "Histogram", package: "hdrhistogram-swift"),
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
        ], path: "LoadTests/gavel-load"),

        .testTarget(name: "GavelCoreTests", dependencies: ["GavelCore"]),
        .testTarget(name: "BuyerFleetTests", dependencies: ["BuyerFleet"]),
        .testTarget(name: "GavelConfigTests", dependencies: ["GavelConfig", "GavelCore", "GavelIntegration"]),
        .testTarget(name: "GavelIntegrationTests", dependencies: ["GavelIntegration", "GavelCore"]),
        .testTarget(name: "GavelPingTests", dependencies: ["GavelPing", "BuyerFleet"]),
        .testTarget(name: "GavelStoreTests", dependencies: ["GavelStore", "GavelCore", .product(name: "GRDB", package: "GRDB.swift")]),
        .testTarget(name: "GavelWebTests", dependencies: ["GavelWeb", "GavelCore"]),
        .testTarget(name: "GavelPostgresTests", dependencies: ["GavelPostgres", "GavelStore", "GavelCore"]),
        .testTarget(name: "GavelExchangeTests", dependencies: [
            "GavelExchange", "GavelServer", "GavelConfig", "GavelCore", "GavelStore", "GavelPostgres", "GavelPing", "GavelWeb", "BuyerFleet",
            .product(name: "Hummingbird", package: "hummingbird"),
            .product(name: "Crypto", package: "swift-crypto"),
        ]),
    ]
)
