/// A failure of the exchange itself (not of the seller's input): the one case that answers 5xx.
public struct ExchangeError: Error, Sendable, CustomStringConvertible {
    private enum Code: Sendable { case storage, storageTimeout, overloaded, shuttingDown }
    private let code: Code
    public let detail: String

    private init(_ code: Code, _ detail: String) {
        self.code = code
        self.detail = detail
    }

    /// The round could not be committed; the seller must not treat it as sold.
    public static func storage(_ detail: String) -> Self { .init(.storage, detail) }
    /// The commit did not finish within the round's budget: the outcome is not known yet.
    public static func storageTimeout(_ detail: String) -> Self { .init(.storageTimeout, detail) }
    /// Too much in flight to start this round within its budget (CONTRACT v2 "Overload").
    public static func overloaded(_ detail: String) -> Self { .init(.overloaded, detail) }
    public static func shuttingDown() -> Self { .init(.shuttingDown, "the exchange is shutting down") }

    /// The commit was late, not refused: the round may still be recorded.
    public var mayStillCommit: Bool { code == .storageTimeout }

    /// A bounded label, safe for metrics; also the `error.code` of the 503.
    public var shortDescription: String {
        switch code {
        case .storage: return "storage"
        case .storageTimeout: return "storage_timeout"
        case .overloaded: return "overloaded"
        case .shuttingDown: return "shutting_down"
        }
    }

    /// What the seller is told.
    public var message: String {
        switch code {
        case .storage:
            return "the exchange could not record this round, so it does not count; retry later (with the same Idempotency-Key)"
        case .storageTimeout:
            return "the round was not recorded within its budget; retry with the same Idempotency-Key to get its outcome"
        case .overloaded:
            return "the exchange cannot start this round within its budget; retry later"
        case .shuttingDown:
            return "the exchange is shutting down; retry against another node or later"
        }
    }

    public var description: String { "\(shortDescription): \(detail)" }
}
