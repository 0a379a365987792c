import Foundation
import GavelCore
import GavelIntegration
import Testing
@testable import GavelConfig

/// Buyer files that use templates and integration fields: every mistake is one `FILE: path: message`
/// line, and each shipped template loads from a few lines of YAML.
struct BuyerTemplateConfigTests {
    static let templates = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("buyer-configs/templates")

    /// Loads the fixture with the repository's templates beside it.
    func load(_ buyer: String, environment: [String: String] = [:]) throws -> Result<ExchangeConfig, ConfigError> {
        var fixture = ConfigFixture()
        fixture.campaigns += "\n  - {id: calls, kind: call, vertical: home_services, tmax_ms: 2000}"
        fixture.buyers["t.yaml"] = buyer
        let directory = try fixture.write()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        try FileManager.default.copyItem(at: Self.templates, to: URL(fileURLWithPath: directory).appendingPathComponent("templates"))
        do { return .success(try ConfigLoader.load(directory: directory, environment: environment)) } catch { return .failure(error) }
    }

    func problems(_ buyer: String, environment: [String: String] = [:]) throws -> [String] {
        switch try load(buyer, environment: environment) {
        case .success: return []
        case .failure(let error): return error.problems.map(\.description)
        }
    }

    @Test(arguments: ["gavel-native", "rtb-call", "boberdoo", "leadconduit", "generic-xml"])
    func eachShippedTemplateLoads(_ name: String) throws {
        let campaign = name == "rtb-call" ? "calls" : "autos"
        let post = name == "rtb-call" ? "" : "post: {url: \"https://buyer.test/post\", test_url: \"https://buyer.test/test\"}"
        let config = try load("""
            id: t
            template: \(name)
            campaigns: [\(campaign)]
            ping: {url: "https://buyer.test/ping"}
            \(post)
            """, environment: ["BOBERDOO_API_KEY": "k-123"]).get()
        let buyer = try #require(config.buyer(id: "t"))
        #expect(buyer.codec.isNative == (name == "gavel-native"))
        #expect(buyer.ping?.url == "https://buyer.test/ping")
        if name != "gavel-native" { #expect(buyer.ping?.timeoutMs != 1000, "the template's timeout applies") }
    }

    @Test func aBuyerOverridesOneFieldOfATemplateAndRemovesAnother() throws {
        let config = try load("""
            id: t
            template: generic-xml
            campaigns: [autos]
            ping:
              url: "https://buyer.test/ping"
              timeout_ms: 250
              body: {xml_root: Ping, fields: {zip: "{{lead.zip | digits}}", campaign: null, vertical: "{{round.vertical}}"}}
            post: {url: "https://buyer.test/post"}
            """).get()
        let codec = try #require(config.buyer(id: "t")?.codec.codec as? TemplateBuyerCodec)
        #expect(config.buyer(id: "t")?.ping?.timeoutMs == 250)
        #expect(codec.spec.ping?.xmlRoot == "Ping")
        guard case .fields(let fields)? = codec.spec.ping?.body else {
            Issue.record("no body fields")
            return
        }
        #expect(fields.map(\.name) == ["auction_id", "zip", "state", "tmax_ms", "vertical"])
    }

    @Test func piiInAPingIsAConfigErrorNamingTheField() throws {
        let problems = try problems("""
            id: t
            campaigns: [autos]
            ping:
              url: "https://buyer.test/ping"
              body: {format: form, fields: {Zip: "{{lead.zip}}", Email: "{{contact.email}}"}}
              query: {phone: "{{lead.phone | digits}}"}
              headers: {X-Signer: "{{consent.signer_name}}"}
            post: {url: "https://buyer.test/post"}
            """)
        #expect(problems.count == 3, "\(problems)")
        #expect(problems.contains { $0.hasPrefix("buyers/t.yaml: ping.body.fields.Email: {{contact.email}} is personal data") })
        #expect(problems.contains { $0.hasPrefix("buyers/t.yaml: ping.query.phone: {{lead.phone}} is personal data") })
        #expect(problems.contains { $0.hasPrefix("buyers/t.yaml: ping.headers.X-Signer: {{consent.signer_name}} may identify") })
    }

    @Test func mistakesAreNamed() throws {
        func single(_ yaml: String, environment: [String: String] = [:]) throws -> String {
            let post = yaml.contains("post:") ? "" : "post: {url: \"https://b.test/post\"}\n"
            let found = try problems("id: t\ncampaigns: [autos]\n" + post + yaml, environment: environment)
            #expect(found.count == 1, "\(yaml): \(found)")
            return found.first ?? ""
        }
        #expect(try single("template: nope\nping: {url: \"https://b.test/p\"}\n").hasPrefix("buyers/t.yaml: template: no template \"nope\" in templates/ (have: boberdoo, gavel-native"))
        let unset = try problems("id: t\ncampaigns: [autos]\ntemplate: boberdoo\nping: {url: \"https://b.test/p\"}\npost: {url: \"https://b.test/q\"}\n")
        #expect(unset == ["buyers/t.yaml: ping.body.fields.Key: environment variable BOBERDOO_API_KEY is not set",
                          "buyers/t.yaml: post.body.fields.Key: environment variable BOBERDOO_API_KEY is not set"])
        #expect(try single("ping: {url: \"https://b.test/p\", body: {format: json, fields: {a: \"{{lead.zip | shout}}\"}}}\n")
            .hasPrefix("buyers/t.yaml: ping.body.fields.a: unknown transform \"shout\""))
        #expect(try single("ping: {url: \"https://b.test/p\", method: PUT}\n").hasPrefix("buyers/t.yaml: ping.method: must be one of GET, POST"))
        #expect(try single("ping: {url: \"https://b.test/p\", method: GET, body: {format: json, fields: {a: 1}}}\n")
            .hasPrefix("buyers/t.yaml: ping.body.format: a GET has no body"))
        #expect(try single("ping: {url: \"https://b.test/p\"}\npost: {url: \"https://b.test/q\", body: {format: json, fields: {id: \"{{ping.lead_id}}\"}}}\n")
            .hasPrefix("buyers/t.yaml: post.body.fields.id: {{ping.lead_id}} is not kept"))
        #expect(try single("ping: {url: \"https://b.test/p\", response: {format: xml, bid: \"a..b\"}}\n")
            .hasPrefix("buyers/t.yaml: ping.response.bid: empty key in path"))
        #expect(try single("ping: {url: \"https://b.test/p\", response: {format: text, bid: \"(\"}}\n")
            .hasPrefix("buyers/t.yaml: ping.response.bid: not a valid regular expression"))
        #expect(try single("ping: {url: \"https://b.test/p\"}\npost: {url: \"https://b.test/q\", response: {reference: id}}\n")
            .hasPrefix("buyers/t.yaml: post.response.accepted: is required"))
        #expect(try single("ping: {url: \"https://b.test/p\"}\npost: {url: \"https://b.test/q\", response: {accepted: {path: ok, equals: yes, more: 1}}}\n")
            .hasPrefix("buyers/t.yaml: post.response.accepted.more: unknown field"))
        #expect(try single("ping: {url: \"https://b.test/p\", test_url: \"https://b.test/t\"}\n")
            .hasPrefix("buyers/t.yaml: ping.test_url: only a post has a test_url"))
        #expect(try single("signing_secret: short\nping: {url: \"https://b.test/p\"}\n").hasPrefix("buyers/t.yaml: signing_secret: must be at least 16"))
        #expect(try single("ping: {url: \"https://b.test/p\", response: {bid: price, bid_id: \"bids[*].id\"}}\n")
            .hasPrefix("buyers/t.yaml: ping.response.bid: other values use [*]"))
    }
}
