import GavelCore
import GavelStore
import Logging
import NIOCore
import PostgresNIO
import Synchronization

/// The exchange's PostgreSQL database: the same store protocols as `RoundStore` (SQLite), plus the
/// state several `gavel serve` nodes share (`ClusterState`).
///
/// Connections come from a `PostgresClient` pool whose `run()` is a task the store owns, from
/// `open` to `close`. Every connection has `statement_timeout` and `lock_timeout` (fail closed),
/// and every call has a deadline: the caller's `waitingAtMost`, or else the pool wait plus the
/// statement timeouts. Rounds are written by group commit (`PostgresStore+Writer.swift`): one
/// transaction per batch, one statement per table.
public final class PostgresStore: Sendable {
    public let configuration: Configuration
    let client: PostgresClient
    let logger: Logger
    /// The pool's `run()`; cancelled by `close()`.
    private let runTask: Task<Void, Never>
    let writer: GroupCommit
    let signalHub: SignalHub
    /// Whether the database answered lately (`withConnection`): fail fast through an outage.
    let reachability = Reachability()

    /// Connects, creates the schema if asked to, and migrates (under an advisory lock, so nodes
    /// starting together do not race).
    public static func open(_ configuration: Configuration, logger: Logger = Logger(label: "gavel.store.postgres")) async throws(StoreError)
        -> PostgresStore
    {
        try configuration.validate()
        let store = PostgresStore(configuration, logger: logger)
        do {
            // A database that cannot be reached fails the start within seconds, saying so (the
            // migration's own deadline is minutes: it may wait for another node's migration).
            _ = try await store.withConnection("connect to PostgreSQL", failure: { .open($0) }) { connection in
                try await connection.rows("SELECT 1")
            }
            try await store.migrate()
        } catch {
            store.close()
            throw error
        }
        store.writer.start(store)
        return store
    }

    private init(_ configuration: Configuration, logger: Logger) {
        self.configuration = configuration
        self.logger = logger
        // The pool reports a failed connection attempt only in its log: that is how an outage is
        // seen at once, before a caller's deadline runs out (`Reachability`).
        let reachability = reachability
        let upstream = logger
        let background = Logger(label: logger.label) { _ in ReachabilityLogHandler(upstream: upstream, reachability: reachability) }
        client = PostgresClient(configuration: Self.clientConfiguration(configuration), backgroundLogger: background)
        let client = client
        runTask = Task { await client.run() }
        writer = GroupCommit(deadline: configuration.batchDeadline, logger: logger)
        signalHub = SignalHub()
    }

    deinit { runTask.cancel() }

    /// Stops taking writes and ends the listening connections at once; the writes already queued
    /// are committed, then the pool closes. `closed()` waits for all of it.
    public func close() {
        writer.close()
        signalHub.close()
        let writer = writer
        let runTask = runTask
        let reachability = reachability
        Task {
            await writer.finished()
            reachability.close()
            runTask.cancel()
        }
    }

    /// Ends the pool's `run()`: queries after this fail at once.
    func endPool() {
        reachability.close()
        runTask.cancel()
    }

    static func clientConfiguration(_ configuration: Configuration) -> PostgresClient.Configuration {
        var client: PostgresClient.Configuration
        switch configuration.endpoint {
        case .unixSocket(let path):
            client = .init(unixSocketPath: path, username: configuration.username, password: configuration.password,
                           database: configuration.database)
        case .tcp(let host, let port):
            let tls: PostgresClient.Configuration.TLS
            switch configuration.tls {
            case .disable: tls = .disable
            case .prefer: tls = .prefer(.makeClientConfiguration())
            case .require: tls = .require(.makeClientConfiguration())
            }
            client = .init(host: host, port: port, username: configuration.username, password: configuration.password,
                           database: configuration.database, tls: tls)
        }
        client.options.maximumConnections = configuration.poolSize
        client.options.minimumConnections = min(2, configuration.poolSize - 1)
        client.options.connectTimeout = configuration.connectionWait
        client.options.additionalStartupParameters = configuration.startupParameters
        return client
    }

    /// Throws when TLS is required and cannot be set up: a required TLS never falls back to plain text.
    static func connectionConfiguration(_ configuration: Configuration) throws -> PostgresConnection.Configuration {
        var connection: PostgresConnection.Configuration
        switch configuration.endpoint {
        case .unixSocket(let path):
            connection = .init(unixSocketPath: path, username: configuration.username, password: configuration.password,
                               database: configuration.database)
        case .tcp(let host, let port):
            let tls: PostgresConnection.Configuration.TLS
            switch configuration.tls {
            case .disable: tls = .disable
            case .prefer: tls = (try? .prefer(.init(configuration: .makeClientConfiguration()))) ?? .disable
            case .require: tls = .require(try .init(configuration: .makeClientConfiguration()))
            }
            connection = .init(host: host, port: port, username: configuration.username, password: configuration.password,
                               database: configuration.database, tls: tls)
        }
        let (seconds, attoseconds) = configuration.connectionWait.components
        connection.options.connectTimeout = .nanoseconds(seconds * 1_000_000_000 + attoseconds / 1_000_000_000)
        connection.options.additionalStartupParameters = configuration.startupParameters
        return connection
    }

    // MARK: Running statements

    /// Runs `body` on a pooled connection, within `timeout` (or the default deadline). On expiry the
    /// wait ends with `StoreError.timeout`; a statement already sent runs on, bounded by `statement_timeout`.
    func withConnection<T: Sendable>(_ what: String, timeout: Duration? = nil, failure: @escaping @Sendable (String) -> StoreError,
                                     _ body: @escaping @Sendable (PostgresConnection) async throws -> T) async throws(StoreError) -> T {
        let client = client
        let reachability = reachability
        // A pool that has stopped serves nobody: fail at once rather than at the deadline.
        guard !reachability.isClosed else { throw failure("\(what): the store is closed") }
        // While the database is unreachable, a call waits only briefly (it still tries: the first
        // to get through ends the outage), so sellers get their 503 at once, not after each deadline.
        let deadline = reachability.deadline(timeout ?? configuration.callDeadline)
        // Only the pool's failed connection attempts mark it unreachable (`ReachabilityLogHandler`):
        // a caller's own short deadline, or a wait on a busy buyer's lock, says nothing about it.
        let value = try await Deadline.run(deadline, what: what, failure: failure) {
            try await client.withConnection { connection in try await body(connection) }
        }
        reachability.answered()
        return value
    }

    /// Runs `body` in one transaction (BEGIN … COMMIT, ROLLBACK on a throw), within the deadline.
    func transaction<T: Sendable>(_ what: String, timeout: Duration? = nil, failure: @escaping @Sendable (String) -> StoreError = StoreError.write,
                                  _ body: @escaping @Sendable (PostgresConnection) async throws -> T) async throws(StoreError) -> T {
        let logger = logger
        return try await withConnection(what, timeout: timeout, failure: failure) { connection in
            try await connection.inTransaction(logger: logger) { try await body(connection) }
        }
    }

    /// Reads: one statement or several on one connection, outside a transaction.
    func read<T: Sendable>(_ what: String, _ body: @escaping @Sendable (PostgresConnection) async throws -> T) async throws(StoreError) -> T {
        try await withConnection(what, failure: StoreError.read, body)
    }

    /// Writes: `body` in one transaction.
    func write<T: Sendable>(_ what: String, _ body: @escaping @Sendable (PostgresConnection) async throws -> T) async throws(StoreError) -> T {
        try await transaction(what, failure: StoreError.write, body)
    }

    // MARK: Settings

    /// The key for contact and caller hashes: made at random once and shared by every node through
    /// the settings table (the first node to write it wins; every node reads the winner's).
    public func hashKey() async throws(StoreError) -> String {
        var generator = SystemRandomNumberGenerator()
        let candidate = (0..<32).map { _ in
            let byte = UInt8.random(in: 0...255, using: &generator)
            return String(byte, radix: 16).count == 1 ? "0" + String(byte, radix: 16) : String(byte, radix: 16)
        }.joined()
        return try await write("hash key") { connection in
            try await connection.run("INSERT INTO settings (name, value) VALUES ('hash_key', \(candidate)) ON CONFLICT (name) DO NOTHING")
            guard let key = try await connection.rows("SELECT value FROM settings WHERE name = 'hash_key'").first else {
                throw StoreError.write("the hash key was not stored")
            }
            return try key.decode(String.self)
        }
    }
}

extension PostgresStore.Configuration {
    /// Sent with every connection's start-up: the timeouts (fail closed) and the schema.
    var startupParameters: [(String, String)] {
        var parameters = [
            ("statement_timeout", String(statementTimeoutMs)),
            ("lock_timeout", String(lockTimeoutMs)),
            // A transaction left open (its caller gave up mid-way and the connection went back to
            // the pool) must not hold its locks: the server ends such a session.
            ("idle_in_transaction_session_timeout", "5000"),
            ("application_name", "gavel-\(nodeID.prefix(40))"),
        ]
        if let schema { parameters.append(("search_path", "\"\(schema)\"")) }
        return parameters
    }

    /// The deadline of a call that has none of its own: a pool wait and two statements.
    var callDeadline: Duration { connectionWait + .milliseconds(2 * statementTimeoutMs) }

    /// The deadline of a group-commit batch: a pool wait and a statement per table.
    var batchDeadline: Duration { connectionWait + .milliseconds(6 * statementTimeoutMs) }
}

// MARK: Errors

/// One description of any error a statement throws: PostgreSQL's own message and SQLSTATE when
/// the server sent one (postgres-nio's `description` hides them).
func describe(_ error: any Error) -> String {
    if let error = error as? StoreError { return error.detail }
    if let error = error as? PSQLError {
        if let server = error.serverInfo {
            var text = "\(server[.message] ?? "server error") (SQLSTATE \(server[.sqlState] ?? "?"))"
            if let detail = server[.detail] { text += ": \(detail)" }
            return text
        }
        return "\(error.code)\(error.underlying.map { ": \($0)" } ?? "")"
    }
    return "\(error)"
}

/// PostgreSQL's own SQLSTATE of an error, when there is one.
func sqlState(of error: any Error) -> String? {
    (error as? PSQLError)?.serverInfo?[.sqlState]
}

/// Whether PostgreSQL has been answering. After the pool failed to open a connection (the server
/// is down or unreachable) and before any call succeeds again, calls wait at most `probe`: an
/// outage costs each request a short wait, not the full deadline.
final class Reachability: Sendable {
    private let unreachable = Mutex(false)
    private let closed = Mutex(false)
    let probe: Duration

    init(probe: Duration = .milliseconds(150)) { self.probe = probe }

    func deadline(_ full: Duration) -> Duration { unreachable.withLock { $0 } ? min(full, probe) : full }
    func answered() { unreachable.withLock { $0 = false } }
    func unanswered() { unreachable.withLock { $0 = true } }
    var isUnreachable: Bool { unreachable.withLock { $0 } }
    /// The store closed its pool.
    func close() { closed.withLock { $0 = true } }
    var isClosed: Bool { closed.withLock { $0 } }
}

/// Passes the pool's log on, and marks the database unreachable when the pool says a connection
/// attempt failed (postgres-nio logs it at info; it has no other hook).
struct ReachabilityLogHandler: LogHandler {
    var upstream: Logger
    let reachability: Reachability
    var metadata: Logger.Metadata = [:]
    var logLevel: Logger.Level {
        get { min(upstream.logLevel, .info) }
        set { upstream.logLevel = newValue }
    }

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    func log(level: Logger.Level, message: Logger.Message, metadata: Logger.Metadata?, source: String, file: String, function: String, line: UInt) {
        if message.description == "Connection creation failed" { reachability.unanswered() }
        guard level >= upstream.logLevel else { return }
        upstream.log(level: level, message, metadata: self.metadata.merging(metadata ?? [:]) { $1 }, source: source, file: file, function: function, line: line)
    }
}

/// A deadline around work that cannot be interrupted half way (a statement on the wire): the
/// caller stops waiting at the deadline, the work is cancelled (a wait for a pool connection ends
/// at once) and otherwise runs on, bounded by the server's `statement_timeout`.
enum Deadline {
    struct Expired: Error {}

    static func run<T: Sendable>(_ timeout: Duration, what: String, failure: @escaping @Sendable (String) -> StoreError,
                                 _ body: @escaping @Sendable () async throws -> T) async throws(StoreError) -> T {
        // A caller that is cancelled (a service shutting down) stops waiting at once too.
        let onCancel = CancelAction()
        let result: Result<T, any Error> = await withTaskCancellationHandler {
            await withCheckedContinuation { continuation in
                let once = Once<Result<T, any Error>>(continuation)
                let work = Task {
                    do { once.resume(.success(try await body())) } catch { once.resume(.failure(error)) }
                }
                let timer = Task {
                    try? await Task.sleep(for: timeout)
                    guard !Task.isCancelled else { return }
                    if once.resume(.failure(Expired())) { work.cancel() }
                }
                once.onResume { timer.cancel() }
                onCancel.set { if once.resume(.failure(CancellationError())) { work.cancel() } }
            }
        } onCancel: {
            onCancel.fire()
        }
        switch result {
        case .success(let value): return value
        case .failure(let error as StoreError): throw error
        case .failure(is Expired): throw .timeout("\(what): no answer from PostgreSQL within \(timeout)")
        case .failure(let error) where sqlState(of: error) == "57014":
            throw .timeout("\(what): statement_timeout: \(describe(error))")
        case .failure(let error) where sqlState(of: error) == "55P03":
            throw .timeout("\(what): lock_timeout: \(describe(error))")
        case .failure(let error): throw failure("\(what): \(describe(error))")
        }
    }
}

/// What to do when a task is cancelled, set once the work it cancels exists (run at once if the
/// task was cancelled before).
final class CancelAction: Sendable {
    private let state = Mutex<(fired: Bool, action: (@Sendable () -> Void)?)>((false, nil))

    func set(_ action: @escaping @Sendable () -> Void) {
        let runNow = state.withLock { state -> Bool in
            if state.fired { return true }
            state.action = action
            return false
        }
        if runNow { action() }
    }

    func fire() {
        let action = state.withLock { state -> (@Sendable () -> Void)? in
            state.fired = true
            defer { state.action = nil }
            return state.action
        }
        action?()
    }
}

/// A continuation resumed exactly once, by whichever comes first.
final class Once<Value: Sendable>: Sendable {
    private struct State {
        var continuation: CheckedContinuation<Value, Never>?
        var onResume: (@Sendable () -> Void)?
        var resumed = false
    }

    private let state: Mutex<State>

    init(_ continuation: CheckedContinuation<Value, Never>) { state = Mutex(State(continuation: continuation)) }

    /// Resumes with `value` if nothing did before; true if this call did.
    @discardableResult
    func resume(_ value: Value) -> Bool {
        let taken = state.withLock { state -> (CheckedContinuation<Value, Never>, (@Sendable () -> Void)?)? in
            guard let continuation = state.continuation else { return nil }
            state.continuation = nil
            state.resumed = true
            defer { state.onResume = nil }
            return (continuation, state.onResume)
        }
        guard let (continuation, onResume) = taken else { return false }
        continuation.resume(returning: value)
        onResume?()
        return true
    }

    /// Runs `action` once resumed (at once if it was).
    func onResume(_ action: @escaping @Sendable () -> Void) {
        let now = state.withLock { state -> Bool in
            if state.resumed { return true }
            state.onResume = action
            return false
        }
        if now { action() }
    }
}

// MARK: Statements on a connection

extension PostgresConnection {
    /// Runs a statement, reading (and dropping) whatever it returns, so its errors surface here.
    func run(_ query: PostgresQuery, logger: Logger = PostgresStore.quiet) async throws {
        for try await _ in try await self.query(query, logger: logger) {}
    }

    /// Runs a statement and returns its rows.
    func rows(_ query: PostgresQuery, logger: Logger = PostgresStore.quiet) async throws -> [PostgresRandomAccessRow] {
        var rows: [PostgresRandomAccessRow] = []
        for try await row in try await self.query(query, logger: logger) { rows.append(row.makeRandomAccess()) }
        return rows
    }

    /// BEGIN, `body`, COMMIT; ROLLBACK when `body` throws (its error is rethrown).
    func inTransaction<T>(logger: Logger, _ body: () async throws -> T) async throws -> T {
        let value: T
        do {
            // Inside: a BEGIN that was sent but whose answer the caller stopped waiting for is rolled back too.
            try await run("BEGIN", logger: logger)
            value = try await body()
        } catch {
            try? await run("ROLLBACK", logger: logger)
            throw error
        }
        try await run("COMMIT", logger: logger)
        return value
    }
}

extension PostgresStore {
    /// Statements log nothing of their own: the store logs what matters, with its metadata.
    static let quiet = Logger(label: "gavel.store.postgres.statements", factory: { _ in SwiftLogNoOpLogHandler() })
}

extension PostgresRandomAccessRow {
    /// The column `name` as `T` (an optional `T` for a nullable column).
    func get<T: PostgresDecodable>(_ name: String, as type: T.Type = T.self) throws -> T {
        try self[name].decode(T.self)
    }

    /// The first column as `T`.
    func decode<T: PostgresDecodable>(_ type: T.Type) throws -> T {
        try self[0].decode(T.self)
    }
}
