import Foundation
import GavelCore
import GavelExchange
import Hummingbird
import NIOCore

/// The call endpoints: `POST /v1/calls` from the telephony front, `POST /v1/calls/{id}/events`
/// for the call's lifecycle.
struct CallAPI: Sendable {
    let exchange: Exchange
    let sellers: SellerAPI

    func register(on router: Router<GavelRequestContext>) {
        router.post("/v1/calls") { request, _ in await self.call(request) }
        router.post("/v1/calls/:id/events") { request, context in await self.event(request, callID: context.parameters.get("id") ?? "") }
    }

    func call(_ request: Request) async -> Response {
        let arrival = ContinuousClock.now
        return await sellers.write(request, path: "/v1/calls", startsRound: true) { seller, body, config, ticket throws(RequestError) in
            let submission = try CallSubmission.parse(body, seller: seller, config: config)
            do throws(ExchangeError) {
                return .ok(try await exchange.runCall(submission, seller: seller, arrival: arrival, ticket: ticket).json)
            } catch {
                return .unavailable(error)
            }
        }
    }

    func event(_ request: Request, callID: String) async -> Response {
        await sellers.write(request, path: "/v1/calls/\(callID)/events") { seller, body, _, ticket throws(RequestError) in
            let event = try CallEvent.parse(body)
            do throws(Exchange.PostError) {
                let outcome = try await exchange.handleCallEvent(callID: callID, event: event, seller: seller, ticket: ticket)
                return .ok(outcome.json(callID: callID))
            } catch {
                switch error {
                case .request(let requestError): return .failed(requestError)
                case .exchange(let exchangeError): return .unavailable(exchangeError)
                }
            }
        }
    }
}
