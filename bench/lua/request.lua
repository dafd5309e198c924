-- wrk script for Identity Portal's benchmarks (bench/run.py sets the environment).
--   BENCH_AUTHORIZATION     the whole Authorization header value ("Basic …", "Bearer …", "Api-Key …")
--   BENCH_FORM              when set: POST it as application/x-www-form-urlencoded (token endpoint)
--   BENCH_CREDENTIALS_FILE  when set: one Authorization header value per line, presented
--                           round-robin (each wrk thread starts at its own offset), so many
--                           distinct credentials are measured instead of one hot entry
--   BENCH_THREADS           wrk's -t value (spreads the threads' starting offsets)
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

local credentials_file = os.getenv("BENCH_CREDENTIALS_FILE")
if credentials_file and credentials_file ~= "" then
  local created = 0
  setup = function(thread)
    thread:set("thread_no", created)
    created = created + 1
  end

  local credentials = {}
  local position = 0
  init = function(args)
    for line in io.lines(credentials_file) do
      if line ~= "" then
        credentials[#credentials + 1] = line
      end
    end
    local threads = tonumber(os.getenv("BENCH_THREADS") or "1")
    position = math.floor((thread_no or 0) * #credentials / threads)
  end

  request = function()
    position = position % #credentials + 1
    wrk.headers["Authorization"] = credentials[position]
    return wrk.format(nil, nil, wrk.headers, wrk.body)
  end
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
