import Foundation
import GavelCore
import GavelExchange
import Logging
import Synchronization

/// swift-log handler writing one JSON object per line to standard error (`--log-format json`):
/// `{"time", "level", "label", "message", ...metadata}`, with the metadata keys (`auction_id`,
/// `buyer`, `error`, …) at the top level, so log shippers index them without parsing text.
/// Standard output stays for the ready line alone.
public struct JSONLogHandler: LogHandler {
    public var logLevel: Logger.Level = .info
    public var metadata: Logger.Metadata = [:]
    public var metadataProvider: Logger.MetadataProvider?
    private let label: String

    public init(label: String, metadataProvider: Logger.MetadataProvider? = nil) {
        self.label = label
        self.metadataProvider = metadataProvider
    }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    public func log(event: LogEvent) {
        var object = JSONObject()
        object["time"] = .string(Timestamps.rfc3339(ms: SystemWallClock().nowMs))
        object["level"] = .string(event.level.rawValue)
        object["label"] = .string(label)
        object["message"] = .string(event.message.description)
        var merged = metadata
        if let provided = metadataProvider?.get() { merged.merge(provided) { _, new in new } }
        if let extra = event.metadata { merged.merge(extra) { _, new in new } }
        for key in merged.keys.sorted() where object[key] == nil {
            object[key] = JSONLogHandler.json(merged[key]!)
        }
        JSONLogHandler.write(JSONValue.object(object).serialized + "\n")
    }

    static func json(_ value: Logger.Metadata.Value) -> JSONValue {
        switch value {
        case .string(let text): return .string(text)
        case .stringConvertible(let convertible): return .string(convertible.description)
        case .array(let values): return .array(values.map(json))
        case .dictionary(let values):
            var object = JSONObject()
            for key in values.keys.sorted() { object[key] = json(values[key]!) }
            return .object(object)
        }
    }

    /// One `write` per line, under a lock, so lines from many threads never interleave.
    private static let output = Mutex<Void>(())

    static func write(_ line: String) {
        output.withLock { _ in
            var bytes = Array(line.utf8)
            var offset = 0
            while offset < bytes.count {
                let written = bytes.withUnsafeMutableBytes { buffer in
                    Foundation.write(2, buffer.baseAddress! + offset, buffer.count - offset)
                }
                guard written > 0 else { return }
                offset += written
            }
        }
    }
}
