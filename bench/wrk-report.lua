-- wrk script for bench/run.sh: sets the method from WRK_METHOD (POST sends no body) and prints
-- one machine-readable RESULT line at the end, including the count of non-2xx answers, so a rate
-- is never read without its error count.
wrk.method = os.getenv("WRK_METHOD") or "GET"

function done(summary, latency, requests)
   local errors = summary.errors
   io.write(string.format(
      "RESULT requests=%d seconds=%.2f rps=%.0f p50_ms=%.2f p99_ms=%.2f max_ms=%.2f non2xx=%d socket_errors=%d\n",
      summary.requests, summary.duration / 1e6, summary.requests / (summary.duration / 1e6),
      latency:percentile(50) / 1000, latency:percentile(99) / 1000, latency.max / 1000,
      errors.status, errors.connect + errors.read + errors.write + errors.timeout))
end
