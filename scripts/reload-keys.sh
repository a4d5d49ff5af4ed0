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
kill -HUP "$(cat "$pidfile")"
echo "reload-keys: nginx reloaded" >&2
