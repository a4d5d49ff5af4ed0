#!/usr/bin/env bash
# Line and region coverage of the Swift code under every test that runs it: the unit tests
# (swift test --enable-code-coverage) and the integration tests, which drive an instrumented
# counter-fcgi (each process writes its own profile), merged into one report: a table per file and a
# total in the terminal, an HTML report in .build/coverage/html, and the summary as text beside it.
# Not part of `make test` (it builds once more, instrumented, and runs the integration suite again).
#   scripts/coverage.sh [pytest arguments, default: the integration tests that start counter-fcgi]
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
scratch=.build-coverage
out=.build/coverage
profiles="$PWD/$scratch/profiles"
rm -rf "$profiles" "$out"
mkdir -p "$profiles" "$out"

echo "coverage: building instrumented (swift build --enable-code-coverage)" >&2
swift build --build-tests --enable-code-coverage --scratch-path "$scratch"
bin=$(swift build --scratch-path "$scratch" --show-bin-path)
echo "coverage: unit tests" >&2
rm -rf "$scratch/debug/codecov"
swift test --skip-build --enable-code-coverage --scratch-path "$scratch"

# The tests start counter-fcgi with environments of their own: a wrapper names each process's
# profile (by PID, so concurrent processes never share one) whatever environment it is given.
wrapper="$PWD/$scratch/counter-fcgi-covered"
cat > "$wrapper" <<EOF
#!/bin/sh
LLVM_PROFILE_FILE="$profiles/counter-fcgi-%p.profraw" exec "$bin/counter-fcgi" "\$@"
EOF
chmod +x "$wrapper"
if [ "$#" -eq 0 ]; then
  # The container, chart and Terraform checks run images and tools, not this build.
  set -- -q Tests/integration --ignore=Tests/integration/test_containers.py \
    --ignore=Tests/integration/test_chart.py --ignore=Tests/integration/test_infra.py
fi
echo "coverage: integration tests with the instrumented counter-fcgi" >&2
status=0
COUNTER_FCGI_BIN="$wrapper" COUNTER_FCGI_STOP=term python3 -m pytest "$@" || status=$?

# The toolchain's own LLVM tools: Debian's older llvm-profdata cannot read Swift 6's profiles.
toolchain=$(dirname "$(readlink -f "$(command -v swift)")")
shopt -s nullglob
raw=("$profiles"/*.profraw "$scratch"/debug/codecov/*.profraw)
[ "${#raw[@]}" -gt 0 ] || { echo "coverage: no profile was written" >&2; exit 1; }
"$toolchain/llvm-profdata" merge -sparse "${raw[@]}" -o "$out/merged.profdata"
# The product's sources only: not the tests, nor the packages it depends on.
ignore='(\.build[^/]*/|/Tests/|/checkouts/)'
objects=("$bin/counter-fcgi" -object "$bin/counter-fcgiPackageTests.xctest")
"$toolchain/llvm-cov" report "${objects[@]}" -instr-profile "$out/merged.profdata" -ignore-filename-regex "$ignore" \
  | tee "$out/summary.txt"
"$toolchain/llvm-cov" show "${objects[@]}" -instr-profile "$out/merged.profdata" -ignore-filename-regex "$ignore" \
  -format=html -show-line-counts-or-regions -output-dir "$out/html" >/dev/null
"$toolchain/llvm-cov" export "${objects[@]}" -instr-profile "$out/merged.profdata" -ignore-filename-regex "$ignore" \
  -format=lcov > "$out/coverage.lcov"
echo "coverage: ${#raw[@]} profiles merged; report in $out/html/index.html, summary in $out/summary.txt" >&2
[ "$status" = 0 ] || echo "coverage: the tests failed (exit $status): the figures cover what ran" >&2
exit "$status"
