import Foundation
import GavelStore

extension PostgresStore {
    /// Where the database is and how the store uses it. The password never comes from the URL (a
    /// URL is seen in `ps` and in logs): only from the environment's `PGPASSWORD`.
    public struct Configuration: Sendable, Hashable {
        public enum Endpoint: Sendable, Hashable {
            case tcp(host: String, port: Int)
            /// The socket file itself (`<dir>/.s.PGSQL.<port>`, libpq's convention).
            case unixSocket(path: String)
        }

        /// TCP only: whether to speak TLS (`sslmode` in the URL: `disable`, `prefer`, `require`).
        public enum TLSMode: String, Sendable, Hashable { case disable, prefer, require }

        public var endpoint: Endpoint
        public var username: String
        /// From `PGPASSWORD` only; nil: none (trust or peer authentication).
        public var password: String?
        public var database: String
        public var tls: TLSMode
        /// A schema of its own (created if missing, first on every connection's `search_path`);
        /// nil: the database's default. Letters, digits and `_` only.
        public var schema: String?
        /// This node, stamped on its post intents and cap claims.
        public var nodeID: String
        /// Connections in the pool. Default 8.
        public var poolSize: Int = 8
        /// `statement_timeout` on every connection: a statement that runs longer fails (closed). Default 2000.
        public var statementTimeoutMs: Int = 2_000
        /// `lock_timeout` on every connection: a lock waited for longer fails (closed). Default 1000.
        public var lockTimeoutMs: Int = 1_000
        /// How long a call waits for a connection of the pool, when the caller gives no deadline of
        /// its own. Default 2 s.
        public var connectionWait: Duration = .seconds(2)

        public init(endpoint: Endpoint, username: String, password: String?, database: String, tls: TLSMode = .disable,
                    schema: String? = nil, nodeID: String) {
            self.endpoint = endpoint
            self.username = username
            self.password = password
            self.database = database
            self.tls = tls
            self.schema = schema
            self.nodeID = nodeID
        }

        /// Reads `postgres://USER@HOST[:PORT]/DB` or `postgres://USER@/DB?host=/socket/dir[&port=N]`
        /// (also `postgresql://`, and `sslmode=disable|prefer|require`); the password from
        /// `environment["PGPASSWORD"]`. A password inside the URL is refused.
        public init(url: String, nodeID: String, schema: String? = nil,
                    environment: [String: String] = ProcessInfo.processInfo.environment) throws(StoreError) {
            let parsed = try Self.parse(url)
            self.init(endpoint: parsed.endpoint, username: parsed.username, password: environment["PGPASSWORD"],
                      database: parsed.database, tls: parsed.tls, schema: schema, nodeID: nodeID)
            try validate()
        }

        /// Checks the values that go into SQL or the pool.
        public func validate() throws(StoreError) {
            if let schema {
                guard !schema.isEmpty, schema.count <= 63, schema.utf8.first.map({ !(48...57).contains($0) }) == true,
                      schema.unicodeScalars.allSatisfy({ $0.isASCII && (CharacterSet.alphanumerics.contains($0) || $0 == "_") })
                else { throw .open("schema \"\(schema)\": letters, digits and _ only, at most 63, not starting with a digit") }
            }
            guard poolSize >= 1 else { throw .open("pool size must be at least 1") }
            guard statementTimeoutMs >= 1, lockTimeoutMs >= 1 else { throw .open("statement and lock timeouts must be positive") }
            guard !nodeID.isEmpty else { throw .open("the node id is empty") }
        }

        static func parse(_ url: String) throws(StoreError) -> (endpoint: Endpoint, username: String, database: String, tls: TLSMode) {
            var rest = Substring(url)
            guard let scheme = ["postgres://", "postgresql://"].first(where: { rest.hasPrefix($0) }) else {
                throw .open("database URL: expected postgres://USER@HOST[:PORT]/DB")
            }
            rest = rest.dropFirst(scheme.count)
            var query: [String: String] = [:]
            if let mark = rest.firstIndex(of: "?") {
                for pair in rest[rest.index(after: mark)...].split(separator: "&") {
                    let parts = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
                    let name = String(parts[0])
                    let value = parts.count == 2 ? (String(parts[1]).removingPercentEncoding ?? String(parts[1])) : ""
                    if name == "password" { throw Self.passwordRefused }
                    guard ["host", "port", "sslmode"].contains(name) else {
                        throw .open("database URL: parameter \"\(name)\" is not supported (host, port, sslmode)")
                    }
                    query[name] = value
                }
                rest = rest[..<mark]
            }
            guard let slash = rest.firstIndex(of: "/") else { throw .open("database URL: no database name (postgres://USER@HOST/DB)") }
            let authority = rest[..<slash]
            let database = String(rest[rest.index(after: slash)...]).removingPercentEncoding ?? ""
            guard !database.isEmpty, !database.contains("/") else { throw .open("database URL: no database name (postgres://USER@HOST/DB)") }
            guard let at = authority.lastIndex(of: "@") else { throw .open("database URL: no user name (postgres://USER@HOST/DB)") }
            let userInfo = authority[..<at]
            if userInfo.contains(":") { throw Self.passwordRefused }
            let username = String(userInfo).removingPercentEncoding ?? ""
            guard !username.isEmpty else { throw .open("database URL: no user name (postgres://USER@HOST/DB)") }

            var hostPort = authority[authority.index(after: at)...]
            var port = 5432
            var host: String
            if hostPort.hasPrefix("["), let close = hostPort.firstIndex(of: "]") {
                host = String(hostPort[hostPort.index(after: hostPort.startIndex)..<close])
                hostPort = hostPort[hostPort.index(after: close)...]
                if hostPort.hasPrefix(":") { port = try Self.port(hostPort.dropFirst()) }
            } else if let colon = hostPort.lastIndex(of: ":") {
                host = String(hostPort[..<colon])
                port = try Self.port(hostPort[hostPort.index(after: colon)...])
            } else {
                host = String(hostPort)
            }
            if let queryPort = query["port"] { port = try Self.port(Substring(queryPort)) }
            if let queryHost = query["host"] { host = queryHost }
            let tls: TLSMode
            if let mode = query["sslmode"] {
                guard let known = TLSMode(rawValue: mode) else { throw .open("database URL: sslmode \"\(mode)\" (disable, prefer, require)") }
                tls = known
            } else {
                tls = .disable
            }
            // libpq: a host that starts with a slash is the socket's directory.
            if host.hasPrefix("/") {
                let directory = host.hasSuffix("/") ? String(host.dropLast()) : host
                return (.unixSocket(path: "\(directory)/.s.PGSQL.\(port)"), username, database, .disable)
            }
            guard !host.isEmpty else { throw .open("database URL: no host (postgres://USER@HOST/DB, or ?host=/socket/dir)") }
            return (.tcp(host: host, port: port), username, database, tls)
        }

        private static var passwordRefused: StoreError {
            .open("database URL: a password in the URL is refused (it would show in ps and logs); set PGPASSWORD instead")
        }

        private static func port(_ text: Substring) throws(StoreError) -> Int {
            guard let port = Int(text), (1...65_535).contains(port) else { throw .open("database URL: port \"\(text)\" is not a port number") }
            return port
        }

        /// The URL without any secret, for logs.
        public var displayURL: String {
            switch endpoint {
            case .tcp(let host, let port): return "postgres://\(username)@\(host):\(port)/\(database)"
            case .unixSocket(let path): return "postgres://\(username)@/\(database)?socket=\(path)"
            }
        }
    }
}
