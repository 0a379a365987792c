import GavelCore

/// Reads a buyer's XML answer into the same shape paths walk for JSON: `{root: {child: …}}`,
/// attributes as `@name`, repeated elements as lists, an element with only text as its text, and
/// mixed text as `#text`. Namespace prefixes are dropped (`soap:Body` is `Body`).
///
/// Buyer answers are untrusted: no DTDs or external entities (a `<!DOCTYPE` is refused), only the
/// five predefined and numeric character references, and a depth limit.
enum XMLReader {
    static let maxDepth = 64

    struct Failure: Error, CustomStringConvertible {
        var message: String
        var offset: Int
        var description: String { "invalid XML at byte \(offset): \(message)" }
    }

    static func parse(_ bytes: [UInt8]) throws(Failure) -> JSONValue {
        var reader = Reader(bytes: bytes)
        return try reader.document()
    }

    private struct Element {
        var name: String
        var attributes: [(String, String)] = []
        var children: [(String, JSONValue)] = []
        var text = ""

        var value: JSONValue {
            let trimmedText = text.trimmed
            if attributes.isEmpty && children.isEmpty { return .string(trimmedText) }
            var object = JSONObject()
            for (name, value) in attributes { object["@" + name] = .string(value) }
            var order: [String] = []
            var grouped: [String: [JSONValue]] = [:]
            for (name, value) in children {
                if grouped[name] == nil { order.append(name) }
                grouped[name, default: []].append(value)
            }
            for name in order {
                let values = grouped[name] ?? []
                object[name] = values.count == 1 ? values[0] : .array(values)
            }
            if !trimmedText.isEmpty { object["#text"] = .string(trimmedText) }
            return .object(object)
        }
    }

    private struct Reader {
        let bytes: [UInt8]
        var index = 0

        init(bytes: [UInt8]) { self.bytes = bytes }

        func fail(_ message: String) -> Failure { Failure(message: message, offset: index) }

        var atEnd: Bool { index >= bytes.count }

        /// Whether the bytes at `index` are `text` (a literal: no allocation per call).
        func peek(_ text: StaticString) -> Bool {
            let count = text.utf8CodeUnitCount
            guard index + count <= bytes.count else { return false }
            return text.withUTF8Buffer { pattern in
                for offset in 0..<count where bytes[index + offset] != pattern[offset] { return false }
                return true
            }
        }

        mutating func skip(past text: StaticString) throws(Failure) {
            let count = text.utf8CodeUnitCount
            while index + count <= bytes.count {
                if peek(text) {
                    index += count
                    return
                }
                index += 1
            }
            throw fail("unterminated construct, expected \(text)")
        }

        mutating func skipSpace() {
            while !atEnd, bytes[index] == 0x20 || bytes[index] == 0x09 || bytes[index] == 0x0A || bytes[index] == 0x0D { index += 1 }
        }

        /// Declarations, comments and processing instructions outside the root.
        mutating func skipMisc() throws(Failure) {
            while true {
                skipSpace()
                if peek("<?") { try skip(past: "?>") }
                else if peek("<!--") { try skip(past: "-->") }
                else if peek("<!DOCTYPE") || peek("<!doctype") { throw fail("a DOCTYPE is not accepted in a buyer answer") }
                else { return }
            }
        }

        mutating func document() throws(Failure) -> JSONValue {
            if peek("\u{FEFF}") { index += 3 }  // a byte order mark
            try skipMisc()
            guard peek("<") else { throw fail("expected the root element") }
            let root = try element(depth: 0)
            try skipMisc()
            guard atEnd else { throw fail("content after the root element") }
            var object = JSONObject()
            object[root.name] = root.value
            return .object(object)
        }

        mutating func name() throws(Failure) -> String {
            let start = index
            while !atEnd {
                switch bytes[index] {
                case 0x20, 0x09, 0x0A, 0x0D, UInt8(ascii: ">"), UInt8(ascii: "/"), UInt8(ascii: "="), UInt8(ascii: "<"): break
                default:
                    index += 1
                    continue
                }
                break
            }
            guard index > start, index - start <= 256 else { throw fail("expected a name") }
            let full = String(decoding: bytes[start..<index], as: UTF8.self)
            // Namespace prefixes are dropped: paths name elements by their local names.
            guard let colon = full.lastIndex(of: ":") else { return full }
            return String(full[full.index(after: colon)...])
        }

        mutating func element(depth: Int) throws(Failure) -> Element {
            guard depth < XMLReader.maxDepth else { throw fail("nested deeper than \(XMLReader.maxDepth) elements") }
            index += 1 // "<"
            var element = Element(name: try name())
            while true {
                skipSpace()
                guard !atEnd else { throw fail("unterminated start tag") }
                if peek("/>") {
                    index += 2
                    return element
                }
                if peek(">") {
                    index += 1
                    break
                }
                let isNamespace = peek("xmlns")
                let attribute = try name()
                skipSpace()
                guard peek("=") else { throw fail("attribute \(attribute) has no value") }
                index += 1
                skipSpace()
                guard !atEnd, bytes[index] == UInt8(ascii: "\"") || bytes[index] == UInt8(ascii: "'") else { throw fail("attribute value must be quoted") }
                let quote = bytes[index]
                index += 1
                let start = index
                while !atEnd, bytes[index] != quote { index += 1 }
                guard !atEnd else { throw fail("unterminated attribute value") }
                let value = try XMLReader.decodeText(bytes[start..<index], at: start)
                index += 1
                if !isNamespace { element.attributes.append((attribute, value)) }
            }
            while true {
                guard !atEnd else { throw fail("element \(element.name) is not closed") }
                if peek("</") {
                    index += 2
                    let closing = try name()
                    guard closing == element.name else { throw fail("</\(closing)> closes <\(element.name)>") }
                    skipSpace()
                    guard peek(">") else { throw fail("expected >") }
                    index += 1
                    return element
                } else if peek("<!--") {
                    try skip(past: "-->")
                } else if peek("<![CDATA[") {
                    index += 9
                    let start = index
                    try skip(past: "]]>")
                    element.text += String(decoding: bytes[start..<(index - 3)], as: UTF8.self)
                } else if peek("<?") {
                    try skip(past: "?>")
                } else if peek("<!") {
                    throw fail("declarations are not accepted inside elements")
                } else if peek("<") {
                    let child = try self.element(depth: depth + 1)
                    element.children.append((child.name, child.value))
                } else {
                    let start = index
                    while !atEnd, bytes[index] != UInt8(ascii: "<") { index += 1 }
                    element.text += try XMLReader.decodeText(bytes[start..<index], at: start)
                }
            }
        }
    }

    /// Text with `&amp;`-style and numeric references resolved.
    static func decodeText(_ slice: ArraySlice<UInt8>, at offset: Int) throws(Failure) -> String {
        guard slice.contains(UInt8(ascii: "&")) else { return String(decoding: slice, as: UTF8.self) }
        let text = String(decoding: slice, as: UTF8.self)
        var output = ""
        var rest = Substring(text)
        while let amp = rest.firstIndex(of: "&") {
            output += rest[..<amp]
            guard let semicolon = rest[amp...].firstIndex(of: ";"), rest.distance(from: amp, to: semicolon) <= 12 else {
                throw Failure(message: "unterminated character reference", offset: offset)
            }
            let entity = rest[rest.index(after: amp)..<semicolon]
            switch entity {
            case "amp": output += "&"
            case "lt": output += "<"
            case "gt": output += ">"
            case "quot": output += "\""
            case "apos": output += "'"
            default:
                let scalarValue: UInt32?
                if entity.hasPrefix("#x") || entity.hasPrefix("#X") { scalarValue = UInt32(entity.dropFirst(2), radix: 16) }
                else if entity.hasPrefix("#") { scalarValue = UInt32(entity.dropFirst()) }
                else { throw Failure(message: "unknown entity &\(entity); (no DTD entities are read)", offset: offset) }
                guard let scalarValue, let scalar = Unicode.Scalar(scalarValue) else {
                    throw Failure(message: "bad character reference &\(entity);", offset: offset)
                }
                output.unicodeScalars.append(scalar)
            }
            rest = rest[rest.index(after: semicolon)...]
        }
        return output + rest
    }
}
