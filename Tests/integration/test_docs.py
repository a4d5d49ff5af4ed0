"""The documentation is run, not just read: README's `make run` and its curl lines and the key
rotation of docs/operations.md run exactly as written (docblocks.py extracts them from the
Markdown); docs/configuration.md lists every setting the code and nginx/render.sh take; relative
links resolve; nothing refers to files outside the repository. (The compose steps of
docs/deployment.md run in test_containers.py, which has the Docker engine.)"""
import glob
import json
import os
import re
import signal
import socket
import subprocess

import pytest

from conftest import BINARY, ROOT, wait_for
from docblocks import block, blocks, doc_files

# What `make run` reads from the environment: a test shell must not hand the test's own values on.
RUN_SETTINGS = re.compile(r"^(PORT|API_KEY.*|REDIS_.*|FCGI_.*|RATE_LIMIT_.*|EDGE_LOG_ADDRESS|METRICS_LISTEN|"
                          r"NGINX_.*|ACCESS_LOG|SERVER_NAMES|DEBUG|COUNTER_KEY|SHUTDOWN_TIMEOUT_MS)$")


def clean_env():
    return {k: v for k, v in os.environ.items() if not RUN_SETTINGS.match(k)}


def port_in_use(port):
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def json_documents(text):
    """The JSON objects printed one after another (curl adds no newline)."""
    decoder, found, index = json.JSONDecoder(), [], 0
    while index < len(text):
        if text[index].isspace():
            index += 1
            continue
        obj, index = decoder.raw_decode(text, index)
        found.append(obj)
    return found


def run_block(name, timeout=60):
    out = subprocess.run(["bash", "-eo", "pipefail", "-c", block(name)], cwd=ROOT, env=clean_env(),
                         capture_output=True, text=True, timeout=timeout)
    assert out.returncode == 0, f"{name}: {out.stdout[-2000:]}\n{out.stderr[-2000:]}"
    return out


@pytest.fixture
def make_run(tmp):
    """README's `make run`, as written, from the repository root; stopped the way a user does (Ctrl-C)."""
    for port in (8080, 9145, 9146):
        assert not port_in_use(port), f"port {port} is taken: README's make run needs 8080, 9145 and 9146"
    before = set(glob.glob("/tmp/counter-fcgi-run.*"))
    log = tmp / "make-run.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(["bash", "-c", block("run")], cwd=ROOT, env=clean_env(), stdout=out,
                                stderr=subprocess.STDOUT, start_new_session=True)
    try:
        # A fresh clone builds the release binary first.
        wait_for(lambda: "Ctrl-C stops everything" in log.read_text(errors="replace") or proc.poll() is not None,
                 timeout=900, interval=0.5, what="make run's banner")
        assert proc.poll() is None, log.read_text(errors="replace")[-3000:]
        yield {"proc": proc, "log": log}
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGINT)  # Ctrl-C: the whole foreground group
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=10)
        (ROOT / ".run" / "keys.txt").unlink(missing_ok=True)
    assert not port_in_use(8080), "Ctrl-C stopped nginx"
    assert set(glob.glob("/tmp/counter-fcgi-run.*")) <= before, "the socket folder is removed"


def test_readme_make_run_curl_lines_and_key_rotation_work_as_written(make_run):
    banner = make_run["log"].read_text(errors="replace")
    assert "rate limits (429 beyond them): per key 50r/s burst 100" in banner
    # README's curl block: health, read, write, reset.
    health, read, write, reset = json_documents(run_block("curl").stdout)
    assert health["status"] == "healthy" and health["redis"] == "connected"
    assert isinstance(read["value"], int)
    assert write["operation"] == "increment" and write["value"] == read["value"] + 1
    assert reset == {"value": 0, "operation": "reset", "timestamp": reset["timestamp"]}
    # README's named-counter lines: increment by 5, read it back, list it.
    incremented, read_back, listed = json_documents(run_block("curl-named").stdout)
    assert incremented["name"] == "page-views" and incremented["operation"] == "increment"
    assert read_back["value"] == incremented["value"] and incremented["value"] % 5 == 0
    assert {"name": "page-views", "value": incremented["value"]} in listed["counters"]
    # README's badge line: the same value, drawn.
    import xml.etree.ElementTree as ET
    svg = ET.fromstring(run_block("curl-badge").stdout)
    assert svg.find("{http://www.w3.org/2000/svg}title").text == f"views: {incremented['value']}"
    # Started as root, nginx's workers are not root.
    workers = subprocess.run(["ps", "-o", "user=", "-C", "nginx"], capture_output=True, text=True).stdout.split()
    if os.geteuid() == 0:
        assert workers.count("root") == 1, f"only the master: {workers}"
    # docs/operations.md: rotation with both keys, then without the old one.
    out = run_block("rotate-keys")
    with_new, with_old = json_documents(out.stdout)
    assert with_new["value"] == 0
    assert with_old["status"] == 403 and with_old["detail"] == "Invalid API key"
    assert out.stderr.count("reload-keys: nginx reloaded") == 2


def settings_in_configuration_doc():
    text = (ROOT / "docs" / "configuration.md").read_text()
    names = set()
    for line in text.splitlines():
        if line.startswith("| `"):
            names |= set(re.findall(r"`([A-Z][A-Z0-9_]+)`", line.split("|")[1]))
    return names


def test_configuration_doc_lists_every_setting_and_nothing_else():
    help_text = subprocess.run([str(BINARY), "--help"], capture_output=True, text=True, timeout=10).stdout
    from_help = set(re.findall(r"\(([A-Z][A-Z0-9_]+)[;,]", help_text)) | {"REDIS_PASSWORD_FILE", "REDIS_SENTINEL_PASSWORD_FILE"}
    render = (ROOT / "nginx" / "render.sh").read_text().split("set -eu", 1)[0]
    from_render = set(re.findall(r"\b([A-Z][A-Z0-9_]{2,})\b \[", render)) | {"API_KEY", "API_KEYS_FILE", "API_KEY_NAME"}
    from_render |= {f"{name}_BURST" for name in from_render if name.startswith("RATE_LIMIT_")}
    documented = settings_in_configuration_doc()
    assert from_help <= documented, from_help - documented
    assert from_render <= documented, from_render - documented
    assert documented <= from_help | from_render, documented - from_help - from_render


def slug(heading):
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def test_relative_links_and_anchors_resolve():
    for path in doc_files():
        for target in re.findall(r"\]\(([^)\s]+)\)", path.read_text()):
            if re.match(r"^[a-z]+:", target):
                continue
            file_part, _, anchor = target.partition("#")
            linked = (path.parent / file_part).resolve() if file_part else path
            assert linked.exists(), f"{path.name}: {target}"
            if anchor:
                headings = [slug(h) for h in re.findall(r"^#+ (.+)$", linked.read_text(), re.M)]
                assert anchor in headings, f"{path.name}: #{anchor} not in {linked.name}"


def test_every_marked_block_is_run_by_a_test():
    tests = "".join(p.read_text() for p in (ROOT / "Tests" / "integration").glob("test_*.py"))
    for name in blocks():
        assert f'"{name}"' in tests, f"doc-test {name} is marked but no test runs it"


def test_nothing_refers_to_files_outside_the_repository():
    tracked = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True).stdout.split()
    # Words of the team's own process, not the product's: the original service is "the original
    # Flask service", never "the seed", also in identifiers (`_seed`, `seedVariables`; a random
    # seed given as `--seed` is fine); no "issue" or "session" of ours in what users read.
    pattern = re.compile(r"\.\./shared|shared/anchors|(?<![A-Za-z-])[Ss]eed(?![a-z])|[Ii]ssue (notes|\d+)|\b(issue:|"
                         r"(last|earlier|this|next) sessions?\b)")
    offenders = []
    for name in tracked:
        path = ROOT / name
        if name == "Tests/integration/test_docs.py" or not path.is_file():
            continue
        try:
            text = path.read_text()
        except UnicodeDecodeError:
            continue
        offenders += [f"{name}: {m.group(0)}" for m in pattern.finditer(text)]
    assert offenders == []
