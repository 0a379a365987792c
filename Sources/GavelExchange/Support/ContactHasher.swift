import Crypto
import Foundation
import GavelCore

/// Keyed hashes of personal identifiers: equal people hash equal, and without the key nobody
/// (a buyer, a leaked database) can reverse or test a guess against the hash.
public struct ContactHasher: Sendable {
    private let keyBytes: [UInt8]

    public init(key: String) {
        self.keyBytes = Array(key.utf8)
    }

    /// The hash of a contact: its normalised email, else its phone digits.
    public func hash(contact: JSONObject) -> String? {
        if let email = contact["email"]?.stringValue?.trimmingCharacters(in: .whitespaces).lowercased(), !email.isEmpty {
            return hash("email:" + email)
        }
        if let phone = contact["phone"]?.stringValue {
            return hash(phoneNumber: phone)
        }
        return nil
    }

    /// The hash of a phone number, by its last 10 digits so `+1 (555) 123-4567` equals `5551234567`.
    public func hash(phoneNumber: String) -> String {
        hash("phone:" + String(phoneNumber.filter { $0.isASCII && $0.isNumber }.suffix(10)))
    }

    private func hash(_ text: String) -> String {
        let code = HMAC<SHA256>.authenticationCode(for: Data(text.utf8), using: SymmetricKey(data: keyBytes))
        return code.prefix(16).map { byte in
            let hex = String(byte, radix: 16)
            return byte < 16 ? "0" + hex : hex
        }.joined()
    }
}
