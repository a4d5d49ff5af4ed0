#!/usr/bin/env bash
# Installs what building, running and testing counter-fcgi need on a fresh Debian 12 machine, and
# nothing that is already there. Safe to run again. Needs root (or sudo) for apt-get.
#
#   scripts/setup.sh          build + run + test dependencies
set -euo pipefail

need_apt=()
have() { command -v "$1" >/dev/null 2>&1; }
pkg_ok() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'; }

# Libraries (headers + pkg-config files), servers and clients the build and the tests use
# (prometheus brings promtool, which checks and unit-tests the alert rules; valgrind, strace and
# binutils' objcopy serve the instruction and system-call counts of bench/; chromium is the real
# browser that loads a page of badges in test_browser.py).
for pkg in pkg-config libfcgi-dev libhiredis-dev libfcgi-bin redis-server redis-tools nginx curl wrk python3-pip shellcheck valgrind strace binutils prometheus chromium; do
  pkg_ok "$pkg" || need_apt+=("$pkg")
done

if [ ${#need_apt[@]} -gt 0 ]; then
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  echo "setup: installing ${need_apt[*]}" >&2
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
  # The packaged services must not hold the ports our own instances use.
  for svc in redis-server nginx prometheus; do
    if have systemctl; then $sudo systemctl disable --now "$svc" >/dev/null 2>&1 || true; fi
    if have service; then $sudo service "$svc" stop >/dev/null 2>&1 || true; fi
  done
fi

if ! python3 -c 'import pytest' 2>/dev/null; then
  echo "setup: installing pytest" >&2
  python3 -m pip install -q pytest 2>/dev/null || python3 -m pip install -q --break-system-packages pytest
fi

# schemathesis checks docs/openapi.yaml against the running stack; it gets a virtualenv of its own
# (.tools/, ignored by git) so its pins never disturb the machine's Python.
st_venv="$(cd "$(dirname "$0")/.." && pwd)/.tools/schemathesis"
if [ ! -x "$st_venv/bin/schemathesis" ] || [ ! -x "$st_venv/bin/openapi-spec-validator" ]; then
  echo "setup: installing schemathesis and openapi-spec-validator into .tools/schemathesis" >&2
  python3 -m venv "$st_venv"
  "$st_venv/bin/pip" install -q --upgrade pip
  "$st_venv/bin/pip" install -q schemathesis openapi-spec-validator
fi

if ! have swift; then
  for dir in /opt/swift/usr/bin /usr/share/swift/usr/bin; do
    [ -x "$dir/swift" ] && { echo "setup: add $dir to PATH" >&2; break; }
  done
  echo "setup: no Swift toolchain on PATH (Swift 6 is needed: https://www.swift.org/install/linux/)" >&2
  exit 1
fi
