/// xoshiro256** seeded through SplitMix64: fast, and repeatable for a given seed
/// (the system generator cannot be seeded).
struct SeededGenerator: RandomNumberGenerator, Sendable {
    private var s: (UInt64, UInt64, UInt64, UInt64)

    init(seed: UInt64) {
        var splitMix = seed
        func nextSplitMix() -> UInt64 {
            splitMix &+= 0x9E37_79B9_7F4A_7C15
            var z = splitMix
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }
        s = (nextSplitMix(), nextSplitMix(), nextSplitMix(), nextSplitMix())
    }

    /// A generator for one buyer: a fleet-wide seed mixed with a stable hash of the buyer id, so
    /// buyers draw independent streams (Swift's `Hasher` is randomized per process, hence FNV-1a).
    init(seed: UInt64, buyer: String) {
        var hash: UInt64 = 0xCBF2_9CE4_8422_2325
        for byte in buyer.utf8 {
            hash = (hash ^ UInt64(byte)) &* 0x0000_0100_0000_01B3
        }
        self.init(seed: seed ^ hash)
    }

    mutating func next() -> UInt64 {
        let result = rotateLeft(s.1 &* 5, 7) &* 9
        let t = s.1 << 17
        s.2 ^= s.0
        s.3 ^= s.1
        s.1 ^= s.2
        s.0 ^= s.3
        s.2 ^= t
        s.3 = rotateLeft(s.3, 45)
        return result
    }

    private func rotateLeft(_ x: UInt64, _ k: UInt64) -> UInt64 {
        (x << k) | (x >> (64 - k))
    }
}

extension RandomNumberGenerator {
    /// True with probability `p`; exactly never at 0 and always at 1.
    mutating func chance(_ p: Double) -> Bool {
        p >= 1 || (p > 0 && Double.random(in: 0..<1, using: &self) < p)
    }
}
