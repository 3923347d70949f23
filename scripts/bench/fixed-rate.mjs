// Open-loop load at a fixed rate, for added-latency figures: requests are
// sent on a schedule whatever the answers do, and each latency is measured
// from its scheduled send time (no coordinated omission). The first
// `warm-up` seconds (connections opening, JIT) run at the same rate and are
// not counted. Prints one JSON line.
//   node fixed-rate.mjs <url> <host> <rate per s> <seconds> [warm-up seconds, default 2]
import { Pool } from 'undici';

const [url, host, rateText, secondsText, warmupText] = process.argv.slice(2);
const rate = Number(rateText);
const seconds = Number(secondsText);
const warmup = Number(warmupText ?? 2);
const pool = new Pool(new URL(url).origin, { connections: 64 });
const path = new URL(url).pathname;
const latenciesUs = [];
let errors = 0;
let non2xx = 0;
let inFlight = 0;

function send(scheduled, counted) {
  inFlight++;
  pool.request({ method: 'GET', path, headers: { host } }).then(
    async (res) => {
      await res.body.dump();
      if (counted) {
        if (res.statusCode < 200 || res.statusCode > 299) non2xx++;
        latenciesUs.push(Number(process.hrtime.bigint() - scheduled) / 1000);
      }
      inFlight--;
    },
    () => {
      if (counted) errors++;
      inFlight--;
    },
  );
}

const start = process.hrtime.bigint();
const intervalNs = BigInt(Math.round(1e9 / rate));
const warmupCount = Math.round(rate * warmup);
const total = warmupCount + Math.round(rate * seconds);
let sent = 0;
await new Promise((resolve) => {
  const tick = () => {
    const now = process.hrtime.bigint();
    while (sent < total && start + BigInt(sent) * intervalNs <= now) {
      send(start + BigInt(sent) * intervalNs, sent >= warmupCount);
      sent++;
    }
    if (sent < total) setImmediate(tick);
    else resolve();
  };
  tick();
});
while (inFlight > 0) await new Promise((r) => setTimeout(r, 5));
await pool.close();
latenciesUs.sort((a, b) => a - b);
const pct = (p) => latenciesUs[Math.min(latenciesUs.length - 1, Math.floor((p / 100) * latenciesUs.length))] ?? 0;
console.log(
  JSON.stringify({
    requests: latenciesUs.length,
    rate,
    errors,
    non2xx,
    p50_us: pct(50),
    p99_us: pct(99),
    max_us: latenciesUs.at(-1) ?? 0,
  }),
);
