#!/usr/bin/env python3
"""Pins image digests in a values file of the chart (the GitOps flow: CI commits the result and
Argo CD syncs it). Reads APP_REPOSITORY/APP_DIGEST and NGINX_REPOSITORY/NGINX_DIGEST from the
environment, and REDIS_REPOSITORY/REDIS_DIGEST when set (Redis mirrored to the project's registry);
changes only those keys and keeps the file's comments.

  scripts/pin-images.py k8s/chart/env/production.yaml
"""
import os
import re
import sys
from pathlib import Path

DIGEST = re.compile(r"^sha256:[a-f0-9]{64}$")


def pin(text, image, repository, digest):
    """Sets image.<image>.repository and .digest inside the `image:` block, leaving the rest as is."""
    if not DIGEST.match(digest):
        raise SystemExit(f"pin-images: {image} digest '{digest}' is not sha256:<64 hex>")
    pattern = re.compile(rf"(^image:\n(?:^[ #].*\n)*?^  {image}:\n)((?:^    .*\n)+)", re.M)
    match = pattern.search(text)
    if not match:
        raise SystemExit(f"pin-images: no image.{image} block in the values file")
    body = match.group(2)
    for key, value in (("repository", repository), ("digest", f'"{digest}"')):
        body, count = re.subn(rf"^    {key}:.*$", f"    {key}: {value}", body, flags=re.M)
        if count != 1:
            raise SystemExit(f"pin-images: image.{image}.{key} must appear once")
    return text[:match.start(2)] + body + text[match.end(2):]


def main(path):
    file = Path(path)
    text = file.read_text()
    images = [("app", "APP"), ("nginx", "NGINX")]
    if os.environ.get("REDIS_REPOSITORY") or os.environ.get("REDIS_DIGEST"):
        images.append(("redis", "REDIS"))
    for image, prefix in images:
        text = pin(text, image, os.environ[f"{prefix}_REPOSITORY"], os.environ[f"{prefix}_DIGEST"])
    file.write_text(text)
    print(f"pin-images: {path}: {', '.join(i for i, _ in images)} pinned by digest", file=sys.stderr)


if __name__ == "__main__":
    main(*sys.argv[1:])
