#!/usr/bin/env node
// npm run soak [-- --reloads 1000 --rate 1000 --connections 32 --instances 1 --kind edit|restart|admin|signal|watch|memory]
//
// The zero-drop promise under a long run of reloads (README, Reliability).
// Starts the built gateway on a temporary config with two apps: "changed",
// replaced by every reload, and "steady", never touched. A separate process
// drives keep-alive load at a fixed rate at both while this script reloads
// N times (or, with --kind watch or memory, makes N watch restarts or memory
// replacements of "changed": README, App lifecycle). Prints per app: sent, ok, failed by kind with a timeline; the
// gateway's RSS and open fds along the way; the children left at the end.
// Exits 1 on any failed request (or a stuck reload, or left-over children).
// Not a test: it takes minutes, and its figures depend on the machine.
import { fork, spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const CLI = path.join(ROOT, 'dist', 'cli', 'main.js');
const APP = path.join(ROOT, 'scripts', 'soak', 'app.mjs');
const LOAD = path.join(ROOT, 'scripts', 'soak', 'load.mjs');
const KINDS = ['edit', 'restart', 'admin', 'signal', 'watch', 'memory'];
/** --kind memory: the max_rss_mb of "changed"; one GET /grow makes a child hold more than that. */
const MAX_RSS_MB = 120;

const { values: opts } = parseArgs({
  options: {
    reloads: { type: 'string', default: '100' },
    rate: { type: 'string', default: '1000' },
    connections: { type: 'string', default: '32' },
    instances: { type: 'string', default: '1' },
    kind: { type: 'string', default: 'edit' },
    // Spread the reloads over this many seconds; 0: back to back.
    duration: { type: 'string', default: '0' },
    // Variations for hunting races; none is needed for the headline run.
    'keepalive-ms': { type: 'string' },
    'access-log': { type: 'string', default: 'true' },
    'delay-ms': { type: 'string', default: '0' },
    client: { type: 'string', default: 'undici' },
    post: { type: 'string', default: '0' },
    'stall-ms': { type: 'string', default: '0' },
    'log-level': { type: 'string', default: 'info' },
    'keep-dir': { type: 'boolean', default: false },
    help: { type: 'boolean', short: 'h', default: false },
  },
});

if (opts.help) {
  process.stdout.write(`npm run soak -- [options]
  --reloads N        reloads (or watch restarts, memory replacements) to make (default 100)
  --rate R           requests per second, split over the two apps (default 1000)
  --connections C    keep-alive connections of the load generator (default 32)
  --instances K      instances of each app (default 1)
  --kind K           edit (save nano.toml), restart (admin restart), admin (edit + POST /admin/reload),
                     signal (edit + SIGHUP), watch (write a file of "changed", which has watch = true),
                     memory ("changed" grows past max_rss_mb = ${MAX_RSS_MB}; the watchdog replaces it);
                     default edit
  --duration S       spread the reloads over S seconds; 0 (default): back to back
  --keepalive-ms MS  the apps' keepAliveTimeout (default Node's 5000)
  --access-log BOOL  [gateway] access_log (default true)
  --delay-ms MS      each app request takes this long (default 0)
  --client C         undici (default) or node (node:http Agent)
  --post P           percent of requests that are POSTs (never retried by the gateway; default 0)
  --stall-ms MS      once a second, stop the gateway for MS ms (SIGSTOP/SIGCONT), as a busy or starved
                     event loop would stall it; 0 (default): never
  --log-level L      the gateway's --log-level; with debug, its debug lines are counted in the report
  --keep-dir         keep the temporary directory (config)
`);
  process.exit(0);
}

const RELOADS = Number(opts.reloads);
const RATE = Number(opts.rate);
const CONNECTIONS = Number(opts.connections);
const INSTANCES = Number(opts.instances);
const KIND = opts.kind;
const DURATION_S = Number(opts.duration);
/** What one step of the run is called in the report. */
const STEPS = { watch: 'watch restarts', memory: 'memory replacements' }[KIND] ?? `${KIND} reloads`;
if (!KINDS.includes(KIND)) fail(`--kind must be one of ${KINDS.join(', ')}`);
for (const [name, value] of Object.entries({
  reloads: RELOADS,
  rate: RATE,
  connections: CONNECTIONS,
  instances: INSTANCES,
})) {
  if (!Number.isInteger(value) || value < 1) fail(`--${name} must be a whole number >= 1`);
}

const HOSTS = { changed: 'changed.soak', steady: 'steady.soak' };
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function fail(message) {
  process.stderr.write(`soak: ${message}\n`);
  process.exit(2);
}

function config(version) {
  const env = (v) => {
    const pairs = [`VERSION = "${v}"`];
    if (opts['keepalive-ms']) pairs.push(`KEEPALIVE_MS = "${opts['keepalive-ms']}"`);
    if (Number(opts['delay-ms']) > 0) pairs.push(`DELAY_MS = "${opts['delay-ms']}"`);
    return `{ ${pairs.join(', ')} }`;
  };
  const lifecycle = (name) => {
    if (name !== 'changed') return '';
    if (KIND === 'watch') return `cwd = ${JSON.stringify(watchedDir)}\nwatch = true\n`;
    if (KIND === 'memory') return `max_rss_mb = ${MAX_RSS_MB}\n`;
    return '';
  };
  const app = (name, v) => `[apps.${name}]
hosts = ["${HOSTS[name]}"]
entry = ${JSON.stringify(APP)}
health_path = "/health"
instances = ${INSTANCES}
env = ${env(v)}
${lifecycle(name)}`;
  return `[gateway]
listen = "127.0.0.1:0"
access_log = ${opts['access-log'] !== 'false'}

[admin]
listen = "127.0.0.1:0"

${app('changed', version)}
${app('steady', 'steady')}`;
}

// ---- the gateway ------------------------------------------------------------

const dir = mkdtempSync(path.join(os.tmpdir(), 'nano-soak-'));
const configFile = path.join(dir, 'nano.toml');
// --kind watch: the folder "changed" runs in and watches; the soak writes a file there.
const watchedDir = path.join(dir, 'changed');
mkdirSync(watchedDir);
writeFileSync(configFile, config(0));

const gateway = spawn(process.execPath, [CLI, 'start', '-c', configFile, '--json', '--log-level', opts['log-level']], {
  cwd: dir,
  stdio: ['ignore', 'pipe', 'pipe'],
});
let gatewayExit = null;
gateway.once('exit', (code, signal) => (gatewayExit = { code, signal }));
let stderr = '';
gateway.stderr.setEncoding('utf8').on('data', (d) => (stderr += d));

/** The gateway's own lines (not access lines, not app output), newest last; bounded. */
const events = [];
/** Counts of the gateway's lines that are not at info level, by level and message. */
const unusual = new Map();
const waiters = new Set();
let partial = '';
gateway.stdout.setEncoding('utf8').on('data', (chunk) => {
  partial += chunk;
  for (let nl = partial.indexOf('\n'); nl !== -1; nl = partial.indexOf('\n')) {
    const line = partial.slice(0, nl);
    partial = partial.slice(nl + 1);
    if (line.includes('"kind":"access"') || line.includes('"stream":"std')) continue;
    let entry;
    try {
      entry = JSON.parse(line);
    } catch {
      continue;
    }
    events.push(entry);
    if (events.length > 5000) events.splice(0, 1000);
    if (entry.level !== 30) {
      const key = `${entry.level >= 40 ? 'warn' : 'debug'}\0${entry.msg}`;
      unusual.set(key, (unusual.get(key) ?? 0) + 1);
    }
    for (const waiter of waiters) waiter(entry);
  }
});

/** Resolves with the first line from now on that `match`es. */
function nextEvent(match, timeoutMs, what) {
  return new Promise((resolve, reject) => {
    const waiter = (entry) => {
      if (!match(entry)) return;
      waiters.delete(waiter);
      clearTimeout(timer);
      resolve(entry);
    };
    const timer = setTimeout(() => {
      waiters.delete(waiter);
      reject(new Error(`timed out after ${timeoutMs} ms waiting for ${what}`));
    }, timeoutMs);
    waiters.add(waiter);
  });
}

function adminCall(port, method, urlPath, headers = {}) {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, method, path: urlPath, headers, agent: false }, (res) => {
      let body = '';
      res.setEncoding('utf8').on('data', (d) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode, body }));
    });
    req.on('error', reject);
    req.end();
  });
}

function procStats(pid) {
  let rss = 0;
  try {
    rss = Number(/VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? 0) * 1024;
  } catch {
    // exited
  }
  let fds = 0;
  try {
    fds = readdirSync(`/proc/${pid}/fd`).length;
  } catch {
    // exited
  }
  return { rss, fds };
}

function childPids(pid) {
  try {
    return readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number);
  } catch {
    return [];
  }
}

function commandOf(pid) {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').filter(Boolean).slice(-1)[0] ?? '?';
  } catch {
    return '?';
  }
}

// ---- one reload ---------------------------------------------------------------

let version = 0;

/** Writes the config the way editors save (temporary file, then rename). */
function saveConfig() {
  version++;
  const tmp = `${configFile}.tmp`;
  writeFileSync(tmp, config(version));
  renameSync(tmp, configFile);
}

const finishedWithChange = (entry) =>
  typeof entry.msg === 'string' &&
  entry.msg.startsWith('reload finished') &&
  Array.isArray(entry.changed) &&
  entry.changed.includes('changed');

async function reloadOnce(adminPort, port) {
  switch (KIND) {
    case 'watch': {
      // An edit of one of the app's files: a rolling restart, as `restart changed` (README, Watch and restart).
      const done = nextEvent((e) => e.msg === 'app restarted: changed', 60_000, 'the watch restart');
      writeFileSync(path.join(watchedDir, 'data.txt'), `${++version}\n`);
      await done;
      return;
    }
    case 'memory': {
      // One child of "changed" takes more than max_rss_mb; the watchdog replaces it after 3 samples.
      const done = nextEvent((e) => e.msg?.includes('replaced for its memory'), 60_000, 'the memory replacement');
      const res = await adminCall(port, 'GET', `/grow?mb=${MAX_RSS_MB + 30}`, { host: HOSTS.changed });
      if (res.status !== 200) throw new Error(`GET /grow answered ${res.status}: ${res.body}`);
      const replaced = await done;
      // Its drain and stop, so the next child to grow is the new one and no third child is left at the end.
      await nextEvent(
        (e) => e.msg === 'old instance stopped' && e.pid === replaced.old_pid,
        60_000,
        'the old child to stop',
      );
      return;
    }
    case 'edit': {
      const done = nextEvent(finishedWithChange, 60_000, 'the reload of the edited file');
      saveConfig();
      await done;
      return;
    }
    case 'signal': {
      const done = nextEvent(finishedWithChange, 60_000, 'the reload after SIGHUP');
      saveConfig();
      gateway.kill('SIGHUP');
      await done;
      return;
    }
    case 'admin': {
      // The file watcher may see the edit first; either way the change is applied once.
      const done = nextEvent(finishedWithChange, 60_000, 'the reload of the edited file');
      saveConfig();
      const res = await adminCall(adminPort, 'POST', '/admin/reload');
      if (res.status !== 200) throw new Error(`POST /admin/reload answered ${res.status}: ${res.body}`);
      await done;
      return;
    }
    case 'restart': {
      const res = await adminCall(adminPort, 'POST', '/admin/apps/changed/restart');
      if (res.status !== 200) throw new Error(`POST /admin/apps/changed/restart answered ${res.status}: ${res.body}`);
      return;
    }
  }
}

// ---- the run --------------------------------------------------------------------

async function main() {
  const listening = await nextEvent((e) => e.msg?.startsWith('listening on'), 20_000, 'the gateway to listen');
  const port = Number(new URL(listening.address).port);
  const admin = await nextEvent((e) => e.msg?.startsWith('admin API listening on'), 20_000, 'the admin API');
  const adminPort = Number(new URL(admin.admin).port);
  const deadline = Date.now() + 20_000;
  while (events.filter((e) => e.msg === 'instance ready').length < 2 * INSTANCES) {
    if (Date.now() > deadline || gatewayExit) throw new Error(`the apps did not become ready: ${stderr}`);
    await sleep(20);
  }

  const load = fork(LOAD, [], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  const result = new Promise((resolve, reject) => {
    load.on('message', (m) => m.result && resolve(m.result));
    load.once('exit', (code) => reject(new Error(`the load generator exited (${code}) without a result`)));
  });
  load.send({
    start: {
      url: `http://127.0.0.1:${port}/`,
      hosts: [HOSTS.changed, HOSTS.steady],
      rate: RATE,
      connections: CONNECTIONS,
      client: opts.client,
      post: Number(opts.post),
    },
  });
  process.stdout.write(`gateway pid ${gateway.pid} on 127.0.0.1:${port}, admin ${adminPort}, config ${configFile}\n`);
  const loadStarted = Date.now();
  // Traffic settles (connections open, JIT warms) before the first reload.
  await sleep(1000);

  const stallMs = Number(opts['stall-ms']);
  const stalls =
    stallMs > 0
      ? setInterval(() => {
          gateway.kill('SIGSTOP');
          setTimeout(() => gateway.kill('SIGCONT'), stallMs);
        }, 1000)
      : null;
  const samples = [];
  const sampleAt = new Set([0, 0.25, 0.5, 0.75, 1].map((f) => Math.round(f * RELOADS)));
  const sample = (done) =>
    samples.push({ reloads: done, t: (Date.now() - loadStarted) / 1000, ...procStats(gateway.pid) });
  const reloadTimes = [];
  /** [start, end] of each reload, in ms since the load started. */
  const reloadSpans = [];
  const startedAt = Date.now();
  let problem = null;
  const progressEvery = Math.max(1, Math.round(RELOADS / 10));
  for (let i = 0; i < RELOADS; i++) {
    if (sampleAt.has(i)) sample(i);
    if (DURATION_S > 0) {
      const due = startedAt + (i * DURATION_S * 1000) / RELOADS;
      if (Date.now() < due) await sleep(due - Date.now());
    }
    if (gatewayExit) {
      problem = `the gateway exited during the run: ${JSON.stringify(gatewayExit)} ${stderr}`;
      break;
    }
    const began = Date.now();
    try {
      await reloadOnce(adminPort, port);
    } catch (err) {
      problem = `reload ${i + 1}: ${err.message}`;
      break;
    }
    reloadTimes.push(Date.now() - began);
    reloadSpans.push([began - loadStarted, Date.now() - loadStarted]);
    if ((i + 1) % progressEvery === 0)
      process.stdout.write(`  ${i + 1}/${RELOADS} ${STEPS} (${((Date.now() - startedAt) / 1000).toFixed(0)} s)\n`);
  }
  if (!problem) sample(RELOADS);
  if (stalls) clearInterval(stalls);
  await sleep(1000);
  load.send({ stop: true });
  const r = await result;
  // The old generation's drain has ended for the last reload; what is left should be one generation.
  const children = childPids(gateway.pid);
  report({ r, samples, reloadTimes, reloadSpans, loadStarted, children, problem });

  gateway.kill('SIGTERM');
  const exit = await new Promise((resolve) =>
    gatewayExit ? resolve(gatewayExit) : gateway.once('exit', (code, signal) => resolve({ code, signal })),
  );
  const orphans = children.filter((pid) => {
    try {
      process.kill(pid, 0);
      return true;
    } catch {
      return false;
    }
  });
  process.stdout.write(
    `gateway stopped: exit ${exit.code ?? exit.signal}; children still running after it: ${orphans.length}\n`,
  );
  if (opts['keep-dir']) process.stdout.write(`kept ${dir}\n`);
  else rmSync(dir, { recursive: true, force: true });

  const failed = Object.values(r.hosts).reduce((n, h) => n + h.failures.length, 0) + r.unanswered;
  const bad = failed > 0 || problem !== null || children.length !== 2 * INSTANCES || exit.code !== 0;
  process.stdout.write(bad ? 'FAILED\n' : 'OK: no failed request\n');
  process.exit(bad ? 1 : 0);
}

function report({ r, samples, reloadTimes, reloadSpans, loadStarted, children, problem }) {
  const mb = (b) => `${(b / 2 ** 20).toFixed(1)} MB`;
  const out = [];
  out.push(
    `\nsoak: ${reloadTimes.length} ${STEPS}${DURATION_S > 0 ? ` over ${DURATION_S} s` : ', back to back'}, ` +
      `${RATE} req/s over ${CONNECTIONS} ${opts.client} connections, ${INSTANCES} instance(s) per app` +
      `${opts['keepalive-ms'] ? `, app keepAliveTimeout ${opts['keepalive-ms']} ms` : ''}, access log ${opts['access-log'] !== 'false' ? 'on' : 'off'}` +
      `${Number(opts['stall-ms']) > 0 ? `, gateway stopped ${opts['stall-ms']} ms every second` : ''}`,
  );
  if (reloadTimes.length > 0) {
    const sorted = [...reloadTimes].sort((a, b) => a - b);
    out.push(`reload time: median ${sorted[Math.floor(sorted.length / 2)]} ms, max ${sorted.at(-1)} ms`);
  }
  out.push('');
  out.push('app      requests       ok   failed   p50 ms   p99 ms   max ms');
  for (const [name, host] of Object.entries(HOSTS)) {
    const h = r.hosts[host];
    out.push(
      `${name.padEnd(8)} ${String(h.sent).padStart(8)} ${String(h.ok).padStart(8)} ${String(h.failures.length).padStart(8)} ` +
        `${(h.p50Us / 1000).toFixed(2).padStart(8)} ${(h.p99Us / 1000).toFixed(2).padStart(8)} ${(h.maxUs / 1000).toFixed(1).padStart(8)}`,
    );
  }
  if (r.unanswered > 0)
    out.push(`requests never answered (still in flight 30 s after the load stopped): ${r.unanswered}`);
  for (const [name, host] of Object.entries(HOSTS)) {
    const failures = r.hosts[host].failures;
    if (failures.length === 0) continue;
    out.push(`\n${name}: failures by kind`);
    const byKind = new Map();
    for (const f of failures) byKind.set(f.kind, [...(byKind.get(f.kind) ?? []), f]);
    for (const [kind, list] of byKind) {
      const timeline = new Map();
      for (const f of list) timeline.set(Math.floor(f.t / 1000), (timeline.get(Math.floor(f.t / 1000)) ?? 0) + 1);
      out.push(
        `  ${kind}: ${list.length}   (second → count: ${[...timeline].map(([s, n]) => `${s}s→${n}`).join(', ')})`,
      );
      for (const f of list.slice(0, 10)) {
        // Failure times are from the load generator's clock start; reloads from this script's: both wall clock.
        const t = r.startedAt + f.t - loadStarted;
        const last = reloadSpans.filter(([start]) => start <= t).at(-1);
        const since = last
          ? `, ${t - last[0]} ms after reload ${reloadSpans.indexOf(last) + 1} began (it took ${last[1] - last[0]} ms)`
          : '';
        out.push(`    ${f.method} at ${f.t} ms${since}${f.socket ? `; connection ${JSON.stringify(f.socket)}` : ''}`);
      }
    }
  }
  out.push('\ngateway along the run:');
  out.push('reloads   at s       RSS   open fds');
  for (const s of samples)
    out.push(
      `${String(s.reloads).padStart(7)} ${s.t.toFixed(0).padStart(6)} ${mb(s.rss).padStart(9)} ${String(s.fds).padStart(10)}`,
    );
  out.push(
    `\nchildren left at the end: ${children.length} (expected ${2 * INSTANCES})${children.length ? `: ${children.map((p) => `${p} ${path.basename(commandOf(p))}`).join(', ')}` : ''}`,
  );
  for (const [label, level] of [
    ['gateway warnings and errors', 'warn'],
    ['gateway debug lines', 'debug'],
  ]) {
    const lines = [...unusual].filter(([key]) => key.startsWith(`${level}\0`));
    if (lines.length > 0) out.push(`${label}: ${lines.map(([key, n]) => `${n} × "${key.split('\0')[1]}"`).join('; ')}`);
  }
  if (problem) out.push(`\nPROBLEM: ${problem}`);
  process.stdout.write(`${out.join('\n')}\n`);
}

main().catch((err) => {
  process.stderr.write(`soak: ${err.stack ?? err.message}\n${stderr}`);
  gateway.kill('SIGKILL');
  process.exit(1);
});
