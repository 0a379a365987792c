import Foundation
import GavelCore
import GRDB
import Testing
@testable import GavelStore

/// A fresh directory for one test's SQLite file (plus its WAL files).
struct TempDatabase: ~Copyable {
    let directory: URL
    var path: String { directory.appendingPathComponent("gavel.sqlite").path }

    init() throws {
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("gavel-store-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
    }

    deinit { try? FileManager.default.removeItem(at: directory) }
}

enum Rounds {
    static let createdAtMs: Int64 = 1_720_612_800_000  // 2024-07-10T12:00:00Z

    /// A real round through the state machine: a rejects the post, b wins at 20, c is outbid,
    /// capped is excluded, slow times out.
    static func soldRound(id: String = "r_sold") -> AuctionRound {
        var round = AuctionRound(id: id, payoutRule: .share(basisPoints: 7000), considered: [
            .excluded(buyerID: "capped", reason: .capped),
            .pinged(.init(buyerID: "a"), tmaxMs: 300),
            .pinged(.init(buyerID: "b"), tmaxMs: 300),
            .pinged(.init(buyerID: "c"), tmaxMs: 250),
            .pinged(.init(buyerID: "slow"), tmaxMs: 300),
        ])
        _ = round.receive(.bid(price: Money(30), bidID: "bid-a", expiresInS: nil, destination: nil, minDurationS: nil), from: "a", latencyUs: 11_000)
        _ = round.receive(.bid(price: Money(20), bidID: "bid-b", expiresInS: 30, destination: nil, minDurationS: nil), from: "b", latencyUs: 22_000)
        _ = round.receive(.bid(price: Money(decimal: "10.0025")!, bidID: nil, expiresInS: nil, destination: nil, minDurationS: nil),
                          from: "c", latencyUs: 33_000)
        _ = round.closeBidding(atMs: createdAtMs + 300, method: .auction)
        _ = round.nextPost(atMs: createdAtMs + 310, remainingMs: 400, minimumPostMs: 50)
        _ = round.recordPost(.rejected(reason: "duplicate lead"), latencyUs: 40_000)
        _ = round.nextPost(atMs: createdAtMs + 360, remainingMs: 350, minimumPostMs: 50)
        _ = round.recordPost(.accepted(reference: "REF-42"), latencyUs: 50_000)
        return round
    }

    static func finalRecord(
        _ round: AuctionRound, createdAtMs: Int64 = createdAtMs, contactHash: String? = "hash-jo",
        capIncrements: [CapIncrement] = []
    ) -> RoundRecord {
        let sale = round.outcome?.sale
        return RoundRecord(
            id: round.id, kind: .lead, sellerID: "seller-one", campaignID: "autos", phase: .final,
            status: sale == nil ? "unsold" : "sold", createdAtMs: createdAtMs, tmaxMs: 800, durationUs: 123_456,
            winnerID: sale?.bid.buyerID, price: sale?.price, payout: sale?.payout,
            leadJSON: #"{"zip":"94107","state":"CA"}"#,
            contactJSON: sale == nil ? nil : #"{"email":"jo@example.com"}"#, contactHash: sale == nil ? nil : contactHash,
            entries: round.entries, posts: round.posts, capIncrements: capIncrements, billable: sale != nil
        )
    }

    /// A minimal sold round for bulk tests.
    static func simpleSale(id: String, buyerID: String = "b", price: Money = Money(10), createdAtMs: Int64 = createdAtMs,
                           contactHash: String? = nil, capIncrements: [CapIncrement] = []) -> RoundRecord {
        var round = AuctionRound(id: id, payoutRule: .share(basisPoints: 5000), considered: [
            .fixedPrice(.init(buyerID: buyerID), price: price),
        ])
        _ = round.closeBidding(atMs: createdAtMs, method: .auction)
        _ = round.nextPost(atMs: createdAtMs, remainingMs: 500, minimumPostMs: 50)
        _ = round.recordPost(.accepted(reference: nil), latencyUs: 1_000)
        return finalRecord(round, createdAtMs: createdAtMs, contactHash: contactHash, capIncrements: capIncrements)
    }
}

struct RoundStoreTests {
    @Test func finalSoldRoundReadsBack() async throws {
        let database = try TempDatabase()
        let store = try RoundStore(path: database.path)
        defer { store.close() }
        let round = Rounds.soldRound()
        try await store.record(Rounds.finalRecord(round))

        let stored = try #require(try await store.round(id: "r_sold"))
        #expect(stored.id == "r_sold")
        #expect(stored.kind == "lead")
        #expect(stored.sellerID == "seller-one")
        #expect(stored.campaignID == "autos")
        #expect(stored.phase == "final")
        #expect(stored.status == "sold")
        #expect(stored.createdAtMs == Rounds.createdAtMs)
        #expect(stored.tmaxMs == 800)
        #expect(stored.durationUs == 123_456)
        #expect(stored.winnerID == "b")
        #expect(stored.price == Money(20))
        #expect(stored.payout == Money(14))
        #expect(stored.leadJSON == #"{"zip":"94107","state":"CA"}"#)

        #expect(stored.buyers.map(\.buyerID) == ["capped", "a", "b", "c", "slow"])
        #expect(stored.buyers.map(\.reason) == ["capped", "post_rejected", "sold", "outbid", "timeout"])
        #expect(stored.buyers.map(\.bid) == [nil, Money(30), Money(20), Money(decimal: "10.0025"), nil])
        #expect(stored.buyers.map(\.bidID) == [nil, "bid-a", "bid-b", nil, nil])
        #expect(stored.buyers.map(\.latencyUs) == [nil, 11_000, 22_000, 33_000, nil])
        #expect(stored.buyers.map(\.tmaxMs) == [nil, 300, 300, 250, 300])
        #expect(stored.buyers[1].detail == "duplicate lead")
        #expect(stored.buyers[4].detail == "no answer before bidding closed")

        #expect(stored.posts.map(\.sequence) == [1, 2])
        #expect(stored.posts.map(\.buyerID) == ["a", "b"])
        #expect(stored.posts.map(\.price) == [Money(30), Money(20)])
        #expect(stored.posts.map(\.result) == ["post_rejected", "sold"])
        #expect(stored.posts.map(\.latencyUs) == [40_000, 50_000])
        #expect(stored.posts.map(\.reference) == [nil, "REF-42"])
        #expect(stored.posts.map(\.detail) == ["duplicate lead", nil])
        #expect(stored.events.isEmpty)

        let counts = try store.counts()
        #expect(counts.rounds == 1)
        #expect(counts.sales == 1)
        #expect(counts.buyerRows == 5)
    }

    @Test func unknownRoundIsNil() async throws {
        let database = try TempDatabase()
        let store = try RoundStore(path: database.path)
        defer { store.close() }
        #expect(try await store.round(id: "nope") == nil)
        let counts = try store.counts()
        #expect(counts.rounds == 0 && counts.sales == 0 && counts.buyerRows == 0)
    }

    @Test func unsoldRoundWritesNoSale() async throws {
        let database = try TempDatabase()
        let store = try RoundStore(path: database.path)
        defer { store.close() }
        var round = AuctionRound(id: "r_unsold", payoutRule: .share(basisPoints: 7000), considered: [
            .pinged(.init(buyerID: "a"), tmaxMs: 300),
        ])
        _ = round.receive(.noBid, from: "a", latencyUs: 5)
        _ = round.closeBidding(atMs: Rounds.createdAtMs, method: .auction)
        _ = round.nextPost(atMs: Rounds.createdAtMs, remainingMs: 500, minimumPostMs: 50)
        try await store.record(Rounds.finalRecord(round))
        let stored = try #require(try await store.round(id: "r_unsold"))
        #expect(stored.status == "unsold")
        #expect(stored.winnerID == nil)
        #expect(stored.price == nil)
        #expect(stored.buyers.map(\.reason) == ["no_bid"])
        #expect(stored.posts.isEmpty)
        let counts = try store.counts()
        #expect(counts.rounds == 1)
        #expect(counts.sales == 0)
    }

    @Test func saleNeedsBillable() async throws {
        let database = try TempDatabase()
        let store = try RoundStore(path: database.path)
        defer { store.close() }
        var record = Rounds.simpleSale(id: "r_not_billable")
        record.billable = false
        try await store.record(record)
        #expect(try store.counts().sales == 0)
        try await store.record(Rounds.simpleSale(id: "r_billable"))
        #expect(try store.counts().sales == 1)
        #expect(try store.counts().rounds == 2)
    }

    @Test func capIncrementsAccumulateAcrossRounds() async throws {
        let database = try TempDatabase()
        let store = try RoundStore(path: database.path)
        defer { store.close() }
        func increments(_ price: Money) -> [CapIncrement] {
            ["H:2024-07-10T12", "D:2024-07-10", "M:2024-07"].map { CapIncrement(buyerID: "b", window: $0, count: 1, spend: price) }
        }
        try await store.record(Rounds.simpleSale(id: "r1", price: Money(10), capIncrements: increments(Money(10))))
        try await store.record(Rounds.simpleSale(id: "r2", price: Money(decimal: "12.5")!, capIncrements: increments(Money(decimal: "12.5")!)))
        try await store.record(Rounds.simpleSale(id: "r3", buyerID: "other", capIncrements: [
            CapIncrement(buyerID: "other", window: "D:2024-07-10", count: 1, spend: Money(10)),
            CapIncrement(buyerID: "b", window: "D:2024-07-11", count: 1, spend: Money(1)),
        ]))
        // A negative increment (a reservation given back) subtracts.
        try await store.record(Rounds.simpleSale(id: "r4", capIncrements: [
            CapIncrement(buyerID: "b", window: "M:2024-07", count: -1, spend: Money(-10)),
        ]))
        let counters = try store.capCounters()
        let byKey = Dictionary(uniqueKeysWithValues: counters.map { ("\($0.buyerID)|\($0.window)", $0) })
        #expect(counters.count == 5)
        #expect(byKey["b|H:2024-07-10T12"]?.count == 2)
        #expect(byKey["b|H:2024-07-10T12"]?.spend == Money(decimal: "22.5"))
        #expect(byKey["b|D:2024-07-10"]?.count == 2)
        #expect(byKey["b|D:2024-07-10"]?.spend == Money(decimal: "22.5"))
        #expect(byKey["b|M:2024-07"]?.count == 1)
        #expect(byKey["b|M:2024-07"]?.spend == Money(decimal: "12.5"))
        #expect(byKey["b|D:2024-07-11"]?.count == 1)
        #expect(byKey["other|D:2024-07-10"]?.spend == Money(10))
    }

    @Test func pingedRoundIsReplacedByItsFinalRecord() async throws {
        let database = try TempDatabase()
        let store = try RoundStore(path: database.path)
        defer { store.close() }
        // Phase one: bids held, no reasons yet for the bidders.
        var round = AuctionRound(id: "r_two_phase", payoutRule: .share(basisPoints: 7000), considered: [
            .excluded(buyerID: "geo", reason: .filteredGeo),
            .pinged(.init(buyerID: "a"), tmaxMs: 300),
            .pinged(.init(buyerID: "b"), tmaxMs: 300),
        ])
        _ = round.receive(.bid(price: Money(30), bidID: "x", expiresInS: 60, destination: nil, minDurationS: nil), from: "a", latencyUs: 1)
        _ = round.receive(.bid(price: Money(20), bidID: "y", expiresInS: 60, destination: nil, minDurationS: nil), from: "b", latencyUs: 1)
        _ = round.closeBidding(atMs: Rounds.createdAtMs, method: .auction)
        let pinged = RoundRecord(
            id: "r_two_phase", kind: .lead, sellerID: "seller-one", campaignID: "autos", phase: .pinged, status: "bid",
            createdAtMs: Rounds.createdAtMs, tmaxMs: 800, durationUs: 1_000, leadJSON: #"{"zip":"94107"}"#,
            entries: round.entries, posts: round.posts, openReasons: ["b": "held"]
        )
        try await store.record(pinged)
        let first = try #require(try await store.round(id: "r_two_phase"))
        #expect(first.phase == "pinged")
        #expect(first.status == "bid")
        #expect(first.buyers.map(\.reason) == ["filtered_geo", "bid", "held"])
        #expect(try store.counts().buyerRows == 3)
        #expect(try store.counts().sales == 0)

        // Phase two: the post sells.
        _ = round.nextPost(atMs: Rounds.createdAtMs + 5_000, remainingMs: 500, minimumPostMs: 50)
        _ = round.recordPost(.accepted(reference: "R"), latencyUs: 9)
        try await store.record(Rounds.finalRecord(round, createdAtMs: Rounds.createdAtMs))
        let final = try #require(try await store.round(id: "r_two_phase"))
        #expect(final.phase == "final")
        #expect(final.status == "sold")
        #expect(final.winnerID == "a")
        #expect(final.buyers.map(\.buyerID) == ["geo", "a", "b"])
        #expect(final.buyers.map(\.reason) == ["filtered_geo", "sold", "outbid"])
        #expect(final.posts.map(\.buyerID) == ["a"])
        let counts = try store.counts()
        #expect(counts.rounds == 1)
        #expect(counts.buyerRows == 3)
        #expect(counts.sales == 1)

        // The ping record, kept after a late commit and retried after the post: a no-op, never a
        // step back to `pinged` (which would make the sold ping postable again).
        var late = pinged
        late.isRetry = true
        try await store.record(late)
        #expect(try #require(try await store.round(id: "r_two_phase")).status == "sold")
        #expect(try store.counts().sales == 1)
    }

    @Test func rerecordingABillableRoundDoesNotDuplicateOrFail() async throws {
        let database = try TempDatabase()
        let store = try RoundStore(path: database.path)
        defer { store.close() }
        let record = Rounds.finalRecord(Rounds.soldRound(id: "r_again"))
        try await store.record(record)
        try await store.record(record)
        let counts = try store.counts()
        #expect(counts.rounds == 1)
        #expect(counts.sales == 1)
        #expect(counts.buyerRows == 5)
        #expect(try await store.round(id: "r_again")?.posts.count == 2)
    }

    @Test func concurrentRecordsAllComplete() async throws {
        let database = try TempDatabase()
        let store = try RoundStore(path: database.path)
        defer { store.close() }
        try await withThrowingTaskGroup(of: Void.self) { group in
            for index in 0..<500 {
                group.addTask {
                    try await store.record(Rounds.simpleSale(
                        id: "r_\(index)", createdAtMs: Rounds.createdAtMs + Int64(index), contactHash: "h\(index)",
                        capIncrements: [CapIncrement(buyerID: "b", window: "D:2024-07-10", count: 1, spend: Money(10))]))
                }
            }
            try await group.waitForAll()
        }
        let counts = try store.counts()
        #expect(counts.rounds == 500)
        #expect(counts.sales == 500)
        #expect(counts.buyerRows == 500)
        let counters = try store.capCounters()
        #expect(counters.count == 1)
        #expect(counters.first?.count == 500)
        #expect(counters.first?.spend == Money(5_000))
        for index in [0, 137, 499] {
            let stored = try #require(try await store.round(id: "r_\(index)"))
            #expect(stored.createdAtMs == Rounds.createdAtMs + Int64(index))
            #expect(stored.winnerID == "b")
        }
        #expect(try store.salesWithContact(sinceMs: 0).count == 500)
    }

    @Test func reopeningKeepsEverything() async throws {
        let database = try TempDatabase()
        do {
            let store = try RoundStore(path: database.path, durability: .full)
            try await store.record(Rounds.finalRecord(Rounds.soldRound(id: "r_persist"), capIncrements: [
                CapIncrement(buyerID: "b", window: "D:2024-07-10", count: 1, spend: Money(20)),
            ]))
            try await store.record(Rounds.simpleSale(id: "r_other", contactHash: "hash-other"))
            store.close()
            // After close, the store takes no more rounds.
            await #expect(throws: StoreError.self) { try await store.record(Rounds.simpleSale(id: "r_late")) }
        }
        let reopened = try RoundStore(path: database.path)
        defer { reopened.close() }
        let counts = try reopened.counts()
        #expect(counts.rounds == 2)
        #expect(counts.sales == 2)
        #expect(counts.buyerRows == 6)
        let stored = try #require(try await reopened.round(id: "r_persist"))
        #expect(stored.price == Money(20))
        #expect(stored.buyers.count == 5)
        #expect(stored.posts.count == 2)
        #expect(try await reopened.round(id: "r_late") == nil)
        #expect(try reopened.capCounters() == [CapIncrement(buyerID: "b", window: "D:2024-07-10", count: 1, spend: Money(20))])
        #expect(Set(try reopened.salesWithContact(sinceMs: 0).map(\.contactHash)) == ["hash-jo", "hash-other"])
        // And it takes new rounds.
        try await reopened.record(Rounds.simpleSale(id: "r_new"))
        #expect(try reopened.counts().rounds == 3)
    }

    @Test func salesWithContactSince() async throws {
        let database = try TempDatabase()
        let store = try RoundStore(path: database.path)
        defer { store.close() }
        try await store.record(Rounds.simpleSale(id: "r_old", buyerID: "b1", createdAtMs: 1_000, contactHash: "h-old"))
        try await store.record(Rounds.simpleSale(id: "r_edge", buyerID: "b2", createdAtMs: 5_000, contactHash: "h-edge"))
        try await store.record(Rounds.simpleSale(id: "r_new", buyerID: "b1", createdAtMs: 9_000, contactHash: "h-new"))
        try await store.record(Rounds.simpleSale(id: "r_nohash", buyerID: "b1", createdAtMs: 9_500, contactHash: nil))

        let recent = try store.salesWithContact(sinceMs: 5_000).sorted { $0.soldAtMs < $1.soldAtMs }
        #expect(recent == [
            SaleRecord(buyerID: "b2", contactHash: "h-edge", soldAtMs: 5_000),
            SaleRecord(buyerID: "b1", contactHash: "h-new", soldAtMs: 9_000),
        ])
        #expect(try store.salesWithContact(sinceMs: 0).count == 3)
        #expect(try store.salesWithContact(sinceMs: 9_001).isEmpty)
        #expect(try store.counts().sales == 4)
    }

    @Test func smallAmountsKeepEveryUnit() async throws {
        let database = try TempDatabase()
        let store = try RoundStore(path: database.path)
        defer { store.close() }
        try await store.record(Rounds.simpleSale(id: "r_tiny", price: Money(decimal: "0.0025")!))
        let stored = try #require(try await store.round(id: "r_tiny"))
        #expect(stored.price == Money(units: 25))
        #expect(stored.payout == Money(units: 12))  // 50% of 25 units, rounded down
        #expect(stored.posts.first?.price == Money(units: 25))
    }
}

/// Bounded waits share one deadline timer: each still ends at its own deadline, in deadline order,
/// whatever order they were queued in.
struct RoundStoreDeadlineTests {
    @Test func boundedWaitsEndAtTheirOwnDeadlinesWhileTheWriterIsHeld() async throws {
        let database = try TempDatabase()
        let store = try RoundStore(path: database.path)
        defer { store.close() }
        // Hold SQLite's writer on a thread of its own: nothing the store queues can commit meanwhile.
        let holding = DispatchSemaphore(value: 0)
        let released = DispatchSemaphore(value: 0)
        Thread.detachNewThread {
            try? store.pool.write { _ in
                holding.signal()
                Thread.sleep(forTimeInterval: 0.8)
            }
            released.signal()
        }
        holding.wait()
        // The first write is taken by the writer (which then waits for SQLite); the others stay queued.
        async let first: Void = store.record(Rounds.simpleSale(id: "r_first"))
        try await Task.sleep(for: .milliseconds(50))
        let started = ContinuousClock.now
        func boundedWait(_ id: String, _ timeout: Duration) async -> (ended: Duration, timedOut: Bool) {
            do {
                try await store.record(Rounds.simpleSale(id: id), waitingAtMost: timeout)
                return (started.duration(to: .now), false)
            } catch {
                return (started.duration(to: .now), error.isTimeout)
            }
        }
        async let long = boundedWait("r_long", .milliseconds(400))
        async let short = boundedWait("r_short", .milliseconds(100))
        async let middle = boundedWait("r_middle", .milliseconds(250))
        let (shortEnd, middleEnd, longEnd) = await (short, middle, long)
        #expect(shortEnd.timedOut && middleEnd.timedOut && longEnd.timedOut)
        #expect(shortEnd.ended >= .milliseconds(100) && middleEnd.ended >= .milliseconds(250) && longEnd.ended >= .milliseconds(400))
        #expect(shortEnd.ended < middleEnd.ended && middleEnd.ended < longEnd.ended)
        try await first
        released.wait()
        // Queued writes that timed out were withdrawn: never written. The unbounded one landed.
        #expect(try await store.round(id: "r_first") != nil)
        for id in ["r_short", "r_middle", "r_long"] { #expect(try await store.round(id: id) == nil) }
        // The store goes on as before, bounded waits included.
        try await store.record(Rounds.simpleSale(id: "r_after"), waitingAtMost: .milliseconds(500))
        #expect(try store.counts().rounds == 2)
    }
}

/// Each index is one more page every commit writes whole into the WAL: only indexes a read needs
/// are kept (migration v15).
struct SchemaIndexTests {
    @Test func unusedIndexesAreGoneAndTheSalesWindowLoadsByIndex() async throws {
        let database = try TempDatabase()
        let store = try RoundStore(path: database.path)
        defer { store.close() }
        let (indexes, plan) = try await store.pool.read { db in
            (try String.fetchAll(db, sql: "SELECT name FROM sqlite_master WHERE type = 'index' AND name NOT LIKE 'sqlite_autoindex_%'"),
             try Row.fetchAll(db, sql: """
                EXPLAIN QUERY PLAN SELECT buyer_id, contact_hash, sold_at_ms FROM sales WHERE sold_at_ms >= 1 AND contact_hash IS NOT NULL
                """).map { row -> String in row["detail"] })
        }
        for unused in ["round_buyers_by_buyer", "rounds_by_campaign", "sales_by_contact", "sales_by_buyer"] {
            #expect(!indexes.contains(unused))
        }
        #expect(indexes.contains("rounds_by_time") && indexes.contains("rounds_by_seller"))
        #expect(plan.contains { $0.contains("sales_by_time") })  // was a scan of every sale at start-up
    }
}
