#!/usr/bin/env bash
# Sets up what is missing, builds, and runs every test: Swift unit tests, then the integration
# tests that start real redis-server, counter-fcgi and cgi-fcgi themselves.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/setup.sh
echo "test: shellcheck" >&2
shellcheck scripts/*.sh bench/*.sh nginx/render.sh .ci/run
echo "test: building" >&2
swift build --build-tests
echo "test: unit tests (swift test)" >&2
swift test --skip-build
echo "test: integration tests (pytest)" >&2
COUNTER_FCGI_BIN="$(swift build --show-bin-path)/counter-fcgi" python3 -m pytest -q Tests/integration
