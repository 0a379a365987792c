/// A storage failure. The code set is private so cases can be added without breaking callers.
public struct StoreError: Error, Sendable, CustomStringConvertible {
    private enum Code: Sendable { case open, migrate, write, read, closed, timeout }
    private let code: Code
    public let detail: String

    private init(_ code: Code, _ detail: String) {
        self.code = code
        self.detail = detail
    }

    public static func open(_ detail: String) -> Self { .init(.open, detail) }
    public static func migrate(_ detail: String) -> Self { .init(.migrate, detail) }
    public static func write(_ detail: String) -> Self { .init(.write, detail) }
    public static func read(_ detail: String) -> Self { .init(.read, detail) }
    public static func closed() -> Self { .init(.closed, "the store is closed") }
    /// The commit did not finish within the caller's wait; it may still commit later.
    public static func timeout(_ detail: String) -> Self { .init(.timeout, detail) }

    /// Whether the write may still commit (the caller stopped waiting, nothing failed).
    public var isTimeout: Bool { code == .timeout }

    /// A bounded label, safe for metrics.
    public var shortDescription: String {
        switch code {
        case .open: return "open"
        case .migrate: return "migrate"
        case .write: return "write"
        case .read: return "read"
        case .closed: return "closed"
        case .timeout: return "timeout"
        }
    }

    public var description: String { "store \(shortDescription) failed: \(detail)" }
}
