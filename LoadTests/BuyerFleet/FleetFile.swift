import Foundation

/// The JSON fleet file read by `gavel-buyers`: `{"buyers": {"<buyer id>": {<BuyerBehavior>}, ...}}`.
public struct FleetFile: Codable, Sendable, Equatable {
    /// Behaviour by buyer id; the id is the first path component of the buyer's URLs.
    public var buyers: [String: BuyerBehavior]

    public init(buyers: [String: BuyerBehavior]) {
        self.buyers = buyers
    }

    /// Reads and decodes a fleet file.
    public init(contentsOf url: URL) throws {
        self = try JSONDecoder().decode(FleetFile.self, from: Data(contentsOf: url))
    }
}
