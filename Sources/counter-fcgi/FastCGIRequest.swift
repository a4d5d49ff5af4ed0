private import CFastCGI
import Glibc
import CounterCore

/// The one owner of a libfcgi `FCGX_Request`: one per worker thread, initialised once and reused
/// for every request that worker serves. libfcgi parses each request and frames the response;
/// it never accepts: the worker hands it a connection that has a request waiting
/// (``ConnectionPoller``), and takes the connection back after the response if it is kept.
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

    /// True when connections come over a unix socket (see ``finish(keep:)``).
    private let unixSocket: Bool
    /// True once this request's stdin was read to its end record (``drainBody()``).
    private var stdinComplete = false

    /// `unixSocket` when connections come over a unix socket.
    init(unixSocket: Bool) throws(ServerError) {
        self.unixSocket = unixSocket
        request = .allocate(capacity: 1)
        // No listening socket (-1): libfcgi's FCGX_Accept_r accepts only when it holds no
        // connection, and we always give it one; if parsing fails it closes that connection and
        // its accept on -1 fails at once, which ends the call.
        let status = FCGX_InitRequest(request, -1, 0)
        guard status == 0 else {
            request.deallocate()
            throw ServerError(description: "cannot prepare a FastCGI request (FCGX_InitRequest returned \(status))")
        }
    }

    deinit {
        FCGX_Free(request, 1)
        request.deallocate()
    }

    /// libfcgi's one-time set-up (`FCGX_Init`), before the first request is made; it also installs
    /// libfcgi's own signal handlers, which ``Signals`` then overrides.
    static func initializeLibrary() throws(ServerError) {
        guard FCGX_Init() == 0 else { throw ServerError(description: "FCGX_Init failed") }
    }

    /// Reads the request waiting on `connection` (the begin record and the params). False when
    /// there was none to read: the web server closed a kept connection, or sent something that is
    /// not a request; libfcgi has then closed the connection.
    func begin(on connection: Int32) -> Bool {
        hand(connection)
        stdinComplete = false
        return FCGX_Accept_r(request) >= 0
    }

    // MARK: The connection handover: the only writes to libfcgi's struct
    //
    // libfcgi has no API for serving a connection it did not accept, so these write fields of the
    // public `FCGX_Request` that fcgiapp.h marks "don't use". They rest on what libfcgi 2.4.2
    // (Debian 12's libfcgi-dev, which the package builds against) does, read in its fcgiapp.c:
    // - `FCGX_Accept_r` accepts only while `ipcFd` < 0; given a connection, it reads the request
    //   from it;
    // - finishing a request (`FCGX_Finish_r`, or the finish inside the next `FCGX_Accept_r`)
    //   closes `ipcFd` unless `keepConnection` is set, and sets `keepConnection` from the begin
    //   record's FCGI_KEEP_CONN flag while reading a request;
    // - after a kept finish `ipcFd` still holds the connection (-1 if libfcgi closed it on error).
    // test_fastcgi_handover.py pins the version and the header's fields, and the keep-alive tests
    // (a request after a request on one connection, a prompt stop) check the behaviour itself.

    /// Gives libfcgi `connection` to read the next request from, marked kept so that the finish
    /// inside `FCGX_Accept_r` does not close it.
    private func hand(_ connection: Int32) {
        request.pointee.ipcFd = connection
        request.pointee.keepConnection = 1
    }

    /// Takes the connection back from libfcgi after a kept finish; nil if libfcgi closed it.
    private func takeConnection() -> Int32? {
        let connection = request.pointee.ipcFd
        request.pointee.ipcFd = -1
        return connection >= 0 ? connection : nil
    }

    /// Makes the next finish close the connection, whatever the web server asked.
    private func closeOnFinish() {
        request.pointee.keepConnection = 0
    }

    /// Whether the web server asked to keep the connection (FCGI_KEEP_CONN) for this request.
    private var webServerKeeps: Bool { request.pointee.keepConnection != 0 }

    /// Sends the response's end and either hands the connection back (returned, for the caller to
    /// watch for its next request) or closes it (nil).
    ///
    /// Kept only when `keep` (the server is not stopping), the web server asked (FCGI_KEEP_CONN:
    /// nginx's `fastcgi_keep_conn on`), the request's stdin was read to its end (nothing of it is
    /// left to confuse the next request) and libfcgi saw no error.
    ///
    /// Closed otherwise. libfcgi closes "lingering": shutdown(2) of the sending side, then poll(2)
    /// and read(2) until the web server has closed its side too (up to 2 s), so that a client
    /// still writing gets no reset or EPIPE before it has read the answer. Once we have read the
    /// request's stdin to its end record, the web server has nothing more to send (the protocol's
    /// last record of a request), and on a unix socket a close cannot destroy what it already
    /// has: the answer sits in its socket. So then we close at once (FCGX_Detach: a plain close),
    /// else libfcgi lingers, which costs system calls and a wait on nginx for nothing.
    func finish(keep: Bool) -> Int32? {
        if keep && stdinComplete && webServerKeeps {
            _ = FCGX_Attach(request)  // should libfcgi close it on an error, it lingers
            FCGX_Finish_r(request)
            return takeConnection()
        }
        closeOnFinish()
        if unixSocket, stdinComplete {
            _ = FCGX_Detach(request)
        } else {
            _ = FCGX_Attach(request)
        }
        FCGX_Finish_r(request)
        return nil
    }

    /// The request line the router needs, copied into Swift at once: libfcgi's parameter strings
    /// are freed at the next accept. The params are found in one pass over libfcgi's array
    /// (``Params``), not by one `FCGX_GetParam` search per name, each of which walks the whole array.
    func head() -> RequestHead {
        params = Params(request.pointee.envp)
        let method = params.method.map { String(cString: $0) } ?? ""
        // nginx's normalised path without the query (DOCUMENT_URI is `$uri`): the only path the
        // router is given, so `/read/../read` or `/read?x` cannot be routed around nginx's checks.
        let path = params.documentURI.map { String(cString: $0) } ?? ""
        var head = RequestHead(method: method, path: path, contentLength: params.contentLength.map { String(cString: $0) })
        if method == "POST" || method == "PUT" || method == "DELETE" {
            // Only writes take an idempotency key and name their caller in the log.
            head.idempotencyKey = params.idempotencyKey.map { String(cString: $0) }
            head.client = params.keyName.map { String(cString: $0) } ?? "-"
        }
        if let uri = params.documentURI, FastCGIRequest.isCounters(uri) {
            // Only the named-counter routes read the query, the body's type and the key's namespace.
            // nginx sends none of them empty (if_not_empty): none at all is the common request.
            if params.queryString == nil && params.contentType == nil && params.keyPrefix == nil && params.publicPrefix == nil
                && params.hitPrefix == nil && params.ifNoneMatch == nil {
                head.named = NamedParts.empty
                return head
            }
            // nginx passes the namespace render.sh checked; one that does not parse admits nothing.
            var namespace = CounterPrefix.none
            if let prefix = params.keyPrefix, prefix.pointee != 0 {
                namespace = CounterPrefix(String(cString: prefix)) ?? .unusable
            }
            // Badges only (nginx/fastcgi-badge.conf): the operator's prefixes that this path's
            // name matched, and a cache's revalidation. An empty or unreadable prefix grants
            // nothing (the empty prefix would be every name).
            head.named = NamedParts(query: params.queryString.map { String(cString: $0) } ?? "",
                                    contentType: params.contentType.map { String(cString: $0) }, namespace: namespace,
                                    publicPrefix: FastCGIRequest.operatorPrefix(params.publicPrefix),
                                    hitPrefix: FastCGIRequest.operatorPrefix(params.hitPrefix),
                                    ifNoneMatch: params.ifNoneMatch.map { String(cString: $0) })
        }
        return head
    }

    /// The request id nginx passes (`REQUEST_ID`: the client's sane `X-Request-ID`, or nginx's
    /// own); after ``head()``, before the next accept.
    func requestID() -> String? {
        params.requestID.map { String(cString: $0) }
    }

    private var params = Params(nil)

    /// A prefix of the operator's that nginx matched; nil when it is absent, empty or unreadable.
    private static func operatorPrefix(_ value: UnsafePointer<CChar>?) -> CounterPrefix? {
        guard let value, value.pointee != 0, let prefix = CounterPrefix(String(cString: value)) else { return nil }
        return prefix
    }

    /// Whether the path (a C string) is under `/v1/counters`: the original routes pay one
    /// `strncmp` against a static string for named counters, not a Swift `hasPrefix`.
    private static func isCounters(_ uri: UnsafePointer<CChar>) -> Bool {
        let root: StaticString = "/v1/counters"
        return root.withUTF8Buffer { bytes in
            bytes.withMemoryRebound(to: CChar.self) { strncmp(uri, $0.baseAddress!, $0.count) == 0 }
        }
    }

    /// Pointers to the values of the params the service reads, valid until the next accept: the
    /// six nginx sends every route (nginx/fastcgi-pass.conf), the named routes' three
    /// (fastcgi-counters.conf) and the badge's three (fastcgi-badge.conf); no others.
    private struct Params {
        var method, documentURI, contentLength: UnsafePointer<CChar>?
        var idempotencyKey, keyName, requestID: UnsafePointer<CChar>?
        var queryString, contentType, keyPrefix: UnsafePointer<CChar>?
        var publicPrefix, hitPrefix, ifNoneMatch: UnsafePointer<CChar>?

        /// One pass over `NAME=value` entries (a NULL-terminated array): `strchr` finds each
        /// `=`, the name's length picks the candidates, one `memcmp` confirms.
        init(_ environment: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) {
            guard var entry = environment else { return }
            while let pair = entry.pointee {
                entry += 1
                guard let equals = strchr(pair, 0x3D) else { continue }
                let value = UnsafePointer(equals + 1)
                func named(_ name: StaticString) -> Bool { memcmp(pair, name.utf8Start, name.utf8CodeUnitCount) == 0 }
                switch pair.distance(to: equals) {
                case 10 where named("REQUEST_ID"): requestID = value
                case 12 where named("QUERY_STRING"): queryString = value
                case 12 where named("CONTENT_TYPE"): contentType = value
                case 14 where named("API_KEY_PREFIX"): keyPrefix = value
                case 12 where named("DOCUMENT_URI"): documentURI = value
                case 12 where named("API_KEY_NAME"): keyName = value
                case 14 where named("REQUEST_METHOD"): method = value
                case 14 where named("CONTENT_LENGTH"): contentLength = value
                case 20 where named("HTTP_IDEMPOTENCY_KEY"): idempotencyKey = value
                case 21 where named("COUNTER_PUBLIC_PREFIX"): publicPrefix = value
                case 18 where named("COUNTER_HIT_PREFIX"): hitPrefix = value
                case 18 where named("HTTP_IF_NONE_MATCH"): ifNoneMatch = value
                default: break
                }
            }
        }
    }

    /// The first bytes of the body ``drainBody()`` read (up to ``keptBodyBytes``): the PUT body.
    private(set) var body: [UInt8] = []
    /// How much of a body is kept for the router; the router refuses larger ones (Content-Length).
    static let keptBodyBytes = 1024

    /// Reads the request's stdin (the body) up to its end record, at most ``maxDrainBytes``;
    /// with `keep`, the first ``keptBodyBytes`` go to ``body`` (a PUT's). Returns how much was read. Every request is read to its end, also one
    /// without a body: nginx sends the end record with the params, so libfcgi has it buffered and
    /// this costs no system call; a client that sends it later is waited for, as the request is
    /// not complete before it (``finish(keep:)`` keeps or closes at once only after it).
    @discardableResult
    func drainBody(keep: Bool = false) -> Int {
        var total = 0
        let size = Int32(drain.count)
        if keep { body.removeAll(keepingCapacity: true) }
        while total < FastCGIRequest.maxDrainBytes {
            let count = drain.withUnsafeMutableBufferPointer { FCGX_GetStr($0.baseAddress, size, request.pointee.in) }
            if count <= 0 { break }
            if keep {
                let room = min(Int(count), FastCGIRequest.keptBodyBytes - body.count)
                if room > 0 { drain.withUnsafeBufferPointer { chars in body.append(contentsOf: chars.prefix(room).lazy.map { UInt8(bitPattern: $0) }) } }
            }
            total += Int(count)
        }
        stdinComplete = FCGX_HasSeenEOF(request.pointee.in) != 0 && FCGX_GetError(request.pointee.in) == 0
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
}
