import BuyerFleet
import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import GavelCore
import GavelExchange
import Testing

/// A known path asked with a method it does not serve: 405 `method_not_allowed` with `Allow`, in the
/// JSON error shape, through a real server on a free port; unknown paths stay 404.
@Suite(.serialized)
struct MethodNotAllowedTests {
    @Test func knownPathsAnswer405WithTheirMethodsInAllow() async throws {
        let harness = try await TestExchange(buyers: [bidder("b", bid: "5.00")])
        try await harness.startHTTP()
        let cases: [(method: String, path: String, allow: String)] = [
            ("DELETE", "/v1/leads", "POST"),
            ("GET", "/v1/leads", "POST"),
            ("PUT", "/v1/pings", "POST"),
            ("PATCH", "/v1/posts", "POST"),
            ("GET", "/v1/calls", "POST"),
            ("GET", "/v1/calls/call_01M8JT4A2C6H9QF1N3R7TZ0XWE/events", "POST"),
            ("DELETE", "/v1/auctions/auc_01M8JT1XCD496NG8KAYS33TKAB", "GET"),
            ("POST", "/healthz", "GET"),
            ("HEAD", "/metrics", "GET"),
            ("PUT", "/dni.js", "GET"),
            ("GET", "/v1/dni/sessions", "POST, OPTIONS"),
        ]
        for testCase in cases {
            let answer = try await send(testCase.method, testCase.path, port: harness.port)
            #expect(answer.status == 405, "\(testCase.method) \(testCase.path)")
            #expect(answer.allow == testCase.allow, "\(testCase.method) \(testCase.path)")
            if testCase.method != "HEAD" {
                #expect(answer.contentType == "application/json", "\(testCase.method) \(testCase.path)")
                #expect(answer.json["error"]?["code"] == "method_not_allowed", "\(testCase.method) \(testCase.path)")
                #expect(answer.json["error"]?["message"]?.stringValue?.contains(testCase.allow) == true, "\(testCase.method) \(testCase.path)")
            }
        }
        await harness.shutdown()
    }

    @Test func noHandlerRunsAndNoKeyIsNeeded() async throws {
        let harness = try await TestExchange(buyers: [bidder("b", bid: "5.00")])
        try await harness.startHTTP()
        // Finding that /v1/leads serves POST must not run the lead handler: no ping, no round.
        let answer = try await send("PUT", "/v1/leads", port: harness.port, body: TestExchange.lead(), key: nil)
        #expect(answer.status == 405)
        #expect(answer.allow == "POST")
        #expect(harness.fleet.stats(for: "b").pings == 0)
        #expect(try await harness.store.counts().rounds == 0)
        // The declared method still works, with its own rules (a key is needed).
        #expect(try await send("POST", "/v1/leads", port: harness.port, body: TestExchange.lead(), key: nil).status == 401)
        let sold = try await harness.http(.post, "/v1/leads", body: TestExchange.lead())
        #expect(sold.status == 200)
        #expect(harness.fleet.stats(for: "b").pings == 1)
        await harness.shutdown()
    }

    @Test func unknownPathsStay404() async throws {
        let harness = try await TestExchange(buyers: [bidder("b", bid: "5.00")])
        try await harness.startHTTP()
        for (method, path) in [("GET", "/v1/nothing"), ("DELETE", "/v1/nothing"), ("POST", "/v1/leads/extra"), ("GET", "/")] {
            let answer = try await send(method, path, port: harness.port)
            #expect(answer.status == 404, "\(method) \(path)")
            #expect(answer.allow == nil, "\(method) \(path)")
            #expect(answer.json["error"]?["code"] == "not_found", "\(method) \(path)")
        }
        // A round that does not exist is its handler's 404, not a routing question.
        #expect(try await send("GET", "/v1/auctions/auc_01M8JT1XCD496NG8KAYS33TKAB", port: harness.port).status == 404)
        await harness.shutdown()
    }

    /// Any method (the exchange's own client speaks only GET and POST), with the answer's headers.
    private func send(
        _ method: String, _ path: String, port: Int, body: String? = nil, key: String? = TestExchange.sellerKey
    ) async throws -> (status: Int, allow: String?, contentType: String?, json: JSONValue) {
        var request = URLRequest(url: try #require(URL(string: "http://127.0.0.1:\(port)\(path)")))
        request.httpMethod = method
        request.timeoutInterval = 10
        if let key { request.setValue("Bearer \(key)", forHTTPHeaderField: "Authorization") }
        if let body {
            request.setValue("application/json", forHTTPHeaderField: "Content-Type")
            request.httpBody = Data(body.utf8)
        }
        let (data, response) = try await URLSession.shared.data(for: request)
        let http = try #require(response as? HTTPURLResponse)
        return (http.statusCode, http.value(forHTTPHeaderField: "Allow"), http.value(forHTTPHeaderField: "Content-Type"),
                (try? JSONValue.parse(Array(data))) ?? .null)
    }
}
