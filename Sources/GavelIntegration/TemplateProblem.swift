/// A mistake in a buyer template, found when the template is built (never while a round runs).
/// `path` is relative to the part being built (`ping.body.fields.Zip`); the config loader adds the file.
public struct TemplateProblem: Error, Sendable, Hashable, CustomStringConvertible {
    public var path: String
    public var message: String

    public init(_ path: String, _ message: String) {
        self.path = path
        self.message = message
    }

    public var description: String { "\(path): \(message)" }
}

/// Collects every problem of a template instead of stopping at the first.
struct ProblemList {
    var problems: [TemplateProblem] = []

    mutating func add(_ path: String, _ message: String) { problems.append(TemplateProblem(path, message)) }

    /// Runs `build`, keeping its problem; nil when it failed.
    mutating func attempt<T>(_ build: () throws(TemplateProblem) -> T) -> T? {
        do { return try build() } catch {
            problems.append(error)
            return nil
        }
    }
}
