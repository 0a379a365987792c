import Foundation

/// Line output through unbuffered file handles, so a parent process waiting for the
/// "listening" line sees it at once even when stdout is a pipe.
enum Console {
    static func out(_ line: String) {
        FileHandle.standardOutput.write(Data((line + "\n").utf8))
    }

    static func err(_ line: String) {
        FileHandle.standardError.write(Data((line + "\n").utf8))
    }
}
