private import CFastCGI
import CounterCore

/// The one owner of a libfcgi `FCGX_Request`: one per worker thread, initialised once and reused
/// for every connection that worker accepts (the structure of libfcgi's threaded example).
///
/// libfcgi keeps pointers into the request (its streams point back at it), so it lives at a
/// fixed heap address for the worker's whole life and is freed in `deinit`.
///
/// `@unchecked Sendable` because it is made on the main thread (so a failure stops the start
/// with a clear line) and handed to its worker before that thread starts; from then on only the
/// worker touches it. It is never shared by two threads.
final class FastCGIRequest: @unchecked Sendable {
    private let request: UnsafeMutablePointer<FCGX_Request>
    private var drain = [CChar](repeating: 0, count: 4096)

    /// The most request body we read (and throw away) so libfcgi can finish the connection
    /// cleanly; anything longer is left unread and the connection is closed.
    static let maxDrainBytes = 64 * 1024

    /// A request bound to the listening socket `listenFD`.
    init(listenFD: Int32) throws(ServerError) {
        request = .allocate(capacity: 1)
        let status = FCGX_InitRequest(request, listenFD, 0)
        guard status == 0 else {
            request.deallocate()
            throw ServerError(description: "cannot prepare a FastCGI request (FCGX_InitRequest returned \(status))")
        }
    }

    deinit {
        FCGX_Free(request, 1)
        request.deallocate()
    }

    /// Blocks until a web server sends a request; finishes the previous one first. A negative
    /// result means accepting failed, which is also how a shutdown (socket shut down) shows.
    func accept() -> Int32 {
        let status = FCGX_Accept_r(request)
        if status >= 0 {
            // Never keep a connection, even when the web server asks (FCGI_KEEP_CONN): libfcgi
            // would then block this thread reading that one connection instead of accepting, and
            // requests queued on the socket stall for seconds (measured; docs/DESIGN.md). Closing after
            // each response makes a keep-conn setting in nginx harmless. libfcgi reads this field
            // in FCGX_Finish_r; it has no API for it.
            request.pointee.keepConnection = 0
        }
        return status
    }

    /// Sends the previous response and closes the connection (we never keep connections: see
    /// docs/DESIGN.md, libfcgi binds a kept connection to one thread).
    func finish() {
        FCGX_Finish_r(request)
    }

    /// The request line the router needs, copied into Swift at once: libfcgi's parameter strings
    /// are freed at the next accept.
    func head() -> RequestHead {
        let method = param("REQUEST_METHOD") ?? ""
        let path: String
        if let uri = param("DOCUMENT_URI"), !uri.isEmpty {
            path = uri
        } else if let uri = param("REQUEST_URI"), !uri.isEmpty {
            path = String(uri.prefix { $0 != "?" })
        } else {
            path = param("SCRIPT_NAME") ?? ""
        }
        var head = RequestHead(method: method, path: path, contentLength: param("CONTENT_LENGTH"))
        if method == "POST" {
            // Only writes take an idempotency key; reads skip the two lookups.
            head.idempotencyKey = param("HTTP_IDEMPOTENCY_KEY")
            head.client = param("API_KEY_NAME") ?? "-"
        }
        return head
    }

    /// The request id nginx passes (`REQUEST_ID`, or the client's `X-Request-ID` header).
    func requestID() -> String? {
        param("REQUEST_ID") ?? param("HTTP_X_REQUEST_ID")
    }

    /// Reads and discards the request body, at most ``maxDrainBytes``; returns how much was read.
    @discardableResult
    func drainBody() -> Int {
        var total = 0
        let size = Int32(drain.count)
        while total < FastCGIRequest.maxDrainBytes {
            let count = drain.withUnsafeMutableBufferPointer { FCGX_GetStr($0.baseAddress, size, request.pointee.in) }
            if count <= 0 { break }
            total += Int(count)
        }
        return total
    }

    /// Writes `bytes` (a whole CGI response: headers, blank line, body) to the web server.
    /// Returns false if the connection is gone (nginx gave up on us); nothing to do but log.
    @discardableResult
    func write(_ bytes: [UInt8]) -> Bool {
        bytes.withUnsafeBufferPointer { buffer in
            buffer.withMemoryRebound(to: CChar.self) { chars in
                FCGX_PutStr(chars.baseAddress, Int32(chars.count), request.pointee.out) == Int32(chars.count)
            }
        }
    }

    private func param(_ name: String) -> String? {
        guard let value = FCGX_GetParam(name, request.pointee.envp) else { return nil }
        return String(cString: value)
    }
}
