import GavelCore
import Testing
@testable import GavelConfig

/// `rank_by`, `ev_fallback` and `ev_prior` in `campaigns.yaml`.
struct ExpectedValueConfigTests {
    func fixture(_ campaigns: String) -> ConfigFixture {
        var fixture = ConfigFixture()
        fixture.campaigns = campaigns
        return fixture
    }

    func onlyProblem(_ campaigns: String, sourceLocation: SourceLocation = #_sourceLocation) throws -> ConfigProblem {
        let problems = try fixture(campaigns).problems()
        #expect(problems.count == 1, "\(problems)", sourceLocation: sourceLocation)
        return try #require(problems.first, sourceLocation: sourceLocation)
    }

    @Test func campaignsRankByPriceUnlessTheySayOtherwise() throws {
        let config = try ConfigFixture().load()
        #expect(config.campaigns["autos"]?.rankBy == .price)
        #expect(config.outcomePriors.isEmpty)
        #expect(config.outcomePrior(.lead) == OutcomePrior(rate: .one, weight: 10))
        #expect(config.outcomePrior(.call) == .default)
    }

    @Test func rankByExpectedValueWithAFallbackAndPriors() throws {
        let config = try fixture("""
            ev_prior:
              lead: {rate: 0.85, weight: 30}
              call: {rate: 0.5}
            campaigns:
              - {id: autos, vertical: auto_insurance, rank_by: expected_value, ev_fallback: 0.25}
              - {id: tort, vertical: legal, rank_by: expected_value}
              - {id: calls, kind: call, vertical: home_services, rank_by: expected_value}
              - {id: plain, vertical: legal, rank_by: price}
            """).load()
        #expect(config.campaigns["autos"]?.rankBy == .expectedValue(fallback: Probability(ppm: 250_000)))
        #expect(config.campaigns["tort"]?.rankBy == .expectedValue(fallback: .zero))
        #expect(config.campaigns["calls"]?.rankBy == .expectedValue(fallback: .zero))
        #expect(config.campaigns["plain"]?.rankBy == .price)
        #expect(config.outcomePrior(.lead) == OutcomePrior(rate: Probability(ppm: 850_000), weight: 30))
        #expect(config.outcomePrior(.call) == OutcomePrior(rate: Probability(ppm: 500_000), weight: 10))
    }

    @Test func anUnknownRankingIsNamed() throws {
        let problem = try onlyProblem("""
            campaigns:
              - {id: autos, vertical: auto_insurance, rank_by: value}
              - {id: tort, vertical: legal}
            """)
        #expect(problem.description == "campaigns.yaml: campaigns[0].rank_by: must be one of price, expected_value, got \"value\"")
    }

    @Test func aFallbackNeedsExpectedValueRankingAndALeadCampaign() throws {
        let withPrice = try onlyProblem("""
            campaigns:
              - {id: autos, vertical: auto_insurance, ev_fallback: 0.5}
              - {id: tort, vertical: legal}
            """)
        #expect(withPrice.path == "campaigns[0].ev_fallback")
        #expect(withPrice.message == "applies to rank_by: expected_value")
        let onCalls = try onlyProblem("""
            campaigns:
              - {id: autos, vertical: auto_insurance}
              - {id: tort, vertical: legal}
              - {id: calls, kind: call, vertical: home_services, rank_by: expected_value, ev_fallback: 0.5}
            """)
        #expect(onCalls.path == "campaigns[2].ev_fallback")
        #expect(onCalls.message.contains("a connected caller cannot fall back"))
    }

    @Test(arguments: ["1.5", "-0.1", "half", "0.1234567"])
    func aFallbackIsAChanceFromZeroToOne(_ value: String) throws {
        let problem = try onlyProblem("""
            campaigns:
              - {id: autos, vertical: auto_insurance, rank_by: expected_value, ev_fallback: "\(value)"}
              - {id: tort, vertical: legal}
            """)
        #expect(problem.path == "campaigns[0].ev_fallback")
        #expect(problem.message.contains("must be a number from 0 to 1"))
    }

    @Test func badPriorsAreNamedWithTheirPath() throws {
        let problems = try fixture("""
            ev_prior:
              lead: {rate: 2, weight: 10}
              call: {rate: 0.5, weight: -1, strength: 3}
              calls: {rate: 0.5}
            campaigns:
              - {id: autos, vertical: auto_insurance}
              - {id: tort, vertical: legal}
            """).problems()
        #expect(Set(problems.map(\.path)) == ["ev_prior.lead.rate", "ev_prior.call.weight", "ev_prior.call.strength", "ev_prior.calls"])
        #expect(problems.allSatisfy { $0.file == "campaigns.yaml" })
    }
}
