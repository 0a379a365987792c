@testable import BuyerFleet
import Foundation
import Testing

@Suite("Fleet file and behaviour coding")
struct FleetFileCodingTests {
    private func decode(_ json: String) throws -> BuyerBehavior {
        try JSONDecoder().decode(BuyerBehavior.self, from: Data(json.utf8))
    }

    @Test func emptyObjectGivesTheDefaults() throws {
        let behavior = try decode("{}")
        #expect(behavior == BuyerBehavior())
        #expect(behavior.latency == .fixed(ms: 10))
        #expect(behavior.bidProbability == 1)
        #expect(behavior.bidMin == "10" && behavior.bidMax == "10")
        #expect(behavior.expiresInS == 60)
        #expect(behavior.postLatency == .fixed(ms: 0))
        #expect(behavior.postAcceptRate == 1)
        #expect(behavior.fault == nil && behavior.faultRate == 1)
    }

    @Test func readsSnakeCaseKeysAndLatencyShapes() throws {
        let behavior = try decode("""
            {"latency": {"log_normal": {"p50_ms": 40, "p99_ms": 200}},
             "post_latency": {"uniform": {"min_ms": 5, "max_ms": 30}},
             "bid_probability": 0.5, "bid_min": "1.25", "bid_max": "2", "expires_in_s": 30,
             "post_accept_rate": 0.25, "fault": "slowDrip", "fault_rate": 0.1,
             "destination": "+18005550101", "min_duration_s": 90}
            """)
        #expect(behavior == BuyerBehavior(
            latency: .logNormal(p50Ms: 40, p99Ms: 200), bidProbability: 0.5, bidMin: "1.25", bidMax: "2",
            expiresInS: 30, postLatency: .uniform(minMs: 5, maxMs: 30), postAcceptRate: 0.25,
            fault: .slowDrip, faultRate: 0.1, destination: "+18005550101", minDurationS: 90))
    }

    @Test func encodesLatencyAsOneKeyObjects() throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        func json(_ latency: BuyerBehavior.Latency) throws -> String {
            String(decoding: try encoder.encode(latency), as: UTF8.self)
        }
        #expect(try json(.fixed(ms: 10)) == #"{"fixed":{"ms":10}}"#)
        #expect(try json(.uniform(minMs: 5, maxMs: 30)) == #"{"uniform":{"max_ms":30,"min_ms":5}}"#)
        #expect(try json(.logNormal(p50Ms: 40, p99Ms: 200)) == #"{"log_normal":{"p50_ms":40,"p99_ms":200}}"#)

        let behavior = BuyerBehavior(latency: .uniform(minMs: 1, maxMs: 2), fault: .reset, minDurationS: 5)
        let decoded = try JSONDecoder().decode(BuyerBehavior.self, from: encoder.encode(behavior))
        #expect(decoded == behavior)
        #expect(String(decoding: try encoder.encode(behavior), as: UTF8.self).contains(#""min_duration_s":5"#))
    }

    @Test(arguments: [
        #"{"bid_probability": 1.5}"#,
        #"{"bid_min": "twelve"}"#,
        #"{"bid_max": "12.505"}"#,
        #"{"latency": {"gaussian": {"ms": 1}}}"#,
        #"{"latency": {"fixed": {"ms": 1}, "uniform": {"min_ms": 1, "max_ms": 2}}}"#,
        #"{"latency": {"uniform": {"min_ms": 9, "max_ms": 2}}}"#,
        #"{"latency": {"log_normal": {"p50_ms": 0, "p99_ms": 2}}}"#,
        #"{"fault": "explode"}"#,
    ])
    func rejectsNonsense(json: String) {
        #expect(throws: DecodingError.self) { try decode(json) }
    }

    @Test func demoFleetFileDecodes() throws {
        let url = URL(fileURLWithPath: #filePath)
            .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("LoadTests/fleets/demo.json")
        let fleet = try FleetFile(contentsOf: url)
        #expect(Set(fleet.buyers.keys) == [
            "apex-auto", "shield-direct", "quoteline", "sunpath-solar", "brightroof", "justice-intake",
            "tortpoint-legal", "flakey-leads", "homepro-calls", "fixhub-rtb",
        ])
        let apex = try #require(fleet.buyers["apex-auto"])
        #expect(apex.latency == .logNormal(p50Ms: 35, p99Ms: 120))
        #expect(apex.bidMin == "8.00" && apex.bidMax == "20.00")
        let flakey = try #require(fleet.buyers["flakey-leads"])
        #expect(flakey.fault == .http500 && flakey.faultRate == 0.15)
        let fixhub = try #require(fleet.buyers["fixhub-rtb"])
        #expect(fixhub.destination == "sip:intake@fixhub.example")
        #expect(fixhub.minDurationS == 60 && fixhub.expiresInS == 20)
        #expect(fleet.buyers["homepro-calls"]?.destination == "+18005550101")
    }

    @Test func centsParseAndPrintAsShortJSONNumbers() {
        #expect(Cents(decimal: "12.50")?.value == 1250)
        #expect(Cents(decimal: "12.5")?.value == 1250)
        #expect(Cents(decimal: "7")?.value == 700)
        #expect(Cents(decimal: "0.05")?.value == 5)
        for bad in ["", ".5", "-1", "1e3", "12.505", "1.2.3", "abc"] {
            #expect(Cents(decimal: bad) == nil, "\(bad)")
        }
        #expect(Cents(1250).jsonNumber == "12.5")
        #expect(Cents(1205).jsonNumber == "12.05")
        #expect(Cents(1200).jsonNumber == "12")
        #expect(Cents(5).jsonNumber == "0.05")
    }

    @Test func logNormalSamplesCenterOnTheMedian() {
        var rng = SeededGenerator(seed: 7)
        let latency = BuyerBehavior.Latency.logNormal(p50Ms: 40, p99Ms: 200)
        let samples = (0..<20_000).map { _ in latency.sampleMilliseconds(using: &rng) }.sorted()
        #expect(abs(samples[10_000] - 40) < 3)
        #expect(abs(samples[19_800] - 200) < 30)
    }
}
