#!/usr/bin/env bash
# Runs the integration suite RUNS times in a row (default 3) while stress-ng keeps one core busy,
# to find the tests that only pass on an idle machine (a sleep standing in for a condition, a
# wall-clock bound, a port bound then released) before CI does. Stops at the first failing run.
# Expects `make test` to have run once (the build, the container images and the tools).
#   scripts/test-under-load.sh [pytest arguments]      RUNS=3 LOAD_CPUS=1
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${RUNS:-3}
cpus=${LOAD_CPUS:-1}

if ! command -v stress-ng >/dev/null 2>&1; then
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  echo "test-under-load: installing stress-ng" >&2
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends stress-ng >/dev/null
fi

# The container checks need the Docker engine, started here as `make test` does and stopped after.
scripts/setup-containers.sh
# The load ends on its own after a day at most, and is stopped by its PID when this script ends.
stress-ng --cpu "$cpus" --cpu-method matrixprod --timeout 86400 --quiet &
load_pid=$!
stop() {
  kill "$load_pid" 2>/dev/null || true
  wait "$load_pid" 2>/dev/null || true
  if [ -s .tools/dockerd.pid ]; then
    kill "$(cat .tools/dockerd.pid)" 2>/dev/null || true
    rm -f .tools/dockerd.pid
  fi
}
trap stop EXIT

export COUNTER_FCGI_BIN="${COUNTER_FCGI_BIN:-$(swift build --show-bin-path)/counter-fcgi}"
for run in $(seq "$runs"); do
  echo "test-under-load: run $run of $runs, with $cpus core(s) kept busy" >&2
  started=$(date +%s)
  python3 -m pytest -q -p no:cacheprovider "${@:-Tests/integration}"
  echo "test-under-load: run $run passed in $(( $(date +%s) - started )) s" >&2
done
