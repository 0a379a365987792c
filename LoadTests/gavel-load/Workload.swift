/// One kind of request the generator can fire: a seller lead against the exchange, or a raw
/// fan-out straight to the buyers. The generator decides *when*; the workload decides *what*.
protocol Workload: Sendable {
    /// Performs request number `index` (0, 1, 2, … within a step) and reports how it ended.
    /// Must never throw or hang past its own timeout: a failure is an ``Outcome`` too.
    func perform(_ index: Int) async -> Outcome

    /// Samples the form of shed answers, headers included, while the exchange sheds; nil for
    /// workloads that start no rounds at the exchange.
    var shedProbe: ShedProbe? { get }
}

extension Workload {
    var shedProbe: ShedProbe? { nil }
}

/// How one request ended, as the generator records it.
struct Outcome: Sendable {
    enum Status: Sendable, Equatable {
        case sold
        case unsold
        /// Refused at once with 503 `overloaded` (CONTRACT v2): the exchange shed the round before
        /// starting it. Not an error: past saturation that is the answer asked for.
        case shed
        /// No usable answer; the label is bounded (`http_503`, `timeout`, `bad_answer`, …).
        case failed(String)
    }

    var status: Status
    /// The exchange's `auction_id`, kept for the read-back sample.
    var auctionID: String?
    /// Buyer pings this request caused, when the workload knows (raw fan-out); nil otherwise.
    var pings: Int?
    /// Pings that got no usable answer (raw fan-out only): timeouts, resets, garbage.
    var failedPings: Int = 0

    static func failed(_ label: String) -> Outcome { Outcome(status: .failed(label)) }
}
