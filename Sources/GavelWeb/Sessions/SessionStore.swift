import Foundation
import Synchronization

/// Who a session belongs to: a buyer (the portal) or an operator (the dashboard).
public enum WebPrincipal: Sendable, Hashable {
    case buyer(id: String)
    case `operator`(id: String)

    public var id: String {
        switch self {
        case .buyer(let id), .operator(let id): return id
        }
    }
}

/// A signed-in browser: its random id (the cookie's value), who it is, and the CSRF token its
/// forms must carry.
public struct WebSession: Sendable, Hashable {
    public var id: String
    public var principal: WebPrincipal
    public var csrfToken: String
    public var createdAt: Date
    public var lastSeen: Date
    /// A one-time message for the next page (a return credited, a pause taken).
    public var notice: String?
    /// `WebKeyDigest` of the key it signed in with: a rotated key ends the session.
    public var keyDigest: String? = nil
}

/// Sessions in memory, bounded in number and in time.
///
/// In memory, not in SQLite: a session is cheap to make again (sign in), holds nothing that must
/// outlive the process, and keeping it here puts no write on the store's writer, which sellers
/// wait for. A restart signs everyone out; the portal's pause, which must outlive one, is in the
/// database. At `capacity`, expired sessions go first, then the least recently seen.
public final class SessionStore: Sendable {
    public struct Limits: Sendable {
        /// Sessions held at most.
        public var capacity: Int
        /// A session unused this long expires.
        public var idleTimeout: TimeInterval
        /// A session expires this long after sign-in, however much it is used.
        public var lifetime: TimeInterval

        public init(capacity: Int = 10_000, idleTimeout: TimeInterval = 2 * 3600, lifetime: TimeInterval = 12 * 3600) {
            self.capacity = capacity
            self.idleTimeout = idleTimeout
            self.lifetime = lifetime
        }
    }

    public let limits: Limits
    private let sessions = Mutex<[String: WebSession]>([:])

    public init(limits: Limits = Limits()) {
        self.limits = limits
    }

    /// Starts a session for `principal`.
    public func create(for principal: WebPrincipal, keyDigest: String? = nil, at now: Date) -> WebSession {
        let session = WebSession(id: RandomToken.make(), principal: principal, csrfToken: RandomToken.make(),
                                 createdAt: now, lastSeen: now, keyDigest: keyDigest)
        sessions.withLock { sessions in
            if sessions.count >= limits.capacity {
                sessions = sessions.filter { !isExpired($0.value, at: now) }
            }
            while sessions.count >= limits.capacity, let oldest = sessions.min(by: { $0.value.lastSeen < $1.value.lastSeen }) {
                sessions[oldest.key] = nil
            }
            sessions[session.id] = session
        }
        return session
    }

    /// The live session with this id, marked as seen now; nil when unknown or expired.
    public func session(id: String, at now: Date) -> WebSession? {
        sessions.withLock { sessions in
            guard var session = sessions[id] else { return nil }
            guard !isExpired(session, at: now) else {
                sessions[id] = nil
                return nil
            }
            session.lastSeen = now
            sessions[id] = session
            return session
        }
    }

    /// Sets the one-time message shown by the next page of this session.
    public func setNotice(_ notice: String?, sessionID: String) {
        sessions.withLock { $0[sessionID]?.notice = notice }
    }

    /// Takes (and clears) the session's one-time message.
    public func takeNotice(sessionID: String) -> String? {
        sessions.withLock { sessions in
            defer { sessions[sessionID]?.notice = nil }
            return sessions[sessionID]?.notice
        }
    }

    public func remove(id: String) {
        _ = sessions.withLock { $0.removeValue(forKey: id) }
    }

    public var count: Int { sessions.withLock { $0.count } }

    private func isExpired(_ session: WebSession, at now: Date) -> Bool {
        now.timeIntervalSince(session.lastSeen) > limits.idleTimeout || now.timeIntervalSince(session.createdAt) > limits.lifetime
    }
}

/// 32 random bytes from the system's CSPRNG, as 64 hex digits: session ids and CSRF tokens.
enum RandomToken {
    static func make() -> String {
        var generator = SystemRandomNumberGenerator()
        var text = ""
        text.reserveCapacity(64)
        for _ in 0..<4 {
            let word = generator.next() as UInt64
            text += String(repeating: "0", count: 16 - String(word, radix: 16).count) + String(word, radix: 16)
        }
        return text
    }

    /// Compares two tokens in time that does not depend on where they differ.
    static func equal(_ a: String, _ b: String) -> Bool {
        let left = Array(a.utf8), right = Array(b.utf8)
        guard left.count == right.count, !left.isEmpty else { return false }
        var difference: UInt8 = 0
        for index in left.indices { difference |= left[index] ^ right[index] }
        return difference == 0
    }
}
