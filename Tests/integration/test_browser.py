"""A real browser (headless Chromium) shows the badges the running stack serves, embedded in a page
of another origin that isolates itself (COEP require-corp): each image must load and have a size,
the hit counter must count the browser's view, and a screenshot is kept to look at
(BADGE_SCREENSHOT=PATH copies it there)."""
import http.server
import json
import os
import shutil
import struct
import subprocess
import threading
from functools import partial

import pytest

CHROMIUM = shutil.which("chromium")

PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>badges</title>
<style>body {{ font-family: sans-serif; margin: 16px; }} img {{ display: block; margin: 8px 0; }}</style></head>
<body>
<h3>counter-fcgi badges</h3>
{images}
<pre id="result">pending</pre>
<script>
window.addEventListener("load", () => {{
  const images = [...document.querySelectorAll("img")];
  document.getElementById("result").textContent = JSON.stringify(
    images.map(i => ({{id: i.id, complete: i.complete, width: i.naturalWidth, height: i.naturalHeight}})));
}});
</script>
</body></html>
"""

BADGES = {
    "plain": "/v1/counters/pub:stars/badge.svg",
    "abbreviated": "/v1/counters/pub:stars/badge.svg?label=GitHub%20stars&abbreviate=1&color=brightgreen",
    "square": "/v1/counters/pub:stars/badge.svg?style=flat-square&color=yellow&labelColor=007ec6&label=light",
    "escaped": "/v1/counters/pub:stars/badge.svg?label=%3Cviews%20%26%20%22hits%22%3E%20%F0%9F%91%80",
    "value-only": "/v1/counters/pub:stars/badge.svg?label=",
    "hits": "/v1/counters/hits:home/badge.svg?count=1&label=views",
}


class IsolatedPage(http.server.SimpleHTTPRequestHandler):
    """Serves the page with COEP require-corp: the browser then shows only cross-origin images
    that allow it (Cross-Origin-Resource-Policy: cross-origin)."""

    def end_headers(self):
        self.send_header("Cross-Origin-Embedder-Policy", "require-corp")
        self.send_header("Cross-Origin-Opener-Policy", "same-origin")
        super().end_headers()

    def log_message(self, *args):
        pass


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is installed by scripts/setup.sh")
def test_chromium_shows_every_badge(tmp, start_stack):
    stack = start_stack(nginx_env={"PUBLIC_COUNTERS": "pub:", "PUBLIC_HIT_COUNTERS": "hits:"})
    stack.redis.cli("SET", "{c:pub:stars}", "1234567")
    # 127.0.0.2 is another origin than the API's 127.0.0.1 (and still loopback).
    site = tmp / "site"
    site.mkdir()
    images = "\n".join(f'<img id="{name}" src="http://127.0.0.1:{stack.port}{path}" alt="{name}">' for name, path in BADGES.items())
    (site / "index.html").write_text(PAGE.format(images=images))
    server = http.server.ThreadingHTTPServer(("127.0.0.2", 0), partial(IsolatedPage, directory=str(site)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    url = f"http://127.0.0.2:{server.server_address[1]}/index.html"
    base = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-dev-shm-usage",
            f"--user-data-dir={tmp / 'chromium-profile'}", "--virtual-time-budget=10000"]
    try:
        dom = subprocess.run(base + ["--dump-dom", url], capture_output=True, text=True, timeout=120)
        shot = tmp / "badges.png"
        subprocess.run(base + [f"--screenshot={shot}", "--window-size=520,420", "--hide-scrollbars", url],
                       capture_output=True, text=True, timeout=120)
    finally:
        server.shutdown()
        server.server_close()
    assert '<pre id="result">' in dom.stdout, dom.stderr[-2000:]
    result = json.loads(dom.stdout.split('<pre id="result">', 1)[1].split("</pre>", 1)[0].replace("&quot;", '"'))
    assert [r["id"] for r in result] == list(BADGES)
    for image in result:
        assert image["complete"] and image["width"] > 0 and image["height"] == 20, image
    widths = {r["id"]: r["width"] for r in result}
    assert widths["value-only"] < widths["plain"]
    # The browser's views were counted (one per page load: the DOM dump and the screenshot).
    assert int(stack.redis.get("{c:hits:home}")) >= 1
    # The screenshot: a PNG of the window's size, kept to be looked at.
    header = shot.read_bytes()[:24]
    assert header[:8] == b"\x89PNG\r\n\x1a\n" and struct.unpack(">II", header[16:24]) == (520, 420)
    if os.environ.get("BADGE_SCREENSHOT"):
        shutil.copy(shot, os.environ["BADGE_SCREENSHOT"])
