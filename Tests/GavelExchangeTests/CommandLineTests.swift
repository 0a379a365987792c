import BuyerFleet
import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import GavelCore
import GavelPing
import Testing

/// `gavel serve` and `gavel validate` as an operator runs them: the built binary, real signals.
@Suite(.serialized)
struct CommandLineTests {
    /// The `gavel` binary built next to this test bundle.
    static var gavelBinary: URL {
        URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().appendingPathComponent("gavel")
    }

    static var repositoryRoot: URL {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    }

    /// Runs `gavel` to completion; returns its exit code and standard output.
    static func run(_ arguments: [String]) throws -> (code: Int32, output: String) {
        let process = Process()
        process.executableURL = gavelBinary
        process.arguments = arguments
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = FileHandle.nullDevice
        try process.run()
        let data = pipe.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return (process.terminationStatus, String(decoding: data, as: UTF8.self))
    }

    @Test func validateAcceptsTheExampleConfig() throws {
        try #require(FileManager.default.isExecutableFile(atPath: Self.gavelBinary.path), "build the gavel product first (swift build)")
        let (code, output) = try Self.run(["validate", "--config", Self.repositoryRoot.appendingPathComponent("buyer-configs").path])
        #expect(code == 0)
        #expect(output.hasPrefix("config ok: 4 campaigns"))
        #expect(output.split(separator: "\n").count == 1)
    }

    @Test(arguments: [["--log-format", "xml"], ["--dni-rate-limit", "0"], ["--idle-timeout-s", "-1"], ["--dni-rate-limit", "lots"],
                      ["--claim-grace-ms", "5"], ["--node-id", ""], ["--max-rounds-in-flight", "0"],
                      // A password in the URL would show in `ps` and in logs: refused (PGPASSWORD only).
                      ["--db", "postgres://gavel:secret@127.0.0.1/gavel"], ["--db", "postgres://gavel@/gavel?port=lots"],
                      // No server there: the start fails within seconds, saying so.
                      ["--db", "postgres://gavel@/gavel?host=/nonexistent-socket-dir"]])
    func serveRefusesBadOptions(_ arguments: [String]) throws {
        try #require(FileManager.default.isExecutableFile(atPath: Self.gavelBinary.path), "build the gavel product first (swift build)")
        let (code, output) = try Self.run(["serve", "--port", "0"] + arguments)
        #expect(code != 0)
        #expect(!output.contains("gavel listening"))
    }

    @Test func validateListsEveryProblem() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("gavel-cli-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: directory) }
        try FileManager.default.createDirectory(at: directory.appendingPathComponent("buyers"), withIntermediateDirectories: true)
        try "campaigns:\n  - {id: c, vertical: v, tmax_ms: 100, ping_timeout_ms: 200}\n"
            .write(to: directory.appendingPathComponent("campaigns.yaml"), atomically: true, encoding: .utf8)
        try "sellers:\n  - {id: s, api_key: short, campaigns: [missing]}\n"
            .write(to: directory.appendingPathComponent("sellers.yaml"), atomically: true, encoding: .utf8)
        try "id: b\ncampaigns: [c]\nping: {url: 'ftp://x', timeout_ms: 100}\npost: {url: 'http://127.0.0.1:1/p'}\nfilters: {states: [California]}\n"
            .write(to: directory.appendingPathComponent("buyers/b.yaml"), atomically: true, encoding: .utf8)
        let (code, output) = try Self.run(["validate", "--config", directory.path])
        #expect(code == 1)
        let lines = output.split(separator: "\n").map(String.init)
        #expect(lines.contains("campaigns.yaml: campaigns[0].ping_timeout_ms: must be less than tmax_ms (100) to leave time for the post"))
        #expect(lines.contains("sellers.yaml: sellers[0].api_key: must be at least 8 characters"))
        #expect(lines.contains("sellers.yaml: sellers[0].campaigns: unknown campaign \"missing\""))
        #expect(lines.contains { $0.hasPrefix("buyers/b.yaml: ping.url: must be an http:// or https:// URL") })
        #expect(lines.contains { $0.hasPrefix("buyers/b.yaml: filters.states[0]: must be a two-letter state code") })
    }

    /// A running `gavel serve` child process.
    final class ServeProcess: @unchecked Sendable {
        // @unchecked: `process` is only touched from the test's task.
        let process = Process()
        let port: Int
        /// Standard output after the ready line.
        let output: FileHandle

        init(config: String, db: String, arguments: [String] = [], standardError: FileHandle = .nullDevice) async throws {
            process.executableURL = CommandLineTests.gavelBinary
            process.arguments = ["serve", "--config", config, "--db", db, "--port", "0"] + arguments
            let pipe = Pipe()
            process.standardOutput = pipe
            process.standardError = standardError
            output = pipe.fileHandleForReading
            try process.run()
            let handle = pipe.fileHandleForReading
            let line: String = await withCheckedContinuation { continuation in
                DispatchQueue.global().async {
                    var buffer = Data()
                    while !buffer.contains(UInt8(ascii: "\n")) {
                        let chunk = handle.availableData
                        if chunk.isEmpty { break }
                        buffer.append(chunk)
                    }
                    continuation.resume(returning: String(decoding: buffer, as: UTF8.self))
                }
            }
            let prefix = "gavel listening on http://127.0.0.1:"
            guard line.hasPrefix(prefix), let port = Int(line.dropFirst(prefix.count).prefix { $0.isNumber }) else {
                process.terminate()
                throw CancellationError()
            }
            self.port = port
        }

        func signal(_ number: Int32) { kill(process.processIdentifier, number) }

        func waitForExit() -> Int32 {
            process.waitUntilExit()
            return process.terminationStatus
        }
    }

    /// A config directory with campaign `autos`, seller key `cli-test-key-1` and the fleet's buyer `solo`.
    static func soloConfig(fleet: BuyerFleet) throws -> URL {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("gavel-cli-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory.appendingPathComponent("buyers"), withIntermediateDirectories: true)
        try "campaigns:\n  - {id: autos, vertical: auto, tmax_ms: 1000}\n"
            .write(to: directory.appendingPathComponent("campaigns.yaml"), atomically: true, encoding: .utf8)
        try "sellers:\n  - {id: s, api_key: cli-test-key-1, campaigns: [autos]}\n"
            .write(to: directory.appendingPathComponent("sellers.yaml"), atomically: true, encoding: .utf8)
        try "id: solo\ncampaigns: [autos]\nping: {url: '\(fleet.pingURL(for: "solo"))'}\npost: {url: '\(fleet.postURL(for: "solo"))'}\n"
            .write(to: directory.appendingPathComponent("buyers/solo.yaml"), atomically: true, encoding: .utf8)
        return directory
    }

    @Test func serveAnswersReloadsOnHangupSurvivesKillAndStopsCleanly() async throws {
        try #require(FileManager.default.isExecutableFile(atPath: Self.gavelBinary.path), "build the gavel product first (swift build)")
        let fleet = BuyerFleet(buyers: ["solo": BuyerBehavior(latency: .fixed(ms: 2), bidMin: "10", bidMax: "10")], seed: 1)
        try await fleet.start()
        let client = CurlMultiEngine()
        let directory = try Self.soloConfig(fleet: fleet)
        defer { try? FileManager.default.removeItem(at: directory) }
        let buyerFile = directory.appendingPathComponent("buyers/solo.yaml")
        let buyerYAML = try String(contentsOf: buyerFile, encoding: .utf8)
        let db = directory.appendingPathComponent("gavel.sqlite").path

        func postLead(_ port: Int) async throws -> JSONValue {
            let body = #"{"campaign": "autos", "lead": {"zip": "94107", "state": "CA"}, "contact": {"email": "cli@example.com"}}"#
            let response = try await client.send(.json(url: "http://127.0.0.1:\(port)/v1/leads", body: body,
                                                        headers: ["Authorization": "Bearer cli-test-key-1"], timeoutMs: 5000)).get()
            return try JSONValue.parse(response.body)
        }

        // Serve, sell, kill -9: the 200 it answered must survive.
        let first = try await ServeProcess(config: directory.path, db: db)
        let sold = try await postLead(first.port)
        #expect(sold["status"] == "sold")
        let auctionID = try #require(sold["auction_id"]?.stringValue)
        first.signal(SIGKILL)
        _ = first.waitForExit()

        let second = try await ServeProcess(config: directory.path, db: db)
        let read = try await client.send(HTTPRequest(url: "http://127.0.0.1:\(second.port)/v1/auctions/\(auctionID)", method: .get,
                                                      headers: [("Authorization", "Bearer cli-test-key-1")], timeoutMs: 5000)).get()
        #expect(read.status == 200)
        #expect(try JSONValue.parse(read.body)["winner"] == "solo")

        // SIGHUP with a broken directory keeps the old config...
        try "id: solo\ncampaigns: [nope]\n".write(to: buyerFile, atomically: true, encoding: .utf8)
        second.signal(SIGHUP)
        try await Task.sleep(for: .milliseconds(500))
        #expect(try await postLead(second.port)["status"] == "sold")
        // ...and with a valid one, swaps it in: the buyer is now paused.
        try (buyerYAML + "paused: true\n").write(to: buyerFile, atomically: true, encoding: .utf8)
        second.signal(SIGHUP)
        var status: JSONValue?
        for _ in 0..<20 {
            try await Task.sleep(for: .milliseconds(200))
            status = try await postLead(second.port)["status"]
            if status == "unsold" { break }
        }
        #expect(status == "unsold")

        // SIGTERM: drain, commit, exit 0.
        second.signal(SIGTERM)
        #expect(second.waitForExit() == 0)
        client.shutdown()
        try await fleet.shutdown()
    }

    /// `--max-rounds-in-flight 1`: while one round waits on a slow buyer, the next lead is shed at once
    /// with 503 `overloaded` and `Retry-After` (the load tests' overload step relies on this form).
    @Test func serveShedsRoundsPastMaxRoundsInFlight() async throws {
        try #require(FileManager.default.isExecutableFile(atPath: Self.gavelBinary.path), "build the gavel product first (swift build)")
        let fleet = BuyerFleet(buyers: ["solo": BuyerBehavior(latency: .fixed(ms: 500), bidMin: "10", bidMax: "10")], seed: 1)
        try await fleet.start()
        let client = CurlMultiEngine()
        let directory = try Self.soloConfig(fleet: fleet)
        defer { try? FileManager.default.removeItem(at: directory) }
        let server = try await ServeProcess(config: directory.path, db: directory.appendingPathComponent("g.sqlite").path,
                                            arguments: ["--max-rounds-in-flight", "1"])
        let url = "http://127.0.0.1:\(server.port)/v1/leads"
        func body(_ email: String) -> String {
            #"{"campaign": "autos", "lead": {"zip": "94107", "state": "CA"}, "contact": {"email": "\#(email)"}}"#
        }
        let slow = Task {
            try await client.send(.json(url: url, body: body("first@example.com"), headers: ["Authorization": "Bearer cli-test-key-1"],
                                        timeoutMs: 5000)).get()
        }
        try await Task.sleep(for: .milliseconds(200))  // the first round now waits on its buyer (500 ms, within its 600 ms to bid)
        // URLSession, for the headers (the libcurl engine returns status and body only).
        var request = URLRequest(url: URL(string: url)!)
        request.httpMethod = "POST"
        request.setValue("Bearer cli-test-key-1", forHTTPHeaderField: "Authorization")
        request.setValue("application/json", forHTTPHeaderField: "Content-Type")
        request.httpBody = Data(body("second@example.com").utf8)
        let (data, response) = try await URLSession.shared.data(for: request)
        let http = try #require(response as? HTTPURLResponse)
        #expect(http.statusCode == 503)
        #expect(http.value(forHTTPHeaderField: "Retry-After") != nil)
        #expect(try JSONValue.parse(Array(data))["error"]?["code"] == "overloaded")

        let first = try await slow.value
        #expect(first.status == 200)
        #expect(try JSONValue.parse(first.body)["status"] == "sold")
        server.signal(SIGTERM)
        #expect(server.waitForExit() == 0)
        client.shutdown()
        try await fleet.shutdown()
    }

    @Test func jsonLogsAreOneObjectPerLineWithoutPersonalData() async throws {
        try #require(FileManager.default.isExecutableFile(atPath: Self.gavelBinary.path), "build the gavel product first (swift build)")
        let fleet = BuyerFleet(buyers: ["solo": BuyerBehavior(latency: .fixed(ms: 2), bidMin: "10", bidMax: "10", postAcceptRate: 0)], seed: 1)
        try await fleet.start()
        let client = CurlMultiEngine()
        let directory = try Self.soloConfig(fleet: fleet)
        defer { try? FileManager.default.removeItem(at: directory) }
        let logPath = directory.appendingPathComponent("stderr.log")
        FileManager.default.createFile(atPath: logPath.path, contents: nil)
        let logFile = try FileHandle(forWritingTo: logPath)
        let server = try await ServeProcess(config: directory.path, db: directory.appendingPathComponent("g.sqlite").path,
                                            arguments: ["--log-format", "json", "--log-level", "debug"], standardError: logFile)
        let body = #"{"campaign": "autos", "lead": {"zip": "94107", "state": "CA"}, "contact": {"email": "secret.person@example.com", "last_name": "Zyxwvut"}, "consent": {"signer": "Zyxwvut"}}"#
        let response = try await client.send(.json(url: "http://127.0.0.1:\(server.port)/v1/leads", body: body,
                                                    headers: ["Authorization": "Bearer cli-test-key-1"], timeoutMs: 5000)).get()
        #expect(response.status == 200)
        server.signal(SIGTERM)
        #expect(server.waitForExit() == 0)
        #expect(server.output.readDataToEndOfFile().isEmpty)  // stdout: the ready line only
        try logFile.close()
        let text = try String(contentsOf: logPath, encoding: .utf8)
        let lines = text.split(separator: "\n")
        #expect(!lines.isEmpty)
        var sawAuction = false
        for line in lines {
            let json = try JSONValue.parse(Array(line.utf8))
            #expect(json["time"]?.stringValue != nil && json["level"]?.stringValue != nil && json["message"]?.stringValue != nil)
            if json["auction_id"] != nil { sawAuction = true }
        }
        #expect(sawAuction)
        #expect(!text.contains("secret.person") && !text.contains("Zyxwvut"))
        client.shutdown()
        try await fleet.shutdown()
    }
}
