#!/bin/sh
# Renders the nginx configuration from the templates (nginx/ of the repository) into a writable
# run dir, starts nginx in the foreground, and applies key changes without a restart: when the keys
# file (API_KEYS_FILE, e.g. a mounted Kubernetes Secret) changes, it re-renders the keys and
# reloads nginx gracefully. SIGTERM, SIGINT and SIGQUIT all become SIGQUIT for nginx, its graceful
# stop (requests in flight finish): Kubernetes and docker send SIGTERM, which nginx takes as "now".
set -eu
templates=${NGINX_TEMPLATE_DIR:-/etc/counter-nginx/templates}
run=${NGINX_RUN_DIR:-/tmp/nginx}
interval=${KEYS_POLL_SECONDS:-10}
mkdir -p "$run"
export ACCESS_LOG="${ACCESS_LOG:-/dev/stdout}" NGINX_STATE_DIR="$run/state"
sh "$templates/render.sh" "$run"
nginx -q -t -c "$run/nginx.conf" -p "$run"

nginx -c "$run/nginx.conf" -p "$run" -g 'daemon off;' &
pid=$!
# On a stop signal the key watch ends at once (not after its next sleep: that kept the container up
# for KEYS_POLL_SECONDS, past docker's 10 s grace, and nginx was then killed mid-request).
stopping=""
sleeper=""
trap 'stopping=1; kill -QUIT "$pid" 2>/dev/null; [ -z "$sleeper" ] || kill "$sleeper" 2>/dev/null' QUIT TERM INT

keys_sum() { [ -n "${API_KEYS_FILE:-}" ] && [ -r "$API_KEYS_FILE" ] && sha256sum "$API_KEYS_FILE" 2>/dev/null || echo none; }
last=$(keys_sum)
while [ -z "$stopping" ] && kill -0 "$pid" 2>/dev/null; do
    sleep "$interval" &
    sleeper=$!
    wait "$sleeper" 2>/dev/null || true
    sleeper=""
    [ -z "$stopping" ] || break
    now=$(keys_sum)
    if [ "$now" != "$last" ]; then
        if sh "$templates/render.sh" "$run" --keys-only && nginx -q -t -c "$run/nginx.conf" -p "$run"; then
            kill -HUP "$pid" && echo "nginx-entrypoint: keys changed, nginx reloaded" >&2
            last=$now
        else
            echo "nginx-entrypoint: new keys rejected, keeping the running ones" >&2
        fi
    fi
done
wait "$pid"
