import Foundation
import GavelCore
import Testing
@testable import GavelConfig

/// A config directory in a fresh temp folder: a valid baseline that each test breaks in one place.
struct ConfigFixture {
    var campaigns = """
        campaigns:
          - id: autos
            vertical: auto_insurance
            tmax_ms: 800
            ping_timeout_ms: 400
            floor: 2.50
            payout: {share: 0.7}
            required_fields: [zip, state]
          - id: tort
            vertical: legal
            distribution: priority
            tmax_ms: 1500
            payout: {fixed: 35}
        """
    var sellers = """
        sellers:
          - id: seller-one
            api_key: key-seller-one-0001
            campaigns: [autos, tort]
          - id: seller-two
            api_key: key-seller-two-0002
            campaigns: [autos]
        """
    var buyers: [String: String] = [
        "b1.yaml": """
            id: b1
            campaigns: [autos]
            ping: {url: "http://127.0.0.1:9100/b1/ping", timeout_ms: 300}
            post: {url: "http://127.0.0.1:9100/b1/post"}
            """,
        "b2.yaml": """
            id: b2
            campaigns: [autos, tort]
            price: 45.00
            post: {url: "https://buyer.example.com/post", timeout_ms: 400}
            """,
    ]

    /// Writes the files and returns the directory.
    func write() throws -> String {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("gavel-config-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory.appendingPathComponent("buyers"), withIntermediateDirectories: true)
        try campaigns.write(to: directory.appendingPathComponent("campaigns.yaml"), atomically: true, encoding: .utf8)
        try sellers.write(to: directory.appendingPathComponent("sellers.yaml"), atomically: true, encoding: .utf8)
        for (name, text) in buyers {
            try text.write(to: directory.appendingPathComponent("buyers/\(name)"), atomically: true, encoding: .utf8)
        }
        return directory.path
    }

    func load(environment: [String: String] = [:]) throws -> ExchangeConfig {
        let directory = try write()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        return try ConfigLoader.load(directory: directory, environment: environment)
    }

    /// The problems reported; an empty list when the directory loads.
    func problems(environment: [String: String] = [:]) throws -> [ConfigProblem] {
        let directory = try write()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        do {
            _ = try ConfigLoader.load(directory: directory, environment: environment)
            return []
        } catch {
            return error.problems
        }
    }
}

struct ConfigLoaderTests {
    /// Exactly one problem, in `file` at `path`, whose message contains `message`.
    func expectSingleProblem(_ fixture: ConfigFixture, environment: [String: String] = [:], file: String, path: String,
                             message: String, sourceLocation: SourceLocation = #_sourceLocation) throws {
        let problems = try fixture.problems(environment: environment)
        #expect(problems.count == 1, "\(problems)", sourceLocation: sourceLocation)
        let problem = try #require(problems.first, sourceLocation: sourceLocation)
        #expect(problem.file == file, sourceLocation: sourceLocation)
        #expect(problem.path == path, sourceLocation: sourceLocation)
        #expect(problem.message.contains(message), "\(problem.message)", sourceLocation: sourceLocation)
        #expect(problem.description == "\(file): \(path.isEmpty ? "(file)" : path): \(problem.message)", sourceLocation: sourceLocation)
    }

    func buyerFixture(_ yaml: String, name: String = "b1.yaml") -> ConfigFixture {
        var fixture = ConfigFixture()
        fixture.buyers[name] = yaml
        return fixture
    }

    // MARK: The repository's own config

    static var repositoryConfig: String {
        URL(fileURLWithPath: #filePath)
            .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("buyer-configs").path
    }

    @Test func repositoryConfigLoads() throws {
        let config = try ConfigLoader.load(directory: Self.repositoryConfig, environment: [:])
        let buyerFiles = try FileManager.default.contentsOfDirectory(atPath: Self.repositoryConfig + "/buyers")
            .filter { $0.hasSuffix(".yaml") || $0.hasSuffix(".yml") }
        #expect(config.buyers.count == buyerFiles.count)
        #expect(config.buyers.map(\.id) == config.buyers.map(\.id).sorted())
        #expect(Set(["auto-insurance", "solar", "mass-tort"]).isSubset(of: Set(config.campaigns.keys)))
        #expect(ConfigLoader.summary(of: config).hasPrefix("config ok: \(config.campaigns.count) campaigns, "))

        let auto = try #require(config.campaigns["auto-insurance"])
        #expect(auto.kind == .lead)
        #expect(auto.vertical == "auto_insurance")
        #expect(auto.distribution == .auction)
        #expect(auto.tmaxMs == 800)
        #expect(auto.pingTimeoutMs == 400)
        #expect(auto.floor == Money(3))
        #expect(auto.payout == .share(basisPoints: 7000))
        #expect(auto.requiredFields == ["zip", "state"])
        #expect(auto.bidHoldS == 60)
        let tort = try #require(config.campaigns["mass-tort"])
        #expect(tort.distribution == .priority)
        #expect(tort.payout == .fixed(Money(35)))
        #expect(config.campaigns["solar"]?.payout == .share(basisPoints: 6500))

        // ${NAME:-default} falls back without the environment.
        let acme = try #require(config.sellers.first { $0.id == "acme-leads" })
        #expect(acme.apiKey == "demo-key-acme-0001")
        #expect(acme.campaigns.isSuperset(of: ["auto-insurance", "solar", "mass-tort"]))
        #expect(config.sellersByKey["demo-key-bluebird-0002"]?.id == "bluebird-media")

        let apex = try #require(config.buyer(id: "apex-auto"))
        #expect(apex.ping?.url == "http://127.0.0.1:9100/apex-auto/ping")
        #expect(apex.ping?.timeoutMs == 300)
        #expect(apex.ping?.headers == ["Authorization": "Bearer apex-demo-token"])
        #expect(apex.filters.states == ["CA", "TX", "FL", "NY", "IL", "AZ", "WA"])
        #expect(apex.caps.hourly == 200)
        #expect(apex.caps.daily == 2000)
        #expect(apex.caps.dailyBudget == Money(25_000))
        #expect(apex.floor == Money(6))
        #expect(apex.duplicateWindowDays == 30)
        #expect(apex.verticals == ["auto_insurance"])

        let fixed = try #require(config.buyer(id: "legal-fixed"))
        #expect(fixed.ping == nil)
        #expect(fixed.fixedPrice == Money(45))
        #expect(fixed.priority == 1)

        let shield = try #require(config.buyer(id: "shield-direct"))
        let schedule = try #require(shield.filters.schedule)
        #expect(schedule.timeZone.identifier == "America/New_York")
        #expect(schedule.weekdays == [2, 3, 4, 5, 6, 7])
        #expect(schedule.startMinute == 7 * 60)
        #expect(schedule.endMinute == 23 * 60)
        #expect(shield.filters.rules == [FieldRule(field: "continuous_coverage", oneOf: ["yes"])])

        let sunpath = try #require(config.buyer(id: "sunpath-solar"))
        #expect(sunpath.filters.rules.contains(FieldRule(field: "monthly_bill", min: Money(100))))
        #expect(sunpath.caps.monthly == 6000)
        #expect(config.buyer(id: "brightroof")?.filters.zips == ["9", "85", "89"])
        #expect(config.buyersByCampaign["mass-tort"]?.map(\.id).contains("justice-intake") == true)
    }

    @Test func repositoryConfigTakesTheEnvironment() throws {
        let config = try ConfigLoader.load(directory: Self.repositoryConfig, environment: [
            "DEMO_BUYERS_URL": "https://buyers.internal:8443", "GAVEL_KEY_ACME": "prod-key-acme-xyz", "APEX_TOKEN": "s3cret",
        ])
        #expect(config.buyer(id: "apex-auto")?.ping?.url == "https://buyers.internal:8443/apex-auto/ping")
        #expect(config.buyer(id: "apex-auto")?.ping?.headers["Authorization"] == "Bearer s3cret")
        #expect(config.sellers.first { $0.id == "acme-leads" }?.apiKey == "prod-key-acme-xyz")
        #expect(config.sellers.first { $0.id == "bluebird-media" }?.apiKey == "demo-key-bluebird-0002")
    }

    // MARK: The baseline

    @Test func baselineLoads() throws {
        let config = try ConfigFixture().load()
        #expect(config.campaigns.count == 2)
        #expect(config.sellers.map(\.id) == ["seller-one", "seller-two"])
        #expect(config.buyers.map(\.id) == ["b1", "b2"])
        let autos = try #require(config.campaigns["autos"])
        #expect(autos.floor == Money(decimal: "2.5"))
        #expect(autos.payout == .share(basisPoints: 7000))
        let tort = try #require(config.campaigns["tort"])
        #expect(tort.pingTimeoutMs == 900)  // 60% of tmax by default
        #expect(tort.kind == .lead)
        #expect(tort.bidHoldS == 60)
        #expect(config.buyer(id: "b1")?.ping?.timeoutMs == 300)
        #expect(config.buyer(id: "b2")?.fixedPrice == Money(45))
        #expect(config.buyer(id: "b2")?.ping == nil)
        #expect(config.buyersByCampaign["tort"]?.map(\.id) == ["b2"])
        #expect(config.buyersByCampaign["autos"]?.map(\.id) == ["b1", "b2"])
    }

    // MARK: One problem each

    @Test func unknownFieldInABuyer() throws {
        try expectSingleProblem(buyerFixture("""
            id: b1
            campaigns: [autos]
            ping: {url: "http://127.0.0.1:9100/b1/ping"}
            post: {url: "http://127.0.0.1:9100/b1/post"}
            flters: {states: [CA]}
            """), file: "buyers/b1.yaml", path: "flters", message: "unknown field (known: ")
    }

    @Test func unknownNestedFieldInACampaign() throws {
        var fixture = ConfigFixture()
        fixture.campaigns = """
            campaigns:
              - id: autos
                vertical: auto_insurance
                tmax_msec: 800
              - {id: tort, vertical: legal}
            """
        try expectSingleProblem(fixture, file: "campaigns.yaml", path: "campaigns[0].tmax_msec", message: "unknown field")
    }

    @Test(arguments: [("0", "must be more than 0"), ("1000000.0001", "at most 1000000"), ("-5", "amount"), ("lots", "amount")])
    func badMaxBid(_ value: String, _ message: String) throws {
        var fixture = ConfigFixture()
        fixture.campaigns = """
            campaigns:
              - {id: autos, vertical: auto_insurance, max_bid: \(value)}
              - {id: tort, vertical: legal}
            """
        let problems = try fixture.problems()
        #expect(problems.contains { $0.file == "campaigns.yaml" && $0.path == "campaigns[0].max_bid" && $0.message.contains(message) },
                "\(problems)")
    }

    @Test func floorAndFixedPricesMustFitUnderMaxBid() throws {
        var fixture = buyerFixture("""
            id: b1
            campaigns: [autos]
            price: 60.00
            post: {url: "http://127.0.0.1:9100/b1/post"}
            """)
        fixture.campaigns = """
            campaigns:
              - {id: autos, vertical: auto_insurance, max_bid: 50.00, floor: 55.00}
              - {id: tort, vertical: legal}
            """
        let problems = try fixture.problems()
        #expect(problems.contains { $0.path == "campaigns[0].floor" && $0.message.contains("max_bid") }, "\(problems)")
        #expect(problems.contains { $0.file == "buyers/b1.yaml" && $0.path == "price" && $0.message.contains("max_bid") }, "\(problems)")
    }

    @Test func unknownFieldInFilters() throws {
        try expectSingleProblem(buyerFixture("""
            id: b1
            campaigns: [autos]
            ping: {url: "http://127.0.0.1:9100/b1/ping"}
            post: {url: "http://127.0.0.1:9100/b1/post"}
            filters: {state: [CA]}
            """), file: "buyers/b1.yaml", path: "filters.state", message: "unknown field")
    }

    @Test func badStateCode() throws {
        try expectSingleProblem(buyerFixture("""
            id: b1
            campaigns: [autos]
            ping: {url: "http://127.0.0.1:9100/b1/ping"}
            post: {url: "http://127.0.0.1:9100/b1/post"}
            filters: {states: [CA, Cal, TX]}
            """), file: "buyers/b1.yaml", path: "filters.states[1]", message: "must be a two-letter state code, got \"CAL\"")
    }

    @Test func stateCodesAreUpperCased() throws {
        let config = try buyerFixture("""
            id: b1
            campaigns: [autos]
            ping: {url: "http://127.0.0.1:9100/b1/ping"}
            post: {url: "http://127.0.0.1:9100/b1/post"}
            filters: {states: [ca, Tx], zips: ["941", "10001"]}
            """).load()
        #expect(config.buyer(id: "b1")?.filters.states == ["CA", "TX"])
        #expect(config.buyer(id: "b1")?.filters.zips == ["941", "10001"])
    }

    @Test func badZip() throws {
        try expectSingleProblem(buyerFixture("""
            id: b1
            campaigns: [autos]
            ping: {url: "http://127.0.0.1:9100/b1/ping"}
            post: {url: "http://127.0.0.1:9100/b1/post"}
            filters: {zips: ["941", "9410-7"]}
            """), file: "buyers/b1.yaml", path: "filters.zips[1]", message: "zip prefix of 1 to 5 digits")
    }

    @Test func badTimeZone() throws {
        try expectSingleProblem(buyerFixture("""
            id: b1
            campaigns: [autos]
            ping: {url: "http://127.0.0.1:9100/b1/ping"}
            post: {url: "http://127.0.0.1:9100/b1/post"}
            filters:
              schedule: {timezone: Mars/Olympus_Mons, hours: "08:00-20:00"}
            """), file: "buyers/b1.yaml", path: "filters.schedule.timezone", message: "unknown time zone \"Mars/Olympus_Mons\"")
    }

    @Test(arguments: ["8-20", "08:00", "08:00-20", "25:00-26:00", "08:60-20:00", "08:00-08:00", "8am-8pm", "08:00-20:00-22:00"])
    func badHours(_ hours: String) throws {
        try expectSingleProblem(buyerFixture("""
            id: b1
            campaigns: [autos]
            ping: {url: "http://127.0.0.1:9100/b1/ping"}
            post: {url: "http://127.0.0.1:9100/b1/post"}
            filters:
              schedule: {timezone: UTC, hours: "\(hours)"}
            """), file: "buyers/b1.yaml", path: "filters.schedule.hours", message: "must be HH:MM-HH:MM in 24-hour time")
    }

    @Test func scheduleParses() throws {
        let config = try buyerFixture("""
            id: b1
            campaigns: [autos]
            ping: {url: "http://127.0.0.1:9100/b1/ping"}
            post: {url: "http://127.0.0.1:9100/b1/post"}
            filters:
              schedule: {timezone: America/Chicago, days: [Monday, fri, SAT], hours: "22:00 - 06:30"}
            """).load()
        let schedule = try #require(config.buyer(id: "b1")?.filters.schedule)
        #expect(schedule.timeZone.identifier == "America/Chicago")
        #expect(schedule.weekdays == [2, 6, 7])
        #expect(schedule.startMinute == 22 * 60)
        #expect(schedule.endMinute == 6 * 60 + 30)
    }

    @Test func badDayName() throws {
        try expectSingleProblem(buyerFixture("""
            id: b1
            campaigns: [autos]
            ping: {url: "http://127.0.0.1:9100/b1/ping"}
            post: {url: "http://127.0.0.1:9100/b1/post"}
            filters:
              schedule: {timezone: UTC, days: [mon, funday]}
            """), file: "buyers/b1.yaml", path: "filters.schedule.days[1]", message: "must be a day name")
    }

    @Test func pingTimeoutMustBeBelowTmax() throws {
        var fixture = ConfigFixture()
        fixture.campaigns = """
            campaigns:
              - {id: autos, vertical: auto_insurance, tmax_ms: 800, ping_timeout_ms: 800}
              - {id: tort, vertical: legal}
            """
        try expectSingleProblem(fixture, file: "campaigns.yaml", path: "campaigns[0].ping_timeout_ms",
                                message: "must be less than tmax_ms (800)")
        fixture.campaigns = """
            campaigns:
              - {id: autos, vertical: auto_insurance, tmax_ms: 800, ping_timeout_ms: 799}
              - {id: tort, vertical: legal, tmax_ms: 500, ping_timeout_ms: 900}
            """
        try expectSingleProblem(fixture, file: "campaigns.yaml", path: "campaigns[1].ping_timeout_ms",
                                message: "must be less than tmax_ms (500)")
    }

    @Test func tmaxOutOfRange() throws {
        var fixture = ConfigFixture()
        fixture.campaigns = """
            campaigns:
              - {id: autos, vertical: auto_insurance, tmax_ms: 5}
              - {id: tort, vertical: legal, tmax_ms: fast}
            """
        let problems = try fixture.problems()
        #expect(problems.map(\.path) == ["campaigns[0].tmax_ms", "campaigns[1].tmax_ms"])
        #expect(problems.first?.message == "must be between 10 and 60000, got 5")
        #expect(problems.last?.message == "must be a whole number, got \"fast\"")
    }

    @Test func unknownCampaignReferencedBySeller() throws {
        var fixture = ConfigFixture()
        fixture.sellers = """
            sellers:
              - {id: seller-one, api_key: key-seller-one-0001, campaigns: [autos, autoz]}
            """
        try expectSingleProblem(fixture, file: "sellers.yaml", path: "sellers[0].campaigns", message: "unknown campaign \"autoz\"")
    }

    @Test func unknownCampaignReferencedByBuyer() throws {
        try expectSingleProblem(buyerFixture("""
            id: b1
            campaigns: [autos, solar]
            ping: {url: "http://127.0.0.1:9100/b1/ping"}
            post: {url: "http://127.0.0.1:9100/b1/post"}
            """), file: "buyers/b1.yaml", path: "campaigns", message: "unknown campaign \"solar\"")
    }

    @Test func duplicateCampaignIDs() throws {
        var fixture = ConfigFixture()
        fixture.campaigns = """
            campaigns:
              - {id: autos, vertical: auto_insurance}
              - {id: tort, vertical: legal}
              - {id: autos, vertical: solar}
            """
        try expectSingleProblem(fixture, file: "campaigns.yaml", path: "campaigns[2].id", message: "duplicate campaign id \"autos\"")
    }

    @Test func duplicateSellerIDs() throws {
        var fixture = ConfigFixture()
        fixture.sellers = """
            sellers:
              - {id: seller-one, api_key: key-seller-one-0001, campaigns: [autos]}
              - {id: seller-one, api_key: key-seller-one-0002, campaigns: [autos]}
            """
        try expectSingleProblem(fixture, file: "sellers.yaml", path: "sellers[1].id", message: "duplicate seller id \"seller-one\"")
    }

    @Test func duplicateBuyerIDsAcrossFiles() throws {
        try expectSingleProblem(buyerFixture("""
            id: b1
            campaigns: [autos]
            price: 10
            post: {url: "http://127.0.0.1:9100/b1/post"}
            """, name: "b3.yaml"), file: "buyers/b3.yaml", path: "id", message: "duplicate buyer id \"b1\"")
    }

    @Test func duplicateAPIKeys() throws {
        var fixture = ConfigFixture()
        fixture.sellers = """
            sellers:
              - {id: seller-one, api_key: same-key-000001, campaigns: [autos]}
              - {id: seller-two, api_key: same-key-000001, campaigns: [autos]}
            """
        try expectSingleProblem(fixture, file: "sellers.yaml", path: "sellers[1].api_key",
                                message: "the same API key is used by another seller")
    }

    @Test func shortAPIKey() throws {
        var fixture = ConfigFixture()
        fixture.sellers = """
            sellers:
              - {id: seller-one, api_key: short, campaigns: [autos]}
            """
        try expectSingleProblem(fixture, file: "sellers.yaml", path: "sellers[0].api_key", message: "at least 8 characters")
    }

    @Test func missingPingAndPrice() throws {
        try expectSingleProblem(buyerFixture("""
            id: b1
            campaigns: [autos]
            post: {url: "http://127.0.0.1:9100/b1/post"}
            """), file: "buyers/b1.yaml", path: "", message: "needs exactly one of ping (a bidding buyer) or price")
        let problems = try buyerFixture("""
            id: b1
            campaigns: [autos]
            post: {url: "http://127.0.0.1:9100/b1/post"}
            """).problems()
        #expect(problems.first?.description.hasPrefix("buyers/b1.yaml: (file): needs exactly one of ping") == true)
    }

    @Test func bothPingAndPrice() throws {
        try expectSingleProblem(buyerFixture("""
            id: b1
            campaigns: [autos]
            price: 12
            ping: {url: "http://127.0.0.1:9100/b1/ping"}
            post: {url: "http://127.0.0.1:9100/b1/post"}
            """), file: "buyers/b1.yaml", path: "", message: "needs exactly one of ping")
    }

    @Test func missingPostForALeadBuyerIsReportedAtPost() throws {
        let problems = try buyerFixture("""
            id: b1
            campaigns: [autos]
            ping: {url: "http://127.0.0.1:9100/b1/ping"}
            """).problems()
        #expect(problems.count == 1)
        #expect(problems.first?.file == "buyers/b1.yaml")
        #expect(problems.first?.path == "post")
        #expect(problems.first?.message.contains("required") == true)
    }

    @Test func environmentVariableNotSet() throws {
        var fixture = ConfigFixture()
        fixture.sellers = """
            sellers:
              - {id: seller-one, api_key: "${SELLER_ONE_KEY}", campaigns: [autos]}
            """
        try expectSingleProblem(fixture, file: "sellers.yaml", path: "sellers[0].api_key",
                                message: "environment variable SELLER_ONE_KEY is not set")
        // An empty value counts as not set.
        try expectSingleProblem(fixture, environment: ["SELLER_ONE_KEY": ""], file: "sellers.yaml", path: "sellers[0].api_key",
                                message: "environment variable SELLER_ONE_KEY is not set")
    }

    @Test func environmentValueIsUsedWhenSet() throws {
        var fixture = ConfigFixture()
        fixture.sellers = """
            sellers:
              - {id: seller-one, api_key: "${SELLER_ONE_KEY}", campaigns: [autos]}
              - {id: seller-two, api_key: "${SELLER_TWO_KEY:-fallback-two-key}", campaigns: [autos]}
            """
        let config = try fixture.load(environment: ["SELLER_ONE_KEY": "from-env-key-1", "SELLER_TWO_KEY": "from-env-key-2"])
        #expect(config.sellers.map(\.apiKey) == ["from-env-key-1", "from-env-key-2"])
        #expect(config.sellersByKey["from-env-key-2"]?.id == "seller-two")
    }

    @Test func environmentDefaultFallback() throws {
        var fixture = ConfigFixture()
        fixture.sellers = """
            sellers:
              - {id: seller-one, api_key: "${SELLER_ONE_KEY:-fallback-one-key}", campaigns: [autos]}
            """
        #expect(try fixture.load().sellers.first?.apiKey == "fallback-one-key")
        #expect(try fixture.load(environment: ["SELLER_ONE_KEY": ""]).sellers.first?.apiKey == "fallback-one-key")
        #expect(try fixture.load(environment: ["OTHER": "x"]).sellers.first?.apiKey == "fallback-one-key")
    }

    @Test func severalReferencesInOneValue() throws {
        let fixture = buyerFixture("""
            id: b1
            campaigns: [autos]
            ping: {url: "http://${BUYER_HOST:-127.0.0.1}:${BUYER_PORT:-9100}/b1/ping", headers: {X-Key: "k-${TOKEN}"}}
            post: {url: "http://127.0.0.1:9100/b1/post"}
            """)
        let config = try fixture.load(environment: ["BUYER_PORT": "7000", "TOKEN": "abc"])
        #expect(config.buyer(id: "b1")?.ping?.url == "http://127.0.0.1:7000/b1/ping")
        #expect(config.buyer(id: "b1")?.ping?.headers == ["X-Key": "k-abc"])
        try expectSingleProblem(fixture, file: "buyers/b1.yaml", path: "ping.headers.X-Key",
                                message: "environment variable TOKEN is not set")
    }

    @Test func unterminatedReference() throws {
        var fixture = ConfigFixture()
        fixture.sellers = """
            sellers:
              - {id: seller-one, api_key: "${SELLER_ONE_KEY", campaigns: [autos]}
            """
        try expectSingleProblem(fixture, file: "sellers.yaml", path: "sellers[0].api_key", message: "unterminated ${")
    }

    @Test func payoutShareAboveOne() throws {
        var fixture = ConfigFixture()
        fixture.campaigns = """
            campaigns:
              - {id: autos, vertical: auto_insurance, payout: {share: 1.5}}
              - {id: tort, vertical: legal}
            """
        try expectSingleProblem(fixture, file: "campaigns.yaml", path: "campaigns[0].payout.share",
                                message: "must be a fraction between 0 and 1")
    }

    @Test func payoutShareOfExactlyOneIsFine() throws {
        var fixture = ConfigFixture()
        fixture.campaigns = """
            campaigns:
              - {id: autos, vertical: auto_insurance, payout: {share: 1}}
              - {id: tort, vertical: legal, payout: {share: 0.0001}}
            """
        let config = try fixture.load()
        #expect(config.campaigns["autos"]?.payout == .share(basisPoints: 10_000))
        #expect(config.campaigns["tort"]?.payout == .share(basisPoints: 1))
    }

    @Test func payoutNeedsExactlyOneOfShareOrFixed() throws {
        var fixture = ConfigFixture()
        fixture.campaigns = """
            campaigns:
              - {id: autos, vertical: auto_insurance, payout: {share: 0.5, fixed: 10}}
              - {id: tort, vertical: legal}
            """
        try expectSingleProblem(fixture, file: "campaigns.yaml", path: "campaigns[0].payout", message: "exactly one of share")
    }

    @Test(arguments: ["ftp://127.0.0.1/ping", "127.0.0.1:9100/ping", "http://", "not a url", "https//example.com/ping"])
    func invalidPingURL(_ url: String) throws {
        try expectSingleProblem(buyerFixture("""
            id: b1
            campaigns: [autos]
            ping: {url: "\(url)"}
            post: {url: "http://127.0.0.1:9100/b1/post"}
            """), file: "buyers/b1.yaml", path: "ping.url", message: "must be an http:// or https:// URL, got \"\(url)\"")
    }

    @Test func invalidPostURL() throws {
        let problems = try buyerFixture("""
            id: b1
            campaigns: [autos]
            ping: {url: "http://127.0.0.1:9100/b1/ping"}
            post: {url: "mailto:ops@example.com"}
            """).problems()
        #expect(problems.contains(ConfigProblem(file: "buyers/b1.yaml", path: "post.url",
                                                message: "must be an http:// or https:// URL, got \"mailto:ops@example.com\"")))
    }

    /// Regression: an invalid post URL was also reported as "post: is required for a buyer of
    /// lead campaigns", which is false (post is there) and doubled the problem.
    @Test func invalidPostURLIsReportedOnce() throws {
        try expectSingleProblem(buyerFixture("""
            id: b1
            campaigns: [autos]
            ping: {url: "http://127.0.0.1:9100/b1/ping"}
            post: {url: "mailto:ops@example.com"}
            """), file: "buyers/b1.yaml", path: "post.url", message: "must be an http:// or https:// URL")
    }

    @Test func badMoneyAndBadBool() throws {
        let problems = try buyerFixture("""
            id: b1
            campaigns: [autos]
            ping: {url: "http://127.0.0.1:9100/b1/ping"}
            post: {url: "http://127.0.0.1:9100/b1/post"}
            floor: 1.23456
            paused: maybe
            """).problems()
        #expect(problems.map(\.path) == ["floor", "paused"])
        #expect(problems.first?.message == "must be an amount >= 0 with at most 4 decimals, got \"1.23456\"")
        #expect(problems.last?.message == "must be true or false, got \"maybe\"")
    }

    @Test func badIdentifier() throws {
        try expectSingleProblem(buyerFixture("""
            id: "b 1!"
            campaigns: [autos]
            ping: {url: "http://127.0.0.1:9100/b1/ping"}
            post: {url: "http://127.0.0.1:9100/b1/post"}
            """), file: "buyers/b1.yaml", path: "id", message: "must be 1 to 64 letters, digits, - or _")
    }

    @Test func ruleNeedsACondition() throws {
        try expectSingleProblem(buyerFixture("""
            id: b1
            campaigns: [autos]
            ping: {url: "http://127.0.0.1:9100/b1/ping"}
            post: {url: "http://127.0.0.1:9100/b1/post"}
            filters:
              rules:
                - {field: age, min: 18, max: 65}
                - {field: tort}
            """), file: "buyers/b1.yaml", path: "filters.rules[1]", message: "needs one_of, min or max")
    }

    @Test func rulesAndResponseMappingParse() throws {
        let config = try buyerFixture("""
            id: b1
            campaigns: [autos]
            ping: {url: "http://127.0.0.1:9100/b1/ping"}
            post: {url: "http://127.0.0.1:9100/b1/post"}
            filters:
              rules:
                - {field: age, min: 18, max: 65.5}
                - {field: delta, min: -3}
                - {field: homeowner, one_of: ["yes", true]}
            response:
              bid_path: result.price
              accepted_path: status
              accepted_values: [success, Matched]
            """).load()
        let buyer = try #require(config.buyer(id: "b1"))
        #expect(buyer.filters.rules == [
            FieldRule(field: "age", min: Money(18), max: Money(decimal: "65.5")),
            FieldRule(field: "delta", min: Money(-3)),
            FieldRule(field: "homeowner", oneOf: ["yes", "true"]),
        ])
        #expect(buyer.response.bidPath == ["result", "price"])
        #expect(buyer.response.acceptedPath == ["status"])
        #expect(buyer.response.acceptedValues == ["success", "Matched"])
        #expect(buyer.response.bidIDPath == ["bid_id"])
    }

    // MARK: Files

    @Test func notADirectory() throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("gavel-missing-\(UUID().uuidString)").path
        do {
            _ = try ConfigLoader.load(directory: path, environment: [:])
            Issue.record("a missing directory loaded")
        } catch {
            #expect(error.problems == [ConfigProblem(file: path, path: "", message: "is not a directory")])
        }
    }

    @Test func missingFilesAndNoBuyers() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("gavel-empty-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        do {
            _ = try ConfigLoader.load(directory: directory.path, environment: [:])
            Issue.record("an empty directory loaded")
        } catch {
            #expect(error.problems == [
                ConfigProblem(file: "campaigns.yaml", path: "", message: "file is missing or unreadable"),
                ConfigProblem(file: "sellers.yaml", path: "", message: "file is missing or unreadable"),
                ConfigProblem(file: "buyers/", path: "", message: "no buyer files (*.yaml) found"),
            ])
        }
    }

    @Test func invalidYAMLSyntax() throws {
        var fixture = ConfigFixture()
        fixture.buyers["b2.yaml"] = "id: b2\ncampaigns: [autos\nprice: 10\n"
        let problems = try fixture.problems()
        #expect(problems.count == 1)
        #expect(problems.first?.file == "buyers/b2.yaml")
        #expect(problems.first?.message.hasPrefix("is not valid YAML") == true)
    }

    @Test func emptyFile() throws {
        var fixture = ConfigFixture()
        fixture.sellers = "# nothing yet\n"
        try expectSingleProblem(fixture, file: "sellers.yaml", path: "", message: "is empty")
    }

    // MARK: All at once

    @Test func allProblemsAreReportedInOneGo() throws {
        var fixture = ConfigFixture()
        fixture.campaigns = """
            campaigns:
              - {id: autos, vertical: auto_insurance, tmax_ms: 500, ping_timeout_ms: 600, payout: {share: 2}}
              - {id: tort, vertical: legal}
            """
        fixture.sellers = """
            sellers:
              - {id: seller-one, api_key: "${MISSING_KEY}", campaigns: [autos]}
              - {id: seller-two, api_key: key-seller-two-0002, campaigns: [nope]}
            """
        fixture.buyers["b1.yaml"] = """
            id: b1
            campaigns: [autos]
            ping: {url: "http://127.0.0.1:9100/b1/ping"}
            post: {url: "http://127.0.0.1:9100/b1/post"}
            filters: {states: [XYZ], schedule: {timezone: Nowhere/City}}
            """
        fixture.buyers["b2.yaml"] = """
            id: b2
            campaigns: [autos, ghost]
            post: {url: "http://127.0.0.1:9100/b2/post"}
            """
        let problems = try fixture.problems()
        let lines = Set(problems.map { "\($0.file): \($0.path)" })
        #expect(lines == [
            "campaigns.yaml: campaigns[0].ping_timeout_ms",
            "campaigns.yaml: campaigns[0].payout.share",
            "sellers.yaml: sellers[0].api_key",
            "sellers.yaml: sellers[1].campaigns",
            "buyers/b1.yaml: filters.states[0]",
            "buyers/b1.yaml: filters.schedule.timezone",
            "buyers/b2.yaml: campaigns",
            "buyers/b2.yaml: ",
        ])
        #expect(problems.count == 8)
        let directory = try fixture.write()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        do {
            _ = try ConfigLoader.load(directory: directory, environment: [:])
            Issue.record("loaded a broken config")
        } catch {
            let description = error.description.split(separator: "\n")
            #expect(description.count == 8)
            #expect(description.contains("buyers/b2.yaml: campaigns: unknown campaign \"ghost\""))
            #expect(description.contains("sellers.yaml: sellers[0].api_key: environment variable MISSING_KEY is not set"))
            #expect(description.contains { $0.hasPrefix("buyers/b2.yaml: (file): needs exactly one of ping") })
        }
    }
}
