-- wrk script: optional Host rotation over BENCH_HOSTS (comma-separated), and
-- one JSON line at the end with throughput, latency percentiles (µs) and errors.
-- With BENCH_CONNECT, wrk connects to that address whatever the URL's host:
-- wrk sends the URL's host as the TLS server name (SNI), so
-- https://bench.test:PORT/ with BENCH_CONNECT=127.0.0.1 sends SNI bench.test.
local connect = os.getenv("BENCH_CONNECT") or ""
if connect ~= "" then
  wrk.resolve = function(_, service)
    wrk.addrs = wrk.lookup(connect, service)
  end
end

local hosts = {}
local path = os.getenv("BENCH_PATH") or "/"
for h in string.gmatch(os.getenv("BENCH_HOSTS") or "", "[^,]+") do hosts[#hosts + 1] = h end

if #hosts > 0 then
  local i = 0
  request = function()
    i = i % #hosts + 1
    return wrk.format("GET", path, { Host = hosts[i] })
  end
end

done = function(summary, latency, requests)
  local errors = summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout
  io.write(string.format(
    '{"requests":%d,"duration_us":%d,"bytes":%d,"errors":%d,"non2xx":%d,"p50_us":%d,"p99_us":%d,"max_us":%d}\n',
    summary.requests, summary.duration, summary.bytes, errors, summary.errors.status,
    latency:percentile(50), latency:percentile(99), latency.max))
end
