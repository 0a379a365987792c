import Testing
@testable import GavelCore

struct AuctionIDTests {
    static let alphabet = Set("0123456789ABCDEFGHJKMNPQRSTVWXYZ")

    @Test func prefixAndLength() {
        let id = AuctionID.make(prefix: "rnd_", nowMs: 1_720_612_800_000)
        #expect(id.hasPrefix("rnd_"))
        #expect(id.count == 4 + 26)
        #expect(id.dropFirst(4).allSatisfy { Self.alphabet.contains($0) })
        let bare = AuctionID.make(prefix: "", nowMs: 0)
        #expect(bare.count == 26)
    }

    @Test func timeIsEncodedLikeULID() {
        // The ULID spec's example: 1469918176385 ms -> 01ARYZ6S41.
        let id = AuctionID.make(prefix: "", nowMs: 1_469_918_176_385)
        #expect(id.prefix(10) == "01ARYZ6S41")
        #expect(AuctionID.make(prefix: "p", nowMs: 0).dropFirst().prefix(10) == "0000000000")
        // 2^48 - 1, the largest time that fits.
        #expect(AuctionID.make(prefix: "", nowMs: 281_474_976_710_655).prefix(10) == "7ZZZZZZZZZ")
    }

    @Test func unique() {
        var seen = Set<String>()
        for _ in 0..<5_000 { seen.insert(AuctionID.make(prefix: "r_", nowMs: 1_700_000_000_000)) }
        #expect(seen.count == 5_000)
    }

    @Test func sortsByTime() {
        let times: [Int64] = [1_700_000_000_000, 1_700_000_000_001, 1_700_000_001_000, 1_800_000_000_000, 2_000_000_000_000]
        for _ in 0..<50 {
            let ids = times.map { AuctionID.make(prefix: "r_", nowMs: $0) }
            #expect(ids == ids.sorted())
        }
    }
}
