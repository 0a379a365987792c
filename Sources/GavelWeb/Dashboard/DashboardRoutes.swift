import Foundation
import GavelCore
import GavelExchange
import GavelStore
import Hummingbird
import NIOCore

/// The operator dashboard, `/ui/`: live rounds per second, sold %, revenue and margin today,
/// buyers' latency, health and caps, the reason breakdown, recent rounds and one round in full.
/// The live panel is re-read every `refreshMs` by `live.js` (`GET /ui/live`, an HTML fragment).
struct DashboardRoutes: Sendable {
    let area: WebArea
    let exchange: Exchange
    let books: any WebBooks
    let refreshMs: Int
    /// Minutes of activity charted (rounds per minute, reasons, latency).
    static let windowMinutes = 15
    static let recentRounds = 15

    func register<Context: RequestContext>(on router: Router<Context>) {
        router.get("/ui/") { request, _ in await self.home(request) }
        router.get("/ui/live") { request, _ in await self.live(request) }
        router.get("/ui/rounds/:id") { request, context in await self.round(request, id: context.parameters.get("id") ?? "") }
        router.post("/ui/signin") { request, _ in await self.area.signIn(request) }
        router.post("/ui/signout") { request, _ in await self.area.signOut(request) }
        router.get("/ui/static/:name") { _, context in self.area.renderer.asset(context.parameters.get("name") ?? "") }
    }

    func home(_ request: Request) async -> Response {
        guard let session = area.session(request) else { return area.signInPage() }
        let page = DashboardPage(csrf: session.csrfToken, who: session.principal.id, live: await liveView(), refreshMs: refreshMs)
        return area.renderer.page("dashboard", page)
    }

    /// The live panel alone; 401 without a session (the script then reloads into the sign-in form).
    func live(_ request: Request) async -> Response {
        guard area.session(request) != nil else {
            return Response(status: .unauthorized, headers: PageRenderer.pageHeaders(contentType: "text/plain"),
                            body: ResponseBody(byteBuffer: ByteBuffer(string: "sign in\n")))
        }
        return area.renderer.page("dashboard-live", await liveView())
    }

    func round(_ request: Request, id: String) async -> Response {
        guard let session = area.session(request) else { return area.signInPage() }
        guard let round = try? await exchange.round(id: id) else { return area.notFound("No round \(id).") }
        return area.renderer.page("round", RoundPage(round, session: session))
    }

    // MARK: Figures

    func liveView() async -> DashboardLive {
        let now = area.now()
        let nowMs = Int64(now.timeIntervalSince1970 * 1000)
        let dayStart = Formatting.dayStart(ms: nowMs)
        var problem: String?
        let store = exchange.store
        var activity = RoundStore.Activity()
        var lastMinute = RoundStore.Activity()
        var today = (rounds: 0, sold: 0)
        var recent: [RoundStore.RecentRound] = []
        do {
            activity = try await store.activity(sinceMs: nowMs - Int64(DashboardRoutes.windowMinutes) * 60_000)
            lastMinute = try await store.activity(sinceMs: nowMs - 60_000, limit: 100_000)
            today = try await store.roundCounts(fromMs: dayStart, toMs: dayStart + 86_400_000)
            recent = try await store.recentRounds(limit: DashboardRoutes.recentRounds)
        } catch {
            problem = "The database could not be read just now: \(error)"
        }
        let pnl = try? await books.profitAndLoss(fromMs: dayStart, toMs: dayStart + 86_400_000)
        var buyers: [(buyer: Buyer, usage: BuyerLedger.CapUsage, backedOffUntil: Date?, failures: Int, portalPaused: Bool)] = []
        for buyer in exchange.config.buyers {
            let usage = exchange.ledger.capUsage(buyer: buyer, at: now)
            let health = exchange.ledger.health(buyerID: buyer.id, at: now)
            buyers.append((buyer, usage, health.backedOffUntil, health.failures, exchange.isPortalPaused(buyer.id)))
        }
        return DashboardLive(.init(nowMs: nowMs, windowMinutes: DashboardRoutes.windowMinutes, activity: activity, lastMinute: lastMinute,
                                   today: today, pnl: pnl, recent: recent, buyers: buyers, problem: problem))
    }
}
