import ArgumentParser
import Foundation
import GavelConfig
import GavelCore

/// `gavel-load codecs`: what each buyer codec costs per request, on one core, without I/O: writing
/// a ping (and a post) and reading the answer. Templates are built once per config snapshot, so
/// this is the whole per-round cost an integration adds.
struct CodecBench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "codecs",
        abstract: "Measure per-request cost of each buyer codec (native and the ready-made templates): render and parse, no I/O.")

    @Option(help: "The templates directory (buyer-configs/templates).")
    var templates = "buyer-configs/templates"

    @Option(help: "Operations per measurement.")
    var iterations = 100_000

    struct Case {
        var template: String
        var campaign: String
        var pingAnswer: String
        var postAnswer: String?
    }

    static let cases: [Case] = [
        Case(template: "gavel-native", campaign: "leads", pingAnswer: #"{"bid": 12.5, "bid_id": "b-1", "expires_in_s": 60}"#,
             postAnswer: #"{"accepted": true, "reference": "r-1"}"#),
        Case(template: "boberdoo", campaign: "leads",
             pingAnswer: "<?xml version=\"1.0\"?><response><status>Matched</status><lead_id>L-77</lead_id><bids><bid><bid_id>a</bid_id><seller_lead_bid>10.00</seller_lead_bid></bid><bid><bid_id>b</bid_id><seller_lead_bid>14.25</seller_lead_bid></bid></bids></response>",
             postAnswer: "<response><status>Matched</status><lead_id>L-77</lead_id></response>"),
        Case(template: "leadconduit", campaign: "leads", pingAnswer: #"{"outcome": "success", "price": 9.5, "lead": {"id": "lc-1"}}"#,
             postAnswer: #"{"outcome": "success", "lead": {"id": "lc-42"}, "price": 9.5}"#),
        Case(template: "generic-xml", campaign: "leads",
             pingAnswer: "<response><result>bid</result><amount>12.50</amount><bid_id>B1</bid_id><expires_in>60</expires_in></response>",
             postAnswer: "<response><accepted>true</accepted><reference>R1</reference></response>"),
        Case(template: "rtb-call", campaign: "calls",
             pingAnswer: #"{"bidId": "rtb-1", "bidAmount": "32.50", "expireInSeconds": 30, "phoneNumber": "+18005550199"}"#, postAnswer: nil),
    ]

    func run() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("gavel-codecs-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: directory) }
        try FileManager.default.createDirectory(at: directory.appendingPathComponent("buyers"), withIntermediateDirectories: true)
        try FileManager.default.copyItem(at: URL(fileURLWithPath: templates), to: directory.appendingPathComponent("templates"))
        try """
            campaigns:
              - {id: leads, vertical: solar, tmax_ms: 1000}
              - {id: calls, kind: call, vertical: home_services, tmax_ms: 2000}
            """.write(to: directory.appendingPathComponent("campaigns.yaml"), atomically: true, encoding: .utf8)
        try "sellers:\n  - {id: s, api_key: bench-key-0001, campaigns: [leads, calls]}\n"
            .write(to: directory.appendingPathComponent("sellers.yaml"), atomically: true, encoding: .utf8)
        for item in Self.cases {
            let post = item.postAnswer == nil ? "" : "post: {url: \"http://127.0.0.1:9/post\"}\n"
            try "id: \(item.template)\ntemplate: \(item.template)\ncampaigns: [\(item.campaign)]\nping: {url: \"http://127.0.0.1:9/ping\"}\n\(post)"
                .write(to: directory.appendingPathComponent("buyers/\(item.template).yaml"), atomically: true, encoding: .utf8)
        }
        let config = try ConfigLoader.load(directory: directory.path, environment: ["BOBERDOO_API_KEY": "bench-key"])

        let lead = JSONObject(["zip": .string("94107"), "state": .string("CA"), "age": .number("34"), "homeowner": .bool(true),
                               "monthly_bill": .number("180"), "roof_shade": .string("none")])
        let contact = JSONObject(["first_name": .string("Jo"), "last_name": .string("Doe"), "email": .string("jo@example.com"),
                                  "phone": .string("+15551234567"), "address": .string("1 Main St"), "city": .string("SF")])
        let consent = JSONObject(["trustedform_cert_url": .string("https://cert.trustedform.com/abc"), "tcpa_consent": .bool(true)])
        let caller = JSONObject(["area_code": .string("415"), "state": .string("CA"), "zip": .string("94107"), "hash": .string("h1")])

        print("gavel-load codecs: \(iterations) operations each, one core, no I/O (microseconds per operation)")
        print("codec            ping render  ping parse  post render  post parse")
        for item in Self.cases {
            guard let buyer = config.buyer(id: item.template), let campaign = config.campaigns[item.campaign], let ping = buyer.ping else { continue }
            let codec = buyer.codec.codec
            let isCall = campaign.kind == .call
            var input = PingInput(auctionID: "auc_01BENCH", campaign: campaign, lead: isCall ? JSONObject() : lead,
                                  caller: isCall ? caller : nil, consent: isCall ? nil : consent, source: "pub-7", tmaxMs: 250, nowMs: 1_764_500_000_000)
            // As a round does: the native body is serialised once per round and shared, so its cost is spread over the buyers.
            if buyer.codec.isNative {
                input.nativeTemplate = BuyerProtocol.PingTemplate(auctionID: input.auctionID, campaign: campaign, lead: lead, consent: consent)
            }
            let pingRender = measure { _ = codec.pingRequest(input, endpoint: ping) }
            let pingBytes = Array(item.pingAnswer.utf8)
            let pingParse = measure { _ = codec.parsePing(status: 200, body: pingBytes, maxBid: campaign.maxBid) }
            var postRender = "-"
            var postParse = "-"
            if let answer = item.postAnswer, let endpoint = buyer.post {
                let bid = RankedBid(buyerID: buyer.id, price: Money(decimal: "12.5")!, bidID: "b-1")
                let postInput = PostInput(auctionID: "auc_01BENCH", campaign: campaign, bid: bid, lead: lead, contact: contact, consent: consent,
                                          source: "pub-7", kept: ["lead_id": "L-77", "lc_lead_id": "lc-1"], tmaxMs: 500, nowMs: 1_764_500_000_000)
                postRender = format(measure { _ = codec.postRequest(postInput, endpoint: endpoint) })
                let postBytes = Array(answer.utf8)
                postParse = format(measure { _ = codec.parsePost(status: 200, body: postBytes) })
            }
            print(item.template.padding(toLength: 16, withPad: " ", startingAt: 0)
                + format(pingRender).leftPadded(12) + format(pingParse).leftPadded(12) + postRender.leftPadded(13) + postParse.leftPadded(12))
        }
    }

    /// Microseconds per call of `body`, best of three runs (the machine is shared).
    func measure(_ body: () -> Void) -> Double {
        for _ in 0..<min(1_000, iterations) { body() }
        var best = Double.infinity
        for _ in 0..<3 {
            let start = ContinuousClock.now
            for _ in 0..<iterations { body() }
            let (seconds, attoseconds) = start.duration(to: .now).components
            best = min(best, (Double(seconds) * 1e6 + Double(attoseconds) / 1e12) / Double(iterations))
        }
        return best
    }

    func format(_ microseconds: Double) -> String { String(format: "%.2f", microseconds) }
}

private extension String {
    func leftPadded(_ width: Int) -> String { count >= width ? self : String(repeating: " ", count: width - count) + self }
}
