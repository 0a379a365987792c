import Foundation
import GavelCore
import GavelIntegration
import Yams

/// Buyer integrations in YAML: `template:` files, request templates, answer formats and rules.
/// See the README, "Connecting a buyer without code".
extension ConfigLoader {
    /// The keys an endpoint (`ping:`, `post:`) may have.
    static let endpointKeys: Set<String> = ["url", "timeout_ms", "headers", "method", "query", "body", "response", "test_url"]

    // MARK: Templates (`template: NAME`)

    /// The buyer's document laid over `templates/NAME.yaml`: the buyer's fields win, mappings
    /// merge key by key (so one body field can be overridden), a `null` removes a template field.
    static func applyingTemplate(_ buyer: YAMLField, directory: String) -> YAMLField {
        let reference = buyer.child("template")
        guard let name = reference.string() else { return buyer }
        guard name.range(of: "^[A-Za-z0-9][A-Za-z0-9_-]*$", options: .regularExpression) != nil else {
            reference.problem("must be a template name (letters, digits, - and _), got \"\(name)\"")
            return buyer
        }
        let path = ((directory as NSString).appendingPathComponent("templates") as NSString).appendingPathComponent("\(name).yaml")
        let available = ((try? FileManager.default.contentsOfDirectory(atPath: (directory as NSString).appendingPathComponent("templates"))) ?? [])
            .filter { $0.hasSuffix(".yaml") }.map { String($0.dropLast(5)) }.sorted()
        guard let data = FileManager.default.contents(atPath: path), let text = String(data: data, encoding: .utf8) else {
            reference.problem("no template \"\(name)\" in templates/ (have: \(available.joined(separator: ", ")))")
            return buyer
        }
        let base: Node
        do {
            guard let node = try Yams.compose(yaml: text) else {
                reference.problem("templates/\(name).yaml is empty")
                return buyer
            }
            base = node
        } catch {
            reference.problem("templates/\(name).yaml is not valid YAML: \(error)")
            return buyer
        }
        guard base.mapping != nil, let node = buyer.node else {
            reference.problem("templates/\(name).yaml must be a mapping of buyer fields")
            return buyer
        }
        return YAMLField(node: merged(base, node), file: buyer.file, path: buyer.path, log: buyer.log)
    }

    static func merged(_ base: Node, _ override: Node) -> Node {
        guard case .mapping(let baseMapping) = base, case .mapping(let overrideMapping) = override else { return override }
        var pairs: [(Node, Node)] = baseMapping.map { ($0.key, $0.value) }
        for (key, value) in overrideMapping {
            let remove = YAMLField(node: value, file: "", path: "", log: ProblemLog(environment: [:])).isPresent == false
            if let index = pairs.firstIndex(where: { $0.0 == key }) {
                if remove { pairs.remove(at: index) } else { pairs[index].1 = merged(pairs[index].1, value) }
            } else if !remove {
                pairs.append((key, value))
            }
        }
        return .mapping(Node.Mapping(pairs, overrideMapping.tag, overrideMapping.style, overrideMapping.mark))
    }

    // MARK: Codec

    /// The buyer's codec: native unless any part of its requests or answers is templated.
    static func readCodec(_ buyer: YAMLField, nativeMapping: ResponseMapping) -> AnyBuyerCodec {
        let maps = readValueMaps(buyer.child("maps"))
        let reasons = ReasonCategories(buyer.child("reason_categories").stringMap())
        var spec = TemplateBuyerCodec.Spec(reasons: reasons, nativeMapping: nativeMapping)
        let ping = buyer.child("ping")
        let post = buyer.child("post")
        if ping.isPresent {
            spec.ping = readRequest(ping, maps: maps)
            if ping.child("response").isPresent { spec.pingAnswer = readPingAnswer(ping.child("response")) }
            if ping.child("test_url").isPresent { ping.child("test_url").problem("only a post has a test_url") }
        }
        if post.isPresent {
            spec.post = readRequest(post, maps: maps)
            if post.child("response").isPresent { spec.postAnswer = readPostAnswer(post.child("response")) }
        }
        if spec.isNative && !buyer.child("reason_categories").isPresent { return .native(nativeMapping) }
        do {
            let codec = try TemplateBuyerCodec(spec)
            let identity = (buyer.node.flatMap { try? Yams.serialize(node: $0) }) ?? UUID().uuidString
            return AnyBuyerCodec(codec, identity: "template:" + identity)
        } catch {
            for problem in error.problems {
                buyer.problem(problem.message, at: buyer.path.isEmpty ? problem.path : "\(buyer.path).\(problem.path)")
            }
            return .native(nativeMapping)
        }
    }

    static func readValueMaps(_ field: YAMLField) -> [String: [String: String]] {
        guard field.isPresent, let mapping = field.node?.mapping else {
            if field.isPresent { field.problem("must be a mapping of map names to {value: replacement}") }
            return [:]
        }
        var maps: [String: [String: String]] = [:]
        for (key, _) in mapping {
            guard let name = key.string else { continue }
            maps[name] = field.child(name).stringMap()
        }
        return maps
    }

    /// A request template when the endpoint uses any of method, query, body or templated headers; else nil (native).
    static func readRequest(_ endpoint: YAMLField, maps: [String: [String: String]]) -> RequestTemplate? {
        let headers = endpoint.child("headers")
        // Read raw, not through `string()`: that would report an unset ${VARIABLE} a second time.
        let templatedHeaders = headers.node?.mapping?.values.contains { $0.string?.contains("{{") ?? false } ?? false
        guard endpoint.child("method").isPresent || endpoint.child("query").isPresent || endpoint.child("body").isPresent || templatedHeaders,
              let url = endpoint.child("url").string()
        else { return nil }
        let method = endpoint.child("method").oneOf(BuyerRequest.Method.self, default: .post)
        var template = RequestTemplate(method: method, url: url, format: method == .get ? .none : .native)
        template.query = namedValues(endpoint.child("query"), maps: maps)
        template.headers = namedValues(headers, maps: maps)
        let body = endpoint.child("body")
        if body.isPresent, body.mapping(known: ["format", "fields", "xml_root", "content_type"]) {
            template.format = body.child("format").oneOf(RequestTemplate.BodyFormat.self, default: template.format)
            template.xmlRoot = body.child("xml_root").string() ?? "request"
            template.contentType = body.child("content_type").string()
            if body.child("fields").isPresent { template.body = bodyNode(body.child("fields"), maps: maps) }
        }
        return template
    }

    private static func namedValues(_ field: YAMLField, maps: [String: [String: String]]) -> [RequestTemplate.Named] {
        guard field.isPresent else { return [] }
        guard let mapping = field.node?.mapping else {
            field.problem("must be a mapping of names to values")
            return []
        }
        return mapping.compactMap { key, _ in
            guard let name = key.string else { return nil }
            return valueTemplate(field.child(name), maps: maps).map { RequestTemplate.Named(name, $0) }
        }
    }

    private static func bodyNode(_ field: YAMLField, maps: [String: [String: String]]) -> RequestTemplate.BodyNode? {
        guard let node = field.node else { return nil }
        switch node {
        case .mapping(let mapping):
            return .fields(mapping.compactMap { key, _ in
                guard let name = key.string else { return nil }
                let child = field.child(name)
                guard child.isPresent else { return nil }
                return bodyNode(child, maps: maps).map { (name: name, node: $0) }
            })
        case .sequence:
            return .list(field.elements().compactMap { bodyNode($0, maps: maps) })
        default:
            return valueTemplate(field, maps: maps).map(RequestTemplate.BodyNode.value)
        }
    }

    /// A scalar as a template; a plain YAML number or boolean without references stays typed.
    private static func valueTemplate(_ field: YAMLField, maps: [String: [String: String]]) -> ValueTemplate? {
        guard let text = field.string(required: true) else { return nil }
        if case .scalar(let scalar)? = field.node, scalar.style == .plain, !text.contains("{{") {
            if ["true", "false"].contains(text) { return .constant(.bool(text == "true")) }
            if let json = try? JSONValue.parse(text), case .number = json { return .constant(json) }
        }
        do { return try ValueTemplate.parse(text, maps: maps) } catch {
            field.problem(error.message)
            return nil
        }
    }

    // MARK: Answers

    static func readPingAnswer(_ field: YAMLField) -> PingAnswerTemplate? {
        guard field.mapping(known: [
            "format", "bid", "bid_id", "expires_in_s", "destination", "min_duration_s", "reason", "bid_when", "error_when", "keep",
        ]) else { return nil }
        let format = field.child("format").oneOf(AnswerFormat.self, default: .json)
        var answer = PingAnswerTemplate(format: format)
        answer.bid = locator(field.child("bid"), format: format)
        if answer.bid == nil, !field.child("bid").isPresent { field.child("bid").problem("is required: where the answer puts its price") }
        answer.bidID = locator(field.child("bid_id"), format: format)
        answer.expiresInS = locator(field.child("expires_in_s"), format: format)
        answer.destination = locator(field.child("destination"), format: format)
        answer.minDurationS = locator(field.child("min_duration_s"), format: format)
        answer.reason = locator(field.child("reason"), format: format)
        answer.bidWhen = rule(field.child("bid_when"), format: format)
        answer.errorWhen = rule(field.child("error_when"), format: format)
        let keep = field.child("keep")
        if keep.isPresent, let mapping = keep.node?.mapping {
            answer.keep = mapping.compactMap { key, _ in
                guard let name = key.string else { return nil }
                guard name != "bid_id" else {
                    keep.child(name).problem("bid_id is always kept ({{ping.bid_id}} and {{round.bid_id}})")
                    return nil
                }
                return locator(keep.child(name), format: format).map { (name: name, locator: $0) }
            }
        } else if keep.isPresent {
            keep.problem("must be a mapping of names to paths")
        }
        return answer
    }

    static func readPostAnswer(_ field: YAMLField) -> PostAnswerTemplate? {
        guard field.mapping(known: ["format", "accepted", "reference", "reason", "error_when"]) else { return nil }
        let format = field.child("format").oneOf(AnswerFormat.self, default: .json)
        guard field.child("accepted").isPresent else {
            field.child("accepted").problem("is required: the rule that says the buyer took the lead")
            return nil
        }
        guard let accepted = rule(field.child("accepted"), format: format) else { return nil }
        return PostAnswerTemplate(
            format: format, accepted: accepted, reference: locator(field.child("reference"), format: format),
            reason: locator(field.child("reason"), format: format), errorWhen: rule(field.child("error_when"), format: format))
    }

    /// A path (a regular expression in a text answer), or a list of them: the first that holds a value.
    private static func locator(_ field: YAMLField, format: AnswerFormat) -> AnswerLocator? {
        if case .sequence? = field.node {
            let alternatives = field.elements().compactMap { locator($0, format: format) }
            return alternatives.isEmpty ? nil : .first(alternatives)
        }
        guard let text = field.string() else { return nil }
        do {
            return format == .text ? .pattern(try TextPattern(text)) : .path(try AnswerPath(text))
        } catch {
            field.problem(error.message)
            return nil
        }
    }

    /// `{path: P, equals: V}`, `one_of`, `exists`, `">"`/`">="` (or `gt`/`gte`), `all: [...]`, `any: [...]`.
    /// In a text answer `path` is a regular expression (`pattern` is accepted as another name).
    private static func rule(_ field: YAMLField, format: AnswerFormat) -> AnswerRule? {
        guard field.isPresent else { return nil }
        guard field.mapping(known: ["path", "pattern", "equals", "one_of", "exists", ">", ">=", "gt", "gte", "all", "any"]) else { return nil }
        if field.child("all").isPresent || field.child("any").isPresent {
            let name = field.child("all").isPresent ? "all" : "any"
            let rules = field.child(name).elements().compactMap { rule($0, format: format) }
            guard !rules.isEmpty else {
                field.child(name).problem("must list at least one rule")
                return nil
            }
            return name == "all" ? .all(rules) : .any(rules)
        }
        let where_ = field.child("path").isPresent ? field.child("path") : field.child("pattern")
        guard where_.isPresent else {
            field.problem("needs path (where the value is) and one of equals, one_of, exists, >, >=; or all/any")
            return nil
        }
        guard let target = locator(where_, format: format) else { return nil }
        if let expected = field.child("equals").string() { return .equals(target, expected) }
        if field.child("one_of").isPresent { return .oneOf(target, Set(field.child("one_of").stringList())) }
        if field.child("exists").isPresent { return .exists(target, field.child("exists").bool() ?? true) }
        for (key, orEqual) in [(">", false), ("gt", false), (">=", true), ("gte", true)] {
            guard let text = field.child(key).string() else { continue }
            guard let bound = Double(text) else {
                field.child(key).problem("must be a number, got \"\(text)\"")
                return nil
            }
            return .greater(target, bound, orEqual: orEqual)
        }
        field.problem("needs one of equals, one_of, exists, >, >=")
        return nil
    }
}
