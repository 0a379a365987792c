import Foundation
import GavelCore
import Yams

/// Collects problems while a config file is read, so validation reports all of them at once.
final class ProblemLog {
    var problems: [ConfigProblem] = []
    let environment: [String: String]

    init(environment: [String: String]) { self.environment = environment }
}

/// A field of a YAML document at a known path, with typed readers that log what is wrong.
struct YAMLField {
    let node: Node?
    let file: String
    let path: String
    let log: ProblemLog

    func problem(_ message: String, at path: String? = nil) {
        log.problems.append(ConfigProblem(file: file, path: path ?? self.path, message: message))
    }

    var isPresent: Bool {
        guard let node else { return false }
        if case .scalar(let scalar) = node, scalar.style == .plain, ["", "~", "null"].contains(scalar.string) { return false }
        return true
    }

    func child(_ key: String) -> YAMLField {
        let childPath = path.isEmpty ? key : "\(path).\(key)"
        guard let mapping = node?.mapping else { return YAMLField(node: nil, file: file, path: childPath, log: log) }
        // Quoted and plain keys alike ("Lead_ID" and Lead_ID name the same field).
        let value = mapping[Node(key)] ?? mapping.first(where: { $0.key.string == key })?.value
        return YAMLField(node: value, file: file, path: childPath, log: log)
    }

    /// The mapping's fields; keys not in `known` are reported, because a typo must not be silently ignored.
    func mapping(known: Set<String>) -> Bool {
        guard let node else { return false }
        guard let mapping = node.mapping else {
            problem("must be a mapping of fields")
            return false
        }
        for (key, _) in mapping {
            guard let name = key.string else { continue }
            if !known.contains(name) {
                problem("unknown field (known: \(known.sorted().joined(separator: ", ")))", at: path.isEmpty ? name : "\(path).\(name)")
            }
        }
        return true
    }

    func elements() -> [YAMLField] {
        guard let node, isPresent else { return [] }
        guard case .sequence(let sequence) = node else {
            problem("must be a list")
            return []
        }
        return sequence.enumerated().map { index, element in
            YAMLField(node: element, file: file, path: "\(path)[\(index)]", log: log)
        }
    }

    /// Scalar text with `${NAME}` and `${NAME:-default}` taken from the environment.
    func string(required: Bool = false) -> String? {
        guard isPresent, let node else {
            if required { problem("is required") }
            return nil
        }
        guard case .scalar(let scalar) = node else {
            problem("must be a single value")
            return nil
        }
        return expandEnvironment(scalar.string)
    }

    private func expandEnvironment(_ text: String) -> String? {
        guard text.contains("${") else { return text }
        var output = ""
        var rest = Substring(text)
        while let start = rest.range(of: "${") {
            output += rest[..<start.lowerBound]
            guard let end = rest[start.upperBound...].firstIndex(of: "}") else {
                problem("unterminated ${ in value")
                return nil
            }
            let reference = rest[start.upperBound..<end]
            let name: Substring
            let fallback: Substring?
            if let separator = reference.range(of: ":-") {
                name = reference[..<separator.lowerBound]
                fallback = reference[separator.upperBound...]
            } else {
                name = reference
                fallback = nil
            }
            if let value = log.environment[String(name)], !value.isEmpty {
                output += value
            } else if let fallback {
                output += fallback
            } else {
                problem("environment variable \(name) is not set")
                return nil
            }
            rest = rest[rest.index(after: end)...]
        }
        return output + rest
    }

    func int(required: Bool = false, range: ClosedRange<Int>) -> Int? {
        guard let text = string(required: required) else { return nil }
        guard let value = Int(text) else {
            problem("must be a whole number, got \"\(text)\"")
            return nil
        }
        guard range.contains(value) else {
            problem("must be between \(range.lowerBound) and \(range.upperBound), got \(value)")
            return nil
        }
        return value
    }

    func bool() -> Bool? {
        guard let text = string() else { return nil }
        switch text.lowercased() {
        case "true", "yes", "on": return true
        case "false", "no", "off": return false
        default:
            problem("must be true or false, got \"\(text)\"")
            return nil
        }
    }

    func money(required: Bool = false) -> Money? {
        guard let text = string(required: required) else { return nil }
        guard let money = Money(decimal: text) else {
            problem("must be an amount >= 0 with at most 4 decimals, got \"\(text)\"")
            return nil
        }
        return money
    }

    func stringList() -> [String] {
        elements().compactMap { $0.string(required: true) }
    }

    func stringMap() -> [String: String] {
        guard isPresent, let mapping = node?.mapping else {
            if isPresent { problem("must be a mapping of names to values") }
            return [:]
        }
        var result: [String: String] = [:]
        // By pair, not by looking the key up again: a quoted key ("true") is not equal to a plain one.
        for (key, value) in mapping {
            guard let name = key.string else { continue }
            let field = YAMLField(node: value, file: file, path: path.isEmpty ? name : "\(path).\(name)", log: log)
            if let text = field.string(required: true) { result[name] = text }
        }
        return result
    }

    func oneOf<T: RawRepresentable>(_ type: T.Type, default defaultValue: T) -> T where T.RawValue == String, T: CaseIterable {
        guard let text = string() else { return defaultValue }
        guard let value = T(rawValue: text) else {
            problem("must be one of \(T.allCases.map(\.rawValue).joined(separator: ", ")), got \"\(text)\"")
            return defaultValue
        }
        return value
    }
}
