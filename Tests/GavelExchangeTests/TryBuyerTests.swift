import Foundation
import Testing

/// `gavel try-buyer` as an operator runs it: the built binary against a real HTTP buyer on loopback.
@Suite(.serialized)
struct TryBuyerTests {
    /// A config with campaign `autos` and buyer `bob` on boberdoo's wire format at `wire`.
    static func config(_ wire: WireBuyer, post: String) throws -> URL {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("gavel-try-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory.appendingPathComponent("buyers"), withIntermediateDirectories: true)
        try FileManager.default.copyItem(at: TestExchange.repositoryConfig.appendingPathComponent("templates"),
                                         to: directory.appendingPathComponent("templates"))
        try "campaigns:\n  - {id: autos, vertical: auto, tmax_ms: 1000}\n"
            .write(to: directory.appendingPathComponent("campaigns.yaml"), atomically: true, encoding: .utf8)
        try "sellers:\n  - {id: s, api_key: try-test-key-1, campaigns: [autos]}\n"
            .write(to: directory.appendingPathComponent("sellers.yaml"), atomically: true, encoding: .utf8)
        try """
            id: bob
            template: boberdoo
            campaigns: [autos]
            ping: {url: "\(wire.url("/ping"))", body: {fields: {Key: k-1}}}
            post: {url: "\(wire.url("/post"))", \(post) body: {fields: {Key: k-1}}}
            """.write(to: directory.appendingPathComponent("buyers/bob.yaml"), atomically: true, encoding: .utf8)
        return directory
    }

    static func boberdoo() async -> WireBuyer {
        await WireBuyer { request in
            request.form["Mode"] == "ping"
                ? .init(contentType: "text/xml", body: "<response><status>Matched</status><lead_id>L-77</lead_id><bids><bid><bid_id>b</bid_id><seller_lead_bid>14.25</seller_lead_bid></bid></bids></response>")
                : .init(contentType: "text/xml", body: "<response><status>Matched</status><lead_id>\(request.form["Lead_ID"] ?? "")</lead_id></response>")
        }
    }

    @Test func aPingShowsTheRequestTheAnswerAndHowItWasRead() async throws {
        try #require(FileManager.default.isExecutableFile(atPath: CommandLineTests.gavelBinary.path), "build the gavel product first")
        let wire = await Self.boberdoo()
        let directory = try Self.config(wire, post: "")
        defer { try? FileManager.default.removeItem(at: directory) }
        let (code, output) = try CommandLineTests.run(["try-buyer", "bob", "--config", directory.path])
        #expect(code == 0, "\(output)")
        #expect(output.contains("POST \(wire.url("/ping"))"))
        #expect(output.contains("Content-Type: application/x-www-form-urlencoded"))
        #expect(output.contains("Mode=ping"))
        #expect(output.contains("<- HTTP 200 in "))
        #expect(output.contains("<seller_lead_bid>14.25</seller_lead_bid>"))
        #expect(output.contains("bid 14.25"))
        #expect(output.contains("bid_id b"))
        #expect(output.contains("kept for the post: ping.lead_id = L-77"))
        #expect(!output.contains("test.lead@example.com"), "a ping must not carry the contact")
        #expect(wire.requests.count == 1)
        wire.stop()
    }

    @Test func aPostGoesOnlyToTheTestURLUnlessLive() async throws {
        try #require(FileManager.default.isExecutableFile(atPath: CommandLineTests.gavelBinary.path), "build the gavel product first")
        let wire = await Self.boberdoo()
        let live = try Self.config(wire, post: "")
        defer { try? FileManager.default.removeItem(at: live) }
        // No test_url: refused before anything is sent.
        let (refused, _) = try CommandLineTests.run(["try-buyer", "bob", "--config", live.path, "--post"])
        #expect(refused == 1)
        #expect(wire.requests.isEmpty)

        let (code, output) = try CommandLineTests.run(["try-buyer", "bob", "--config", live.path, "--post", "--live"])
        #expect(code == 0, "\(output)")
        #expect(wire.requests(to: "/post").count == 1)
        #expect(output.contains("POST to the LIVE post.url"))

        let tested = try Self.config(wire, post: "test_url: \"\(wire.url("/test-post"))\",")
        defer { try? FileManager.default.removeItem(at: tested) }
        let lead = tested.appendingPathComponent("lead.json")
        try #"{"campaign": "autos", "lead": {"zip": "10001", "state": "NY"}, "contact": {"first_name": "Ann", "email": "ann@example.com", "phone": "2125550100"}}"#
            .write(to: lead, atomically: true, encoding: .utf8)
        let (testCode, testOutput) = try CommandLineTests.run(["try-buyer", "bob", "--config", tested.path, "--lead", lead.path, "--post"])
        #expect(testCode == 0, "\(testOutput)")
        let post = try #require(wire.requests(to: "/test-post").first, "\(testOutput)")
        #expect(post.form["Lead_ID"] == "L-77")
        #expect(post.form["Email"] == "ann@example.com")
        #expect(post.form["Zip"] == "10001")
        #expect(testOutput.contains("accepted, reference L-77"))
        #expect(wire.requests(to: "/post").count == 1, "the live endpoint got nothing more")
        wire.stop()
    }
}
