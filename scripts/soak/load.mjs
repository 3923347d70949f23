// The soak's load generator, run as its own process (forked by soak.mjs) so
// that its CPU and event loop are apart from the script that edits the config.
// Open loop: requests are sent on a fixed schedule whatever the answers do,
// over at most `connections` keep-alive connections, the hosts taking turns.
// On "stop" it waits for the requests in flight and reports, per host: sent,
// ok, failed by kind, with each failure's time and (for socket errors) which
// connection it was, so a reset can be matched against a packet capture.
//
// Message in:  { start: { url, hosts: [..], rate, connections, client, post } } then { stop: true }
// Message out: { result: { startedAt, hosts: { [host]: { sent, ok, latencies, failures: [...] } } } }
import http from 'node:http';
import { Pool } from 'undici';

let stopping = false;
let inFlight = 0;
/** @type {Record<string, { sent: number, ok: number, latencyUs: number[], failures: object[] }>} */
const perHost = {};
let startedAt = 0;

process.on('message', (message) => {
  if (message.start) void run(message.start);
  if (message.stop) stopping = true;
});

/** One request through undici's Pool: no retries, errors as they come. */
function undiciClient(origin, connections) {
  const pool = new Pool(origin, { connections, pipelining: 1 });
  return {
    send(host, path, method, body, done) {
      pool
        .request({ method, path, headers: { host }, body })
        .then(async (res) => {
          await res.body.dump();
          done(null, res.statusCode);
        })
        .catch((err) => done(err, 0));
    },
    close: () => pool.close(),
  };
}

/** One request through node:http's keep-alive Agent (LIFO free sockets, as Node clients default to). */
function nodeClient(origin, connections) {
  const url = new URL(origin);
  const agent = new http.Agent({ keepAlive: true, maxSockets: connections });
  return {
    send(host, path, method, body, done) {
      const req = http.request(
        { host: url.hostname, port: url.port, path, method, agent, headers: { host } },
        (res) => {
          res.resume();
          res.on('end', () => {
            if (req.socket) req.socket.soakLastUsed = Date.now();
            done(null, res.statusCode);
          });
          res.on('error', (err) => done(describe(err, req), 0));
        },
      );
      req.on('socket', (socket) => {
        socket.soakRequests = (socket.soakRequests ?? 0) + 1;
        socket.soakOpened ??= Date.now();
      });
      req.on('error', (err) => done(describe(err, req), 0));
      req.end(body);
    },
    close: async () => agent.destroy(),
  };
}

/** Which connection failed, for matching against a packet capture: reused or new, idle how long. */
function describe(err, req) {
  const socket = req.socket;
  if (socket) {
    err.socket = {
      localPort: socket.localPort,
      reused: req.reusedSocket,
      requestsOnSocket: socket.soakRequests,
      idleMsBefore: socket.soakLastUsed ? Date.now() - socket.soakLastUsed : null,
      ageMs: Date.now() - socket.soakOpened,
      message: err.message,
    };
  }
  return err;
}

function errorKind(err) {
  const code = err.code ?? err.name ?? 'error';
  return code === 'UND_ERR_SOCKET' ? `UND_ERR_SOCKET (${err.message})` : code;
}

async function run({ url, hosts, rate, connections, client, post }) {
  const origin = new URL(url).origin;
  const http = client === 'node' ? nodeClient(origin, connections) : undiciClient(origin, connections);
  for (const host of hosts) perHost[host] = { sent: 0, ok: 0, latencyUs: [], failures: [] };
  startedAt = Date.now();
  const t0 = performance.now();
  let sent = 0;
  const intervalMs = 1000 / rate;
  await new Promise((resolve) => {
    const tick = () => {
      if (stopping) return resolve();
      const due = Math.floor((performance.now() - t0) / intervalMs);
      while (sent < due) {
        const host = hosts[sent % hosts.length];
        const isPost = post > 0 && sent % Math.round(100 / post) === 0;
        const stats = perHost[host];
        const begin = performance.now();
        stats.sent++;
        inFlight++;
        sent++;
        http.send(host, '/', isPost ? 'POST' : 'GET', isPost ? `payload ${sent}` : undefined, (err, status) => {
          inFlight--;
          if (!err && status >= 200 && status < 300) {
            stats.ok++;
            if (stats.latencyUs.length < 1_000_000)
              stats.latencyUs.push(Math.round((performance.now() - begin) * 1000));
            return;
          }
          stats.failures.push({
            t: Date.now() - startedAt,
            method: isPost ? 'POST' : 'GET',
            kind: err ? errorKind(err) : `HTTP ${status}`,
            ...(err?.socket ? { socket: err.socket } : {}),
          });
        });
      }
      setTimeout(tick, 1);
    };
    tick();
  });
  const deadline = Date.now() + 30_000;
  while (inFlight > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
  await http.close().catch(() => {});
  const hostsOut = {};
  for (const [host, s] of Object.entries(perHost)) {
    s.latencyUs.sort((a, b) => a - b);
    const pct = (p) => s.latencyUs[Math.min(s.latencyUs.length - 1, Math.floor(p * s.latencyUs.length))] ?? 0;
    hostsOut[host] = {
      sent: s.sent,
      ok: s.ok,
      failures: s.failures,
      p50Us: pct(0.5),
      p99Us: pct(0.99),
      maxUs: s.latencyUs.at(-1) ?? 0,
    };
  }
  process.send({ result: { startedAt, unanswered: inFlight, hosts: hostsOut } }, () => process.exit(0));
}
