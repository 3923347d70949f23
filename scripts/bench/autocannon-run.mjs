// Fallback load generator when wrk is not installed: autocannon in its own
// process (pinned like wrk would be), printing one JSON line like report.lua.
//   node autocannon-run.mjs <url> <connections> <seconds> <host,host,...>
import autocannon from 'autocannon';

const [url, connections, seconds, hostList] = process.argv.slice(2);
const hosts = (hostList ?? '').split(',').filter(Boolean);
let i = 0;
const result = await autocannon({
  url,
  connections: Number(connections),
  duration: Number(seconds),
  requests: [
    {
      setupRequest(req) {
        req.headers = { ...req.headers, host: hosts[i++ % hosts.length] };
        return req;
      },
    },
  ],
});
console.log(
  JSON.stringify({
    requests: result.requests.total,
    duration_us: Number(seconds) * 1e6,
    bytes: result.throughput.total,
    errors: result.errors + result.timeouts,
    non2xx: result.non2xx,
    p50_us: result.latency.p50 * 1000,
    p99_us: result.latency.p99 * 1000,
    max_us: result.latency.max * 1000,
  }),
);
