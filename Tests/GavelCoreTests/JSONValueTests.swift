import Testing
@testable import GavelCore

struct JSONValueTests {
    @Test func numbersKeepTheirLiteralText() throws {
        let value = try JSONValue.parse(#"{"a": 12.50, "b": 1e3, "c": -0.0025, "d": 0, "e": 1.5E-7, "f": 123456789012345678901234567890}"#)
        #expect(value["a"] == .number("12.50"))
        #expect(value["b"] == .number("1e3"))
        #expect(value["c"] == .number("-0.0025"))
        #expect(value["d"] == .number("0"))
        #expect(value["e"] == .number("1.5E-7"))
        #expect(value["f"] == .number("123456789012345678901234567890"))
        #expect(value.serialized == #"{"a":12.50,"b":1e3,"c":-0.0025,"d":0,"e":1.5E-7,"f":123456789012345678901234567890}"#)
    }

    @Test func scalarsAndNesting() throws {
        let value = try JSONValue.parse(#"  [true, false, null, "x", [], {}, [1, [2]]]  "#)
        #expect(value == .array([.bool(true), .bool(false), .null, .string("x"), .array([]), .object(JSONObject()),
                                 .array([.number("1"), .array([.number("2")])])]))
        #expect(try JSONValue.parse("null").isNull)
        #expect(try JSONValue.parse(" 7 ") == .number("7"))
        #expect(try JSONValue.parse(#""hi""#) == .string("hi"))
    }

    @Test func escapes() throws {
        let value = try JSONValue.parse(#""q\" b\\ s\/ \b\f\n\r\t e\u00e9 \u20AC""#)
        #expect(value == .string("q\" b\\ s/ \u{08}\u{0C}\n\r\t e\u{E9} \u{20AC}"))
    }

    @Test func surrogatePairs() throws {
        #expect(try JSONValue.parse(#""\ud83d\ude00""#) == .string("😀"))
        #expect(try JSONValue.parse(#""a\uD834\uDD1Eb""#) == .string("a𝄞b"))
        // A raw 4-byte UTF-8 character passes through the fast path unchanged.
        #expect(try JSONValue.parse(#""😀""#) == .string("😀"))
    }

    @Test(arguments: [
        #""\ud83d""#,            // high surrogate alone
        #""\ud83d x""#,          // high surrogate then text
        #""\ud83d\u0041""#,      // high surrogate then a non-surrogate
        #""\ude00""#,            // low surrogate alone
    ])
    func unpairedSurrogatesAreRejected(_ text: String) {
        #expect(throws: JSONParseError.self) { try JSONValue.parse(text) }
    }

    @Test(arguments: [
        "{} x", "[1] ]", "1 2", "nulll", "truex", #"{"a":1}}"#, #""s" "t""#,
    ])
    func trailingGarbageIsRejected(_ text: String) {
        #expect(throws: JSONParseError.self) { try JSONValue.parse(text) }
    }

    @Test func trailingGarbageErrorNamesTheOffset() {
        do {
            _ = try JSONValue.parse("{} x")
            Issue.record("parsed trailing garbage")
        } catch {
            #expect(error.offset == 3)
            #expect(error.message == "unexpected text after the value")
            #expect(error.description == "invalid JSON at byte 3: unexpected text after the value")
        }
    }

    @Test func controlCharactersInStringsAreRejected() throws {
        #expect(throws: JSONParseError.self) { try JSONValue.parse("\"a\u{01}b\"") }
        #expect(throws: JSONParseError.self) { try JSONValue.parse("\"a\nb\"") }
        #expect(throws: JSONParseError.self) { try JSONValue.parse("\"a\tb\"") }
        // After an escape (slow path) too.
        #expect(throws: JSONParseError.self) { try JSONValue.parse("\"\\n\u{1F}\"") }
        // Escaped, they are fine.
        #expect(try JSONValue.parse(#""a\u0001b""#) == .string("a\u{01}b"))
    }

    @Test(arguments: [
        "", "   ", "{", "[", "[1,]", "[,1]", #"{"a"}"#, #"{"a":}"#, #"{"a":1,}"#, "{a:1}", "{'a':1}",
        "01", "-", "1.", ".5", "1e", "1e+", "+1", "NaN", "Infinity", "tru", #""abc"#, #""\x""#, #""\u12""#,
        #""\u12G4""#, "[1 2]", #"{"a":1 "b":2}"#,
    ])
    func malformedDocumentsAreRejected(_ text: String) {
        #expect(throws: JSONParseError.self) { try JSONValue.parse(text) }
    }

    @Test func nestingLimitIs64() throws {
        let ok = String(repeating: "[", count: 64) + String(repeating: "]", count: 64)
        #expect(throws: Never.self) { try JSONValue.parse(ok) }
        let tooDeep = String(repeating: "[", count: 65) + String(repeating: "]", count: 65)
        #expect(throws: JSONParseError.self) { try JSONValue.parse(tooDeep) }
        var objects = ""
        for _ in 0..<65 { objects += #"{"k":"# }
        objects += "1" + String(repeating: "}", count: 65)
        #expect(throws: JSONParseError.self) { try JSONValue.parse(objects) }
        // Depth is released when a container closes: many siblings at depth 64 are fine.
        let siblings = String(repeating: "[", count: 63) + "[],[],[]" + String(repeating: "]", count: 63)
        #expect(throws: Never.self) { try JSONValue.parse(siblings) }
        // A pathological depth does not blow the stack: it fails fast.
        let huge = String(repeating: "[", count: 100_000)
        #expect(throws: JSONParseError.self) { try JSONValue.parse(huge) }
    }

    @Test func objectKeyOrderIsPreserved() throws {
        let value = try JSONValue.parse(#"{"zip":"94107","b":1,"a":2,"state":"CA"}"#)
        let object = try #require(value.objectValue)
        #expect(object.keys == ["zip", "b", "a", "state"])
        #expect(object.map(\.key) == ["zip", "b", "a", "state"])
        #expect(object.count == 4)
        #expect(value.serialized == #"{"zip":"94107","b":1,"a":2,"state":"CA"}"#)
    }

    @Test func duplicateKeyKeepsFirstPositionAndLastValue() throws {
        let object = try #require(try JSONValue.parse(#"{"a":1,"b":2,"a":3}"#).objectValue)
        #expect(object.keys == ["a", "b"])
        #expect(object["a"] == .number("3"))
    }

    @Test func jsonObjectMutation() {
        var object = JSONObject(["x": 1, "y": "two"])
        object["z"] = .bool(true)
        object["x"] = .number("9")
        #expect(object.keys == ["x", "y", "z"])
        object["y"] = nil
        #expect(object.keys == ["x", "z"])
        #expect(object["y"] == nil)
        object["missing"] = nil
        #expect(object.count == 2)
        #expect(!object.isEmpty)
        #expect(JSONObject().isEmpty)
        #expect(JSONValue.object(object).serialized == #"{"x":9,"z":true}"#)
    }

    @Test(arguments: [
        #"{"a":[1,2.5,-3e2,true,false,null],"b":{"c":"d"},"e":""}"#,
        #"["\"quoted\"","back\\slash","line\nbreak","tab\there","\u0001\u001f"]"#,
        #"{"emoji":"😀","accent":"é","cjk":"漢字"}"#,
        "[]", "{}", #""""#, "0", "-0.0",
    ])
    func serializedRoundTrip(_ text: String) throws {
        let value = try JSONValue.parse(text)
        let again = try JSONValue.parse(value.serialized)
        #expect(again == value)
        #expect(again.serialized == value.serialized)
    }

    @Test func serializerEscapesWhatItMust() {
        let value = JSONValue.string("a\"b\\c\nd\re\tf\u{01}g\u{1F}h/é")
        #expect(value.serialized == #""a\"b\\c\nd\re\tf\u0001g\u001fh/é""#)
        #expect(JSONValue.string("\u{08}\u{0C}").serialized == #""\u0008\u000c""#)
    }

    @Test func compactSerialisationOfDocumentsWithWhitespace() throws {
        let value = try JSONValue.parse("{ \"a\" : [ 1 , 2 ] ,\n\t\"b\" : null }")
        #expect(value.serialized == #"{"a":[1,2],"b":null}"#)
    }

    @Test func literalsAndAccessors() {
        let value: JSONValue = ["name": "x", "n": 3, "ok": true, "none": nil, "list": [1, "2"]]
        #expect(value.serialized == #"{"name":"x","n":3,"ok":true,"none":null,"list":[1,"2"]}"#)
        #expect(value["name"]?.stringValue == "x")
        #expect(value["n"]?.numberText == "3")
        #expect(value["n"]?.stringValue == nil)
        #expect(value["name"]?.numberText == "x")
        #expect(value["ok"]?.numberText == nil)
        #expect(value["none"]?.isNull == true)
        #expect(value["absent"] == nil)
        #expect(JSONValue.string("s")["k"] == nil)
        #expect(JSONValue.array([])["k"] == nil)
        #expect(JSONValue(Money(decimal: "18.5")!) == .number("18.5"))
        #expect(JSONValue.number("1").objectValue == nil)
    }

    @Test func parsesFromBytes() throws {
        let bytes: [UInt8] = Array(#"{"k":"v"}"#.utf8)
        #expect(try JSONValue.parse(bytes)["k"] == .string("v"))
        #expect(try JSONValue.parse(bytes[...]).serialized == #"{"k":"v"}"#)
    }

    @Test func invalidUTF8IsRepairedNotCrashed() throws {
        // Not a validity check of the parser: it must simply not crash on arbitrary bytes.
        let bytes: [UInt8] = [0x22, 0xFF, 0xFE, 0x22]
        let value = try JSONValue.parse(bytes)
        #expect(value.stringValue != nil)
    }
}
