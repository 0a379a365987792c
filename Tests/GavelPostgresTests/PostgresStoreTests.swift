import Foundation
@testable import GavelCore
@testable import GavelPostgres
@testable import GavelStore
import Testing

/// The store protocols on PostgreSQL: the same rows and answers as `RoundStore` (SQLite).
@Suite(.enabled(if: PG.enabled, Comment(rawValue: PG.skipped)))
struct PostgresStoreTests {
    @Test func soldRoundReadsBackAsSQLiteDoes() async throws {
        let sqlite = try TempSQLite()
        try await PG.withStore { store in
            var record = Rounds.finalRecord(Rounds.soldRound(id: "r_sold"))
            record.consentJSON = #"{"tcpa":true}"#
            record.source = "google"
            record.rotation = 3
            record.capIncrements = [CapIncrement(buyerID: "b", window: "D:2024-07-10", count: 1, spend: Money(20))]
            record.answer = StoredAnswer(scope: "s1|POST|/v1/leads|k1", bodyHash: "h", status: 200, response: "{\"ok\":1}\n",
                                         roundID: "r_sold", createdAtMs: Rounds.createdAtMs)
            try await store.record(record)
            try await sqlite.store.record(record)
            let stored = try #require(try await store.round(id: "r_sold"))
            #expect(text(stored) == text(try await sqlite.store.round(id: "r_sold")))
            #expect(stored.buyers.map(\.reason) == ["capped", "post_rejected", "sold", "outbid", "timeout"])
            #expect(stored.posts.map(\.buyerID) == ["a", "b"])
            #expect(stored.price == Money(20))
            #expect(try await store.round(id: "nope") == nil)
            #expect(try await store.answer(scope: "s1|POST|/v1/leads|k1", notBeforeMs: 0)?.response == "{\"ok\":1}\n")
            #expect(try await store.answer(scope: "s1|POST|/v1/leads|k1", notBeforeMs: Rounds.createdAtMs + 1) == nil)
            #expect(try await store.rotations() == ["autos": 3])
            #expect(try await store.capCounters() == [CapIncrement(buyerID: "b", window: "D:2024-07-10", count: 1, spend: Money(20))])
            #expect(try await store.salesWithContact(sinceMs: 0) == [SaleRecord(buyerID: "b", contactHash: "hash-jo", soldAtMs: Rounds.createdAtMs)])
            let sale = try #require(try await store.sale(roundID: "r_sold"))
            #expect(sale.price == Money(20))
            #expect(sale.source == "google")
            // Re-recording books nothing twice.
            try await store.record(record)
            let counts = try await store.counts()
            #expect(counts.rounds == 1 && counts.sales == 1 && counts.buyerRows == 5)
            #expect(try await store.capCounters().first?.count == 2)
            // A retry of a round that landed is a no-op.
            var retry = record
            retry.isRetry = true
            try await store.record(retry)
            #expect(try await store.capCounters().first?.count == 2)
        }
    }

    @Test func pingedRoundIsReplacedByItsFinalRecord() async throws {
        let sqlite = try TempSQLite()
        try await PG.withStore { store in
            var round = AuctionRound(id: "r_two_phase", payoutRule: .share(basisPoints: 7000), considered: [
                .excluded(buyerID: "geo", reason: .filteredGeo),
                .pinged(.init(buyerID: "a"), tmaxMs: 300),
                .pinged(.init(buyerID: "b"), tmaxMs: 300),
            ])
            _ = round.receive(.bid(price: Money(30), bidID: "x", expiresInS: 60, destination: nil, minDurationS: nil), from: "a", latencyUs: 1)
            _ = round.receive(.bid(price: Money(20), bidID: "y", expiresInS: 60, destination: nil, minDurationS: nil), from: "b", latencyUs: 1)
            _ = round.closeBidding(atMs: Rounds.createdAtMs, method: .auction)
            var pinged = RoundRecord(
                id: "r_two_phase", kind: .lead, sellerID: "seller-one", campaignID: "autos", phase: .pinged, status: "bid",
                createdAtMs: Rounds.createdAtMs, tmaxMs: 800, durationUs: 1_000, leadJSON: #"{"zip":"94107"}"#,
                contactJSON: #"{"email":"x@example.com"}"#, consentJSON: #"{"tcpa":true}"#,
                entries: round.entries, posts: round.posts, openReasons: ["b": "held"]
            )
            pinged.liveState = LiveState(roundID: "r_two_phase", kind: .held, snapshot: "{}", expiresAtMs: Rounds.createdAtMs + 60_000)
            for target in [store as any ExchangeStore, sqlite.store] { try await target.record(pinged) }
            let first = try #require(try await store.round(id: "r_two_phase"))
            #expect(first.buyers.map(\.reason) == ["filtered_geo", "bid", "held"])
            #expect(text(first) == text(try await sqlite.store.round(id: "r_two_phase")))
            let live = try await store.liveStates(nowMs: Rounds.createdAtMs)
            #expect(live.map(\.consentJSON) == [#"{"tcpa":true}"#])

            _ = round.nextPost(atMs: Rounds.createdAtMs + 5_000, remainingMs: 500, minimumPostMs: 50)
            _ = round.recordPost(.accepted(reference: "R"), latencyUs: 9)
            var final = Rounds.finalRecord(round)
            final.contactJSON = nil
            for target in [store as any ExchangeStore, sqlite.store] { try await target.record(final) }
            let stored = try #require(try await store.round(id: "r_two_phase"))
            #expect(stored.buyers.map(\.reason) == ["filtered_geo", "sold", "outbid"])
            #expect(text(stored) == text(try await sqlite.store.round(id: "r_two_phase")))
            // The final record ends the live state; the contact stays (never cascaded away).
            #expect(try await store.liveStates(nowMs: Rounds.createdAtMs).isEmpty)
            let purchases = try await store.purchases(buyerID: "a", startMs: 0, endMs: .max, after: nil, limit: 10)
            #expect(purchases.map(\.contactJSON) == [#"{"email":"x@example.com"}"#])

            // The ping record, kept after a late commit and retried after the post: a no-op, never
            // a step back to `pinged` with its bids held again (the sold ping postable twice).
            var late = pinged
            late.isRetry = true
            try await store.record(late)
            #expect(try #require(try await store.round(id: "r_two_phase")).status == "sold")
            #expect(try await store.liveStates(nowMs: Rounds.createdAtMs).isEmpty)
        }
    }

    @Test func concurrentRecordsAllCommit() async throws {
        try await PG.withStore { store in
            try await withThrowingTaskGroup(of: Void.self) { group in
                for index in 0..<300 {
                    group.addTask {
                        try await store.record(Rounds.simpleSale(id: "r_\(index)", buyerID: "b\(index % 3)",
                                                                 capIncrements: [CapIncrement(buyerID: "b\(index % 3)", window: "D:x", count: 1,
                                                                                              spend: Money(10))]))
                    }
                }
                try await group.waitForAll()
            }
            let counts = try await store.counts()
            #expect(counts.rounds == 300 && counts.sales == 300 && counts.buyerRows == 300)
            #expect(try await store.capCounters().map(\.count).reduce(0, +) == 300)
            #expect(try await store.capCounters().map(\.spend).reduce(Money.zero, +) == Money(3_000))
        }
    }

    @Test func postIntentsResolveOnlyThisNodesAndStaleOnes() async throws {
        let schema = PG.freshSchema()
        let a = try await PG.store(schema: schema, nodeID: "node-a")
        let b = try await PG.store(schema: schema, nodeID: "node-b")
        let now = Rounds.createdAtMs + 1_000
        try await a.record(Rounds.intent("r_a", scope: "s|POST|/v1/leads|ka"))
        try await b.record(Rounds.intent("r_b", sentAtMs: now - 1_000))            // b's, fresh: b's post in flight
        try await b.record(Rounds.intent("r_old", sentAtMs: now - 120_000))        // b's, long ago
        try await a.record(Rounds.intent("r_done"))
        try await a.record(Rounds.simpleSale(id: "r_done"))                          // recorded: its intent is gone
        #expect(Set(try await a.openPostIntents().map(\.roundID)) == ["r_a", "r_b", "r_old"])
        #expect(try await a.postIntentNode(roundID: "r_b") == "node-b")

        let resolved = try await a.resolveUnknownPosts(nowMs: now)
        #expect(Set(resolved.map(\.roundID)) == ["r_a", "r_old"])
        #expect(try await a.openPostIntents().map(\.roundID) == ["r_b"])
        let round = try #require(try await a.round(id: "r_a"))
        #expect(round.status == "post_unknown" && round.phase == "final")
        #expect(round.posts.map(\.result) == ["post_unknown"])
        #expect(try await a.postUnknownCount() == 2)
        #expect(try await a.answer(scope: "s|POST|/v1/leads|ka", notBeforeMs: 0)?.status == 409)
        #expect(try await a.capCounters() == [CapIncrement(buyerID: "b", window: "D:2024-07-10", count: 2, spend: Money(24))])
        #expect(Set(try await a.salesWithContact(sinceMs: 0).map(\.contactHash)) == ["hash-x"])
        await a.closed()
        await b.closed()
    }

    @Test func liveStateDNIAndSweeps() async throws {
        try await PG.withStore { store in
            var call = Rounds.simpleSale(id: "call_1")
            call.phase = .live
            call.billable = false
            call.liveState = LiveState(roundID: "call_1", kind: .call, snapshot: #"{"s":1}"#, expiresAtMs: 2_000)
            try await store.record(call)
            try await store.record(StoredDNISession(number: "+15550001", sessionID: "v1", campaignID: "c", visitJSON: "{}", expiresAtMs: 1_500))
            try await store.record(StoredDNISession(number: "+15550001", sessionID: "v2", campaignID: "c", visitJSON: "{}", expiresAtMs: 3_000))
            #expect(try await store.dniSessions(nowMs: 1_000).map(\.sessionID) == ["v2"])
            #expect(try await store.liveStates(nowMs: 1_000).map(\.snapshot) == [#"{"s":1}"#])
            #expect(try await store.sweepLiveState(nowMs: 2_500) == 1)
            #expect(try await store.liveStates(nowMs: 0).isEmpty)
            #expect(try await store.sweepLiveState(nowMs: 3_500) == 1)
            try await store.record(StoredAnswer(scope: "old", bodyHash: "h", status: 422, response: "{}", roundID: nil, createdAtMs: 10))
            try await store.record(StoredAnswer(scope: "new", bodyHash: "h", status: 422, response: "{}", roundID: nil, createdAtMs: 100))
            #expect(try await store.sweepAnswers(beforeMs: 50) == 1)
            #expect(try await store.answer(scope: "new", notBeforeMs: 0) != nil)
        }
    }

    @Test func pausesRecordingsRotationsAndTheHashKey() async throws {
        let schema = PG.freshSchema()
        let a = try await PG.store(schema: schema, nodeID: "node-a")
        let b = try await PG.store(schema: schema, nodeID: "node-b")
        try await a.setPortalPause(buyerID: "x", paused: true, atMs: 1)
        try await a.setPortalPause(buyerID: "x", paused: true, atMs: 2)
        try await a.setPortalPause(buyerID: "y", paused: true, atMs: 2)
        try await a.setPortalPause(buyerID: "y", paused: false, atMs: 3)
        #expect(try await b.portalPauses() == ["x"])
        var call = Rounds.simpleSale(id: "call_r")
        call.kind = .call
        try await a.record(call)
        try await a.attachRecording(roundID: "call_r", url: "https://rec/1", atMs: 1)
        try await a.attachRecording(roundID: "call_r", url: "https://rec/2", atMs: 2)
        #expect(try await b.round(id: "call_r")?.recordingURL == "https://rec/2")
        // Rotations: the highest written wins, whatever the order of commits.
        for (id, rotation) in [("r1", 5), ("r2", 2), ("r3", 7), ("r4", 6)] {
            var record = Rounds.simpleSale(id: id)
            record.rotation = rotation
            try await a.record(record)
        }
        #expect(try await b.rotations() == ["autos": 7])
        // Two nodes starting together agree on one hash key.
        async let keyA = a.hashKey()
        async let keyB = b.hashKey()
        let (first, second) = try await (keyA, keyB)
        #expect(first == second && first.count == 64)
        #expect(try await a.hashKey() == first)
        await a.closed()
        await b.closed()
    }

    @Test func outcomeTalliesMatchSQLite() async throws {
        let sqlite = try TempSQLite()
        try await PG.withStore { store in
            func post(_ buyerID: String, _ result: ReasonCode) -> AuctionRound.PostAttempt {
                AuctionRound.PostAttempt(buyerID: buyerID, price: Money(10), result: result, latencyUs: 1_000)
            }
            func lead(_ id: String, _ posts: [AuctionRound.PostAttempt]) -> RoundRecord {
                RoundRecord(id: id, kind: .lead, sellerID: "s", campaignID: "autos", phase: .final, status: "unsold",
                            createdAtMs: Rounds.createdAtMs, tmaxMs: 800, durationUs: 1, leadJSON: "{}", entries: [], posts: posts)
            }
            func call(_ id: String, _ status: String) -> RoundRecord {
                RoundRecord(id: id, kind: .call, sellerID: "s", campaignID: "calls", phase: .final, status: status,
                            createdAtMs: Rounds.createdAtMs, tmaxMs: 800, durationUs: 1, winnerID: "a", price: Money(30), leadJSON: "{}",
                            entries: [], posts: [post("a", .sold)])
            }
            let records = [
                lead("l1", [post("a", .postRejected), post("b", .sold)]),
                lead("l2", [post("a", .postFailed), post("b", .postTimeout), post("c", .sold)]),
                lead("l3", [post("a", .postUnknown)]),
                call("c1", "converted"), call("c2", "not_converted"), call("c3", "abandoned"),
            ]
            for record in records {
                try await store.record(record)
                try await sqlite.store.record(record)
            }
            func key(_ tallies: [OutcomeTally]) -> [String] { tallies.map { "\($0.kind)/\($0.buyerID)=\($0.trials)/\($0.successes)" }.sorted() }
            let tallies = try await store.outcomeTallies(sinceMs: 0)
            #expect(key(tallies) == key(try sqlite.store.outcomeTallies(sinceMs: 0)))
            #expect(key(tallies).contains("lead/a=2/0"))
        }
    }

    @Test func booksReturnsAdjustmentsAndReports() async throws {
        let sqlite = try TempSQLite()
        try await PG.withStore { store in
            var sold = Rounds.simpleSale(id: "r_book", buyerID: "b", price: Money(40))
            sold.source = "google"
            let unsold = Rounds.finalRecord(AuctionRound(id: "r_none", payoutRule: .share(basisPoints: 5000), considered: []))
            for record in [sold, unsold] {
                try await store.record(record)
                try await sqlite.store.record(record)
            }
            let sale = try #require(try await store.sale(roundID: "r_book"))
            #expect(sale.price == Money(40) && sale.payout == Money(20) && sale.returned == nil)
            let booked = BookedReturn(returnID: "ret_1", reason: "bad_lead", note: "wrong number", atMs: Rounds.createdAtMs + 3_600_000,
                                      credited: Money(40), payoutReversed: Money(20))
            let entry = ReturnEntry(sale: sale, booked: booked,
                                    budgetCredit: CapIncrement(buyerID: "b", window: "D:2024-07-10", count: 0, spend: Money(-40)))
            for target in [store as any ExchangeStore, sqlite.store] {
                #expect(try await target.record(entry) == .recorded)
            }
            // A second return books nothing.
            var again = entry
            again.booked.returnID = "ret_2"
            #expect(try await store.record(again) == .alreadyReturned(booked))
            #expect(try await store.sale(roundID: "r_book")?.returned == booked)
            let adjustment = Adjustment(adjustmentID: "adj_1", operatorID: "op", atMs: Rounds.createdAtMs + 60_000, campaignID: "autos",
                                        sellerID: "seller-one", buyerID: nil, revenue: Money(-5), payout: Money(0), note: "goodwill")
            try await store.record(adjustment)
            try await sqlite.store.record(adjustment)

            let range = (Rounds.createdAtMs - 86_400_000, Rounds.createdAtMs + 86_400_000)
            func sorted(_ slices: [BookSlice]) -> [String] { slices.map { "\($0)" }.sorted() }
            #expect(sorted(try await store.bookSlices(startMs: range.0, endMs: range.1))
                    == sorted(try await sqlite.store.bookSlices(startMs: range.0, endMs: range.1)))
            #expect(try await store.buyerActivity(startMs: range.0, endMs: range.1)
                    == (try await sqlite.store.buyerActivity(startMs: range.0, endMs: range.1)))
            #expect(try await store.sellerActivity(startMs: range.0, endMs: range.1, sellerID: "seller-one")
                    == (try await sqlite.store.sellerActivity(startMs: range.0, endMs: range.1, sellerID: "seller-one")))
            #expect(try await store.purchases(buyerID: "b", startMs: range.0, endMs: range.1, after: nil, limit: 5)
                    == (try await sqlite.store.purchases(buyerID: "b", startMs: range.0, endMs: range.1, after: nil, limit: 5)))
            #expect(try await store.capCounters().first?.spend == Money(-40))
            // The ledger is append-only.
            await #expect(throws: StoreError.self) {
                try await store.write("tamper") { connection in try await connection.run("UPDATE ledger SET revenue = 0") }
            }
            await #expect(throws: StoreError.self) {
                try await store.write("tamper") { connection in try await connection.run("DELETE FROM ledger") }
            }
            #expect(try await store.sale(roundID: "r_book")?.price == Money(40))
            // The dashboard reads.
            #expect(try await store.roundCounts(fromMs: range.0, toMs: range.1) == (try await sqlite.store.roundCounts(fromMs: range.0, toMs: range.1)))
            #expect(try await store.recentRounds(limit: 5).map(\.id).sorted() == ["r_book", "r_none"])
            let activity = try await store.activity(sinceMs: range.0)
            #expect(activity.rounds == 2 && activity.sold == 1)
        }
    }
}
