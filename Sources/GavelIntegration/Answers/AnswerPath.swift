import Foundation
import GavelCore

/// Where a value sits in a buyer's answer.
///
/// JSON and XML: a dotted path with array indexes (`result.bids[0].price`, `response.bids.bid[*].@price`;
/// XML paths start with the root element, `@name` is an attribute). `[*]` takes every element: the
/// highest bid of a list wins, and the other values of that bid are read at the same index.
/// Plain text: a regular expression; its first capture group (else the whole match) is the value.
public indirect enum AnswerLocator: Sendable, Hashable {
    case path(AnswerPath)
    case pattern(TextPattern)
    /// The first of these that holds a value (`[phoneNumber, sipAddress]`).
    case first([AnswerLocator])

    func values(in answer: ParsedAnswer) -> [(binding: Int?, value: JSONValue)] {
        if case .first(let alternatives) = self {
            for alternative in alternatives {
                let found = alternative.values(in: answer).filter { !($0.value.templateText ?? "").isEmpty }
                if !found.isEmpty { return found }
            }
            return []
        }
        switch (self, answer) {
        case (.path(let path), .tree(let tree)): return path.values(in: tree)
        case (.pattern(let pattern), .text(let text)): return pattern.firstMatch(in: text).map { [(nil, .string($0))] } ?? []
        default: return []
        }
    }

    /// The value, with `[*]` read at `binding` (the element the winning bid came from).
    func value(in answer: ParsedAnswer, binding: Int?) -> JSONValue? {
        if case .first(let alternatives) = self {
            for alternative in alternatives {
                if let value = alternative.value(in: answer, binding: binding), !(value.templateText ?? "").isEmpty { return value }
            }
            return nil
        }
        switch (self, answer) {
        case (.path(let path), .tree(let tree)): return path.value(in: tree, binding: binding)
        case (.pattern(let pattern), .text(let text)): return pattern.firstMatch(in: text).map(JSONValue.string)
        default: return nil
        }
    }

    var hasWildcard: Bool {
        switch self {
        case .path(let path): return path.hasWildcard
        case .pattern: return false
        case .first(let alternatives): return alternatives.contains(where: \.hasWildcard)
        }
    }
}

/// A buyer answer once read: a JSON or XML tree, or plain text.
enum ParsedAnswer {
    case tree(JSONValue)
    case text(String)
}

public struct AnswerPath: Sendable, Hashable, CustomStringConvertible {
    enum Step: Sendable, Hashable {
        case key(String)
        case index(Int)
        case every
    }

    let steps: [Step]
    public let description: String

    public init(_ text: String) throws(TemplateProblem) {
        var steps: [Step] = []
        for segment in text.split(separator: ".", omittingEmptySubsequences: false) {
            var rest = Substring(segment)
            let bracket = rest.firstIndex(of: "[") ?? rest.endIndex
            let key = rest[..<bracket]
            guard !key.isEmpty else { throw TemplateProblem("", "empty key in path \"\(text)\"") }
            steps.append(.key(String(key)))
            rest = rest[bracket...]
            while !rest.isEmpty {
                guard rest.first == "[", let close = rest.firstIndex(of: "]") else {
                    throw TemplateProblem("", "bad index in path \"\(text)\" (use name[0] or name[*])")
                }
                let inside = rest[rest.index(after: rest.startIndex)..<close]
                if inside == "*" { steps.append(.every) }
                else if let index = Int(inside), index >= 0 { steps.append(.index(index)) }
                else { throw TemplateProblem("", "bad index [\(inside)] in path \"\(text)\"") }
                rest = rest[rest.index(after: close)...]
            }
        }
        guard steps.filter({ $0 == .every }).count <= 1 else { throw TemplateProblem("", "path \"\(text)\" has more than one [*]") }
        self.steps = steps
        self.description = text
    }

    var hasWildcard: Bool { steps.contains(.every) }

    /// Every value the path reaches, with the `[*]` index it came through.
    func values(in root: JSONValue) -> [(binding: Int?, value: JSONValue)] {
        guard let wildcard = steps.firstIndex(of: .every) else {
            return value(in: root, binding: nil).map { [(nil, $0)] } ?? []
        }
        guard let list = AnswerPath.walk(steps[..<wildcard], from: root) else { return [] }
        let elements = AnswerPath.elements(list)
        return elements.enumerated().compactMap { index, element in
            AnswerPath.walk(steps[(wildcard + 1)...], from: element).map { (index, AnswerPath.scalar($0)) }
        }
    }

    func value(in root: JSONValue, binding: Int?) -> JSONValue? {
        let concrete = steps.map { step -> Step in step == .every ? .index(binding ?? 0) : step }
        return AnswerPath.walk(concrete[...], from: root).map(AnswerPath.scalar)
    }

    /// A single value where a list is (`bid` of one element is the element), a list's first element where one value is expected.
    private static func elements(_ value: JSONValue) -> [JSONValue] {
        if case .array(let list) = value { return list }
        return [value]
    }

    private static func walk(_ steps: ArraySlice<Step>, from root: JSONValue) -> JSONValue? {
        var current = root
        for step in steps {
            switch step {
            case .key(let key):
                if case .array(let list) = current, let first = list.first { current = first }
                guard let next = current[key] else { return nil }
                current = next
            case .index(let index):
                let list = elements(current)
                guard index < list.count else { return nil }
                current = list[index]
            case .every:
                return nil
            }
        }
        return current
    }

    /// An XML element with attributes and text reads as its text.
    private static func scalar(_ value: JSONValue) -> JSONValue {
        if case .object(let object) = value, let text = object["#text"] { return text }
        return value
    }
}

/// A regular expression over a plain-text answer.
public struct TextPattern: Sendable, Hashable {
    public let source: String
    private let expression: NSRegularExpressionBox

    public init(_ source: String) throws(TemplateProblem) {
        do {
            expression = NSRegularExpressionBox(try NSRegularExpression(pattern: source, options: []))
        } catch {
            throw TemplateProblem("", "not a valid regular expression: \"\(source)\"")
        }
        self.source = source
    }

    func firstMatch(in text: String) -> String? {
        let range = NSRange(text.startIndex..., in: text)
        guard let match = expression.value.firstMatch(in: text, options: [], range: range) else { return nil }
        let group = match.numberOfRanges > 1 && match.range(at: 1).location != NSNotFound ? match.range(at: 1) : match.range
        return Range(group, in: text).map { String(text[$0]) }
    }

    public static func == (lhs: TextPattern, rhs: TextPattern) -> Bool { lhs.source == rhs.source }
    public func hash(into hasher: inout Hasher) { hasher.combine(source) }
}

/// `NSRegularExpression` is immutable once built and documented as safe to use from many threads.
private final class NSRegularExpressionBox: @unchecked Sendable {
    let value: NSRegularExpression
    init(_ value: NSRegularExpression) { self.value = value }
}

/// A condition on an answer: `accepted:`, `bid_when:`, `error_when:`.
///
/// Text comparisons ignore case (`Success` equals `success`); `>` and `>=` compare numbers.
public indirect enum AnswerRule: Sendable, Hashable {
    case equals(AnswerLocator, String)
    case oneOf(AnswerLocator, Set<String>)
    case exists(AnswerLocator, Bool)
    case greater(AnswerLocator, Double, orEqual: Bool)
    case all([AnswerRule])
    case any([AnswerRule])

    func holds(in answer: ParsedAnswer, binding: Int?) -> Bool {
        func text(_ locator: AnswerLocator) -> String? {
            locator.value(in: answer, binding: binding).flatMap(\.templateText)?.trimmed
        }
        switch self {
        case .equals(let locator, let expected):
            return text(locator)?.lowercased() == expected.lowercased()
        case .oneOf(let locator, let options):
            guard let value = text(locator)?.lowercased() else { return false }
            return options.contains { $0.lowercased() == value }
        case .exists(let locator, let expected):
            let present = text(locator).map { !$0.isEmpty } ?? false
            return present == expected
        case .greater(let locator, let bound, let orEqual):
            guard let value = text(locator).flatMap({ Double($0.filter { $0 != "$" && $0 != "," }) }) else { return false }
            return orEqual ? value >= bound : value > bound
        case .all(let rules): return rules.allSatisfy { $0.holds(in: answer, binding: binding) }
        case .any(let rules): return rules.contains { $0.holds(in: answer, binding: binding) }
        }
    }
}
