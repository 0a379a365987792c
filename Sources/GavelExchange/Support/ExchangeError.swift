/// A failure of the exchange itself (not of the seller's input): the one case that answers 5xx.
public struct ExchangeError: Error, Sendable, CustomStringConvertible {
    private enum Code: Sendable { case storage, shuttingDown }
    private let code: Code
    public let detail: String

    private init(_ code: Code, _ detail: String) {
        self.code = code
        self.detail = detail
    }

    /// The round could not be committed; the seller must not treat it as sold.
    public static func storage(_ detail: String) -> Self { .init(.storage, detail) }
    public static func shuttingDown() -> Self { .init(.shuttingDown, "the exchange is shutting down") }

    public var shortDescription: String {
        switch code {
        case .storage: return "storage"
        case .shuttingDown: return "shutting_down"
        }
    }

    public var description: String { "\(shortDescription): \(detail)" }
}
