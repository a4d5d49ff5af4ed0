#!/usr/bin/env bash
# Applies changed API keys (API_KEY / API_KEYS_FILE) to the nginx of `make run` without a restart:
# re-renders .run/nginx/keys.conf, checks the config, and reloads nginx (graceful: requests in
# flight finish on the old workers).
set -euo pipefail
cd "$(dirname "$0")/.."
state="$PWD/.run/nginx"
# The pid file is wherever make run put nginx's state (under /tmp when run as root).
pidfile=$(sed -n 's/^pid \(.*\);$/\1/p' "$state/nginx.conf" 2>/dev/null || true)
if [ -z "$pidfile" ] || [ ! -s "$pidfile" ] || ! kill -0 "$(cat "$pidfile")" 2>/dev/null; then
  echo "reload-keys: no nginx from make run is running" >&2
  exit 1
fi
if [ -z "${API_KEY:-}" ] && [ -z "${API_KEYS_FILE:-}" ] && [ -s .run/dev-api-key ]; then
  API_KEY="$(cat .run/dev-api-key)"; export API_KEY API_KEY_NAME=dev
fi
nginx/render.sh "$state" --keys-only
nginx -q -t -c "$state/nginx.conf" -p "$state"
master=$(cat "$pidfile")
old_workers=" $(pgrep -P "$master" | tr '\n' ' ')"
kill -HUP "$master"
# The reload is asynchronous: wait (at most 10 s) until every worker is a new one, so a request
# made right after this script returns is checked against the new keys.
for _ in $(seq 200); do
  current=$(pgrep -P "$master" || true)
  stale=0
  for pid in $current; do case $old_workers in *" $pid "*) stale=1 ;; esac; done
  [ -n "$current" ] && [ "$stale" = 0 ] && { echo "reload-keys: nginx reloaded" >&2; exit 0; }
  sleep 0.05
done
echo "reload-keys: nginx did not replace its workers within 10 s; see its error log" >&2
exit 1
