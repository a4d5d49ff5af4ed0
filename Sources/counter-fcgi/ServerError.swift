#if canImport(Glibc)
import Glibc
#endif

/// Why the server could not start or run; the description is the one line printed at exit.
struct ServerError: Error, CustomStringConvertible {
    let description: String
}

/// The text of the last system call's error (`errno`), for error lines.
func lastError() -> String {
    String(cString: strerror(errno))
}
