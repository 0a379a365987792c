import GavelStore
import Testing
@testable import GavelPostgres

/// The database URL: libpq's forms, and never a password in it.
struct ConfigurationTests {
    @Test func tcpURLWithPort() throws {
        let configuration = try PostgresStore.Configuration(url: "postgres://gavel@db.internal:6432/exchange", nodeID: "n1", environment: [:])
        #expect(configuration.endpoint == .tcp(host: "db.internal", port: 6432))
        #expect(configuration.username == "gavel")
        #expect(configuration.database == "exchange")
        #expect(configuration.password == nil)
        #expect(configuration.poolSize == 8)
        #expect(configuration.statementTimeoutMs == 2_000)
        #expect(configuration.lockTimeoutMs == 1_000)
    }

    @Test func socketDirectoryInTheQuery() throws {
        let configuration = try PostgresStore.Configuration(url: "postgres://postgres@/gavel?host=/tmp/pg.x", nodeID: "n1",
                                                            environment: ["PGPASSWORD": "secret"])
        #expect(configuration.endpoint == .unixSocket(path: "/tmp/pg.x/.s.PGSQL.5432"))
        #expect(configuration.password == "secret")
        let other = try PostgresStore.Configuration(url: "postgresql://postgres@/gavel?host=%2Fvar%2Frun%2Fpostgresql&port=5433", nodeID: "n1",
                                                    environment: [:])
        #expect(other.endpoint == .unixSocket(path: "/var/run/postgresql/.s.PGSQL.5433"))
    }

    @Test func aPasswordInTheURLIsRefused() {
        #expect { try PostgresStore.Configuration(url: "postgres://gavel:hunter2@db/exchange", nodeID: "n1", environment: [:]) } throws: { error in
            "\(error)".contains("PGPASSWORD") && !"\(error)".contains("hunter2")
        }
        #expect(throws: StoreError.self) { try PostgresStore.Configuration(url: "postgres://gavel@db/exchange?password=x", nodeID: "n1", environment: [:]) }
    }

    @Test func badURLsAreRefused() {
        for url in ["mysql://a@b/c", "postgres://a@b", "postgres://@b/c", "postgres://a@/c", "postgres://a@b:99999/c", "postgres://a@b/c?foo=1"] {
            #expect(throws: StoreError.self, "\(url)") { try PostgresStore.Configuration(url: url, nodeID: "n1", environment: [:]) }
        }
        #expect(throws: StoreError.self) { try PostgresStore.Configuration(url: "postgres://a@b/c", nodeID: "n1", schema: "x; DROP", environment: [:]) }
    }
}
