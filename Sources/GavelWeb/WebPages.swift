import Foundation
import GavelExchange
import Hummingbird
import Logging
import NIOCore

/// The exchange's web pages: the buyer portal (`/portal/`) and the operator dashboard (`/ui/`),
/// server-rendered from Mustache templates, with their static assets, behind a sign-in.
///
/// Register once on the server's router: `WebPages(exchange:books:keys:).register(on: router)`.
public struct WebPages: Sendable {
    /// Settings of the pages, with their defaults.
    public struct Configuration: Sendable {
        public var sessions: SessionStore.Limits
        /// Marks the cookies `Secure`: set it when the exchange is served over HTTPS (behind TLS).
        public var secureCookies: Bool
        /// How often the dashboard's live panel is re-read.
        public var liveRefreshMs: Int
        /// Now, for sessions and "today"; tests pass their own.
        public var now: @Sendable () -> Date

        public init(sessions: SessionStore.Limits = .init(), secureCookies: Bool = false, liveRefreshMs: Int = 2_000,
                    now: @escaping @Sendable () -> Date = { Date() }) {
            self.sessions = sessions
            self.secureCookies = secureCookies
            self.liveRefreshMs = liveRefreshMs
            self.now = now
        }
    }

    let portal: PortalRoutes
    let dashboard: DashboardRoutes

    /// Reads the templates and assets (the target's resources); throws when they are missing or do not parse.
    public init(exchange: Exchange, books: any WebBooks, keys: any WebKeys, configuration: Configuration = .init()) throws {
        let renderer = try PageRenderer.load()
        func area(_ kind: WebArea.Kind, _ path: String) -> WebArea {
            WebArea(kind: kind, path: path, sessions: SessionStore(limits: configuration.sessions), keys: keys, renderer: renderer,
                    secureCookies: configuration.secureCookies, now: configuration.now)
        }
        portal = PortalRoutes(area: area(.portal, "/portal/"), exchange: exchange, books: books)
        dashboard = DashboardRoutes(area: area(.dashboard, "/ui/"), exchange: exchange, books: books, refreshMs: configuration.liveRefreshMs)
    }

    public func register<Context: RequestContext>(on router: Router<Context>) {
        portal.register(on: router)
        dashboard.register(on: router)
    }
}

extension WebPages {
    /// Registers the portal and the dashboard over the exchange's own books and keys. When the
    /// pages' resources cannot be read (a binary moved without its resource bundle), the pages
    /// answer 503 saying so, and the rest of the server runs.
    public static func register<Context: RequestContext>(on router: Router<Context>, exchange: Exchange, logger: Logger,
                                                        configuration: Configuration = .init()) {
        let books = ExchangeBooks(exchange: exchange)
        do {
            try WebPages(exchange: exchange, books: books, keys: books, configuration: configuration).register(on: router)
        } catch {
            logger.error("web pages unavailable: their templates could not be read", metadata: ["error": "\(error)"])
            for path in ["/portal/", "/ui/"] {
                router.get(RouterPath(path)) { _, _ in
                    Response(status: .serviceUnavailable, headers: [.contentType: "text/plain"],
                             body: ResponseBody(byteBuffer: ByteBuffer(string: "the web pages' templates are missing from this build\n")))
                }
            }
        }
    }
}
