import Foundation
import HTTPTypes
import Hummingbird
import Mustache
import NIOCore

/// The pages' templates (`Templates/*.mustache`) and static assets (`Static/`), read once from the
/// target's resources; renders a page into a response with the headers every page carries.
struct PageRenderer: Sendable {
    struct Asset: Sendable {
        var bytes: ByteBuffer
        var contentType: String
    }

    let library: MustacheLibrary
    /// Static files by name; only these are served, so no path reaches the file system.
    let assets: [String: Asset]

    static func load(bundle: Bundle = .module) throws -> PageRenderer {
        guard let templates = bundle.url(forResource: "Templates", withExtension: nil),
              let statics = bundle.url(forResource: "Static", withExtension: nil)
        else { throw WebError.resources("the GavelWeb resources are missing") }
        var library = MustacheLibrary()
        for file in try FileManager.default.contentsOfDirectory(atPath: templates.path) where file.hasSuffix(".mustache") {
            let text = try String(contentsOf: templates.appendingPathComponent(file), encoding: .utf8)
            do {
                try library.register(text, named: String(file.dropLast(".mustache".count)))
            } catch {
                throw WebError.resources("\(file): \(error)")
            }
        }
        var assets: [String: Asset] = [:]
        for file in try FileManager.default.contentsOfDirectory(atPath: statics.path) {
            let data = try Data(contentsOf: statics.appendingPathComponent(file))
            let type: String
            switch (file as NSString).pathExtension {
            case "css": type = "text/css; charset=utf-8"
            case "js": type = "text/javascript; charset=utf-8"
            case "svg": type = "image/svg+xml"
            default: type = "application/octet-stream"
            }
            assets[file] = Asset(bytes: ByteBuffer(bytes: data), contentType: type)
        }
        return PageRenderer(library: library, assets: assets)
    }

    /// The rendered template as text (for fragments and tests).
    func render(_ template: String, _ object: Any) -> String {
        library.render(object, withTemplate: template) ?? "template \(template) is missing"
    }

    /// A page: HTML that is never cached (it shows money and contacts) and may load only this server's assets.
    func page(_ template: String, _ object: Any, status: HTTPResponse.Status = .ok) -> Response {
        Response(status: status, headers: PageRenderer.pageHeaders(contentType: "text/html; charset=utf-8"),
                 body: ResponseBody(byteBuffer: ByteBuffer(string: render(template, object))))
    }

    func asset(_ name: String) -> Response {
        guard let asset = assets[name] else {
            return Response(status: .notFound, headers: [.contentType: "text/plain"], body: ResponseBody(byteBuffer: ByteBuffer(string: "not found\n")))
        }
        return Response(status: .ok, headers: [.contentType: asset.contentType, .cacheControl: "max-age=300"],
                        body: ResponseBody(byteBuffer: asset.bytes))
    }

    static let contentSecurityPolicy = HTTPField.Name("Content-Security-Policy")!
    static let contentTypeOptions = HTTPField.Name("X-Content-Type-Options")!
    static let frameOptions = HTTPField.Name("X-Frame-Options")!
    static let referrerPolicy = HTTPField.Name("Referrer-Policy")!

    static func pageHeaders(contentType: String) -> HTTPFields {
        var headers: HTTPFields = [:]
        headers[.contentType] = contentType
        headers[.cacheControl] = "no-store"
        headers[contentSecurityPolicy] =
            "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; form-action 'self'; frame-ancestors 'none'"
        headers[contentTypeOptions] = "nosniff"
        headers[frameOptions] = "DENY"
        headers[referrerPolicy] = "same-origin"
        return headers
    }
}

struct WebError: Error, CustomStringConvertible {
    var description: String
    static func resources(_ detail: String) -> WebError { WebError(description: detail) }
}
