import Foundation

/// Looks for personal data in a ping body. Pings go to every eligible buyer, so they must carry
/// none; only the winner's post may.
///
/// A body is flagged when, anywhere in the JSON:
/// - an object key is a contact or identity field (`email`, `phone`, `first_name`, `ssn`, ...);
/// - a `caller` object has a `number`;
/// - a string looks like a full phone number (10 or more digits once `+ - ( )` and spaces are
///   dropped), except under the key `hash`, where a digest may happen to be all digits.
///
/// Bodies that are not JSON are not flagged: there is nothing structured to judge.
public enum PIIScanner {
    /// Keys that name personal data, compared case-insensitively.
    public static let forbiddenKeys: Set<String> = [
        "first_name", "last_name", "name", "email", "phone", "phone_number",
        "address", "street", "address1", "address2", "ssn", "dob", "date_of_birth", "ip_address",
    ]

    /// True when `body` carries personal data.
    public static func containsPII(_ body: Data) -> Bool {
        firstViolation(in: body) != nil
    }

    /// Where and why `body` carries personal data, e.g. `$.lead.email: forbidden key`; nil when clean.
    public static func firstViolation(in body: Data) -> String? {
        guard let json = try? JSONSerialization.jsonObject(with: body, options: [.fragmentsAllowed]),
              let finding = scan(json, key: nil)
        else { return nil }
        return "$" + finding.path.reversed().joined() + ": " + finding.reason
    }

    /// A violation, with its path collected leaf first while unwinding, so clean bodies
    /// (every ping, in a load test) build no path strings at all.
    private struct Finding {
        var reason: String
        var path: [String]
    }

    private static func scan(_ value: Any, key: String?) -> Finding? {
        switch value {
        case let object as [String: Any]:
            for (childKey, child) in object {
                let lowercased = childKey.lowercased()
                if forbiddenKeys.contains(lowercased) {
                    return Finding(reason: "forbidden key", path: [".\(childKey)"])
                }
                if lowercased == "caller", let caller = child as? [String: Any], caller["number"] != nil {
                    return Finding(reason: "caller number", path: [".number", ".\(childKey)"])
                }
                if var finding = scan(child, key: childKey) {
                    finding.path.append(".\(childKey)")
                    return finding
                }
            }
            return nil
        case let array as [Any]:
            // Elements inherit the array's key, so a list of hashes stays exempt.
            for (index, element) in array.enumerated() {
                if var finding = scan(element, key: key) {
                    finding.path.append("[\(index)]")
                    return finding
                }
            }
            return nil
        case let string as String:
            return key != "hash" && looksLikePhoneNumber(string) ? Finding(reason: "phone number", path: []) : nil
        default:
            return nil
        }
    }

    /// 10+ digits and nothing else once the usual phone punctuation is dropped.
    static func looksLikePhoneNumber(_ text: String) -> Bool {
        var digits = 0
        for byte in text.utf8 {
            switch byte {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): digits += 1
            case UInt8(ascii: "+"), UInt8(ascii: "-"), UInt8(ascii: " "), UInt8(ascii: "("), UInt8(ascii: ")"): continue
            default: return false
            }
        }
        return digits >= 10
    }
}
