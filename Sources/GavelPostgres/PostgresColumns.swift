import Foundation
import NIOCore
import PostgresNIO

/// A one-dimensional PostgreSQL array whose elements may be NULL, in the binary format
/// (postgres-nio's own arrays take no optionals). Written as a whole column of a batch, read by
/// `unnest` on the server.
struct NullableArray<Element: PostgresArrayEncodable & PostgresNonThrowingEncodable>: PostgresNonThrowingEncodable, Sendable
    where Element: Sendable
{
    var values: [Element?]

    static var psqlType: PostgresDataType { Element.psqlArrayType }
    static var psqlFormat: PostgresFormat { .binary }

    func encode<JSONEncoder: PostgresJSONEncoder>(into buffer: inout ByteBuffer, context: PostgresEncodingContext<JSONEncoder>) {
        // Dimensions, whether any element is NULL, the element type.
        buffer.writeInteger(values.isEmpty ? 0 : 1, as: Int32.self)
        buffer.writeInteger(values.contains(where: { $0 == nil }) ? 1 : 0, as: Int32.self)
        buffer.writeInteger(Element.psqlType.rawValue)
        guard !values.isEmpty else { return }
        // The one dimension: its length and lower bound.
        buffer.writeInteger(Int32(values.count), as: Int32.self)
        buffer.writeInteger(1, as: Int32.self)
        for value in values {
            guard let value else {
                buffer.writeInteger(-1, as: Int32.self)
                continue
            }
            let lengthIndex = buffer.writerIndex
            buffer.writeInteger(0, as: Int32.self)
            let start = buffer.writerIndex
            value.encode(into: &buffer, context: context)
            buffer.setInteger(Int32(buffer.writerIndex - start), at: lengthIndex, as: Int32.self)
        }
    }
}

/// The columns of a batch for `INSERT … SELECT * FROM unnest($1::text[], $2::bigint[], …)`: one
/// bind per column, whatever the number of rows.
struct UnnestColumns {
    private(set) var binds = PostgresBindings()
    private var types: [String] = []

    mutating func text(_ values: [String?]) {
        binds.append(NullableArray(values: values))
        types.append("text")
    }

    mutating func bigint(_ values: [Int64?]) {
        binds.append(NullableArray(values: values))
        types.append("bigint")
    }

    mutating func bool(_ values: [Bool?]) {
        binds.append(NullableArray(values: values))
        types.append("boolean")
    }

    /// `unnest($1::text[], …)`, numbered from `first`.
    func unnest(from first: Int = 1) -> String {
        "unnest(" + types.enumerated().map { "$\(first + $0.offset)::\($0.element)[]" }.joined(separator: ", ") + ")"
    }

    /// `sql` with `{unnest}` replaced, and the columns as its binds.
    func query(_ sql: String) -> PostgresQuery {
        PostgresQuery(unsafeSQL: sql.replacingOccurrences(of: "{unnest}", with: unnest()), binds: binds)
    }
}
