#!/usr/bin/env bash
# Fuzzes counter-fcgi's request handling with libFuzzer (Swift's -sanitize=fuzzer, plus
# AddressSanitizer) for a bounded time: the router, error mapping and body encoding over random
# methods, paths, Content-Lengths, Idempotency-Keys, stored values and store failures, and the small
# parsers (counter values, idempotency keys, timestamps, records, nginx's edge log lines, badge
# options, colours, abbreviations, entity tags). Seeds: Tests/fuzz/corpus
# (committed); new inputs go to .build-fuzz/corpus. Exits non-zero on any crash or broken invariant.
#   scripts/fuzz.sh [seconds, default 60]
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-60}
out=.build-fuzz
mkdir -p "$out/corpus" "$out/crashes"
# The routing sources only: no FastCGI, no Redis, no argument parsing, no logging.
sources=(Router Router+Counters Response APIError JSONObject CounterStore MemoryCounterStore CounterValue IdempotencyKey
         IdempotencyRecord Timestamp EdgeLogLine CounterName CounterResource QueryString NamedWrite ListCursor
         Router+Badge Badge BadgeOptions EntityTag AbbreviatedNumber)
files=()
for name in "${sources[@]}"; do files+=("Sources/CounterCore/$name.swift"); done
echo "fuzz: building (swiftc -sanitize=fuzzer,address)" >&2
rm -f "$out/fuzz-requests"  # never run a binary left from an earlier build
swiftc -swift-version 6 -parse-as-library -O -sanitize=fuzzer,address -module-name CounterFuzz \
  Tests/fuzz/FuzzRequests.swift "${files[@]}" -o "$out/fuzz-requests" 2>&1 | grep -v 'Cannot export local symbol' >&2 || true
[ -x "$out/fuzz-requests" ] || { echo "fuzz: build failed" >&2; exit 2; }
echo "fuzz: running ${secs}s" >&2
"$out/fuzz-requests" "$out/corpus" Tests/fuzz/corpus -max_total_time="$secs" -max_len=512 \
  -artifact_prefix="$out/crashes/" -print_final_stats=1 2>"$out/fuzz.log" || {
  tail -40 "$out/fuzz.log" >&2
  echo "fuzz: a crash or broken invariant; the input is in $out/crashes/" >&2
  exit 1
}
grep -E '^(stat::number_of_executed_units|stat::peak_rss_mb|Done)' "$out/fuzz.log" || tail -3 "$out/fuzz.log"
echo "fuzz: no crash in ${secs}s"
