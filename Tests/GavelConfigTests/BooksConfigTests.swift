import Foundation
import GavelCore
import Testing
@testable import GavelConfig

/// The books in the config: `operators.yaml`, buyers' `api_key`, campaigns' return terms, and keys
/// unique across sellers, buyers and operators.
struct BooksConfigTests {
    /// Loads the fixture with `operators` as `operators.yaml` (none when nil): the config, or the problems.
    func load(_ fixture: ConfigFixture, operators: String?) throws -> Result<ExchangeConfig, ConfigError> {
        let directory = try fixture.write()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        if let operators {
            try operators.write(toFile: directory + "/operators.yaml", atomically: true, encoding: .utf8)
        }
        do { return .success(try ConfigLoader.load(directory: directory)) } catch { return .failure(error) }
    }

    func problems(_ fixture: ConfigFixture, operators: String?) throws -> [ConfigProblem] {
        guard case .failure(let error) = try load(fixture, operators: operators) else { return [] }
        return error.problems
    }

    @Test func withoutOperatorsFileThereAreNoOperatorsAndReturnTermsDefault() throws {
        let config = try load(ConfigFixture(), operators: nil).get()
        #expect(config.operators.isEmpty)
        #expect(config.buyersByKey.isEmpty)
        #expect(config.campaigns["autos"]?.returnWindowDays == 7)
        #expect(config.campaigns["autos"]?.returnPolicy == .reversePayout)
        #expect(ConfigLoader.summary(of: config).hasSuffix(", 0 operators"))
    }

    @Test func operatorsBuyerKeysAndReturnTermsAreRead() throws {
        var fixture = ConfigFixture()
        fixture.campaigns += "\n    return_window_days: 3\n    return_policy: keep_payout\n"
        fixture.buyers["b1.yaml"]! += "\napi_key: ${B1_KEY:-key-buyer-b1-0001}\n"
        let config = try load(fixture, operators: "operators:\n  - {id: ops, api_key: key-operator-0001}\n").get()
        #expect(config.operators == [Operator(id: "ops", apiKey: "key-operator-0001")])
        #expect(config.operator(apiKey: "key-operator-0001")?.id == "ops")
        #expect(config.buyersByKey["key-buyer-b1-0001"]?.id == "b1")
        #expect(config.campaigns["tort"]?.returnWindowDays == 3)
        #expect(config.campaigns["tort"]?.returnPolicy == .keepPayout)
        #expect(config.campaigns["autos"]?.returnPolicy == .reversePayout)
    }

    @Test func aKeySharedByABuyerAndASellerIsOneProblemNamingBothFiles() throws {
        var fixture = ConfigFixture()
        fixture.buyers["b2.yaml"]! += "\napi_key: key-seller-one-0001\n"
        let problems = try problems(fixture, operators: nil)
        #expect(problems.count == 1)
        let problem = try #require(problems.first)
        #expect(problem.file == "buyers/b2.yaml")
        #expect(problem.path == "api_key")
        #expect(problem.message.contains("seller sellers.yaml (sellers[0].api_key)"))
    }

    @Test func aKeySharedByAnOperatorAndABuyerIsAProblem() throws {
        var fixture = ConfigFixture()
        fixture.buyers["b1.yaml"]! += "\napi_key: key-shared-0001\n"
        let problems = try problems(fixture, operators: "operators:\n  - {id: ops, api_key: key-shared-0001}\n")
        #expect(problems.map(\.description) == [
            "operators.yaml: operators[0].api_key: the same API key is used by buyer buyers/b1.yaml (api_key): "
                + "API keys must be unique across sellers, buyers and operators",
        ])
    }

    @Test(arguments: [
        ("operators:\n  - {id: ops}\n", "operators.yaml", "operators[0].api_key", "is required"),
        ("operators:\n  - {id: ops, api_key: short}\n", "operators.yaml", "operators[0].api_key", "at least 8 characters"),
        ("operators:\n  - {id: ops, api_key: key-operator-0001, role: admin}\n", "operators.yaml", "operators[0].role", "unknown field"),
        ("operators:\n  - {id: ops, api_key: key-operator-0001}\n  - {id: ops, api_key: key-operator-0002}\n", "operators.yaml",
         "operators[1].id", "duplicate operator id"),
    ])
    func badOperatorsAreNamed(_ operators: String, _ file: String, _ path: String, _ message: String) throws {
        let problems = try problems(ConfigFixture(), operators: operators)
        #expect(problems.count == 1, "\(problems)")
        #expect(problems.first?.file == file)
        #expect(problems.first?.path == path)
        #expect(problems.first?.message.contains(message) == true, "\(problems)")
    }

    @Test func badReturnTermsAreNamed() throws {
        var fixture = ConfigFixture()
        fixture.campaigns += "\n    return_window_days: 400\n    return_policy: refund_everyone\n"
        let problems = try problems(fixture, operators: nil)
        #expect(problems.map(\.path).sorted() == ["campaigns[1].return_policy", "campaigns[1].return_window_days"])
    }
}
