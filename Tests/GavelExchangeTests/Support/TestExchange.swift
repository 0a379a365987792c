import BuyerFleet
import Foundation
import GavelConfig
import GavelCore
import GavelExchange
import GavelPing
import GavelServer
import GavelStore
import Testing

/// A real exchange for one test: a config directory written to a temp folder, a real SQLite
/// file, a fleet of real HTTP buyers on loopback, and (with `startHTTP`) the HTTP server on a free port.
final class TestExchange: @unchecked Sendable {
    // @unchecked: mutable fields are set in `start` before the test uses them, then only read.
    struct BuyerSpec {
        var id: String
        var behavior: BuyerBehavior?
        var yaml: String = ""
        /// Overrides the ping URL (for refused endpoints).
        var pingURL: String?
        var campaign = "autos"
        /// A fixed-price buyer: no ping.
        var fixedPrice: String?
        /// The whole buyer file, written as is (buyers on their own wire format, `template:`).
        var file: String?
    }

    /// A buyer whose file the test writes itself.
    static func buyerFile(_ id: String, _ file: String) -> BuyerSpec { BuyerSpec(id: id, file: file) }

    /// The repository's config directory (`buyer-configs/`): its templates are copied into each test's config.
    static let repositoryConfig = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("buyer-configs")

    static let sellerKey = "test-key-seller-one"
    static let otherSellerKey = "test-key-seller-two"

    let directory: URL
    let fleet: BuyerFleet
    var server: GavelServer!
    var exchange: Exchange { server.exchange }
    /// The store, for reads the exchange does not make (`counts()`, `openPostIntents()`), on either backend.
    var store: any StoreInspection { server.inspection }

    /// `GAVEL_TEST_STORE=postgres` (with `GAVEL_TEST_DATABASE_URL`, see scripts/with-postgres.sh)
    /// runs every exchange of the suite on PostgreSQL, each test in a schema of its own.
    static let postgresURL: String? = {
        let environment = ProcessInfo.processInfo.environment
        guard environment["GAVEL_TEST_STORE"] == "postgres" else { return nil }
        return environment["GAVEL_TEST_DATABASE_URL"]
    }()
    /// The PostgreSQL database of this exchange; nil: a SQLite file.
    let databaseURL: String?
    /// The database of the cluster tests, whatever the suite's backend (scripts/with-postgres.sh).
    static let clusterDatabaseURL = ProcessInfo.processInfo.environment["GAVEL_TEST_DATABASE_URL"]
    /// This test's schema on PostgreSQL: kept across `openServer` calls (restarts).
    let schema = "t_" + UUID().uuidString.replacingOccurrences(of: "-", with: "").lowercased().prefix(16)
    private var serverTask: Task<Void, any Error>?
    private(set) var port = 0
    let client = CurlMultiEngine()
    /// Changes the settings of the next `openServer` (limits, capacities).
    var configureSettings: (@Sendable (inout ServerSettings) -> Void)?

    var databasePath: String { directory.appendingPathComponent("gavel.sqlite").path }
    var configPath: String { directory.appendingPathComponent("config").path }

    /// The exchange's host-name resolver (unresolvable and slow DNS); nil uses the system's.
    let resolver: HostResolver?

    init(campaignYAML: String = TestExchange.defaultCampaign, buyers: [BuyerSpec], sellerRateLimit: String? = nil,
         resolver: HostResolver? = nil, databaseURL: String? = TestExchange.postgresURL) async throws {
        self.resolver = resolver
        self.databaseURL = databaseURL
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("gavel-test-\(UUID().uuidString)")
        let configDirectory = directory.appendingPathComponent("config")
        try FileManager.default.createDirectory(at: configDirectory.appendingPathComponent("buyers"), withIntermediateDirectories: true)
        var behaviors: [String: BuyerBehavior] = [:]
        for buyer in buyers { if let behavior = buyer.behavior { behaviors[buyer.id] = behavior } }
        fleet = BuyerFleet(buyers: behaviors, seed: 42)
        try await fleet.start()

        try campaignYAML.write(to: configDirectory.appendingPathComponent("campaigns.yaml"), atomically: true, encoding: .utf8)
        try """
            sellers:
              - {id: seller-one, api_key: \(TestExchange.sellerKey), campaigns: [autos, tort, tiny, calls]\(sellerRateLimit.map { ", rate_limit: \($0)" } ?? "")}
              - {id: seller-two, api_key: \(TestExchange.otherSellerKey), campaigns: [autos]}
            """.write(to: configDirectory.appendingPathComponent("sellers.yaml"), atomically: true, encoding: .utf8)
        try? FileManager.default.copyItem(at: TestExchange.repositoryConfig.appendingPathComponent("templates"),
                                          to: configDirectory.appendingPathComponent("templates"))
        for buyer in buyers {
            if let file = buyer.file {
                try file.write(to: configDirectory.appendingPathComponent("buyers/\(buyer.id).yaml"), atomically: true, encoding: .utf8)
                continue
            }
            let ping = buyer.pingURL ?? fleet.pingURL(for: buyer.id)
            var lines = ["id: \(buyer.id)", "campaigns: [\(buyer.campaign)]"]
            if let price = buyer.fixedPrice {
                lines.append("price: \(price)")
            } else {
                lines.append("ping: {url: \"\(ping)\", timeout_ms: 2000}")
            }
            if buyer.campaign != "calls" { lines.append("post: {url: \"\(fleet.postURL(for: buyer.id))\", timeout_ms: 8000}") }
            let text = (lines + [buyer.yaml]).joined(separator: "\n")
            try text.write(to: configDirectory.appendingPathComponent("buyers/\(buyer.id).yaml"), atomically: true, encoding: .utf8)
        }
        try await openServer()
    }

    static let defaultCampaign = """
        campaigns:
          - {id: autos, kind: lead, vertical: auto_insurance, tmax_ms: 5000, ping_timeout_ms: 3000, floor: 1.00, payout: {share: 0.5}, required_fields: [zip, state]}
          - {id: tort, kind: lead, vertical: legal, tmax_ms: 5000, floor: 1.00}
          - {id: tiny, kind: lead, vertical: auto_insurance, tmax_ms: 300, ping_timeout_ms: 200}
          - id: calls
            kind: call
            vertical: home_services
            tmax_ms: 3000
            ping_timeout_ms: 2000
            floor: 1.00
            payout: {share: 0.5}
            bid_hold_s: 30
            max_call_s: 60
            tracking:
              reservation_s: 600
              pools: {google: ["+18005550201", "+18005550202"], default: ["+18005550401"]}
              fallbacks: {google: "+18005550299", default: "+18005550100"}
        """

    /// Opens (or re-opens, after `stopServer`) the exchange on the same database.
    func openServer() async throws {
        var settings = ServerSettings()
        settings.configDirectory = configPath
        settings.databasePath = databasePath
        if let databaseURL {
            settings.databaseURL = databaseURL
            settings.databaseSchema = String(schema)
            settings.nodeID = "node-1"
        }
        settings.port = 0
        settings.resolver = resolver
        configureSettings?(&settings)
        server = try await GavelServer(settings: settings)
    }

    /// Another process holds the database's write lock for `seconds` (SQLite: an exclusive
    /// transaction; PostgreSQL: an exclusive lock on `rounds`, which the writer waits for past its
    /// lock_timeout): the exchange's commits fail meanwhile.
    func blockWrites(seconds: Int) throws -> Process {
        let blocker = Process()
        blocker.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        if let databaseURL, let components = URLComponents(string: databaseURL) {
            let socketDirectory = components.queryItems?.first { $0.name == "host" }?.value ?? components.host ?? "localhost"
            blocker.arguments = ["psql", "-q", "-h", socketDirectory, "-U", components.user ?? "postgres", "-d",
                                 String(components.path.dropFirst()), "-c",
                                 "BEGIN; LOCK TABLE \(schema).rounds IN ACCESS EXCLUSIVE MODE; SELECT pg_sleep(\(seconds)); ROLLBACK;"]
        } else {
            blocker.arguments = ["python3", "-c", """
                import sqlite3, time
                db = sqlite3.connect("\(databasePath)", isolation_level=None, timeout=5)
                db.execute("BEGIN EXCLUSIVE"); time.sleep(\(seconds)); db.execute("ROLLBACK")
                """]
        }
        try blocker.run()
        return blocker
    }

    /// Another node on the same PostgreSQL database and config (a cluster of two); the caller
    /// shuts it down with `exchange.shutdown()`.
    func openPeer(nodeID: String = "node-2") async throws -> GavelServer {
        let databaseURL = try #require(databaseURL, "a peer node needs PostgreSQL")
        var settings = ServerSettings()
        settings.configDirectory = configPath
        settings.databaseURL = databaseURL
        settings.databaseSchema = String(schema)
        settings.nodeID = nodeID
        settings.port = 0
        settings.resolver = resolver
        configureSettings?(&settings)
        return try await GavelServer(settings: settings)
    }

    /// Serves HTTP on a free port; returns once it listens.
    func startHTTP() async throws {
        let (stream, continuation) = AsyncStream<Int>.makeStream()
        let server = self.server!
        serverTask = Task {
            try await server.run(signals: []) { port in continuation.yield(port) }
        }
        for await port in stream {
            self.port = port
            break
        }
    }

    func stopServer() async {
        if let serverTask {
            serverTask.cancel()
            _ = try? await serverTask.value
            self.serverTask = nil
        } else {
            exchange.shutdown()
        }
    }

    func shutdown() async {
        await stopServer()
        client.shutdown()
        try? await fleet.shutdown()
        try? FileManager.default.removeItem(at: directory)
    }

    // MARK: Requests

    var seller: Seller { exchange.config.sellersByKey[TestExchange.sellerKey]! }

    func submission(_ json: String, shape: LeadSubmission.Shape = .fullLead) throws -> LeadSubmission {
        try LeadSubmission.parse(Array(json.utf8), shape: shape, seller: seller, config: exchange.config)
    }

    /// Runs a lead straight through the exchange (no HTTP).
    func runLead(_ json: String = TestExchange.lead()) async throws -> LeadResult {
        try await exchange.runLead(submission(json), seller: seller, arrival: .now)
    }

    static func lead(email: String = "jo@example.com", state: String = "CA", campaign: String = "autos", tmax: Int? = nil) -> String {
        let tmaxField = tmax.map { ", \"tmax_ms\": \($0)" } ?? ""
        return """
            {"campaign": "\(campaign)", "lead": {"zip": "94107", "state": "\(state)", "age": 34},
             "contact": {"first_name": "Jo", "last_name": "Doe", "email": "\(email)", "phone": "+15551234567", "address": "1 Main St"}\(tmaxField)}
            """
    }

    /// An HTTP request to the running server.
    func http(_ method: HTTPRequest.Method, _ path: String, body: String? = nil, key: String? = TestExchange.sellerKey,
              headers extra: [(name: String, value: String)] = []) async throws -> (status: Int, json: JSONValue) {
        let response = try await rawHTTP(method, path, body: body, key: key, headers: extra)
        return (response.status, (try? JSONValue.parse(response.body)) ?? .null)
    }

    /// An HTTP request to the running server, answered as it came (status, body bytes).
    func rawHTTP(_ method: HTTPRequest.Method, _ path: String, body: String? = nil, key: String? = TestExchange.sellerKey,
                 headers extra: [(name: String, value: String)] = []) async throws -> HTTPResponse {
        var headers: [(name: String, value: String)] = [("Content-Type", "application/json")]
        if let key { headers.append(("Authorization", "Bearer \(key)")) }
        headers += extra
        let request = HTTPRequest(url: "http://127.0.0.1:\(port)\(path)", method: method, headers: headers,
                                  body: Array((body ?? "").utf8), timeoutMs: 10_000)
        return try await client.send(request).get()
    }

    func round(_ id: String) async throws -> StoredRound {
        try #require(try await exchange.store.round(id: id))
    }
}

extension StoredRound {
    func reason(of buyerID: String) -> String? { buyers.first { $0.buyerID == buyerID }?.reason }
}

func callBidder(_ id: String, bid: String, destination: String, minDuration: Int = 90, expiresInS: Int = 30, yaml: String = "") -> TestExchange.BuyerSpec {
    var behavior = BuyerBehavior(latency: .fixed(ms: 3), bidMin: bid, bidMax: bid, expiresInS: expiresInS)
    behavior.destination = destination
    behavior.minDurationS = minDuration
    return TestExchange.BuyerSpec(id: id, behavior: behavior, yaml: yaml, campaign: "calls")
}

extension TestExchange {
    static func call(number: String = "+14155550123", dialed: String? = nil, state: String = "CA") -> String {
        let dialedField = dialed.map { ", \"dialed\": \"\($0)\"" } ?? ""
        return """
            {"campaign": "calls", "caller": {"number": "\(number)", "zip": "94107", "state": "\(state)"}, "tags": {"service": "plumbing"}\(dialedField)}
            """
    }

    /// Places a call through the exchange (no HTTP).
    func runCall(_ json: String = TestExchange.call()) async throws -> CallRouting {
        let submission = try CallSubmission.parse(Array(json.utf8), seller: seller, config: exchange.config)
        return try await exchange.runCall(submission, seller: seller, arrival: .now)
    }

    func event(_ callID: String, _ kind: CallEvent.Kind, duration: Int? = nil) async throws -> CallEventOutcome {
        try await exchange.handleCallEvent(callID: callID, event: CallEvent(kind: kind, durationS: duration), seller: seller)
    }
}

func bidder(_ id: String, bid: String, accept: Double = 1, latencyMs: Double = 5, yaml: String = "") -> TestExchange.BuyerSpec {
    TestExchange.BuyerSpec(id: id, behavior: BuyerBehavior(latency: .fixed(ms: latencyMs), bidMin: bid, bidMax: bid, postAcceptRate: accept), yaml: yaml)
}
