-- wrk script for Identity Portal's benchmarks (bench/run.py sets the environment).
--   BENCH_AUTHORIZATION  the whole Authorization header value ("Basic …", "Bearer …", "Api-Key …")
--   BENCH_FORM           when set: POST it as application/x-www-form-urlencoded (token endpoint)
-- X-Forwarded-Proto stands in for the TLS-terminating proxy of a production deployment.
-- done() prints one line "BENCH_JSON {…}" with wrk's own latency distribution (microseconds).

wrk.headers["Authorization"] = os.getenv("BENCH_AUTHORIZATION")
wrk.headers["X-Forwarded-Proto"] = "https"
wrk.headers["Accept"] = "application/json"

local form = os.getenv("BENCH_FORM")
if form and form ~= "" then
  wrk.method = "POST"
  wrk.body = form
  wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"
end

done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'BENCH_JSON {"requests": %d, "duration_us": %d, "bytes": %d, ' ..
    '"errors": {"connect": %d, "read": %d, "write": %d, "status": %d, "timeout": %d}, ' ..
    '"latency_us": {"mean": %.1f, "stdev": %.1f, "min": %d, "p50": %d, "p90": %d, "p95": %d, "p99": %d, "max": %d}}\n',
    summary.requests, summary.duration, summary.bytes,
    e.connect, e.read, e.write, e.status, e.timeout,
    latency.mean, latency.stdev, latency.min,
    latency:percentile(50), latency:percentile(90), latency:percentile(95), latency:percentile(99),
    latency.max))
end
