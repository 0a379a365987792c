import Foundation

/// Headless Chromium driven over the DevTools protocol by `browser.py` (beside this file): pages
/// are loaded, forms filled and clicked, scripts evaluated and screenshots taken, the way a person
/// would use them. One browser (one cookie jar) per instance.
final class Browser: @unchecked Sendable {
    // @unchecked: one test drives a browser, one command at a time.
    struct Failure: Error, CustomStringConvertible { var description: String }

    static let chromium: String? = ["/usr/bin/chromium", "/usr/bin/chromium-browser", "/usr/bin/google-chrome"]
        .first { FileManager.default.isExecutableFile(atPath: $0) }
    static let driver = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("browser.py").path

    /// Where screenshots go: `$GAVEL_SCREENSHOTS`, else `.build/screenshots` in the package.
    static let screenshots: URL = {
        if let path = ProcessInfo.processInfo.environment["GAVEL_SCREENSHOTS"] { return URL(fileURLWithPath: path) }
        return URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent(".build/screenshots")
    }()

    private let process = Process()
    private let input = Pipe()
    private let output = Pipe()
    private var buffer = Data()

    init(chromium: String, size: String = "1440x900") throws {
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["python3", Browser.driver, chromium, size]
        process.standardInput = input
        process.standardOutput = output
        process.standardError = FileHandle.standardError
        try process.run()
    }

    /// Sends one command and waits (off the cooperative pool) for its answer.
    @discardableResult
    func send(_ command: [String: Any]) async throws -> [String: Any] {
        let line = try JSONSerialization.data(withJSONObject: command) + Data("\n".utf8)
        input.fileHandleForWriting.write(line)
        let answer: Data = try await withCheckedThrowingContinuation { continuation in
            DispatchQueue.global().async {
                while true {
                    if let newline = self.buffer.firstIndex(of: UInt8(ascii: "\n")) {
                        let line = self.buffer[..<newline]
                        self.buffer = Data(self.buffer[(newline + 1)...])
                        continuation.resume(returning: Data(line))
                        return
                    }
                    let chunk = self.output.fileHandleForReading.availableData
                    if chunk.isEmpty {
                        continuation.resume(throwing: Failure(description: "the browser driver stopped"))
                        return
                    }
                    self.buffer.append(chunk)
                }
            }
        }
        let object = try JSONSerialization.jsonObject(with: answer) as? [String: Any] ?? [:]
        guard object["ok"] as? Bool == true else {
            throw Failure(description: "\(command["op"] ?? "?") failed: \(object["error"] ?? "no answer")")
        }
        return object
    }

    func go(_ url: String) async throws { try await send(["op": "go", "url": url]) }
    func fill(_ selector: String, _ value: String) async throws { try await send(["op": "fill", "selector": selector, "value": value]) }
    func click(_ selector: String, navigates: Bool = true) async throws {
        try await send(["op": "click", "selector": selector, "navigates": navigates])
    }
    func wait(until js: String, timeoutS: Double = 15) async throws { try await send(["op": "wait", "js": js, "timeout_s": timeoutS]) }
    func eval(_ js: String) async throws -> Any? { try await send(["op": "eval", "js": js])["value"] }
    func text(_ selector: String) async throws -> String {
        (try await eval("(document.querySelector(\(Browser.quoted(selector))) || {innerText: ''}).innerText") as? String) ?? ""
    }
    var body: String { get async throws { try await text("body") } }

    /// Saves a full-page screenshot as `<name>.png` in `Browser.screenshots`; returns its path.
    @discardableResult
    func screenshot(_ name: String) async throws -> String {
        try FileManager.default.createDirectory(at: Browser.screenshots, withIntermediateDirectories: true)
        let path = Browser.screenshots.appendingPathComponent("\(name).png").path
        try await send(["op": "shot", "path": path])
        print("screenshot: \(path)")
        return path
    }

    func close() async {
        _ = try? await send(["op": "quit"])
        input.fileHandleForWriting.closeFile()
        process.waitUntilExit()
    }

    static func quoted(_ text: String) -> String {
        let data = try! JSONSerialization.data(withJSONObject: [text])
        return String(String(decoding: data, as: UTF8.self).dropFirst().dropLast())
    }
}
