/// A seller request the exchange will not run: always a 4xx, naming the field at fault.
public struct RequestError: Error, Hashable, Sendable, CustomStringConvertible {
    /// The HTTP status to answer with.
    public var status: Int
    /// A stable machine-readable code (`missing_field`, `ping_expired`, ...).
    public var code: String
    public var message: String
    /// The JSON path of the field at fault (`lead.zip`), when one is.
    public var field: String?
    /// For 429: seconds until a retry can succeed (`Retry-After`).
    public var retryAfterS: Int?

    public init(status: Int, code: String, message: String, field: String? = nil, retryAfterS: Int? = nil) {
        self.status = status
        self.code = code
        self.message = message
        self.field = field
        self.retryAfterS = retryAfterS
    }

    public static func invalid(_ field: String, _ message: String, code: String = "invalid_field") -> Self {
        .init(status: 422, code: code, message: message, field: field)
    }
    public static func missing(_ field: String) -> Self {
        .init(status: 422, code: "missing_field", message: "\(field) is required", field: field)
    }
    public static let unauthorized = RequestError(
        status: 401, code: "unauthorized", message: "send Authorization: Bearer <seller API key>")
    public static func notFound(_ what: String) -> Self { .init(status: 404, code: "not_found", message: "\(what) not found") }

    public var description: String { "\(status) \(code): \(message)" + (field.map { " (\($0))" } ?? "") }
}
