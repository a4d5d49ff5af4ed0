-- wrk script for the bench scripts: sets the method from WRK_METHOD (POST sends no body), with
-- WRK_IDEMPOTENCY=1 gives every request its own Idempotency-Key (exactly-once writes, as a careful
-- client sends them; not combined with WRK_PATH_TEMPLATE), and prints one machine-readable RESULT line at the end, including the count
-- of non-2xx answers, so a rate is never read without its error count.
wrk.method = os.getenv("WRK_METHOD") or "GET"
local idempotent = os.getenv("WRK_IDEMPOTENCY") == "1"

-- Each wrk thread has its own Lua state: a thread number set from the main state keeps the keys
-- of different threads apart, and a run id keeps them apart across runs on the same Redis.
local threads = 0
local run = tostring(os.time())
function setup(thread)
   threads = threads + 1
   thread:set("thread_id", threads)
   thread:set("run_id", run)
end

-- WRK_PATH_TEMPLATE (a path with one %d) and WRK_NAMES (N): each request goes to one of N paths
-- at random, e.g. increments spread over N named counters.
local template = os.getenv("WRK_PATH_TEMPLATE")
local names = tonumber(os.getenv("WRK_NAMES") or "1")

local sent = 0
function request()
   if template then
      return wrk.format(nil, string.format(template, math.random(0, names - 1)))
   end
   if not idempotent then return wrk.request() end
   sent = sent + 1
   local headers = {}
   for name, value in pairs(wrk.headers) do headers[name] = value end
   headers["Idempotency-Key"] = string.format("bench-%s-%d-%d", run_id, thread_id, sent)
   return wrk.format(nil, nil, headers)
end

function done(summary, latency, requests)
   local errors = summary.errors
   io.write(string.format(
      "RESULT requests=%d seconds=%.2f rps=%.0f p50_ms=%.2f p99_ms=%.2f max_ms=%.2f non2xx=%d socket_errors=%d\n",
      summary.requests, summary.duration / 1e6, summary.requests / (summary.duration / 1e6),
      latency:percentile(50) / 1000, latency:percentile(99) / 1000, latency.max / 1000,
      errors.status, errors.connect + errors.read + errors.write + errors.timeout))
end
