import Foundation
import GavelCore

#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

/// Checks the form of shed answers, headers included: 503, `error.code` `overloaded` and a
/// `Retry-After` (CONTRACT v2).
///
/// The generator's libcurl engine hands back a status and a body, no headers, so its answers tell
/// a shed round by its code alone. This probe sends leads of its own through URLSession, which
/// shows headers: a burst of `burst` at once every `period` in which the generator saw rounds shed,
/// so it samples the exchange while it sheds and costs nothing otherwise.
struct ShedProbe: Sendable {
    var exchangeURL: String
    var apiKey: String
    var campaign: String
    var tmaxMs: Int
    var timeoutMs: Int
    var runTag: String

    /// A burst at once: concurrent leads are what an admission limit refuses.
    static let burst = 4
    static let periodNs: UInt64 = 250_000_000

    /// How one probe lead was answered.
    enum Answer: Equatable, Sendable {
        case admitted
        /// 503 `overloaded` with `Retry-After`: the form the contract asks for.
        case shed
        /// Any other 5xx, a 503 without `Retry-After` or with another code, or another status: bounded labels.
        case wrong(String)
        /// No HTTP answer (timeout, connection failure): reported, not judged.
        case unanswered
    }

    /// The `error.code` of a JSON error body, when it has a short, plain one (a bounded label).
    static func errorCode(_ body: [UInt8]) -> String? {
        guard let code = (try? JSONValue.parse(body))?["error"]?["code"]?.stringValue, (1...40).contains(code.count),
              code.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "_") }) else { return nil }
        return code
    }

    static func classify(status: Int, retryAfter: String?, body: [UInt8]) -> Answer {
        switch status {
        case 200: return .admitted
        case 503:
            guard let code = errorCode(body) else { return .wrong("http_503") }
            guard code == "overloaded" else { return .wrong("http_503_" + code) }
            // Seconds (an integer) or an HTTP date; an empty or blank value tells the seller nothing.
            guard let retryAfter, !retryAfter.trimmingCharacters(in: .whitespaces).isEmpty else {
                return .wrong("overloaded_without_retry_after")
            }
            return .shed
        default: return .wrong("http_\(status)")
        }
    }

    /// Probes until `endNs` (the end of the step's schedule), each period in which `recorder` counted
    /// new shed answers.
    func run(recorder: Recorder, untilNs endNs: UInt64) async -> ShedProbeResult {
        let configuration = URLSessionConfiguration.ephemeral
        configuration.timeoutIntervalForRequest = Double(timeoutMs) / 1000
        configuration.httpMaximumConnectionsPerHost = Self.burst
        let session = URLSession(configuration: configuration)
        defer { session.finishTasksAndInvalidate() }

        var result = ShedProbeResult()
        var shedSeen = recorder.totals.shed
        var sequence = 0
        while Monotonic.now() + Self.periodNs < endNs {
            try? await Task.sleep(nanoseconds: Self.periodNs)
            let shed = recorder.totals.shed
            guard shed > shedSeen else { continue }
            shedSeen = shed
            let first = sequence
            sequence += Self.burst
            let answers = await withTaskGroup(of: Answer.self) { group in
                for index in first..<(first + Self.burst) {
                    group.addTask { await send(index, session: session) }
                }
                return await group.reduce(into: [Answer]()) { $0.append($1) }
            }
            for answer in answers { result.add(answer) }
        }
        return result
    }

    private func send(_ index: Int, session: URLSession) async -> Answer {
        guard let url = URL(string: exchangeURL + "/v1/leads") else { return .unanswered }
        var request = URLRequest(url: url)
        request.httpMethod = "POST"
        request.setValue("application/json", forHTTPHeaderField: "Content-Type")
        request.setValue("Bearer " + apiKey, forHTTPHeaderField: "Authorization")
        request.httpBody = Data((#"{"campaign":"\#(campaign)","lead":{"zip":"94107","state":"CA"},"#
            + #""contact":{"email":"lt\#(runTag)-probe-\#(index)@example.com"},"tmax_ms":\#(tmaxMs)}"#).utf8)
        guard let (data, response) = try? await session.data(for: request), let http = response as? HTTPURLResponse else {
            return .unanswered
        }
        return Self.classify(status: http.statusCode, retryAfter: http.value(forHTTPHeaderField: "Retry-After"), body: Array(data))
    }
}

/// What the shed probe saw over a step.
struct ShedProbeResult: Codable, Sendable, Equatable {
    var sent = 0
    var admitted = 0
    /// 503 `overloaded` with `Retry-After`.
    var shed = 0
    var unanswered = 0
    /// Answers of the wrong form, by label (`overloaded_without_retry_after`, `http_503_storage`, `http_500`).
    var wrong: [String: Int] = [:]

    mutating func add(_ answer: ShedProbe.Answer) {
        sent += 1
        switch answer {
        case .admitted: admitted += 1
        case .shed: shed += 1
        case .unanswered: unanswered += 1
        case .wrong(let label): wrong[label, default: 0] += 1
        }
    }

    /// `48 sent: 30 shed (503 overloaded, Retry-After), 18 admitted`, and what went wrong.
    var text: String {
        var parts = ["\(sent) sent: \(shed) shed (503 overloaded, Retry-After)", "\(admitted) admitted"]
        if unanswered > 0 { parts.append("\(unanswered) unanswered") }
        if !wrong.isEmpty { parts.append("WRONG " + wrong.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }.joined(separator: ", ")) }
        return parts.joined(separator: ", ")
    }
}
