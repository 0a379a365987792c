/// Round and ping ids: time-ordered, unique, URL-safe.
///
/// 48 bits of milliseconds then 80 random bits, in Crockford base32 (the ULID layout), so ids sort
/// by creation time in the database and leak nothing about volumes.
public enum AuctionID {
    private static let alphabet = Array("0123456789ABCDEFGHJKMNPQRSTVWXYZ".utf8)

    public static func make(prefix: String, nowMs: Int64) -> String {
        var generator = SystemRandomNumberGenerator()
        var bytes = [UInt8](repeating: 0, count: 16)
        for shift in 0..<6 { bytes[shift] = UInt8(truncatingIfNeeded: nowMs >> (8 * (5 - shift))) }
        for index in 6..<16 { bytes[index] = UInt8.random(in: 0...255, using: &generator) }
        var output = [UInt8]()
        output.reserveCapacity(26)
        var buffer: UInt32 = 0
        var bits = 0
        // 128 bits -> 26 base32 characters: pad two leading zero bits as ULID does.
        buffer = 0
        bits = 2
        for byte in bytes {
            buffer = (buffer << 8) | UInt32(byte)
            bits += 8
            while bits >= 5 {
                bits -= 5
                output.append(alphabet[Int((buffer >> UInt32(bits)) & 0x1F)])
            }
        }
        return prefix + String(decoding: output, as: UTF8.self)
    }
}
