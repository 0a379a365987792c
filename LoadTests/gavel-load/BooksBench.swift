import ArgumentParser
import Foundation
import GavelCore
import GavelPing
import GavelServer
import GavelStore

/// `gavel-load books`: pushes rounds through the real store (group commit, the sale's ledger row
/// in the round's transaction), returns a share of the sales through `POST /v1/returns`, then
/// reads the books back through the report API of a real server on that database, and checks
/// that every total equals the sum of the rounds written, to the 1/10,000 unit. Prints timings.
struct Books: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Write rounds through the store, return some, and check the report API's totals reconcile.")

    @Option(help: "Rounds to write.")
    var rounds = 100_000

    @Option(help: "Share of the sales returned through POST /v1/returns.")
    var returnShare = 0.05

    @Option(help: "Records per concurrent write (the store groups them into commits).")
    var concurrency = 256

    @Option(help: "Seed of the rounds' draws.")
    var seed: UInt64 = 20_261_130

    static let operatorKey = "bench-operator-key"
    static let buyers = ["apex", "brightroof", "cobalt", "dune", "ember"]
    static let campaigns: [(id: String, kind: AuctionKind, payout: PayoutRule, policy: ReturnPolicy)] = [
        ("autos", .lead, .share(basisPoints: 7000), .reversePayout),
        ("tort", .lead, .fixed(Money(20)), .keepPayout),
        ("calls", .call, .share(basisPoints: 6000), .reversePayout),
    ]

    func run() async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("gavel-books-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: directory) }
        let configPath = try Books.writeConfig(in: directory)
        let databasePath = directory.appendingPathComponent("gavel.sqlite").path
        let nowMs = Int64(Date().timeIntervalSince1970 * 1000)
        let startMs = nowMs - 3 * 86_400_000

        // 1. Rounds through the store.
        var random = SplitMix64(seed: seed)
        var records: [RoundRecord] = []
        records.reserveCapacity(rounds)
        var expected = BookFigures()
        var sales: [(id: String, buyer: String, price: Money, payout: Money, policy: ReturnPolicy)] = []
        for index in 0..<rounds {
            let (record, policy) = Books.round(index: index, startMs: startMs, spanMs: nowMs - startMs - 60_000, random: &random)
            expected.rounds += 1
            if record.billable, let winner = record.winnerID, let price = record.price, let payout = record.payout {
                expected.sold += 1
                expected.revenue += price
                expected.payout += payout
                sales.append((record.id, winner, price, payout, policy))
            }
            records.append(record)
        }
        let store = try RoundStore(path: databasePath)
        let writeStart = ContinuousClock.now
        try await withThrowingTaskGroup(of: Void.self) { group in
            var next = 0
            for _ in 0..<concurrency {
                guard next < records.count else { break }
                let record = records[next]
                next += 1
                group.addTask { try await store.record(record) }
            }
            while try await group.next() != nil {
                guard next < records.count else { continue }
                let record = records[next]
                next += 1
                group.addTask { try await store.record(record) }
            }
        }
        let writeTime = writeStart.duration(to: .now)
        store.close()
        print("books: \(rounds) rounds (\(sales.count) sales) written in \(Books.format(writeTime)) (\(Int(Double(rounds) / Books.seconds(writeTime))) rounds/s)")

        // 2. A real server on that database.
        var settings = ServerSettings()
        settings.configDirectory = configPath
        settings.databasePath = databasePath
        settings.port = 0
        let server = try await GavelServer(settings: settings)
        let (ports, continuation) = AsyncStream<Int>.makeStream()
        let serving = Task { try await server.run(signals: []) { port in continuation.yield(port) } }
        var port = 0
        for await listening in ports {
            port = listening
            break
        }
        let engine = CurlMultiEngine(configuration: .init(maxResponseBytes: 256 * 1024 * 1024))
        defer { engine.shutdown() }
        let base = "http://127.0.0.1:\(port)"
        var failures: [String] = []

        // 3. Returns through the API, concurrently.
        let returning = sales.filter { _ in Double.random(in: 0..<1, using: &random) < returnShare }
        let returnStart = ContinuousClock.now
        for batch in stride(from: 0, to: returning.count, by: 200) {
            let slice = returning[batch..<min(returning.count, batch + 200)]
            let results = await engine.send(all: slice.map { sale in
                HTTPRequest(url: base + "/v1/returns", method: .post,
                            headers: [("Authorization", "Bearer bench-buyer-key-\(sale.buyer)"), ("Content-Type", "application/json")],
                            body: Array(#"{"auction_id": "\#(sale.id)", "reason": "invalid_phone"}"#.utf8), timeoutMs: 30_000)
            })
            for (sale, result) in zip(slice, results) {
                guard case .success(let response) = result, response.status == 200 else {
                    failures.append("return of \(sale.id) failed: \(result)")
                    continue
                }
                expected.returned += sale.price
                expected.payoutReversed += sale.policy.reversal(of: sale.payout)
            }
        }
        let returnTime = returnStart.duration(to: .now)
        print("books: \(returning.count) returns through POST /v1/returns in \(Books.format(returnTime))")

        // 4. The reports: every total equals the sum of the rounds written and returned.
        let today = Books.date(nowMs + 86_400_000)
        let first = Books.date(startMs - 86_400_000)
        var table: [(String, Duration, Int)] = []
        for (label, query) in [
            ("pnl by day (UTC)", "group_by=day"),
            ("pnl by day (New York)", "group_by=day&tz=America/New_York"),
            ("pnl by hour, campaign, buyer, seller, source", "group_by=hour,campaign,buyer,seller,source"),
            ("pnl by campaign (CSV)", "group_by=campaign&format=csv"),
        ] {
            let (status, body, time) = await Books.get(engine, base + "/v1/reports/pnl?from=\(first)&to=\(today)&\(query)", key: Books.operatorKey)
            table.append((label, time, body.count))
            guard status == 200 else {
                failures.append("\(label): HTTP \(status)")
                continue
            }
            let (totals, rowSum) = query.contains("csv") ? Books.csvTotals(body) : Books.jsonTotals(body)
            if totals != expected { failures.append("\(label): totals \(totals) != expected \(expected)") }
            if rowSum != totals { failures.append("\(label): rows add up to \(rowSum), totals say \(totals)") }
        }
        for (label, path, key) in [
            ("buyers report", "/v1/reports/buyers?from=\(first)&to=\(today)", Books.operatorKey),
            ("sellers report", "/v1/reports/sellers?from=\(first)&to=\(today)", Books.operatorKey),
            ("purchases, 1,000 a page", "/v1/buyer/purchases?from=\(first)&to=\(today)&limit=1000", "bench-buyer-key-apex"),
        ] {
            let (status, body, time) = await Books.get(engine, base + path, key: key)
            table.append((label, time, body.count))
            if status != 200 { failures.append("\(label): HTTP \(status)") }
        }
        serving.cancel()
        _ = try? await serving.value

        print("")
        print("| report | time | bytes |")
        print("|---|---|---|")
        for (label, time, bytes) in table { print("| \(label) | \(Books.format(time)) | \(bytes) |") }
        print("")
        print("expected: rounds \(expected.rounds), sold \(expected.sold), revenue \(expected.revenue), payout \(expected.payout), "
              + "returned \(expected.returned), payout_reversed \(expected.payoutReversed), margin \(expected.margin)")
        guard failures.isEmpty else {
            for failure in failures.prefix(20) { print("MISMATCH: \(failure)") }
            throw ExitCode(1)
        }
        print("books reconcile: every report total equals the sum of its rounds to the unit")
    }

    // MARK: Rounds

    /// One round through the real state machine: three to five buyers bid, posts go down the
    /// ranking (a rejection falls back to the next bid); a call is sold only when it converts.
    static func round(index: Int, startMs: Int64, spanMs: Int64, random: inout SplitMix64) -> (RoundRecord, ReturnPolicy) {
        let campaign = campaigns[Int.random(in: 0..<campaigns.count, using: &random)]
        let createdAtMs = startMs + Int64.random(in: 0..<spanMs, using: &random)
        let id = AuctionID.make(prefix: campaign.kind == .call ? "call_" : "auc_", nowMs: createdAtMs)
        let bidders = buyers.shuffled(using: &random).prefix(Int.random(in: 3...5, using: &random))
        var round = AuctionRound(id: id, payoutRule: campaign.payout,
                                 considered: bidders.map { .pinged(.init(buyerID: $0), tmaxMs: 300) })
        for buyer in bidders {
            if Double.random(in: 0..<1, using: &random) < 0.3 {
                _ = round.receive(.noBid, from: buyer, latencyUs: Int.random(in: 2_000...80_000, using: &random))
            } else {
                let price = Money(units: Int64.random(in: 20_000...900_000, using: &random))
                _ = round.receive(.bid(price: price, bidID: nil, expiresInS: nil, destination: campaign.kind == .call ? "+18005550101" : nil,
                                       minDurationS: nil), from: buyer, latencyUs: Int.random(in: 2_000...80_000, using: &random))
            }
        }
        _ = round.closeBidding(atMs: createdAtMs + 100, method: .auction)
        var sold = false
        switch campaign.kind {
        case .lead:
            while case .post = round.nextPost(atMs: createdAtMs + 120, remainingMs: 500, minimumPostMs: 10) {
                let accepted = Double.random(in: 0..<1, using: &random) < 0.7
                if round.recordPost(accepted ? .accepted(reference: nil) : .rejected(reason: "no"), latencyUs: 20_000) != nil {
                    sold = accepted
                    break
                }
            }
        case .call:
            sold = !round.ranking.isEmpty && Double.random(in: 0..<1, using: &random) < 0.55
        }
        let top = round.ranking.first
        let sale = campaign.kind == .lead ? round.outcome?.sale : nil
        let winner = campaign.kind == .lead ? sale?.bid.buyerID : top?.buyerID
        let price = campaign.kind == .lead ? sale?.price : top?.price
        let payout = price.map { campaign.payout.payout(forPrice: $0) }
        let source = [nil, "google", "facebook", "pub-7"][Int.random(in: 0..<4, using: &random)]
        var record = RoundRecord(
            id: id, kind: campaign.kind, sellerID: index % 3 == 0 ? "bluebird" : "acme", campaignID: campaign.id, phase: .final,
            status: campaign.kind == .call ? (sold ? "converted" : top == nil ? "unrouted" : "not_converted") : (sold ? "sold" : "unsold"),
            createdAtMs: createdAtMs, tmaxMs: 800, durationUs: 1_000, winnerID: winner, price: price, payout: sold ? payout : .zero,
            leadJSON: #"{"zip":"94107","state":"CA"}"#,
            contactJSON: sold && campaign.kind == .lead ? #"{"email":"lead\#(index)@example.com","phone":"+15551234567"}"#: nil,
            entries: round.entries, posts: round.posts, billable: sold,
            attributionJSON: campaign.kind == .call ? source.map { #"{"match":"source","source":"\#($0)"}"# } : nil)
        if campaign.kind == .lead { record.source = source }
        return (record, campaign.policy)
    }

    // MARK: Reading the answers

    static func get(_ engine: CurlMultiEngine, _ url: String, key: String) async -> (Int, [UInt8], Duration) {
        let start = ContinuousClock.now
        let result = await engine.send(HTTPRequest(url: url, method: .get, headers: [("Authorization", "Bearer \(key)")], body: [],
                                                   timeoutMs: 120_000))
        let time = start.duration(to: .now)
        switch result {
        case .success(let response): return (response.status, response.body, time)
        case .failure: return (0, [], time)
        }
    }

    static func figures(_ json: JSONValue?) -> BookFigures {
        func money(_ name: String) -> Money { json?[name]?.numberText.flatMap { Money(decimal: $0, allowNegative: true) } ?? .zero }
        func count(_ name: String) -> Int64 { json?[name]?.numberText.flatMap { Int64($0) } ?? 0 }
        return BookFigures(rounds: count("rounds"), sold: count("sold"), revenue: money("revenue"), payout: money("payout"),
                           returned: money("returned"), payoutReversed: money("payout_reversed"))
    }

    static func jsonTotals(_ body: [UInt8]) -> (BookFigures, BookFigures) {
        guard let json = try? JSONValue.parse(body) else { return (BookFigures(), BookFigures(rounds: -1)) }
        var sum = BookFigures()
        if case .array(let rows)? = json["rows"] { for row in rows { sum += figures(row) } }
        return (figures(json["totals"]), sum)
    }

    /// The last line is the total; the seven figures end each line.
    static func csvTotals(_ body: [UInt8]) -> (BookFigures, BookFigures) {
        let lines = String(decoding: body, as: UTF8.self).split(separator: "\r\n").dropFirst()
        func figures(_ line: Substring) -> BookFigures {
            let cells = line.split(separator: ",", omittingEmptySubsequences: false).suffix(7).map(String.init)
            guard cells.count == 7 else { return BookFigures() }
            let money = cells.map { Money(decimal: $0, allowNegative: true) ?? .zero }
            return BookFigures(rounds: Int64(cells[0]) ?? 0, sold: Int64(cells[1]) ?? 0, revenue: money[2], payout: money[3],
                               returned: money[4], payoutReversed: money[5])
        }
        var sum = BookFigures()
        for line in lines.dropLast() { sum += figures(line) }
        return (lines.last.map(figures) ?? BookFigures(), sum)
    }

    // MARK: Setup

    /// Three campaigns, two sellers, five buyers with keys (never pinged: no rounds run), an operator.
    static func writeConfig(in directory: URL) throws -> String {
        let config = directory.appendingPathComponent("config")
        try FileManager.default.createDirectory(at: config.appendingPathComponent("buyers"), withIntermediateDirectories: true)
        func write(_ text: String, _ name: String) throws {
            try text.write(to: config.appendingPathComponent(name), atomically: true, encoding: .utf8)
        }
        try write("""
            campaigns:
              - {id: autos, kind: lead, vertical: auto, payout: {share: 0.7}}
              - {id: tort, kind: lead, vertical: legal, payout: {fixed: 20}, return_policy: keep_payout}
              - {id: calls, kind: call, vertical: home, payout: {share: 0.6}}
            """, "campaigns.yaml")
        try write("""
            sellers:
              - {id: acme, api_key: bench-seller-key-acme, campaigns: [autos, tort, calls]}
              - {id: bluebird, api_key: bench-seller-key-bluebird, campaigns: [autos, tort, calls]}
            """, "sellers.yaml")
        try write("operators:\n  - {id: ops, api_key: \(operatorKey)}\n", "operators.yaml")
        for buyer in buyers {
            try write("""
                id: \(buyer)
                api_key: bench-buyer-key-\(buyer)
                campaigns: [autos, tort, calls]
                ping: {url: "http://127.0.0.1:9/\(buyer)/ping"}
                post: {url: "http://127.0.0.1:9/\(buyer)/post"}
                destination: "+18005550101"
                """, "buyers/\(buyer).yaml")
        }
        return config.path
    }

    static func date(_ ms: Int64) -> String {
        let parts = Calendar(identifier: .gregorian).dateComponents(in: TimeZone(identifier: "UTC")!, from: Date(timeIntervalSince1970: Double(ms) / 1000))
        return LocalDate(year: parts.year ?? 1970, month: parts.month ?? 1, day: parts.day ?? 1).description
    }

    static func seconds(_ duration: Duration) -> Double {
        let (seconds, attoseconds) = duration.components
        return Double(seconds) + Double(attoseconds) / 1e18
    }

    static func format(_ duration: Duration) -> String {
        let value = seconds(duration)
        return value >= 1 ? String(format: "%.2f s", value) : String(format: "%.1f ms", value * 1000)
    }
}

