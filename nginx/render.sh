#!/bin/sh
# Renders the nginx configuration for counter-fcgi into OUT_DIR, from the templates beside this
# script and the environment. The one templating step between nginx/ and a running nginx: used by
# `make run`, the tests, the nginx container and the Kubernetes sidecar.
#
#   nginx/render.sh OUT_DIR               everything (every *.conf beside this script, and keys.conf)
#   nginx/render.sh OUT_DIR --keys-only   keys.conf only; then `nginx -s reload` (key rotation)
#
# Keys: API_KEY (one key, every scope, as in the original Flask service) and/or API_KEYS_FILE, lines of
# `<key> <scope> [name] [ns=PREFIX]` with scope read|write|admin and `#` comments; ns= limits the
# key's named counters to names that start with PREFIX (1 to 128 of A-Z a-z 0-9 . _ - :). A key is 16 to 256
# characters of [A-Za-z0-9._+/=-]. Logs and limits know a key by its name (default: a short
# SHA-256 fingerprint); the key itself goes only into OUT_DIR/keys.conf (mode 0600 when root).
#
# Settings (defaults in brackets): PORT [8080], NGINX_LISTEN [127.0.0.1:$PORT],
# METRICS_LISTEN [127.0.0.1:9145] (internal: /metrics of counter-fcgi and nginx, /nginx_status),
# SERVER_NAMES [localhost 127.0.0.1], FCGI_LISTEN [unix:<runtime dir>/counter-fcgi.sock, where the
# runtime dir is $RUNTIME_DIRECTORY's first entry, else $XDG_RUNTIME_DIR, else /tmp: counter-fcgi's rule],
# NGINX_USER [nobody] and NGINX_GROUP [nogroup] (workers' user when started as root),
# NGINX_STATE_DIR [OUT_DIR/state], ACCESS_LOG [/dev/stdout], WORKER_PROCESSES [1],
# RATE_LIMIT_PER_KEY [50r/s] + _BURST [100], RATE_LIMIT_PER_ADDRESS [100r/s] + _BURST [200],
# RATE_LIMIT_BAD_KEY [2r/s] + _BURST [10], FASTCGI_TIMEOUT [5s], CLIENT_TIMEOUT [10s],
# REAL_IP_FROM [unset: trust no proxy] (CIDRs of proxies whose X-Forwarded-For is believed),
# EDGE_LOG_ADDRESS [unset: off] (loopback host:port on which counter-fcgi counts the requests nginx
# answers itself; the same value for both),
# HEALTH_CHECK_ANY_HOST [false] (answer /health and /livez whatever the Host: load balancers that
# check targets by IP),
# PUBLIC_COUNTERS [none] (name prefixes, space- or comma-separated, whose counters and badges
# anyone may read without a key; only read), PUBLIC_HIT_COUNTERS [none] (prefixes whose badges
# also count a view with ?count=1; public too), RATE_LIMIT_HITS_PER_ADDRESS [30r/m] + _BURST [10]
# (the views one client address may count).
set -eu
# No pathname expansion of settings or key lines split into words (a prefix `a*` is an error to
# report, not a list of files); switched back on for the one glob over the templates.
set -f

die() { echo "render: $*" >&2; exit 2; }
here=$(cd "$(dirname "$0")" && pwd)
out=${1:-}
[ -n "$out" ] || die "usage: render.sh OUT_DIR [--keys-only]"
mode=${2:-all}
mkdir -p "$out"
out=$(cd "$out" && pwd)

# --- keys.conf ---------------------------------------------------------------------------------
render_keys() {
    tmp="$out/.keys.conf.$$"
    scope_map=""; name_map=""; exact_map=""; prefix_map=""; seen=""; exact=""; count=0
    umask 077
    add_key() {  # key scope name where [prefix]
        key=$1; scope=$2; name=$3; where=$4; prefix=${5:-}
        printf '%s' "$key" | grep -Eq '^[A-Za-z0-9._+/=-]{16,256}$' \
            || die "$where: a key must be 16 to 256 characters of A-Z a-z 0-9 . _ + / = - (key not shown)"
        case $scope in read|write|admin) ;; *) die "$where: scope must be read, write or admin, not '$scope'" ;; esac
        if [ -z "$name" ]; then
            name="key-$(printf '%s' "$key" | sha256sum | cut -c1-12)"
        fi
        printf '%s' "$name" | grep -Eq '^[A-Za-z0-9._-]{1,64}$' || die "$where: a name must be 1 to 64 characters of A-Z a-z 0-9 . _ -"
        # nginx's map compares keys without regard to case: two keys that differ only in case
        # would make nginx refuse the whole config. Named by their names, never by the key.
        folded=$(printf '%s' "$key" | tr '[:upper:]' '[:lower:]')
        case " $seen " in
            *" $folded|"*)
                other=${seen#* "$folded|"}; other=${other%% *}
                case " $exact " in *" $key "*) die "$where: this key is listed twice (first as '$other')" ;; esac
                die "$where: key '$name' is the same as key '$other' but for letter case; nginx compares keys without regard to case"
                ;;
        esac
        seen="$seen $folded|$name"
        exact="$exact $key"
        scope_map="$scope_map    \"$key\" $scope;
"
        name_map="$name_map    \"$key\" \"$name\";
"
        exact_map="$exact_map    \"$key\" \"$key\";
"
        if [ -n "$prefix" ]; then
            printf '%s' "$prefix" | grep -Eq '^[A-Za-z0-9._:-]{1,128}$' \
                || die "$where: ns= takes 1 to 128 characters of A-Z a-z 0-9 . _ - : (the counter name alphabet)"
            prefix_map="$prefix_map    \"$key\" \"$prefix\";
"
        fi
        count=$((count + 1))
    }
    if [ -n "${API_KEY:-}" ]; then
        add_key "$API_KEY" admin "${API_KEY_NAME:-api-key}" "API_KEY"
    fi
    if [ -n "${API_KEYS_FILE:-}" ]; then
        [ -r "$API_KEYS_FILE" ] || die "API_KEYS_FILE: cannot read $API_KEYS_FILE"
        line_no=0
        while IFS= read -r line || [ -n "$line" ]; do
            line_no=$((line_no + 1))
            line=${line%%#*}
            # shellcheck disable=SC2086 # split the line into its fields on purpose
            set -- $line
            [ $# -eq 0 ] && continue
            if [ $# -lt 2 ] || [ $# -gt 4 ]; then
                die "API_KEYS_FILE line $line_no: expected '<key> <scope> [name] [ns=PREFIX]'"
            fi
            key_name=""; key_prefix=""; has_prefix=0
            for field in "${3:-}" "${4:-}"; do
                case $field in
                    "") ;;
                    ns=*)
                        [ "$has_prefix" = 0 ] || die "API_KEYS_FILE line $line_no: ns= is given twice"
                        has_prefix=1; key_prefix=${field#ns=}
                        [ -n "$key_prefix" ] || die "API_KEYS_FILE line $line_no: ns= needs a prefix"
                        ;;
                    *)
                        { [ -z "$key_name" ] && [ "$has_prefix" = 0 ]; } \
                            || die "API_KEYS_FILE line $line_no: expected '<key> <scope> [name] [ns=PREFIX]'"
                        key_name=$field
                        ;;
                esac
            done
            add_key "$1" "$2" "$key_name" "API_KEYS_FILE line $line_no" "$key_prefix"
        done < "$API_KEYS_FILE"
    fi
    [ "$count" -gt 0 ] || die "no API key: set API_KEY or API_KEYS_FILE"
    # shellcheck disable=SC2016 # $http_x_api_key is nginx's variable, written literally
    {
        echo "# Generated by nginx/render.sh from API_KEY / API_KEYS_FILE ($count keys). Do not edit; do not commit."
        printf 'map $http_x_api_key $api_key_scope {\n    default "";\n%s}\n' "$scope_map"
        printf 'map $http_x_api_key $api_key_name {\n    default "";\n%s}\n' "$name_map"
        printf 'map $http_x_api_key $api_key_exact {\n    default "";\n%s}\n' "$exact_map"
        printf 'map $http_x_api_key $api_key_prefix {\n    default "";\n%s}\n' "$prefix_map"
    } > "$tmp"
    mv -f "$tmp" "$out/keys.conf"
    echo "render: $count API key(s) in $out/keys.conf" >&2
}

if [ "$mode" = "--keys-only" ]; then
    render_keys
    exit 0
fi
[ "$mode" = all ] || die "unknown option $mode"

# --- settings ------------------------------------------------------------------------------------
port=${PORT:-8080}
if ! printf '%s' "$port" | grep -Eq '^[0-9]{1,5}$' || [ "$port" -lt 1 ] || [ "$port" -gt 65535 ]; then
    die "PORT must be 1 to 65535, not '$port'"
fi
listen=${NGINX_LISTEN:-127.0.0.1:$port}
metrics_listen=${METRICS_LISTEN:-127.0.0.1:9145}
printf '%s' "$metrics_listen" | grep -Eq '^([0-9.]+:|\[[0-9a-fA-F:]+\]:)?[0-9]{1,5}$' \
    || die "METRICS_LISTEN must be PORT or ADDRESS:PORT, not '$metrics_listen'"
# The default socket follows counter-fcgi's own rule (Config.runtimeDirectory): systemd's
# RUNTIME_DIRECTORY (its first entry), else XDG_RUNTIME_DIR, else /tmp. A test runs both sides.
runtime_dir=${RUNTIME_DIRECTORY:-}
runtime_dir=${runtime_dir%%:*}
[ -n "$runtime_dir" ] || runtime_dir=${XDG_RUNTIME_DIR:-/tmp}
fcgi=${FCGI_LISTEN:-unix:$runtime_dir/counter-fcgi.sock}
case $fcgi in unix:/*) socket=${fcgi#unix:} ;; *) die "FCGI_LISTEN must be unix:/absolute/path for nginx, not '$fcgi'" ;; esac
state=${NGINX_STATE_DIR:-$out/state}
check_rate() { printf '%s' "$2" | grep -Eq '^[0-9]+r/[sm]$' || die "$1 must look like 50r/s or 600r/m, not '$2'"; }
# nginx refuses burst=0: a burst of 1 is the smallest.
check_count() { printf '%s' "$2" | grep -Eq '^[1-9][0-9]{0,5}$' || die "$1 must be a whole number from 1 to 999999, not '$2'"; }
rate_key=${RATE_LIMIT_PER_KEY:-50r/s};          check_rate RATE_LIMIT_PER_KEY "$rate_key"
burst_key=${RATE_LIMIT_PER_KEY_BURST:-100};     check_count RATE_LIMIT_PER_KEY_BURST "$burst_key"
rate_addr=${RATE_LIMIT_PER_ADDRESS:-100r/s};    check_rate RATE_LIMIT_PER_ADDRESS "$rate_addr"
burst_addr=${RATE_LIMIT_PER_ADDRESS_BURST:-200}; check_count RATE_LIMIT_PER_ADDRESS_BURST "$burst_addr"
rate_bad=${RATE_LIMIT_BAD_KEY:-2r/s};           check_rate RATE_LIMIT_BAD_KEY "$rate_bad"
burst_bad=${RATE_LIMIT_BAD_KEY_BURST:-10};      check_count RATE_LIMIT_BAD_KEY_BURST "$burst_bad"
rate_hits=${RATE_LIMIT_HITS_PER_ADDRESS:-30r/m};  check_rate RATE_LIMIT_HITS_PER_ADDRESS "$rate_hits"
burst_hits=${RATE_LIMIT_HITS_PER_ADDRESS_BURST:-10}; check_count RATE_LIMIT_HITS_PER_ADDRESS_BURST "$burst_hits"
client_timeout=${CLIENT_TIMEOUT:-10s}
printf '%s' "$client_timeout" | grep -Eq '^[0-9]+(ms|s)$' || die "CLIENT_TIMEOUT must look like 10s or 500ms, not '$client_timeout'"
timeout=${FASTCGI_TIMEOUT:-5s}
printf '%s' "$timeout" | grep -Eq '^[0-9]+(ms|s)$' || die "FASTCGI_TIMEOUT must look like 5s or 500ms, not '$timeout'"
workers=${WORKER_PROCESSES:-1}
printf '%s' "$workers" | grep -Eq '^([0-9]{1,3}|auto)$' || die "WORKER_PROCESSES must be a number or auto"
names=${SERVER_NAMES:-localhost 127.0.0.1}
printf '%s' "$names" | grep -Eq '^[A-Za-z0-9.*: _-]+$' || die "SERVER_NAMES has characters nginx would not take"
real_ip="# REAL_IP_FROM unset: the client address is the TCP peer."
if [ -n "${REAL_IP_FROM:-}" ]; then
    real_ip=""
    for cidr in $REAL_IP_FROM; do
        printf '%s' "$cidr" | grep -Eq '^[0-9a-fA-F.:/]+$' || die "REAL_IP_FROM: '$cidr' is not an address or CIDR"
        real_ip="${real_ip}set_real_ip_from $cidr; "
    done
    real_ip="${real_ip}real_ip_header X-Forwarded-For; real_ip_recursive on;"
fi
edge_log="# EDGE_LOG_ADDRESS unset: requests nginx answers itself are not counted."
if [ -n "${EDGE_LOG_ADDRESS:-}" ]; then
    printf '%s' "$EDGE_LOG_ADDRESS" | grep -Eq '^(127\.[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}|\[::1\]):[0-9]{1,5}$' \
        || die "EDGE_LOG_ADDRESS must be a numeric loopback host:port such as 127.0.0.1:9146, not '$EDGE_LOG_ADDRESS'"
    edge_log="access_log syslog:server=$EDGE_LOG_ADDRESS,nohostname,tag=counter_edge counter_edge if=\$edge_answered;"
fi
health_any_host="# HEALTH_CHECK_ANY_HOST unset: unknown hosts get no answer, health checks included."
case ${HEALTH_CHECK_ANY_HOST:-false} in
    true|1|yes) health_any_host="include $out/health-any-host.conf;" ;;
    false|0|no|"") ;;
    *) die "HEALTH_CHECK_ANY_HOST must be true or false, not '$HEALTH_CHECK_ANY_HOST'" ;;
esac
# Started as root (make run or the tests in a root shell), nginx's workers drop to NGINX_USER and
# NGINX_GROUP, never root. The group must reach the 0660 FastCGI socket: make run and the tests put
# the socket in a setgid folder of that group, as the containers share group 10001. Started
# unprivileged (the containers), the workers keep that user and the directive is moot.
user_directive="# workers run as the user that starts nginx"
if [ "$(id -u)" -eq 0 ]; then
    nginx_user=${NGINX_USER:-nobody}
    nginx_group=${NGINX_GROUP:-nogroup}
    for name in "$nginx_user" "$nginx_group"; do
        printf '%s' "$name" | grep -Eq '^[a-z_][a-z0-9_-]{0,31}$' || die "NGINX_USER and NGINX_GROUP must be user and group names, not '$name'"
    done
    [ "$nginx_user" != root ] || die "NGINX_USER must not be root: nginx's workers face the network"
    user_directive="user $nginx_user $nginx_group;"
fi

# Request ids are this instance's id plus counters (counter-api.conf): drawn at each render, so a
# restarted nginx (or another pod) never repeats an id.
instance_id=$(od -An -N8 -tx1 /dev/urandom | tr -d ' \n')
printf '%s' "$instance_id" | grep -Eq '^[0-9a-f]{16}$' || die "could not draw an instance id from /dev/urandom"

escape() { printf '%s' "$1" | sed -e 's/[\\|&]/\\&/g'; }
render() {
    sed -e "s|{{CONF_DIR}}|$(escape "$out")|g" \
        -e "s|{{STATE_DIR}}|$(escape "$state")|g" \
        -e "s|{{LISTEN}}|$(escape "$listen")|g" \
        -e "s|{{METRICS_LISTEN}}|$(escape "$metrics_listen")|g" \
        -e "s|{{SERVER_NAMES}}|$(escape "$names")|g" \
        -e "s|{{FCGI_SOCKET}}|$(escape "$socket")|g" \
        -e "s|{{ACCESS_LOG}}|$(escape "${ACCESS_LOG:-/dev/stdout}")|g" \
        -e "s|{{WORKER_PROCESSES}}|$workers|g" \
        -e "s|{{INSTANCE_ID}}|$instance_id|g" \
        -e "s|{{RATE_LIMIT_PER_KEY}}|$(escape "$rate_key")|g" \
        -e "s|{{RATE_LIMIT_PER_KEY_BURST}}|$burst_key|g" \
        -e "s|{{RATE_LIMIT_PER_ADDRESS}}|$(escape "$rate_addr")|g" \
        -e "s|{{RATE_LIMIT_PER_ADDRESS_BURST}}|$burst_addr|g" \
        -e "s|{{RATE_LIMIT_BAD_KEY}}|$(escape "$rate_bad")|g" \
        -e "s|{{RATE_LIMIT_BAD_KEY_BURST}}|$burst_bad|g" \
        -e "s|{{RATE_LIMIT_HITS_PER_ADDRESS}}|$(escape "$rate_hits")|g" \
        -e "s|{{RATE_LIMIT_HITS_PER_ADDRESS_BURST}}|$burst_hits|g" \
        -e "s|{{FASTCGI_TIMEOUT}}|$timeout|g" \
        -e "s|{{CLIENT_TIMEOUT}}|$client_timeout|g" \
        -e "s|{{REAL_IP}}|$(escape "$real_ip")|g" \
        -e "s|{{EDGE_LOG}}|$(escape "$edge_log")|g" \
        -e "s|{{HEALTH_ANY_HOST}}|$(escape "$health_any_host")|g" \
        -e "s|{{USER_DIRECTIVE}}|$(escape "$user_directive")|g" \
        "$1" > "$2"
    if grep -q '{{[A-Z_]*}}' "$2"; then die "$2 still has a placeholder: $(grep -o '{{[A-Z_]*}}' "$2" | head -1)"; fi
}

# --- public-counters.conf -------------------------------------------------------------------------
# PUBLIC_COUNTERS and PUBLIC_HIT_COUNTERS become two maps from the path ($uri: decoded, dot
# segments resolved) to the prefix its counter's name is under: nginx lets a keyless GET or HEAD
# through for a public one, and passes the prefix to counter-fcgi, which checks the name against
# it (the same check as a key's ns=). Hit prefixes are public, for the badge only.
public_map=""; hit_map=""
prefix_entry() {  # SETTING PREFIX TAIL
    printf '%s' "$2" | grep -Eq '^[A-Za-z0-9._:-]{1,128}$' \
        || die "$1: '$2' is not a name prefix (1 to 128 characters of A-Z a-z 0-9 . _ - :)"
    # In a regex only '.' of the name alphabet needs escaping.
    printf '    "~^/v1/counters/%s[^/]*%s$" "%s";\n' "$(printf '%s' "$2" | sed 's/\./\\./g')" "$3" "$2"
}
for prefix in $(printf '%s' "${PUBLIC_COUNTERS:-}" | tr ',' ' '); do
    public_map="$public_map$(prefix_entry PUBLIC_COUNTERS "$prefix" '(/badge\.svg)?')
"
done
for prefix in $(printf '%s' "${PUBLIC_HIT_COUNTERS:-}" | tr ',' ' '); do
    public_map="$public_map$(prefix_entry PUBLIC_HIT_COUNTERS "$prefix" '/badge\.svg')
"
    hit_map="$hit_map$(prefix_entry PUBLIC_HIT_COUNTERS "$prefix" '/badge\.svg')
"
done
# shellcheck disable=SC2016 # $uri and the map names are nginx's, written literally
{
    echo "# Generated by nginx/render.sh from PUBLIC_COUNTERS and PUBLIC_HIT_COUNTERS. Do not edit."
    printf 'map $uri $public_prefix {\n    default "";\n%s}\n' "$public_map"
    printf 'map $uri $hit_prefix {\n    default "";\n%s}\n' "$hit_map"
} > "$out/.public-counters.conf.$$"
mv -f "$out/.public-counters.conf.$$" "$out/public-counters.conf"

# Flat on purpose: a Kubernetes ConfigMap (and podman's) mounts as one folder without subfolders.
set +f
for f in "$here"/*.conf; do render "$f" "$out/$(basename "$f")"; done
for d in client_body fastcgi proxy uwsgi scgi; do mkdir -p "$state/$d"; done
render_keys
echo "render: nginx config in $out (listen $listen, socket $socket)" >&2
