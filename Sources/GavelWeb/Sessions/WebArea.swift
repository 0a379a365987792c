import Foundation
import Hummingbird
import NIOCore

/// One signed-in area of the site (`/portal/` for buyers, `/ui/` for operators): its sign-in
/// form, session cookie and CSRF checks.
///
/// The session cookie is HttpOnly and SameSite=Strict, scoped to the area's path, holding only a
/// random id. Every form carries the session's CSRF token; the sign-in form, which has no session
/// yet, carries a token that must match a short-lived cookie set with the form (double submit).
struct WebArea: Sendable {
    enum Kind: String, Sendable { case portal, dashboard }

    let kind: Kind
    /// `/portal/` or `/ui/`.
    let path: String
    let sessions: SessionStore
    let keys: any WebKeys
    let renderer: PageRenderer
    let secureCookies: Bool
    let now: @Sendable () -> Date

    var sessionCookie: String { kind == .portal ? "gavel_portal" : "gavel_ui" }
    var signInCookie: String { sessionCookie + "_signin" }
    /// Form bodies larger than this are refused (a form here is a few short fields).
    static let maxFormBytes = 16 * 1024

    // MARK: Sessions

    /// The request's live session for this area, if it has one.
    func session(_ request: Request) -> WebSession? {
        guard let id = request.cookies[sessionCookie]?.value, !id.isEmpty,
              let session = sessions.session(id: id, at: now()) else { return nil }
        switch (kind, session.principal) {
        case (.portal, .buyer), (.dashboard, .operator): break
        default: return nil
        }
        // The key it signed in with must still be the principal's key (rotated or removed: signed out).
        if let digest = session.keyDigest, keys.keyDigest(for: session.principal) != digest {
            sessions.remove(id: session.id)
            return nil
        }
        return session
    }

    // MARK: Sign-in and sign-out

    /// The sign-in form, with a fresh token in the form and in a cookie.
    func signInPage(error: String? = nil, status: HTTPResponse.Status = .ok) -> Response {
        let token = RandomToken.make()
        var response = renderer.page("signin", SignInView(area: self, csrf: token, error: error), status: status)
        response.setCookie(cookie(signInCookie, token, maxAge: 3600))
        return response
    }

    /// `POST <area>/signin`: a good key starts a session (303 to the area); a bad one gets the form
    /// again with the reason (401); a missing or wrong token, 403.
    func signIn(_ request: Request) async -> Response {
        guard let form = await WebArea.form(request) else { return signInPage(error: "The form could not be read.", status: .badRequest) }
        guard let expected = request.cookies[signInCookie]?.value, let sent = form["csrf"], RandomToken.equal(expected, sent) else {
            return signInPage(error: "The form expired. Please sign in again.", status: .forbidden)
        }
        let key = (form["key"] ?? "").trimmingCharacters(in: .whitespacesAndNewlines)
        let principal: WebPrincipal?
        switch kind {
        case .portal: principal = key.isEmpty ? nil : keys.buyerID(forKey: key).map { .buyer(id: $0) }
        case .dashboard: principal = key.isEmpty ? nil : keys.operatorID(forKey: key).map { .operator(id: $0) }
        }
        guard let principal else {
            let what = kind == .portal ? "buyer" : "operator"
            return signInPage(error: key.isEmpty ? "Enter your \(what) key." : "That key is not a \(what) key.", status: .unauthorized)
        }
        let session = sessions.create(for: principal, keyDigest: WebKeyDigest.of(key), at: now())
        var response = WebArea.redirect(path)
        response.setCookie(cookie(sessionCookie, session.id, maxAge: nil))
        response.setCookie(cookie(signInCookie, "", maxAge: 0))
        return response
    }

    /// `POST <area>/signout`: ends the session and clears its cookie.
    func signOut(_ request: Request) async -> Response {
        switch await authorizedForm(request) {
        case .failure(let failure): return failure.response
        case .success(let (session, _)):
            sessions.remove(id: session.id)
            var response = WebArea.redirect(path)
            response.setCookie(cookie(sessionCookie, "", maxAge: 0))
            return response
        }
    }

    /// A form posted by a signed-in browser: the session and the fields, or the answer to send
    /// instead (the sign-in form without a session, 403 without the session's CSRF token).
    func authorizedForm(_ request: Request) async -> Result<(WebSession, [String: String]), ResponseFailure> {
        guard let session = session(request) else { return .failure(ResponseFailure(signInPage(status: .unauthorized))) }
        guard let form = await WebArea.form(request), let token = form["csrf"], RandomToken.equal(token, session.csrfToken) else {
            return .failure(ResponseFailure(forbidden()))
        }
        return .success((session, form))
    }

    func forbidden() -> Response {
        renderer.page("error", ErrorView(area: self, title: "Forbidden",
                                         message: "The form's security token is missing or wrong. Reload the page and try again."),
                      status: .forbidden)
    }

    func notFound(_ message: String) -> Response {
        renderer.page("error", ErrorView(area: self, title: "Not found", message: message), status: .notFound)
    }

    // MARK: Helpers

    func cookie(_ name: String, _ value: String, maxAge: Int?) -> Cookie {
        Cookie(name: name, value: value, maxAge: maxAge, path: path, secure: secureCookies, httpOnly: true, sameSite: .strict)
    }

    static func redirect(_ location: String) -> Response {
        var headers = PageRenderer.pageHeaders(contentType: "text/plain; charset=utf-8")
        headers[.location] = location
        return Response(status: .seeOther, headers: headers, body: ResponseBody(byteBuffer: ByteBuffer(string: "see \(location)\n")))
    }

    /// The fields of an `application/x-www-form-urlencoded` body; nil when it is too large or not a form.
    static func form(_ request: Request) async -> [String: String]? {
        guard let type = request.headers[.contentType], type.lowercased().hasPrefix("application/x-www-form-urlencoded") else { return nil }
        guard let buffer = try? await request.body.collect(upTo: maxFormBytes) else { return nil }
        return parseForm(String(buffer: buffer))
    }

    static func parseForm(_ text: String) -> [String: String] {
        var fields: [String: String] = [:]
        for pair in text.split(separator: "&") {
            let parts = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            func decode(_ part: Substring) -> String {
                String(part).replacingOccurrences(of: "+", with: " ").removingPercentEncoding ?? ""
            }
            guard let name = parts.first.map(decode), !name.isEmpty else { continue }
            fields[name] = parts.count > 1 ? decode(parts[1]) : ""
        }
        return fields
    }
}

/// A response to send instead of going on (a sign-in form, a 403).
struct ResponseFailure: Error, @unchecked Sendable {
    // @unchecked: a Response is built and sent by one task; this only carries it up the call.
    let response: Response
    init(_ response: Response) { self.response = response }
}

struct SignInView {
    let title: String
    let heading: String
    let base: String
    let action: String
    let keyLabel: String
    let csrf: String
    let error: String?
    let area: String

    init(area: WebArea, csrf: String, error: String?) {
        let portal = area.kind == .portal
        title = portal ? "Buyer portal" : "Operator dashboard"
        heading = portal ? "Sign in to the buyer portal" : "Sign in to the dashboard"
        base = area.path
        action = area.path + "signin"
        keyLabel = portal ? "Buyer API key" : "Operator API key"
        self.csrf = csrf
        self.error = error
        self.area = area.kind.rawValue
    }
}

struct ErrorView {
    let title: String
    let message: String
    let base: String
    let area: String

    init(area: WebArea, title: String, message: String) {
        self.title = title
        self.message = message
        base = area.path
        self.area = area.kind.rawValue
    }
}
