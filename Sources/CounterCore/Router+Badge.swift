extension Router {
    /// How long a cache may keep a badge before it revalidates (cheaply: ``EntityTag``); the
    /// `max-age` of ``Response/CacheControl``'s badge lines.
    public static let badgeMaxAge = 30

    /// `GET /v1/counters/{name}/badge.svg`: the value as an SVG badge (``Badge``), revalidated by
    /// its ETag. With `count=1`, and only for a name under the operator's hit-counter prefixes
    /// (``NamedParts/hitPrefix``), the request first adds one: a page view counted by an `<img>`,
    /// which can only GET. HEAD never counts (a safe method has no side effect).
    func badge(_ name: CounterName, _ request: RequestHead, store: some CounterStore) throws -> Response {
        let query = try QueryString(request.query)
        let options = try BadgeOptions(query, name: name)
        let counts = try query.flag("count", default: false) && request.method == "GET"
        let value: Int64
        if counts {
            guard let hits = request.named?.hitPrefix, name.hasPrefix(hits) else { throw APIError.hitsNotEnabled }
            value = try store.apply(.increment(by: 1), to: name, idempotency: nil, now: clock()).value
        } else {
            guard let current = try store.value(of: name) else { throw APIError.counterNotFound(name) }
            value = current
        }
        let text = options.abbreviate ? AbbreviatedNumber.text(value) : String(value)
        let svg = Badge(label: options.label, value: text, options: options).svg()
        guard !counts else {
            // Every view must reach us to be counted: nothing may keep this one, so no tag either.
            return Response(status: .ok, contentType: .svg, body: svg)
        }
        let tag = EntityTag(of: svg)
        // A public counter's badge may sit in shared caches (a CDN, GitHub's image proxy); a keyed
        // one only in the caller's own.
        let isPublic = request.named?.publicPrefix.map { name.hasPrefix($0) } ?? false
        let cacheControl: Response.CacheControl = isPublic ? .publicBadge : .privateBadge
        if let field = request.named?.ifNoneMatch, tag.matches(ifNoneMatch: field) {
            return Response(status: .notModified, contentType: .svg, headers: [("ETag", tag.header)], body: [], cacheControl: cacheControl)
        }
        return Response(status: .ok, contentType: .svg, headers: [("ETag", tag.header)], body: svg, cacheControl: cacheControl)
    }
}
