"""Badges (/v1/counters/{name}/badge.svg), public counters (PUBLIC_COUNTERS) and hit counters
(PUBLIC_HIT_COUNTERS): the SVG as XML, its options and their 400s, ETag revalidation, caching
headers, counting from an <img>, and what nginx lets through without a key, on real redis-server,
counter-fcgi (cgi-fcgi) and nginx."""
import subprocess
import xml.etree.ElementTree as ET

import pytest

from conftest import KEY_ADMIN, KEY_READ, KEY_WRITE, RENDER, wait_for
from test_api import assert_problem

SVG = "{http://www.w3.org/2000/svg}"
KEY_OPS = "tk-ops-N4m7Q1s5W9y3B6d0"


def badge(responder, name, query="", method="GET", namespace=None, public=None, hits=None, if_none_match=None):
    params = {"QUERY_STRING": query, "API_KEY_NAME": "-"}
    for param, value in (("API_KEY_PREFIX", namespace), ("COUNTER_PUBLIC_PREFIX", public),
                         ("COUNTER_HIT_PREFIX", hits), ("HTTP_IF_NONE_MATCH", if_none_match)):
        if value is not None:
            params[param] = value
    return responder.request(method, f"/v1/counters/{name}/badge.svg", params=params)


def texts(body):
    """The SVG's visible texts (not the shadows), after checking it is well-formed XML."""
    root = ET.fromstring(body)
    assert root.tag == f"{SVG}svg" and root.get("height") == "20" and int(root.get("width")) > 0
    return [t.text or "" for t in root.iter(f"{SVG}text") if t.get("aria-hidden") != "true"], root


def test_a_badge_shows_the_value_and_revalidates_by_etag(responder, redis):
    redis.cli("SET", "{c:views}", "1234567")
    first = badge(responder, "views")
    assert first.status == 200 and first.headers["content-type"] == "image/svg+xml"
    shown, root = texts(first.body)
    assert shown == ["views", "1234567"]
    assert root.find(f"{SVG}title").text == "views: 1234567" and root.get("aria-label") == "views: 1234567"
    assert first.headers["cache-control"] == "private, max-age=30"
    tag = first.headers["etag"]
    assert tag.startswith('"') and tag.endswith('"') and len(tag) == 18
    # A cache revalidating with the tag: 304, no body, the same tag and freshness.
    for field in (tag, f'W/{tag}', f'"other", {tag}', "*"):
        again = badge(responder, "views", if_none_match=field)
        assert again.status == 304 and again.body == b"" and again.headers["etag"] == tag, field
        assert again.headers["cache-control"] == "private, max-age=30" and "content-length" not in again.headers
    assert badge(responder, "views", if_none_match='"other"').status == 200
    # Another value, another tag: the old copy is stale.
    redis.cli("INCR", "{c:views}")
    changed = badge(responder, "views", if_none_match=tag)
    assert changed.status == 200 and changed.headers["etag"] != tag and texts(changed.body)[0][1] == "1234568"
    # Another look, another tag too.
    assert badge(responder, "views", query="style=flat-square").headers["etag"] != changed.headers["etag"]


def test_options_shape_the_badge(responder, redis):
    redis.cli("SET", "{c:downloads}", "12345")
    shown, root = texts(badge(responder, "downloads", query="label=Downloads&abbreviate=1&color=brightgreen&labelColor=%23333").body)
    assert shown == ["Downloads", "12.3k"]
    fills = [r.get("fill") for r in root.iter(f"{SVG}rect")]
    assert "#333333" in fills and "#44cc11" in fills
    # Light backgrounds get dark text.
    _, light = texts(badge(responder, "downloads", query="color=yellow").body)
    assert [t.get("fill") for t in light.iter(f"{SVG}text") if t.get("aria-hidden") != "true"][-1] == "#333"
    square = badge(responder, "downloads", query="style=flat-square").body
    assert b"rx=" not in square and b"linearGradient" not in square
    # An empty label: the value alone, a narrower badge.
    alone, alone_root = texts(badge(responder, "downloads", query="label=").body)
    assert alone == ["12345"] and int(alone_root.get("width")) < int(texts(badge(responder, "downloads").body)[1].get("width"))
    # Parameters a badge does not read are ignored (a page's cache-buster).
    assert badge(responder, "downloads", query="v=3&utm_source=readme").status == 200


@pytest.mark.parametrize("label", ['<script>alert("x")</script>', "a & b", "it's \"quoted\"", "views 👀", "]]>"])
def test_every_label_is_escaped_and_the_svg_stays_xml(responder, redis, label):
    from urllib.parse import quote
    redis.cli("SET", "{c:esc}", "7")
    reply = badge(responder, "esc", query="label=" + quote(label))
    assert reply.status == 200 and b"<script" not in reply.body
    shown, root = texts(reply.body)
    assert shown == [label, "7"] and root.find(f"{SVG}title").text == f"{label}: 7"


@pytest.mark.parametrize("query,detail", [
    ("style=plastic", "style must be one of flat, flat-square"),
    ("color=chartreuse", "color must be a colour name"),
    ("labelColor=12345", "labelColor must be a colour name"),
    ("abbreviate=yes", "abbreviate must be 1, true, 0 or false"),
    ("count=2", "count must be 1, true, 0 or false"),
    ("label=" + "x" * 65, "label must be at most 64 printable characters"),
    ("label=%C2%85", "label must be at most 64 printable characters"),
    ("label=%00", "Malformed query string"),
    ("label=a&label=b", "given more than once"),
])
def test_bad_options_are_400(responder, redis, query, detail):
    redis.cli("SET", "{c:opts}", "1")
    assert detail in assert_problem(badge(responder, "opts", query=query), 400)["detail"]


def test_a_missing_counter_a_foreign_name_and_other_methods(responder, redis):
    assert assert_problem(badge(responder, "nobody"), 404)["detail"] == "No counter is named nobody"
    assert redis.cli("DBSIZE").stdout.strip() == "0", "a badge must not create its counter"
    redis.cli("SET", "{c:ops:x}", "1")
    assert_problem(badge(responder, "ops:x", namespace="billing:"), 403)
    refused = assert_problem(badge(responder, "ops:x", method="POST"), 405)
    assert refused["detail"] == "Use GET for /v1/counters/ops:x/badge.svg"
    assert_problem(badge(responder, "bad name"), 400)


def test_count_adds_a_view_only_for_hit_counters(responder, redis):
    body = assert_problem(badge(responder, "blog:home", query="count=1"), 403)
    assert "PUBLIC_HIT_COUNTERS" in body["detail"]
    assert_problem(badge(responder, "blog:home", query="count=1", hits="hits:"), 403)
    assert redis.cli("DBSIZE").stdout.strip() == "0"
    first = badge(responder, "hits:home", query="count=1", hits="hits:")
    assert first.status == 200 and texts(first.body)[0] == ["hits:home", "1"]
    # Each view must reach the service: nothing may store it, so it has no tag to revalidate.
    assert first.headers["cache-control"] == "no-store" and "etag" not in first.headers
    assert texts(badge(responder, "hits:home", query="count=1&label=views", hits="hits:").body)[0] == ["views", "2"]
    # Reading without counting, and HEAD (a safe method), leave it as it is.
    assert texts(badge(responder, "hits:home", hits="hits:").body)[0][1] == "2"
    assert badge(responder, "hits:home", query="count=1", method="HEAD", hits="hits:").status == 200
    assert redis.get("{c:hits:home}") == "2"
    # An empty prefix is no prefix: it must not make every counter a hit counter.
    assert_problem(badge(responder, "blog:home", query="count=1", hits=""), 403)


def test_a_public_counters_badge_may_be_cached_by_anyone(responder, redis):
    redis.cli("SET", "{c:pub:stars}", "5")
    assert badge(responder, "pub:stars", public="pub:").headers["cache-control"] == "public, max-age=30"
    assert badge(responder, "pub:stars", public="other:").headers["cache-control"] == "private, max-age=30"


# --- Through nginx ------------------------------------------------------------------------------

@pytest.fixture
def public_stack(tmp, start_stack):
    keys = tmp / "public-keys.txt"
    keys.write_text(f"{KEY_WRITE} write writer\n{KEY_READ} read\n{KEY_OPS} read ops ns=ops:\n")
    return start_stack(nginx_env={"API_KEYS_FILE": str(keys), "PUBLIC_COUNTERS": "pub: site.a", "PUBLIC_HIT_COUNTERS": "hits:",
                                  "RATE_LIMIT_HITS_PER_ADDRESS": "1r/m", "RATE_LIMIT_HITS_PER_ADDRESS_BURST": "3",
                                  "RATE_LIMIT_BAD_KEY": "1r/m", "RATE_LIMIT_BAD_KEY_BURST": "6"})


def test_public_counters_are_read_without_a_key_and_only_read(public_stack):
    stack = public_stack
    for name in ("pub:stars", "site.a:views", "private:x", "siteXa:y"):
        stack.redis.cli("SET", "{c:%s}" % name, "3")
    for path in ("/v1/counters/pub:stars", "/v1/counters/site.a:views", "/v1/counters/pub:stars/badge.svg"):
        for _ in range(4):  # more than the bad-key burst: a visitor is not a bad key
            assert stack.curl("GET", path).status == 200, path
    assert stack.curl("HEAD", "/v1/counters/pub:stars/badge.svg").status == 200
    assert stack.curl("GET", "/v1/counters/pub:stars").json()["value"] == 3
    # Not public: a key is needed ('.' in a prefix is a dot, not any character).
    assert_problem(stack.curl("GET", "/v1/counters/siteXa:y"), 401)
    assert_problem(stack.curl("GET", "/v1/counters/private:x/badge.svg"), 401)
    # Only read: writes, the listing and other sub-resources still need their key.
    assert_problem(stack.curl("POST", "/v1/counters/pub:stars/increment"), 401)
    assert_problem(stack.curl("DELETE", "/v1/counters/pub:stars"), 401)
    assert_problem(stack.curl("GET", "/v1/counters?prefix=pub:"), 401)
    assert stack.redis.get("{c:pub:stars}") == "3"
    # A wrong key is refused, not read as anyone.
    assert_problem(stack.curl("GET", "/v1/counters/pub:stars", "tk-wrong-key-0000000000"), 403)
    # A key confined to ops: reads public counters as anyone may, but not other private ones.
    assert stack.curl("GET", "/v1/counters/pub:stars", KEY_OPS).status == 200
    assert_problem(stack.curl("GET", "/v1/counters/private:x", KEY_OPS), 403)


def test_badges_carry_an_images_headers_through_nginx(public_stack):
    stack = public_stack
    stack.redis.cli("SET", "{c:pub:stars}", "42")
    reply = stack.curl("GET", "/v1/counters/pub:stars/badge.svg?label=stars")
    assert reply.status == 200 and reply.headers["content-type"] == "image/svg+xml"
    assert texts(reply.body)[0] == ["stars", "42"]
    assert reply.headers["cross-origin-resource-policy"] == "cross-origin"
    assert reply.headers["content-security-policy"] == "default-src 'none'; sandbox"
    assert reply.headers["x-content-type-options"] == "nosniff" and reply.headers["cache-control"] == "public, max-age=30"
    assert reply.headers["x-request-id"]
    again = stack.curl("GET", "/v1/counters/pub:stars/badge.svg?label=stars", headers=[f"If-None-Match: {reply.headers['etag']}"])
    assert again.status == 304 and again.body == b""
    # The JSON routes keep their own, stricter headers.
    read = stack.curl("GET", "/v1/counters/pub:stars")
    assert read.headers["cross-origin-resource-policy"] == "same-origin"
    assert read.headers["content-security-policy"] == "default-src 'none'; frame-ancestors 'none'"
    # A keyed, private badge.
    stack.redis.cli("SET", "{c:team:deploys}", "9")
    keyed = stack.curl("GET", "/v1/counters/team:deploys/badge.svg", KEY_READ)
    assert keyed.status == 200 and keyed.headers["cache-control"] == "private, max-age=30"
    refused = assert_problem(stack.curl("POST", "/v1/counters/team:deploys/badge.svg", KEY_WRITE), 405)
    assert refused["detail"] == "Use GET for /v1/counters/team:deploys/badge.svg"


def test_hit_counters_count_views_under_their_own_limit(public_stack):
    stack = public_stack
    path = "/v1/counters/hits:home/badge.svg?count=1"
    # A public counter that is not a hit counter does not count, with or without a key (this
    # spends one of the address's views: any count=1 does).
    stack.redis.cli("SET", "{c:pub:stars}", "1")
    assert_problem(stack.curl("GET", "/v1/counters/pub:stars/badge.svg?count=1", KEY_READ), 403)
    assert stack.redis.get("{c:pub:stars}") == "1"
    stack.redis.cli("DEL", "{c:pub:stars}")
    # What is left of the rate's one view and the burst of 3.
    counted = [stack.curl("GET", path) for _ in range(3)]
    assert [r.status for r in counted] == [200, 200, 200]
    assert [texts(r.body)[0][1] for r in counted] == ["1", "2", "3"]
    # The burst is spent: the next view from this address is refused, and not counted.
    limited = assert_problem(stack.curl("GET", path), 429)
    assert limited["status"] == 429 and stack.redis.get("{c:hits:home}") == "3"
    # Reading it without counting is not limited by that zone.
    assert stack.curl("GET", "/v1/counters/hits:home/badge.svg").status == 200
    assert stack.curl("GET", "/v1/counters/hits:home/badge.svg?count=0").status == 200
    # A hit counter is public for its badge only: its JSON read still needs a key.
    assert_problem(stack.curl("GET", "/v1/counters/hits:home"), 401)
    # The access log names the route, never a query (the log is flushed each second).
    wait_for(lambda: '"path":"/v1/counters/hits:home/badge.svg"' in stack.access_log.read_text(), what="the access log")


@pytest.mark.parametrize("setting,value,error", [
    ("PUBLIC_COUNTERS", "pub/x", "PUBLIC_COUNTERS: 'pub/x' is not a name prefix"),
    ("PUBLIC_COUNTERS", "{c:a}", "is not a name prefix"),
    ("PUBLIC_HIT_COUNTERS", "a*", "PUBLIC_HIT_COUNTERS: 'a*' is not a name prefix"),
    ("RATE_LIMIT_HITS_PER_ADDRESS", "lots", "RATE_LIMIT_HITS_PER_ADDRESS must look like"),
    ("RATE_LIMIT_HITS_PER_ADDRESS_BURST", "0", "RATE_LIMIT_HITS_PER_ADDRESS_BURST must be a whole number"),
])
def test_render_refuses_bad_public_settings(tmp, setting, value, error):
    out = subprocess.run(["sh", str(RENDER), str(tmp / "out")],
                         env={"PATH": "/usr/bin:/bin", "API_KEY": KEY_ADMIN, setting: value},
                         capture_output=True, text=True, timeout=30)
    assert out.returncode != 0 and error in out.stderr, out.stderr
