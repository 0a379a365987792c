import GavelCore
import GavelPing
import Histogram

/// Reads a sample of a step's auctions back through `GET /v1/auctions/{id}`: proves every 200 was
/// recorded as answered (no lost auctions), and gives the exchange's own view of each round's time.
struct Readback: Sendable {
    var exchangeURL: String
    var apiKey: String
    /// Buyers every round must list (each with a reason code); nil skips that check.
    var expectedBuyers: Int?
    var engine: CurlMultiEngine
    /// Look-ups in flight at once.
    var concurrency = 16

    /// What one look-up found.
    private enum Finding: Sendable {
        case lost(String)
        case mismatched(String)
        case found(durationUs: UInt64, overheadUs: UInt64, slowestPingUs: UInt64)
    }

    func check(_ sample: [Recorder.Sampled]) async -> ReadbackResult {
        var result = ReadbackResult(checked: 0, lost: 0, mismatched: 0, problems: [])
        var durations = Recorder.makeHistogram()
        var overheads = Recorder.makeHistogram()
        var slowestPings = Recorder.makeHistogram()
        await withTaskGroup(of: Finding.self) { group in
            var pending = sample[...]
            func startNext() {
                guard let next = pending.popFirst() else { return }
                group.addTask { await lookUp(next) }
            }
            for _ in 0..<concurrency { startNext() }
            for await finding in group {
                result.checked += 1
                switch finding {
                case .lost(let problem):
                    result.lost += 1
                    if result.problems.count < 5 { result.problems.append(problem) }
                case .mismatched(let problem):
                    result.mismatched += 1
                    if result.problems.count < 5 { result.problems.append(problem) }
                case .found(let durationUs, let overheadUs, let slowestPingUs):
                    durations.record(durationUs)
                    overheads.record(overheadUs)
                    slowestPings.record(slowestPingUs)
                }
                startNext()
            }
        }
        if durations.totalCount > 0 {
            result.exchangeDuration = LatencySummary(durations)
            result.exchangeOverhead = LatencySummary(overheads)
            result.slowestPing = LatencySummary(slowestPings)
        }
        return result
    }

    private func lookUp(_ sampled: Recorder.Sampled) async -> Finding {
        let id = sampled.auctionID
        let request = HTTPRequest(url: "\(exchangeURL)/v1/auctions/\(id)", method: .get,
                                  headers: [("Authorization", "Bearer " + apiKey)], timeoutMs: 10_000)
        let response: HTTPResponse
        switch await engine.send(request) {
        case .failure(let error): return .lost("\(id): \(error.shortDescription)")
        case .success(let answer): response = answer
        }
        guard response.status == 200 else { return .lost("\(id): HTTP \(response.status)") }
        guard let round = try? JSONValue.parse(response.body) else { return .mismatched("\(id): unparsable JSON") }
        // A call the generator completed at 120 s converts (the buyers' minimum is 60 s).
        let isCall = id.hasPrefix("call_")
        let told = sampled.sold ? (isCall ? "converted" : "sold") : (isCall ? "unrouted" : "unsold")
        guard round["status"]?.stringValue == told else {
            return .mismatched("\(id): recorded \(round["status"]?.stringValue ?? "nil"), seller was told \(told)")
        }
        guard case .array(let buyers)? = round["buyers"] else { return .mismatched("\(id): no buyers array") }
        if let expectedBuyers, buyers.count != expectedBuyers {
            return .mismatched("\(id): \(buyers.count) buyers recorded, expected \(expectedBuyers)")
        }
        guard buyers.allSatisfy({ !($0["reason"]?.stringValue ?? "").isEmpty }) else {
            return .mismatched("\(id): a buyer without a reason code")
        }
        if sampled.sold && (round["winner"]?.stringValue == nil) {
            return .mismatched("\(id): sold without a winner")
        }
        let durationMs = Self.number(round["duration_ms"]) ?? 0
        let slowestPingMs = buyers.compactMap { Self.number($0["latency_ms"]) }.max() ?? 0
        var postsMs = 0.0
        if case .array(let posts)? = round["posts"] {
            postsMs = posts.compactMap { Self.number($0["latency_ms"]) }.reduce(0, +)
        }
        return .found(durationUs: UInt64(max(0, durationMs * 1000)),
                      overheadUs: UInt64(max(0, (durationMs - slowestPingMs - postsMs) * 1000)),
                      slowestPingUs: UInt64(max(0, slowestPingMs * 1000)))
    }

    private static func number(_ value: JSONValue?) -> Double? {
        value?.numberText.flatMap { Double($0) }
    }
}
