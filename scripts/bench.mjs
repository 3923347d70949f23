#!/usr/bin/env node
// npm run bench [-- --duration 8 --warmup 2 --connections 50 --only main,latency,...]
//
// Measures the gateway beside references measured in the same run, on
// loopback, against the same trivial upstream app: direct to the app, nginx
// (1 worker, upstream keep-alive) when installed, the engines alone in
// minimal proxies, and a raw TCP pipe. With 2+ cores and taskset, the load
// generator runs alone on CPU 1 and every server (app, proxy) on CPU 0, so a
// proxy's CPU cost shows. Prints tables and writes the raw figures as JSON
// into bench/ (git-ignored). Not a test: nothing here asserts timings.
import { execFile, spawn, spawnSync } from 'node:child_process';
import { closeSync, existsSync, mkdirSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const BENCH = path.join(ROOT, 'scripts', 'bench');
const HELLO = path.join(BENCH, 'hello.mjs');
const CLI = path.join(ROOT, 'dist', 'cli', 'main.js');
const HOST = 'bench.test';

const { values: opts } = parseArgs({
  options: {
    duration: { type: 'string', default: '8' },
    warmup: { type: 'string', default: '2' },
    connections: { type: 'string', default: '50' },
    apps: { type: 'string', default: '200' },
    'startup-apps': { type: 'string', default: '50' },
    // 5,000 req/s saturates one core shared by app and proxy on a small VM; 2,000 is moderate there.
    rate: { type: 'string', default: '2000' },
    'rate-seconds': { type: 'string', default: '10' },
    only: { type: 'string' },
    match: { type: 'string' },
    repeat: { type: 'string', default: '1' },
    out: { type: 'string', default: path.join(ROOT, 'bench') },
  },
});
const DURATION = Number(opts.duration);
const WARMUP = Number(opts.warmup);
const CONNECTIONS = Number(opts.connections);
const MANY_APPS = Number(opts.apps);
const STARTUP_APPS = Number(opts['startup-apps']);
const RATE = Number(opts.rate);
const RATE_SECONDS = Number(opts['rate-seconds']);
const SECTIONS = new Set((opts.only ?? 'main,cpu,latency,big,apps,reload,startup').split(','));
/** Main rows whose name matches this run; the others are skipped (for quick comparisons). */
const MATCH = new RegExp(opts.match ?? '.', 'i');
/** Main rows run this many times, interleaved; each row reports the run with its median req/s. */
const REPEAT = Math.max(1, Number(opts.repeat));

const has = (cmd) => spawnSync('sh', ['-c', `command -v ${cmd}`]).status === 0;
const PIN = os.availableParallelism() >= 2 && has('taskset');
const LOADGEN = has('wrk') ? 'wrk' : 'autocannon';
const NGINX = ['nginx', '/usr/sbin/nginx'].find((c) => has(c)) ?? null;
const CLK_TCK = Number(spawnSync('getconf', ['CLK_TCK']).stdout?.toString().trim()) || 100;

const cleanups = [];
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// ---- processes ------------------------------------------------------------

/** Spawns a process pinned to `cpu` when pinning is possible; its children inherit the pinning. */
function spawnPinned(cpu, cmd, args, options = {}) {
  const [c, a] = PIN ? ['taskset', ['-c', String(cpu), cmd, ...args]] : [cmd, args];
  const proc = spawn(c, a, {
    stdio: ['ignore', options.stdout ?? 'pipe', 'pipe'],
    env: { ...process.env, ...options.env },
    detached: options.detached ?? false,
  });
  proc.stderrText = '';
  proc.stderr.setEncoding('utf8').on('data', (d) => (proc.stderrText += d));
  return proc;
}

function waitForLine(proc, pattern, timeoutMs = 20_000) {
  return new Promise((resolve, reject) => {
    let buffer = '';
    const timer = setTimeout(
      () => reject(new Error(`timed out waiting for ${pattern}: ${buffer.slice(-500)} ${proc.stderrText}`)),
      timeoutMs,
    );
    proc.stdout.setEncoding('utf8');
    proc.stdout.on('data', (chunk) => {
      buffer += chunk;
      const m = pattern.exec(buffer);
      if (m) {
        clearTimeout(timer);
        resolve(m);
      }
    });
    proc.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`process exited (${code}) before ${pattern}: ${buffer.slice(-500)} ${proc.stderrText}`));
    });
  });
}

function stopper(proc) {
  const stop = () => {
    if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGTERM');
    return new Promise((r) => (proc.exitCode !== null || proc.signalCode !== null ? r() : proc.once('exit', r)));
  };
  cleanups.push(stop);
  return stop;
}

async function startHello(options = {}) {
  const proc = spawnPinned(0, process.execPath, [HELLO], { env: { PORT: '0' }, ...options });
  const m = await waitForLine(proc, /listening (\d+)/);
  return { port: Number(m[1]), pids: () => [proc.pid], stop: stopper(proc) };
}

async function startMinimalProxy(kind, upstreamPort) {
  const proc = spawnPinned(0, process.execPath, [path.join(BENCH, 'proxies.mjs'), kind, String(upstreamPort)]);
  const m = await waitForLine(proc, /listening (\d+)/);
  return { port: Number(m[1]), pids: () => [proc.pid], stop: stopper(proc) };
}

function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

/** nginx with 1 worker; `upstreams` is one port, or a list of [host, port] for one server block per host. */
async function startNginx(dir, upstreams) {
  const port = await freePort();
  const routes = typeof upstreams === 'number' ? [[null, upstreams]] : upstreams;
  const prefix = path.join(dir, 'nginx');
  mkdirSync(path.join(prefix, 'logs'), { recursive: true });
  const conf = path.join(prefix, 'nginx.conf');
  writeFileSync(
    conf,
    `worker_processes 1;
pid ${prefix}/nginx.pid;
error_log ${prefix}/logs/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path ${prefix}/body;
  proxy_temp_path ${prefix}/proxy;
  fastcgi_temp_path ${prefix}/fastcgi;
  uwsgi_temp_path ${prefix}/uwsgi;
  scgi_temp_path ${prefix}/scgi;
  server_names_hash_bucket_size 128;
${routes
  .map(
    ([host, upstreamPort], i) => `  upstream app${i} { server 127.0.0.1:${upstreamPort}; keepalive 64; }
  server {
    listen 127.0.0.1:${port};
    server_name ${host ?? '_'};
    location / {
      proxy_pass http://app${i};
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header Host $host;
    }
  }`,
  )
  .join('\n')}
}
`,
  );
  const proc = spawnPinned(0, NGINX, ['-p', prefix, '-c', conf, '-g', 'daemon off;']);
  proc.stdout.resume();
  await waitForPort(port);
  const pids = () => [proc.pid, ...childPids(proc.pid)];
  return { port, pids, stop: stopper(proc) };
}

function childPids(pid) {
  try {
    return readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number);
  } catch {
    return [];
  }
}

async function waitForPort(port, timeoutMs = 15_000) {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const ok = await new Promise((r) => {
      const s = net.connect(port, '127.0.0.1', () => {
        s.destroy();
        r(true);
      });
      s.on('error', () => r(false));
    });
    if (ok) return;
    await sleep(50);
  }
  throw new Error(`nothing listens on ${port}`);
}

/** Host names of app i when there are several. */
const manyHost = (i) => `app${i}.${HOST}`;

/** `apps` hello apps; with `hostsPerApp`, one app answers that many hosts (app0…app{n-1}). */
function gatewayConfig(apps, { accessLog = true, version = '1', hostsPerApp = 1 } = {}) {
  let text = `[gateway]\nlisten = "127.0.0.1:0"\naccess_log = ${accessLog}\n\n[admin]\nlisten = false\n`;
  for (let i = 0; i < apps; i++) {
    const hosts =
      apps === 1 && hostsPerApp === 1
        ? [HOST]
        : hostsPerApp > 1
          ? Array.from({ length: hostsPerApp }, (_, k) => manyHost(k))
          : [manyHost(i)];
    text += `\n[apps.app${i}]\nhosts = ${JSON.stringify(hosts)}\nentry = ${JSON.stringify(HELLO)}\nenv = { VERSION = "${version}" }\n`;
  }
  return text;
}

/** Starts the gateway with `apps` hello apps; its log goes to a file, as it would in production. */
async function startGateway(dir, apps, options = {}) {
  const name = `gw-${apps}-${options.accessLog === false ? 'nolog' : 'log'}-${Date.now()}`;
  const configFile = path.join(dir, `${name}.toml`);
  const logFile = path.join(dir, `${name}.log`);
  writeFileSync(configFile, gatewayConfig(apps, options));
  const fd = openSync(logFile, 'w');
  const started = performance.now();
  const proc = spawnPinned(0, process.execPath, [CLI, 'start', '-c', configFile, '--json'], { stdout: fd });
  closeSync(fd);
  const stop = stopper(proc);
  const log = () => (existsSync(logFile) ? readFileSync(logFile, 'utf8') : '');
  let port = 0;
  const deadline = Date.now() + 120_000;
  for (;;) {
    const text = log();
    const m = /"address":"http:\/\/127\.0\.0\.1:(\d+)"/.exec(text);
    if (m) port = Number(m[1]);
    const ready = (text.match(/"msg":"instance ready"/g) ?? []).length;
    if (port && ready >= apps) break;
    if (proc.exitCode !== null || Date.now() > deadline)
      throw new Error(`gateway did not start: ${text.slice(-1000)} ${proc.stderrText}`);
    await sleep(20);
  }
  return { port, pids: () => [proc.pid], stop, configFile, logFile, readyMs: performance.now() - started, log };
}

function cpuTicks(pids) {
  let ticks = 0;
  for (const pid of pids) {
    try {
      const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      ticks += Number(fields[11]) + Number(fields[12]);
    } catch {
      // exited
    }
  }
  return ticks;
}

function rssBytes(pids) {
  let total = 0;
  for (const pid of pids) {
    try {
      const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
      total += m ? Number(m[1]) * 1024 : 0;
    } catch {
      // exited
    }
  }
  return total;
}

// ---- load -----------------------------------------------------------------

function runJson(cmd, args, env = {}) {
  const [c, a] = PIN ? ['taskset', ['-c', '1', cmd, ...args]] : [cmd, args];
  return new Promise((resolve, reject) => {
    execFile(c, a, { env: { ...process.env, ...env }, maxBuffer: 1 << 22 }, (err, stdout, stderr) => {
      if (err) return reject(new Error(`${cmd} failed: ${err.message} ${stderr}`));
      const line = stdout.trim().split('\n').pop();
      try {
        resolve(JSON.parse(line));
      } catch {
        reject(new Error(`${cmd} printed no result: ${stdout} ${stderr}`));
      }
    });
  });
}

/** Closed-loop keep-alive load: `hosts` rotate per request when more than one is given. */
async function runLoad({ port, path: urlPath = '/', hosts = [HOST], seconds, rotate = hosts.length > 1 }) {
  const url = `http://127.0.0.1:${port}${urlPath}`;
  let r;
  if (LOADGEN === 'wrk') {
    const args = ['-t1', `-c${CONNECTIONS}`, `-d${seconds}s`, '-s', path.join(BENCH, 'report.lua')];
    if (!rotate) args.push('-H', `Host: ${hosts[0]}`);
    r = await runJson('wrk', [...args, url], { BENCH_HOSTS: rotate ? hosts.join(',') : '', BENCH_PATH: urlPath });
  } else {
    r = await runJson(process.execPath, [
      path.join(BENCH, 'autocannon-run.mjs'),
      url,
      String(CONNECTIONS),
      String(seconds),
      hosts.join(','),
    ]);
  }
  const secs = r.duration_us / 1e6;
  return {
    requests: r.requests,
    rps: r.requests / secs,
    mbps: r.bytes / secs / 2 ** 20,
    p50Ms: r.p50_us / 1000,
    p99Ms: r.p99_us / 1000,
    errors: r.errors,
    non2xx: r.non2xx,
  };
}

/** Warm up, then measure; CPU and RSS are of the proxy's processes (`target.pids`). */
async function measure(name, target, load = {}) {
  if (WARMUP > 0) await runLoad({ ...load, port: target.port, seconds: WARMUP });
  const pids = target.proxy ? target.pids() : [];
  const before = cpuTicks(pids);
  const result = await runLoad({ ...load, port: target.port, seconds: DURATION });
  const ticks = cpuTicks(pids) - before;
  const row = {
    name,
    ...result,
    proxyCpuUsPerReq: target.proxy && result.requests ? ((ticks / CLK_TCK) * 1e6) / result.requests : null,
    proxyRssMb: target.proxy ? rssBytes(pids) / 2 ** 20 : null,
  };
  process.stdout.write(`  ${name}: ${Math.round(row.rps)} req/s, p99 ${row.p99Ms.toFixed(2)} ms\n`);
  return row;
}

// ---- sections ---------------------------------------------------------------

async function mainRows(dir, hello, results) {
  const wanted = (name) => MATCH.test(name);
  const runs = new Map();
  const record = (row) => runs.set(row.name, [...(runs.get(row.name) ?? []), row]);
  for (let round = 0; round < REPEAT; round++) {
    if (REPEAT > 1) process.stdout.write(`round ${round + 1} of ${REPEAT}\n`);
    record(await measure('direct (no proxy)', { ...hello, proxy: false }));
    if (NGINX && wanted('nginx')) {
      const nginx = await startNginx(dir, hello.port);
      record(await measure('nginx, 1 worker, upstream keepalive', { ...nginx, proxy: true }));
      await nginx.stop();
    }
    for (const [label, accessLog] of [
      ['nano-gateway (as shipped, access log on)', true],
      ['nano-gateway (access log off)', false],
    ]) {
      if (!wanted(label)) continue;
      const gw = await startGateway(dir, 1, { accessLog });
      record(await measure(label, { ...gw, proxy: true }));
      await gw.stop();
    }
    for (const [label, kind] of [
      ['minimal undici Pool.dispatch proxy', 'undici-dispatch'],
      ['minimal undici Pool.stream proxy', 'undici-stream'],
      ['minimal http-proxy-3 + keep-alive agent', 'http-proxy-3'],
      ['Node raw TCP pipe (no HTTP parsing)', 'tcp-pipe'],
    ]) {
      if (!wanted(label)) continue;
      const proxy = await startMinimalProxy(kind, hello.port);
      record(await measure(label, { ...proxy, proxy: true }));
      await proxy.stop();
    }
  }
  results.main = [...runs.values()].map((rows) => {
    const sorted = [...rows].sort((a, b) => a.rps - b.rps);
    const median = sorted[Math.floor((sorted.length - 1) / 2)];
    return { ...median, runs: rows.length, rpsMin: sorted[0].rps, rpsMax: sorted[sorted.length - 1].rps };
  });
}

/**
 * Proxy CPU per request at a fixed, unsaturated rate: steadier than
 * saturation throughput on a noisy machine, because how many requests share
 * an event-loop turn no longer depends on the run. Rounds follow --repeat.
 */
async function cpuRows(dir, hello, results) {
  const targets = [
    ['nano-gateway (access log on)', () => startGateway(dir, 1, { accessLog: true })],
    ['nano-gateway (access log off)', () => startGateway(dir, 1, { accessLog: false })],
    ['minimal undici Pool.dispatch proxy', () => startMinimalProxy('undici-dispatch', hello.port)],
  ];
  const runs = new Map(targets.map(([name]) => [name, []]));
  for (let round = 0; round < REPEAT; round++) {
    for (const [name, start] of targets) {
      const target = await start();
      const before = cpuTicks(target.pids());
      // fixed-rate.mjs sends 2 s of warm-up at the same rate: those requests cost CPU too.
      await runJson(process.execPath, [
        path.join(BENCH, 'fixed-rate.mjs'),
        `http://127.0.0.1:${target.port}/`,
        HOST,
        String(RATE),
        String(RATE_SECONDS),
      ]);
      const requests = RATE * (RATE_SECONDS + 2);
      runs.get(name).push((((cpuTicks(target.pids()) - before) / CLK_TCK) * 1e6) / requests);
      await target.stop();
    }
  }
  const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor((xs.length - 1) / 2)];
  results.cpu = { rate: RATE, rows: [...runs].map(([name, us]) => ({ name, usPerReq: median(us), runs: us })) };
  for (const row of results.cpu.rows)
    process.stdout.write(`  ${row.name}: ${row.usPerReq.toFixed(1)} µs CPU per request at ${RATE} req/s\n`);
}

async function latencyRows(dir, hello, results) {
  // fixed-rate.mjs warms up for 2 s at the same rate before it counts.
  const fixed = (port) =>
    runJson(process.execPath, [
      path.join(BENCH, 'fixed-rate.mjs'),
      `http://127.0.0.1:${port}/`,
      HOST,
      String(RATE),
      String(RATE_SECONDS),
    ]);
  const direct = await fixed(hello.port);
  const gw = await startGateway(dir, 1, { accessLog: true });
  const through = await fixed(gw.port);
  await gw.stop();
  const engine = await startMinimalProxy('undici-dispatch', hello.port);
  const engineOnly = await fixed(engine.port);
  await engine.stop();
  results.latency = {
    rate: RATE,
    seconds: RATE_SECONDS,
    direct,
    gateway: through,
    engine: engineOnly,
    addedP50Ms: (through.p50_us - direct.p50_us) / 1000,
    addedP99Ms: (through.p99_us - direct.p99_us) / 1000,
    engineAddedP50Ms: (engineOnly.p50_us - direct.p50_us) / 1000,
    engineAddedP99Ms: (engineOnly.p99_us - direct.p99_us) / 1000,
  };
  const l = results.latency;
  process.stdout.write(
    `  added latency at ${RATE} req/s: gateway p50 ${l.addedP50Ms.toFixed(3)} ms, p99 ${l.addedP99Ms.toFixed(3)} ms; ` +
      `minimal undici proxy p50 ${l.engineAddedP50Ms.toFixed(3)} ms, p99 ${l.engineAddedP99Ms.toFixed(3)} ms\n`,
  );
}

async function bigRows(dir, hello, results) {
  const load = { path: '/1m' };
  const rows = [await measure('1 MiB responses, direct', { ...hello, proxy: false }, load)];
  if (NGINX) {
    const nginx = await startNginx(dir, hello.port);
    rows.push(await measure('1 MiB responses, nginx', { ...nginx, proxy: true }, load));
    await nginx.stop();
  }
  const gw = await startGateway(dir, 1, { accessLog: true });
  rows.push(await measure('1 MiB responses, nano-gateway', { ...gw, proxy: true }, load));
  await gw.stop();
  results.big = rows;
}

async function manyAppRows(dir, results) {
  const hosts = Array.from({ length: MANY_APPS }, (_, i) => manyHost(i));
  const one = await startGateway(dir, 1, { accessLog: true });
  const single = await measure('nano-gateway, 1 app, 1 host', { ...one, proxy: true }, { hosts: [HOST], rotate: true });
  await one.stop();
  const wide = await startGateway(dir, 1, { accessLog: true, hostsPerApp: MANY_APPS });
  const routing = await measure(
    `nano-gateway, 1 app answering ${MANY_APPS} hosts, requests spread`,
    { ...wide, proxy: true },
    { hosts },
  );
  await wide.stop();
  const many = await startGateway(dir, MANY_APPS, { accessLog: true });
  const spread = await measure(
    `nano-gateway, ${MANY_APPS} apps, requests spread over all hosts`,
    { ...many, proxy: true },
    { hosts },
  );
  await many.stop();
  let nginx = null;
  if (NGINX) {
    // The same layout behind nginx: one upstream process per host, each in its own session like the gateway's children.
    const apps = [];
    for (let i = 0; i < MANY_APPS; i++) apps.push(await startHello({ detached: true }));
    const server = await startNginx(
      dir,
      apps.map((a, i) => [manyHost(i), a.port]),
    );
    nginx = await measure(
      `nginx, ${MANY_APPS} server blocks and upstream processes, requests spread`,
      { ...server, proxy: true },
      { hosts },
    );
    await server.stop();
    await Promise.all(apps.map((a) => a.stop()));
  }
  results.apps = {
    single,
    routing,
    many: spread,
    nginx,
    routingRatio: routing.rps / single.rps,
    ratio: spread.rps / single.rps,
  };
}

async function reloadRows(dir, results) {
  const gw = await startGateway(dir, 1, { accessLog: true });
  const steady = await measure('nano-gateway, steady', { ...gw, proxy: true });
  let version = 1;
  let stop = false;
  const reloader = (async () => {
    while (!stop) {
      await sleep(1000);
      if (stop) break;
      writeFileSync(gw.configFile, gatewayConfig(1, { accessLog: true, version: String(++version) }));
    }
  })();
  const before = (gw.log().match(/reload finished/g) ?? []).length;
  const during = await runLoad({ port: gw.port, seconds: DURATION });
  stop = true;
  await reloader;
  await sleep(1500);
  const reloads = (gw.log().match(/reload finished/g) ?? []).length - before;
  await gw.stop();
  const row = {
    name: `nano-gateway, config reloaded every second (${reloads} reloads)`,
    ...during,
    proxyCpuUsPerReq: null,
    proxyRssMb: null,
  };
  process.stdout.write(
    `  ${row.name}: ${Math.round(row.rps)} req/s, p99 ${row.p99Ms.toFixed(2)} ms, errors ${row.errors}, non-2xx ${row.non2xx}\n`,
  );
  results.reload = { steady, during: row, reloads, p99Ratio: row.p99Ms / steady.p99Ms };
}

async function startupRows(dir, results) {
  const gw = await startGateway(dir, STARTUP_APPS, { accessLog: true });
  await gw.stop();
  results.startup = { apps: STARTUP_APPS, allReadyMs: gw.readyMs };
  process.stdout.write(`  ${STARTUP_APPS} apps ready after ${(gw.readyMs / 1000).toFixed(2)} s\n`);
}

// ---- report ---------------------------------------------------------------

function printTables(results) {
  const fmt = (n, d = 2) => (n === null || n === undefined || Number.isNaN(n) ? '-' : n.toFixed(d));
  if (results.main) {
    const byName = (re) => results.main.find((r) => re.test(r.name));
    const direct = byName(/^direct/);
    const nginx = byName(/^nginx/);
    const dispatch = byName(/Pool\.dispatch/);
    console.log(
      '\nThroughput, keep-alive, %d connections, %d s per row%s:',
      CONNECTIONS,
      DURATION,
      REPEAT > 1 ? `, median of ${REPEAT} interleaved runs` : '',
    );
    console.table(
      results.main.map((r) => ({
        row: r.name,
        'req/s': Math.round(r.rps),
        'p50 ms': fmt(r.p50Ms),
        'p99 ms': fmt(r.p99Ms),
        errors: r.errors,
        'non-2xx': r.non2xx,
        '× direct': fmt(r.rps / direct.rps),
        '× nginx': nginx ? fmt(r.rps / nginx.rps) : '-',
        '× undici-dispatch': dispatch ? fmt(r.rps / dispatch.rps) : '-',
        'proxy CPU µs/req': fmt(r.proxyCpuUsPerReq, 1),
        'proxy RSS MB': fmt(r.proxyRssMb, 0),
        ...(REPEAT > 1 ? { 'req/s range': `${Math.round(r.rpsMin)}-${Math.round(r.rpsMax)}` } : {}),
      })),
    );
  }
  const extra = [];
  if (results.cpu) {
    const dispatch = results.cpu.rows.find((r) => /dispatch/.test(r.name));
    for (const r of results.cpu.rows) {
      extra.push({
        measure: `proxy CPU per request at ${results.cpu.rate} req/s: ${r.name}`,
        value: `${fmt(r.usPerReq, 1)} µs (× undici-dispatch ${fmt(r.usPerReq / dispatch.usPerReq)})`,
      });
    }
  }
  if (results.latency) {
    const l = results.latency;
    extra.push({
      measure: `added latency at ${l.rate} req/s, p50 (gateway ${fmt(l.gateway.p50_us / 1000, 3)} − direct ${fmt(l.direct.p50_us / 1000, 3)} ms)`,
      value: `${fmt(l.addedP50Ms, 3)} ms`,
    });
    extra.push({
      measure: `added latency at ${l.rate} req/s, p99 (gateway ${fmt(l.gateway.p99_us / 1000, 3)} − direct ${fmt(l.direct.p99_us / 1000, 3)} ms)`,
      value: `${fmt(l.addedP99Ms, 3)} ms`,
    });
    extra.push({
      measure: `  the same for the minimal undici proxy: p50 / p99 (${fmt(l.engine.p50_us / 1000, 3)} / ${fmt(l.engine.p99_us / 1000, 3)} ms)`,
      value: `${fmt(l.engineAddedP50Ms, 3)} / ${fmt(l.engineAddedP99Ms, 3)} ms`,
    });
  }
  if (results.big) {
    const nginx = results.big.find((r) => /nginx/.test(r.name));
    for (const r of results.big)
      extra.push({
        measure: r.name,
        value: `${fmt(r.mbps, 0)} MB/s${nginx ? ` (× nginx ${fmt(r.mbps / nginx.mbps)})` : ''}`,
      });
  }
  if (results.apps) {
    const a = results.apps;
    const cpu = (r) => (r.proxyCpuUsPerReq === null ? '' : `, proxy ${fmt(r.proxyCpuUsPerReq, 0)} µs/req`);
    extra.push({ measure: a.single.name, value: `${Math.round(a.single.rps)} req/s${cpu(a.single)}` });
    extra.push({
      measure: a.routing.name,
      value: `${Math.round(a.routing.rps)} req/s (× 1 host ${fmt(a.routingRatio)})${cpu(a.routing)}`,
    });
    extra.push({
      measure: a.many.name,
      value: `${Math.round(a.many.rps)} req/s (× 1 app ${fmt(a.ratio)}), p99 ${fmt(a.many.p99Ms, 0)} ms, ${a.many.errors} errors${cpu(a.many)}`,
    });
    if (a.nginx) {
      extra.push({
        measure: a.nginx.name,
        value: `${Math.round(a.nginx.rps)} req/s (gateway × ${fmt(a.many.rps / a.nginx.rps)}), p99 ${fmt(a.nginx.p99Ms, 0)} ms, ${a.nginx.errors} errors`,
      });
    }
  }
  if (results.reload) {
    const r = results.reload;
    extra.push({
      measure: 'steady: p99, errors',
      value: `${fmt(r.steady.p99Ms)} ms, ${r.steady.errors} errors, ${r.steady.non2xx} non-2xx`,
    });
    extra.push({
      measure: `${r.during.name}: p99, errors`,
      value: `${fmt(r.during.p99Ms)} ms (× steady ${fmt(r.p99Ratio)}), ${r.during.errors} errors, ${r.during.non2xx} non-2xx`,
    });
  }
  if (results.startup)
    extra.push({
      measure: `start to all ${results.startup.apps} apps ready`,
      value: `${fmt(results.startup.allReadyMs / 1000)} s`,
    });
  if (extra.length) {
    console.log('\nMore figures:');
    console.table(extra);
  }
}

async function main() {
  console.log(
    `load generator: ${LOADGEN === 'wrk' ? 'wrk' : 'autocannon (wrk is not installed: apt-get install wrk for steadier figures)'}`,
  );
  console.log(`nginx: ${NGINX ? NGINX : 'not installed, nginx rows skipped (apt-get install nginx)'}`);
  console.log(
    `pinning: ${PIN ? 'load generator on CPU 1, app and proxy on CPU 0' : 'off (needs 2 cores and taskset)'}`,
  );
  console.log(
    `machine: ${os.cpus()[0]?.model ?? 'unknown CPU'}, ${os.availableParallelism()} cores, Node ${process.version}`,
  );
  console.log(`settings: keep-alive, ${CONNECTIONS} connections, ${WARMUP} s warm-up, ${DURATION} s per row\n`);
  const dir = mkdtempSync(path.join(os.tmpdir(), 'nano-bench-'));
  const results = {};
  const hello = await startHello();
  try {
    if (SECTIONS.has('main')) await mainRows(dir, hello, results);
    if (SECTIONS.has('cpu')) await cpuRows(dir, hello, results);
    if (SECTIONS.has('latency')) await latencyRows(dir, hello, results);
    if (SECTIONS.has('big')) await bigRows(dir, hello, results);
    if (SECTIONS.has('apps')) await manyAppRows(dir, results);
    if (SECTIONS.has('reload')) await reloadRows(dir, results);
    if (SECTIONS.has('startup')) await startupRows(dir, results);
  } finally {
    await Promise.all(cleanups.map((stop) => stop()));
    rmSync(dir, { recursive: true, force: true });
  }
  printTables(results);
  mkdirSync(opts.out, { recursive: true });
  const file = path.join(opts.out, `bench-${new Date().toISOString().replace(/[:.]/g, '-')}.json`);
  const machine = {
    cpu: os.cpus()[0]?.model,
    cores: os.availableParallelism(),
    node: process.version,
    loadgen: LOADGEN,
    nginx: NGINX,
    pinned: PIN,
  };
  writeFileSync(
    file,
    JSON.stringify(
      {
        date: new Date().toISOString(),
        machine,
        settings: { DURATION, WARMUP, CONNECTIONS, MANY_APPS, STARTUP_APPS, RATE, RATE_SECONDS },
        results,
      },
      null,
      2,
    ),
  );
  console.log(`\nraw figures: ${path.relative(process.cwd(), file)}`);
}

process.on('SIGINT', async () => {
  await Promise.all(cleanups.map((stop) => stop()));
  process.exit(130);
});

main().catch(async (err) => {
  console.error(`bench: ${err.message}`);
  await Promise.all(cleanups.map((stop) => stop()));
  process.exitCode = 1;
});
