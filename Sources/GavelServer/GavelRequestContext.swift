import Foundation
import HTTPTypes
import Hummingbird
import NIOCore

/// The request context of every route: Hummingbird's core storage plus the peer's address, for
/// per-client limits on the public endpoints.
struct GavelRequestContext: RequestContext, RemoteAddressRequestContext {
    var coreContext: CoreRequestContextStorage
    let remoteAddress: SocketAddress?
    /// Who sent the request, from its bearer key (`PrincipalMiddleware`); nil without a known key.
    var principal: Principal?

    static let forwardedFor = HTTPField.Name("X-Forwarded-For")!

    init(source: ApplicationRequestContextSource) {
        coreContext = .init(source: source)
        remoteAddress = source.channel.remoteAddress
    }

    /// The client's address: the peer's, or — only when the peer is a trusted proxy — the
    /// right-most `X-Forwarded-For` entry that is not itself a trusted proxy. Anyone can write
    /// `X-Forwarded-For`; only what a trusted proxy appended is believed.
    func clientAddress(of request: Request, trustedProxies: Set<String>) -> String {
        let peer = remoteAddress?.ipAddress ?? "unknown"
        guard trustedProxies.contains(peer), let forwarded = request.headers[values: GavelRequestContext.forwardedFor].last else { return peer }
        let hops = forwarded.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }
        return hops.last { !trustedProxies.contains($0) && !$0.isEmpty } ?? peer
    }
}
