import Foundation

extension BuyerBehavior {
    /// A distribution of answer delays, in milliseconds.
    ///
    /// JSON form is a one-key object: `{"fixed": {"ms": 10}}`, `{"uniform": {"min_ms": 5, "max_ms": 30}}`
    /// or `{"log_normal": {"p50_ms": 40, "p99_ms": 200}}`.
    public enum Latency: Sendable, Codable, Equatable {
        /// Always the same delay.
        case fixed(ms: Double)
        /// Uniform between the two bounds.
        case uniform(minMs: Double, maxMs: Double)
        /// Log-normal with the given median and 99th percentile: the long right tail real buyers show.
        case logNormal(p50Ms: Double, p99Ms: Double)

        private enum Kind: String, CodingKey {
            case fixed
            case uniform
            case logNormal = "log_normal"
        }

        private enum ParameterKey: String, CodingKey {
            case ms
            case minMs = "min_ms"
            case maxMs = "max_ms"
            case p50Ms = "p50_ms"
            case p99Ms = "p99_ms"
        }

        public init(from decoder: any Decoder) throws {
            let container = try decoder.container(keyedBy: Kind.self)
            guard container.allKeys.count == 1, let kind = container.allKeys.first else {
                throw DecodingError.dataCorrupted(.init(
                    codingPath: decoder.codingPath,
                    debugDescription: "latency needs exactly one of \"fixed\", \"uniform\", \"log_normal\""))
            }
            let p = try container.nestedContainer(keyedBy: ParameterKey.self, forKey: kind)
            switch kind {
            case .fixed:
                self = .fixed(ms: try p.decode(Double.self, forKey: .ms))
            case .uniform:
                self = .uniform(minMs: try p.decode(Double.self, forKey: .minMs),
                                maxMs: try p.decode(Double.self, forKey: .maxMs))
            case .logNormal:
                self = .logNormal(p50Ms: try p.decode(Double.self, forKey: .p50Ms),
                                  p99Ms: try p.decode(Double.self, forKey: .p99Ms))
            }
            if let problem {
                throw DecodingError.dataCorrupted(.init(codingPath: decoder.codingPath, debugDescription: problem))
            }
        }

        public func encode(to encoder: any Encoder) throws {
            var container = encoder.container(keyedBy: Kind.self)
            switch self {
            case .fixed(let ms):
                var p = container.nestedContainer(keyedBy: ParameterKey.self, forKey: .fixed)
                try p.encode(ms, forKey: .ms)
            case .uniform(let minMs, let maxMs):
                var p = container.nestedContainer(keyedBy: ParameterKey.self, forKey: .uniform)
                try p.encode(minMs, forKey: .minMs)
                try p.encode(maxMs, forKey: .maxMs)
            case .logNormal(let p50Ms, let p99Ms):
                var p = container.nestedContainer(keyedBy: ParameterKey.self, forKey: .logNormal)
                try p.encode(p50Ms, forKey: .p50Ms)
                try p.encode(p99Ms, forKey: .p99Ms)
            }
        }

        /// Why these parameters make no sense, or nil when they are fine.
        var problem: String? {
            switch self {
            case .fixed(let ms):
                ms >= 0 ? nil : "fixed latency must not be negative"
            case .uniform(let minMs, let maxMs):
                minMs >= 0 && maxMs >= minMs ? nil : "uniform latency needs 0 <= min_ms <= max_ms"
            case .logNormal(let p50Ms, let p99Ms):
                p50Ms > 0 && p99Ms >= p50Ms ? nil : "log_normal latency needs 0 < p50_ms <= p99_ms"
            }
        }

        /// Draws one delay in milliseconds (never negative).
        func sampleMilliseconds(using rng: inout some RandomNumberGenerator) -> Double {
            switch self {
            case .fixed(let ms):
                return max(0, ms)
            case .uniform(let minMs, let maxMs):
                let low = max(0, min(minMs, maxMs))
                let high = max(0, max(minMs, maxMs))
                return low == high ? low : Double.random(in: low...high, using: &rng)
            case .logNormal(let p50Ms, let p99Ms):
                guard p50Ms > 0 else { return 0 }
                // z(0.99) = 2.3263, so p99 = exp(mu + 2.3263 * sigma).
                let mu = log(p50Ms)
                let sigma = max(0, log(max(p99Ms, p50Ms)) - mu) / 2.3263
                return exp(mu + sigma * Self.standardNormal(using: &rng))
            }
        }

        /// Box–Muller: one standard normal variate from two uniform ones.
        private static func standardNormal(using rng: inout some RandomNumberGenerator) -> Double {
            let u1 = Double.random(in: Double.ulpOfOne...1, using: &rng)
            let u2 = Double.random(in: 0..<1, using: &rng)
            return (-2 * log(u1)).squareRoot() * cos(2 * .pi * u2)
        }
    }
}
