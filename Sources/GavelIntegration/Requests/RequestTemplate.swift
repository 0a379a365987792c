import GavelCore

/// How one request (a ping or a post) to a buyer is written: method, URL with query, headers and a
/// body in JSON, form-urlencoded or XML. Built once per config snapshot; each request renders values.
public struct RequestTemplate: Sendable, Hashable {
    public enum BodyFormat: String, Sendable, Hashable, CaseIterable {
        /// Gavel's own JSON (the query and headers may still be templated).
        case native
        case json
        case form
        case xml
        /// No body (GET, or a POST that carries everything in its query).
        case none
    }

    /// One node of a body: a value, a mapping of named nodes, or a list.
    public indirect enum BodyNode: Sendable, Hashable {
        case value(ValueTemplate)
        case fields([(name: String, node: BodyNode)])
        case list([BodyNode])

        public static func == (lhs: BodyNode, rhs: BodyNode) -> Bool {
            switch (lhs, rhs) {
            case (.value(let a), .value(let b)): return a == b
            case (.list(let a), .list(let b)): return a == b
            case (.fields(let a), .fields(let b)):
                return a.count == b.count && zip(a, b).allSatisfy { $0.name == $1.name && $0.node == $1.node }
            default: return false
            }
        }

        public func hash(into hasher: inout Hasher) {
            switch self {
            case .value(let value): hasher.combine(0); hasher.combine(value)
            case .list(let nodes): hasher.combine(1); hasher.combine(nodes)
            case .fields(let fields):
                hasher.combine(2)
                for field in fields { hasher.combine(field.name); hasher.combine(field.node) }
            }
        }
    }

    public var method: BuyerRequest.Method
    public var url: String
    public var query: [Named]
    public var headers: [Named]
    public var format: BodyFormat
    public var body: BodyNode?
    /// XML: the root element's name.
    public var xmlRoot: String
    public var contentType: String?

    public struct Named: Sendable, Hashable {
        public var name: String
        public var value: ValueTemplate
        public init(_ name: String, _ value: ValueTemplate) {
            self.name = name
            self.value = value
        }
    }

    public init(method: BuyerRequest.Method = .post, url: String, query: [Named] = [], headers: [Named] = [],
                format: BodyFormat = .native, body: BodyNode? = nil, xmlRoot: String = "request", contentType: String? = nil) {
        self.method = method
        self.url = url
        self.query = query
        self.headers = headers
        self.format = format
        self.body = body
        self.xmlRoot = xmlRoot
        self.contentType = contentType
    }

    /// Every problem of this template for `use` (`path` names the field), found before any round runs.
    public func problems(for use: TemplateUse, keptNames: Set<String> = []) -> [TemplateProblem] {
        var problems: [TemplateProblem] = []
        func check(_ value: ValueTemplate, at path: String) {
            if let message = value.problem(in: use, keptNames: keptNames) { problems.append(TemplateProblem(path, message)) }
        }
        for item in query { check(item.value, at: "query.\(item.name)") }
        for item in headers { check(item.value, at: "headers.\(item.name)") }
        if method == .get, format != .none {
            problems.append(TemplateProblem("body.format", "a GET has no body: use body format none and put values in query"))
        }
        if format == .xml, !XMLText.isName(xmlRoot) { problems.append(TemplateProblem("body.xml_root", "\"\(xmlRoot)\" is not an XML element name")) }
        guard let body else {
            if [.json, .form, .xml].contains(format) { problems.append(TemplateProblem("body.fields", "is required for body format \(format.rawValue)")) }
            return problems
        }
        func walk(_ node: BodyNode, path: String, depth: Int) {
            switch node {
            case .value(let value):
                check(value, at: path)
                if format != .json, value.references.contains(where: { $0.path.isEmpty }) {
                    problems.append(TemplateProblem(path, "a whole object ({{lead}}, {{contact}}…) fits only a json body"))
                }
            case .list(let nodes):
                if format == .form { problems.append(TemplateProblem(path, "a form body is flat: no lists")) }
                for (index, child) in nodes.enumerated() { walk(child, path: "\(path)[\(index)]", depth: depth + 1) }
            case .fields(let fields):
                if format == .form, depth > 0 { problems.append(TemplateProblem(path, "a form body is flat: no nested fields")) }
                for field in fields {
                    if format == .xml {
                        let name = field.name.hasPrefix("@") ? String(field.name.dropFirst()) : field.name
                        if !XMLText.isName(name) { problems.append(TemplateProblem("\(path).\(field.name)", "is not an XML element or attribute name")) }
                        if field.name.hasPrefix("@"), case .value = field.node {} else if field.name.hasPrefix("@") {
                            problems.append(TemplateProblem("\(path).\(field.name)", "an attribute takes one value"))
                        }
                    }
                    walk(field.node, path: "\(path).\(field.name)", depth: depth + 1)
                }
            }
        }
        walk(body, path: "body.fields", depth: 0)
        return problems
    }

    /// The request, with every value escaped for where it goes. `native` renders Gavel's own body.
    /// `url` is the endpoint's (a post's `test_url` under `gavel try-buyer`); the template's own by default.
    func render(_ scope: RenderScope, url endpointURL: String? = nil, native: () -> String) -> BuyerRequest {
        var url = endpointURL ?? self.url
        var pairs: [String] = []
        for item in query {
            guard let text = item.value.renderText(scope) else { continue }
            pairs.append(FormText.encode(item.name) + "=" + FormText.encode(text))
        }
        if !pairs.isEmpty { url += (url.contains("?") ? "&" : "?") + pairs.joined(separator: "&") }

        var headers: [BuyerRequest.Header] = []
        var body: [UInt8] = []
        switch format {
        case .native:
            body = Array(native().utf8)
            headers.append(.init("Content-Type", contentType ?? "application/json"))
        case .json:
            let value = self.body.flatMap { RequestTemplate.json($0, scope) } ?? .object(JSONObject())
            body = Array(value.serialized.utf8)
            headers.append(.init("Content-Type", contentType ?? "application/json"))
        case .form:
            body.reserveCapacity(256)
            if case .fields(let list)? = self.body {
                for field in list {
                    guard case .value(let value) = field.node, let text = value.renderText(scope) else { continue }
                    if !body.isEmpty { body.append(UInt8(ascii: "&")) }
                    FormText.append(field.name, to: &body)
                    body.append(UInt8(ascii: "="))
                    FormText.append(text, to: &body)
                }
            }
            headers.append(.init("Content-Type", contentType ?? "application/x-www-form-urlencoded"))
        case .xml:
            var text = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>"
            RequestTemplate.xml(self.body ?? .fields([]), name: xmlRoot, scope, into: &text)
            body = Array(text.utf8)
            headers.append(.init("Content-Type", contentType ?? "application/xml"))
        case .none:
            if let contentType { headers.append(.init("Content-Type", contentType)) }
        }
        for item in self.headers {
            // A header value never carries a line break: it could forge another header.
            guard let raw = item.value.renderText(scope) else { continue }
            var text = ""
            text.unicodeScalars.append(contentsOf: raw.unicodeScalars.filter { $0 != "\r" && $0 != "\n" })
            headers.append(.init(item.name, text))
        }
        return BuyerRequest(method: method, url: url, headers: headers, body: body)
    }

    static func json(_ node: BodyNode, _ scope: RenderScope) -> JSONValue? {
        switch node {
        case .value(let value): return value.render(scope)
        case .list(let nodes): return .array(nodes.compactMap { json($0, scope) })
        case .fields(let fields):
            var object = JSONObject()
            for field in fields {
                if let value = json(field.node, scope) { object[field.name] = value }
            }
            return .object(object)
        }
    }

    static func xml(_ node: BodyNode, name: String, _ scope: RenderScope, into output: inout String) {
        switch node {
        case .value(let value):
            guard let text = value.renderText(scope) else { return }
            output += "<\(name)>" + XMLText.escape(text) + "</\(name)>"
        case .list(let nodes):
            for child in nodes { xml(child, name: name, scope, into: &output) }
        case .fields(let fields):
            output += "<\(name)"
            for field in fields where field.name.hasPrefix("@") {
                guard case .value(let value) = field.node, let text = value.renderText(scope) else { continue }
                output += " \(field.name.dropFirst())=\"" + XMLText.escape(text) + "\""
            }
            output += ">"
            for field in fields where !field.name.hasPrefix("@") { xml(field.node, name: field.name, scope, into: &output) }
            output += "</\(name)>"
        }
    }
}

/// `application/x-www-form-urlencoded` text (also query parameters).
enum FormText {
    static func encode(_ text: String) -> String {
        var output: [UInt8] = []
        output.reserveCapacity(text.utf8.count + 8)
        append(text, to: &output)
        return String(decoding: output, as: UTF8.self)
    }

    private static let hex: [UInt8] = Array("0123456789ABCDEF".utf8)

    /// Writes `text` encoded into `output`: bytes, not characters, so no text is built per byte.
    static func append(_ text: String, to output: inout [UInt8]) {
        for byte in text.utf8 {
            switch byte {
            case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "0")...UInt8(ascii: "9"),
                 UInt8(ascii: "-"), UInt8(ascii: "."), UInt8(ascii: "_"), UInt8(ascii: "~"):
                output.append(byte)
            case UInt8(ascii: " "):
                output.append(UInt8(ascii: "+"))
            default:
                output.append(UInt8(ascii: "%"))
                output.append(hex[Int(byte >> 4)])
                output.append(hex[Int(byte & 0x0F)])
            }
        }
    }
}

/// XML text escaping and names.
enum XMLText {
    static func escape(_ text: String) -> String {
        // Most values need no escaping: returned as they are.
        guard text.utf8.contains(where: { $0 < 0x20 || $0 == UInt8(ascii: "&") || $0 == UInt8(ascii: "<") || $0 == UInt8(ascii: ">")
            || $0 == UInt8(ascii: "\"") || $0 == UInt8(ascii: "'") }) else { return text }
        var output = ""
        output.reserveCapacity(text.utf8.count + 16)
        for scalar in text.unicodeScalars {
            switch scalar {
            case "&": output += "&amp;"
            case "<": output += "&lt;"
            case ">": output += "&gt;"
            case "\"": output += "&quot;"
            case "'": output += "&apos;"
            // Characters XML 1.0 forbids are dropped rather than sent as a malformed document.
            case _ where scalar.value < 0x20 && scalar != "\t" && scalar != "\n" && scalar != "\r": continue
            default: output.unicodeScalars.append(scalar)
            }
        }
        return output
    }

    static func isName(_ name: String) -> Bool {
        guard let first = name.unicodeScalars.first, first.properties.isAlphabetic || first == "_" else { return false }
        return name.unicodeScalars.allSatisfy { $0.properties.isAlphabetic || ("0"..."9").contains($0) || $0 == "_" || $0 == "-" || $0 == "." || $0 == ":" }
    }
}
