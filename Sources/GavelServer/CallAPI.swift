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

    func register(on router: Router<BasicRequestContext>) {
        router.post("/v1/calls") { request, _ in await self.call(request) }
        router.post("/v1/calls/:id/events") { request, context in await self.event(request, callID: context.parameters.get("id") ?? "") }
    }

    func call(_ request: Request) async -> Response {
        let arrival = ContinuousClock.now
        let config = exchange.config
        do {
            let seller = try sellers.authenticate(request, config: config)
            let submission = try CallSubmission.parse(try await sellers.collect(request), seller: seller, config: config)
            do {
                return JSONResponses.ok(CallAPI.json(try await exchange.runCall(submission, seller: seller, arrival: arrival)))
            } catch {
                return JSONResponses.unavailable(error)
            }
        } catch {
            return JSONResponses.error(error)
        }
    }

    func event(_ request: Request, callID: String) async -> Response {
        do {
            let seller = try sellers.authenticate(request, config: exchange.config)
            let event = try CallEvent.parse(try await sellers.collect(request))
            do {
                let outcome = try await exchange.handleCallEvent(callID: callID, event: event, seller: seller)
                var object = JSONObject()
                object["call_id"] = .string(callID)
                object["status"] = .string(outcome.status)
                object["payout"] = JSONValue(outcome.payout)
                if let routing = outcome.routing, routing.routed, case .object(let fields) = CallAPI.json(routing) {
                    for key in ["destination", "min_duration_s", "expires_at"] { object[key] = fields[key] }
                    object["payout"] = fields["payout"]
                }
                return JSONResponses.ok(.object(object))
            } catch {
                switch error {
                case .request(let requestError): return JSONResponses.error(requestError)
                case .exchange(let exchangeError): return JSONResponses.unavailable(exchangeError)
                }
            }
        } catch {
            return JSONResponses.error(error)
        }
    }

    static func json(_ routing: CallRouting) -> JSONValue {
        var object = JSONObject()
        object["call_id"] = .string(routing.callID)
        object["status"] = .string(routing.routed ? "routed" : "unrouted")
        object["destination"] = routing.destination.map(JSONValue.string) ?? .null
        object["payout"] = JSONValue(routing.payout)
        object["min_duration_s"] = routing.minDurationS.map { .number(String($0)) } ?? .null
        object["expires_at"] = routing.expiresAtMs.map { .string(Timestamps.rfc3339(ms: $0)) } ?? .null
        return .object(object)
    }
}
