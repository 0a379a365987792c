/// One kind of request the generator can fire: a seller lead against the exchange, or a raw
/// fan-out straight to the buyers. The generator decides *when*; the workload decides *what*.
protocol Workload: Sendable {
    /// Performs request number `index` (0, 1, 2, … within a step) and reports how it ended.
    /// Must never throw or hang past its own timeout: a failure is an ``Outcome`` too.
    func perform(_ index: Int) async -> Outcome
}

/// How one request ended, as the generator records it.
struct Outcome: Sendable {
    enum Status: Sendable, Equatable {
        case sold
        case unsold
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
