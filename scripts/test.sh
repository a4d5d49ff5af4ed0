#!/usr/bin/env bash
# Sets up what is missing, builds, and runs every test: Swift unit tests, then the integration
# tests that start real redis-server, counter-fcgi, nginx, cgi-fcgi and curl themselves, and the
# container checks (images built offline, the compose stack, the Kubernetes pod under podman,
# the Helm chart and manifest validators). SKIP_CONTAINERS=1 leaves those out (a quick local loop).
set -euo pipefail
cd "$(dirname "$0")/.."

stop_dockerd() {
  if [ -s .tools/dockerd.pid ]; then
    kill "$(cat .tools/dockerd.pid)" 2>/dev/null || true
    rm -f .tools/dockerd.pid
  fi
}
trap stop_dockerd EXIT

scripts/setup.sh
echo "test: shellcheck" >&2
shellcheck scripts/*.sh bench/*.sh nginx/render.sh docker/nginx-entrypoint.sh k8s/chart/files/*.sh .ci/run Tests/integration/fakehelm/helm
echo "test: building" >&2
swift build --build-tests
echo "test: unit tests (swift test)" >&2
swift test --skip-build
pytest_args=(-q Tests/integration)
if [ "${SKIP_CONTAINERS:-0}" = 1 ]; then
  echo "test: SKIP_CONTAINERS=1: leaving out the container checks" >&2
  pytest_args+=(--ignore=Tests/integration/test_containers.py --ignore=Tests/integration/test_chart.py --ignore=Tests/integration/test_infra.py)
else
  echo "test: container tooling and images (network to Debian's mirror and PyPI on a new machine)" >&2
  scripts/setup-containers.sh
  scripts/build-images.sh
fi
echo "test: integration tests (pytest)" >&2
COUNTER_FCGI_BIN="$(swift build --show-bin-path)/counter-fcgi" python3 -m pytest "${pytest_args[@]}"
