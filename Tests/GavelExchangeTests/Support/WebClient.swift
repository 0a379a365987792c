import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

/// A browser-like HTTP client for the web pages' plain tests: keeps the cookies it is given (one
/// jar per client), never follows redirects (tests look at them), sends forms.
final class WebClient: NSObject, URLSessionTaskDelegate, @unchecked Sendable {
    // @unchecked: `cookies` is touched by one test task at a time, between awaited requests.
    struct Answer {
        var status: Int
        var headers: [String: String]
        var setCookies: [String]
        var body: String
        var location: String? { headers["location"] }
    }

    let base: String
    var cookies: [String: String] = [:]
    private lazy var session: URLSession = {
        let configuration = URLSessionConfiguration.ephemeral
        configuration.httpCookieStorage = nil
        configuration.httpShouldSetCookies = false
        return URLSession(configuration: configuration, delegate: self, delegateQueue: nil)
    }()

    init(port: Int) {
        base = "http://127.0.0.1:\(port)"
    }

    func get(_ path: String) async throws -> Answer { try await send("GET", path, form: nil) }

    func post(_ path: String, _ form: [(String, String)]) async throws -> Answer { try await send("POST", path, form: form) }

    /// The value of `<input name="csrf" value="...">` in a page.
    static func csrf(in html: String) -> String? {
        guard let range = html.range(of: #"name="csrf" value="([0-9a-f]+)""#, options: .regularExpression) else { return nil }
        return String(html[range].dropFirst(#"name="csrf" value=""#.count).dropLast())
    }

    private func send(_ method: String, _ path: String, form: [(String, String)]?) async throws -> Answer {
        var request = URLRequest(url: URL(string: base + path)!)
        request.httpMethod = method
        if !cookies.isEmpty {
            request.setValue(cookies.map { "\($0.key)=\($0.value)" }.sorted().joined(separator: "; "), forHTTPHeaderField: "Cookie")
        }
        if let form {
            var allowed = CharacterSet.alphanumerics
            allowed.insert(charactersIn: "-._~")
            let body = form.map { "\($0.0)=\($0.1.addingPercentEncoding(withAllowedCharacters: allowed) ?? "")" }.joined(separator: "&")
            request.httpBody = Data(body.utf8)
            request.setValue("application/x-www-form-urlencoded", forHTTPHeaderField: "Content-Type")
        }
        let (data, response): (Data, URLResponse) = try await withCheckedThrowingContinuation { continuation in
            session.dataTask(with: request) { data, response, error in
                if let error { continuation.resume(throwing: error) } else { continuation.resume(returning: (data ?? Data(), response!)) }
            }.resume()
        }
        let http = response as! HTTPURLResponse
        var headers: [String: String] = [:]
        for (name, value) in http.allHeaderFields { headers[String(describing: name).lowercased()] = String(describing: value) }
        // Several Set-Cookie headers arrive joined with ", "; these cookies carry no Expires (no comma inside).
        let setCookies = headers["set-cookie"].map { $0.components(separatedBy: ", ") } ?? []
        for line in setCookies {
            let pair = line.split(separator: ";", maxSplits: 1)[0].split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            let name = String(pair[0]).trimmingCharacters(in: .whitespaces)
            let value = pair.count > 1 ? String(pair[1]) : ""
            if value.isEmpty || line.lowercased().contains("max-age=0") { cookies[name] = nil } else { cookies[name] = value }
        }
        return Answer(status: http.statusCode, headers: headers, setCookies: setCookies, body: String(decoding: data, as: UTF8.self))
    }

    func urlSession(_ session: URLSession, task: URLSessionTask, willPerformHTTPRedirection response: HTTPURLResponse,
                    newRequest request: URLRequest, completionHandler: @escaping @Sendable (URLRequest?) -> Void) {
        completionHandler(nil)
    }
}
