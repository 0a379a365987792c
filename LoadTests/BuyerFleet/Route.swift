import NIOHTTP1

/// Where a request goes: `POST /<buyer>/ping`, `POST /<buyer>/post`, `GET /stats`, or nowhere.
enum Route: Equatable {
    case ping(buyer: String)
    case post(buyer: String)
    case stats
    case notFound

    init(method: HTTPMethod, uri: String) {
        let path = uri.split(separator: "?", maxSplits: 1, omittingEmptySubsequences: false)[0]
        let parts = path.split(separator: "/")
        switch (method, parts.count, parts.last) {
        case (.GET, 1, "stats"): self = .stats
        case (.POST, 2, "ping"): self = .ping(buyer: String(parts[0]))
        case (.POST, 2, "post"): self = .post(buyer: String(parts[0]))
        default: self = .notFound
        }
    }
}
