/// One event of a call's lifecycle, as recorded.
public struct CallEventRecord: Sendable, Hashable, Codable {
    public var type: String
    public var buyerID: String?
    public var atMs: Int64
    public var durationS: Int?
    public var recordingURL: String?
    public var detail: String?

    public init(type: String, buyerID: String?, atMs: Int64, durationS: Int? = nil, recordingURL: String? = nil, detail: String? = nil) {
        self.type = type
        self.buyerID = buyerID
        self.atMs = atMs
        self.durationS = durationS
        self.recordingURL = recordingURL
        self.detail = detail
    }
}
