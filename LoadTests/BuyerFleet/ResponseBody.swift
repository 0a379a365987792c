import NIOCore

/// Response bodies, written by hand: they are tiny, fixed in shape and on the hot path.
enum ResponseBody {
    static func bid(
        amount: Cents, bidID: String, expiresInS: Int, destination: String?, minDurationS: Int?
    ) -> String {
        var json = #"{"bid": \#(amount.jsonNumber), "bid_id": \#(quoted(bidID)), "expires_in_s": \#(expiresInS)"#
        if let destination {
            json += #", "destination": \#(quoted(destination))"#
        }
        if let minDurationS {
            json += #", "min_duration_s": \#(minDurationS)"#
        }
        return json + "}"
    }

    static func accepted(reference: String) -> String {
        #"{"accepted": true, "reference": \#(quoted(reference))}"#
    }

    static let rejected = #"{"accepted": false, "reason": "duplicate"}"#

    static let garbage = ByteBuffer(string: "<<<not json>>>")
    static let internalError = ByteBuffer(string: #"{"error": "internal server error"}"#)
    static let unknownBuyer = ByteBuffer(string: #"{"error":"unknown buyer"}"#)
    static let notFound = ByteBuffer(string: #"{"error":"not found"}"#)
    static let tooLarge = ByteBuffer(string: #"{"error":"request body over 1 MiB"}"#)

    /// Exactly `bytes` (at least the JSON's frame) that start like a bid, so a client that does not
    /// cap response size chokes on it. The default 1 MiB is built once.
    static func oversized(bytes: Int) -> ByteBuffer {
        bytes == 1 << 20 ? oneMebibyte : padded(bytes: bytes)
    }

    private static let oneMebibyte = padded(bytes: 1 << 20)

    private static func padded(bytes: Int) -> ByteBuffer {
        let head = #"{"bid": 10, "padding": ""#
        let tail = #""}"#
        var buffer = ByteBuffer()
        buffer.reserveCapacity(max(bytes, head.utf8.count + tail.utf8.count))
        buffer.writeString(head)
        buffer.writeRepeatingByte(UInt8(ascii: "x"), count: max(0, bytes - head.utf8.count - tail.utf8.count))
        buffer.writeString(tail)
        return buffer
    }

    /// A JSON string literal for `text`.
    static func quoted(_ text: String) -> String {
        var out = "\""
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            case let c where c.value < 0x20:
                let hex = String(c.value, radix: 16)
                out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
            default: out.unicodeScalars.append(scalar)
            }
        }
        return out + "\""
    }
}
