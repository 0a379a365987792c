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
    }

    static let sellerKey = "test-key-seller-one"
    static let otherSellerKey = "test-key-seller-two"

    let directory: URL
    let fleet: BuyerFleet
    var server: GavelServer!
    var exchange: Exchange { server.exchange }
    private var serverTask: Task<Void, any Error>?
    private(set) var port = 0
    let client = CurlMultiEngine()

    var databasePath: String { directory.appendingPathComponent("gavel.sqlite").path }
    var configPath: String { directory.appendingPathComponent("config").path }

    init(campaignYAML: String = TestExchange.defaultCampaign, buyers: [BuyerSpec]) async throws {
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
              - {id: seller-one, api_key: \(TestExchange.sellerKey), campaigns: [autos, tort, tiny]}
              - {id: seller-two, api_key: \(TestExchange.otherSellerKey), campaigns: [autos]}
            """.write(to: configDirectory.appendingPathComponent("sellers.yaml"), atomically: true, encoding: .utf8)
        for buyer in buyers {
            let ping = buyer.pingURL ?? fleet.pingURL(for: buyer.id)
            let text = """
                id: \(buyer.id)
                campaigns: [autos]
                ping: {url: "\(ping)", timeout_ms: 2000}
                post: {url: "\(fleet.postURL(for: buyer.id))", timeout_ms: 2000}
                \(buyer.yaml)
                """
            try text.write(to: configDirectory.appendingPathComponent("buyers/\(buyer.id).yaml"), atomically: true, encoding: .utf8)
        }
        try await openServer()
    }

    static let defaultCampaign = """
        campaigns:
          - {id: autos, kind: lead, vertical: auto_insurance, tmax_ms: 1000, ping_timeout_ms: 600, floor: 1.00, payout: {share: 0.5}, required_fields: [zip, state]}
          - {id: tort, kind: lead, vertical: legal, tmax_ms: 1000, floor: 1.00}
          - {id: tiny, kind: lead, vertical: auto_insurance, tmax_ms: 300, ping_timeout_ms: 200}
        """

    /// Opens (or re-opens, after `stopServer`) the exchange on the same database.
    func openServer() async throws {
        var settings = ServerSettings()
        settings.configDirectory = configPath
        settings.databasePath = databasePath
        settings.port = 0
        server = try await GavelServer(settings: settings)
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
    func http(_ method: HTTPRequest.Method, _ path: String, body: String? = nil, key: String? = TestExchange.sellerKey) async throws -> (status: Int, json: JSONValue) {
        var headers: [(name: String, value: String)] = [("Content-Type", "application/json")]
        if let key { headers.append(("Authorization", "Bearer \(key)")) }
        let request = HTTPRequest(url: "http://127.0.0.1:\(port)\(path)", method: method, headers: headers,
                                  body: Array((body ?? "").utf8), timeoutMs: 10_000)
        let response = try await client.send(request).get()
        return (response.status, (try? JSONValue.parse(response.body)) ?? .null)
    }

    func round(_ id: String) async throws -> StoredRound {
        try #require(try await exchange.store.round(id: id))
    }
}

extension StoredRound {
    func reason(of buyerID: String) -> String? { buyers.first { $0.buyerID == buyerID }?.reason }
}

func bidder(_ id: String, bid: String, accept: Double = 1, latencyMs: Double = 5, yaml: String = "") -> TestExchange.BuyerSpec {
    TestExchange.BuyerSpec(id: id, behavior: BuyerBehavior(latency: .fixed(ms: latencyMs), bidMin: bid, bidMax: bid, postAcceptRate: accept), yaml: yaml)
}
