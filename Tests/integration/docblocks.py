"""The shell blocks of README.md and docs/*.md that tests run exactly as written.

A block is marked by an HTML comment on the line before its opening fence:
`<!-- doc-test: NAME -->` (anything after NAME is a note for readers). Markdown renders nothing
for the comment, so readers see the plain command; the tests take the text between the fences.
"""
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
MARKER = re.compile(r"^<!-- doc-test: ([a-z0-9-]+)\b.*-->\s*$")


def doc_files():
    return [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def blocks():
    """{name: (file, code)} for every marked block; a marker without a block right after it fails."""
    found = {}
    for path in doc_files():
        lines = path.read_text().splitlines()
        for index, line in enumerate(lines):
            match = MARKER.match(line)
            if not match:
                continue
            name = match.group(1)
            assert index + 1 < len(lines) and lines[index + 1].startswith("```"), f"{path.name}: {name} has no block"
            end = next(i for i in range(index + 2, len(lines)) if lines[i].startswith("```"))
            assert name not in found, f"doc-test {name} is marked twice"
            found[name] = (path, "\n".join(lines[index + 2:end]) + "\n")
    return found


def block(name):
    return blocks()[name][1]
