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
//
// Section `tls` measures HTTPS (HTTP/1.1 with wrk, HTTP/2 with h2load, new
// TLS connections with wrk) through the gateway, a minimal Node TLS proxy,
// nginx and Caddy, all with one ECDSA P-256 certificate made for the run, and
// the gateway's RSS with --tls-certs certificates loaded against none.
//
// Section `workers` measures `[gateway] workers = N` (--workers, default
// 1,2,auto) beside nginx with `worker_processes auto` and Caddy on all cores,
// on plain HTTP keep-alive (wrk) and HTTPS HTTP/2 (h2load), then proxy CPU
// per request at --rate for workers = 2 against workers = 1 (the primary and
// its worker processes summed, not the app children). Nothing in it is
// pinned: not the servers, not their upstream, not the load generator, so
// every process may use every core, as on a machine in production with the
// load coming from elsewhere except that here the load generator shares the
// cores (pinning it alone to CPU 1 would leave it a core the servers are
// scheduled on too, which is no steadier). Its own unpinned upstream serves
// nginx and Caddy; the gateway's app child runs the same hello.mjs.
import { execFile, spawn, spawnSync } from 'node:child_process';
import {
  closeSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import tls from 'node:tls';
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
    // Apps, each with its own certificate, for the tls section's RSS row.
    'tls-certs': { type: 'string', default: '100' },
    // Warm-up of each fixed-rate run (cpu, latency, workers), at the same rate; counted in the CPU per request.
    'rate-warmup': { type: 'string', default: '2' },
    // The gateway rows of the workers section: `workers` values, each a whole number or auto.
    workers: { type: 'string', default: '1,2,auto' },
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
const TLS_CERT_APPS = Number(opts['tls-certs']);
const RATE_WARMUP = Number(opts['rate-warmup']);
/** `workers` of the gateway rows in the workers section: 1, 2, 'auto', … */
const WORKER_COUNTS = opts.workers
  .split(',')
  .map((w) => w.trim())
  .filter(Boolean)
  .map((w) => (w === 'auto' ? 'auto' : Number(w)));
for (const w of WORKER_COUNTS)
  if (w !== 'auto' && !(Number.isInteger(w) && w >= 1))
    throw new Error(`--workers: expected whole numbers or auto, got ${opts.workers}`);
const SECTIONS = new Set((opts.only ?? 'main,cpu,latency,big,apps,reload,startup,tls,workers').split(','));
/** Main and workers rows whose name matches this run; the others are skipped (for quick comparisons). */
const MATCH = new RegExp(opts.match ?? '.', 'i');
/** Main rows run this many times, interleaved; each row reports the run with its median req/s. */
const REPEAT = Math.max(1, Number(opts.repeat));

const has = (cmd) => spawnSync('sh', ['-c', `command -v ${cmd}`]).status === 0;
const PIN = os.availableParallelism() >= 2 && has('taskset');
const LOADGEN = has('wrk') ? 'wrk' : 'autocannon';
const NGINX = ['nginx', '/usr/sbin/nginx'].find((c) => has(c)) ?? null;
const H2LOAD = ['h2load', '/usr/bin/h2load'].find((c) => has(c)) ?? null;
const CADDY = ['caddy', '/usr/bin/caddy'].find((c) => has(c)) ?? null;
const OPENSSL = has('openssl');
/** HTTP/2 load: h2load clients (connections) × concurrent streams on each. */
const H2_CLIENTS = 32;
const H2_STREAMS = 10;
const CLK_TCK = Number(spawnSync('getconf', ['CLK_TCK']).stdout?.toString().trim()) || 100;

const cleanups = [];
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// ---- processes ------------------------------------------------------------

/**
 * Spawns a process pinned to `cpu` when pinning is possible (`cpu` null: never pinned, free to use
 * every core); its children inherit the pinning.
 */
function spawnPinned(cpu, cmd, args, options = {}) {
  const [c, a] = PIN && cpu !== null ? ['taskset', ['-c', String(cpu), cmd, ...args]] : [cmd, args];
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

/** The upstream app on CPU 0 when pinning; `cpu: null` leaves it unpinned. */
async function startHello({ cpu = 0, ...options } = {}) {
  const proc = spawnPinned(cpu, process.execPath, [HELLO], { env: { PORT: '0' }, ...options });
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

/**
 * nginx with 1 worker (`workers`: another worker_processes, e.g. 'auto'); `upstreams` is one port, or a
 * list of [host, port] for one server block per host. With `tls` ({ cert, key }), it listens for HTTPS
 * and HTTP/2 instead of plain HTTP, or beside it on `plainPort` with `plain`. On CPU 0 when pinning;
 * `cpu: null` leaves it unpinned.
 */
async function startNginx(
  dir,
  upstreams,
  { tls: certificate = null, keepalive = 64, workers = 1, cpu = 0, plain = false } = {},
) {
  const port = await freePort();
  const plainPort = certificate && plain ? await freePort() : null;
  const routes = typeof upstreams === 'number' ? [[null, upstreams]] : upstreams;
  const prefix = path.join(dir, `nginx-${port}`);
  mkdirSync(path.join(prefix, 'logs'), { recursive: true });
  const conf = path.join(prefix, 'nginx.conf');
  writeFileSync(
    conf,
    `worker_processes ${workers};
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
    ([host, upstreamPort], i) => `  upstream app${i} { server 127.0.0.1:${upstreamPort}; keepalive ${keepalive}; }
  server {
${
  certificate
    ? `    listen 127.0.0.1:${port} ssl http2;
    ssl_certificate ${certificate.cert};
    ssl_certificate_key ${certificate.key};
    # Not the default 1,000: a keep-alive row must not turn into a handshake every 1,000 requests.
    keepalive_requests 10000000;`
    : `    listen 127.0.0.1:${port};`
}${plainPort ? `\n    listen 127.0.0.1:${plainPort};` : ''}
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
  const proc = spawnPinned(cpu, NGINX, ['-p', prefix, '-c', conf, '-g', 'daemon off;']);
  proc.stdout.resume();
  const stop = stopper(proc);
  await waitForPort(port);
  if (plainPort) await waitForPort(plainPort);
  const pids = () => [proc.pid, ...childPids(proc.pid)];
  return { port, plainPort, pids, stop };
}

/** The children of `pid`, whichever of its threads started them. */
function childPids(pid) {
  let tasks;
  try {
    tasks = readdirSync(`/proc/${pid}/task`);
  } catch {
    return [];
  }
  const pids = new Set();
  for (const task of tasks) {
    try {
      for (const child of readFileSync(`/proc/${pid}/task/${task}/children`, 'utf8').trim().split(/\s+/))
        if (child) pids.add(Number(child));
    } catch {
      // exited
    }
  }
  return [...pids];
}

/** The command line of `pid`, its arguments joined by spaces; '' once it is gone. */
function commandLine(pid) {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').join(' ').trim();
  } catch {
    return '';
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

/**
 * `apps` hello apps; with `hostsPerApp`, one app answers that many hosts (app0…app{n-1}).
 * With `tls` ({ port, certs }), an HTTPS listener on that port and app i gets `tls = { cert, key }`
 * from certs[i], or `tls = false` when certs[i] is false. `workers` (a number or 'auto') is
 * `[gateway] workers`; left out, the default (1).
 */
function gatewayConfig(
  apps,
  { accessLog = true, version = '1', hostsPerApp = 1, tls: https = null, workers = null } = {},
) {
  let text = `[gateway]\nlisten = "127.0.0.1:0"\naccess_log = ${accessLog}\n`;
  if (workers !== null) text += `workers = ${JSON.stringify(workers)}\n`;
  text += '\n[admin]\nlisten = false\n';
  if (https) text += `\n[tls]\nlisten = "127.0.0.1:${https.port}"\nredirect_http = false\n`;
  for (let i = 0; i < apps; i++) {
    const hosts =
      apps === 1 && hostsPerApp === 1
        ? [HOST]
        : hostsPerApp > 1
          ? Array.from({ length: hostsPerApp }, (_, k) => manyHost(k))
          : [manyHost(i)];
    text += `\n[apps.app${i}]\nhosts = ${JSON.stringify(hosts)}\nentry = ${JSON.stringify(HELLO)}\nenv = { VERSION = "${version}" }\n`;
    if (https) {
      const c = https.certs[i];
      text += `tls = ${c ? `{ cert = ${JSON.stringify(c.cert)}, key = ${JSON.stringify(c.key)} }` : 'false'}\n`;
    }
  }
  return text;
}

/**
 * Starts the gateway with `apps` hello apps; its log goes to a file, as it would in production.
 * On CPU 0 when pinning, with its children; `cpu: null` leaves it unpinned. `pids()` are its proxy
 * processes: the gateway's own, and with `workers` its worker processes (not its app children).
 */
async function startGateway(dir, apps, options = {}) {
  const { cpu = 0 } = options;
  const name = `gw-${apps}-${options.accessLog === false ? 'nolog' : 'log'}${options.tls ? '-tls' : ''}${options.workers ? `-w${options.workers}` : ''}-${Date.now()}`;
  const configFile = path.join(dir, `${name}.toml`);
  const logFile = path.join(dir, `${name}.log`);
  writeFileSync(configFile, gatewayConfig(apps, options));
  const fd = openSync(logFile, 'w');
  const started = performance.now();
  const proc = spawnPinned(cpu, process.execPath, [CLI, 'start', '-c', configFile, '--json'], { stdout: fd });
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
  const pids = () => [proc.pid, ...workerPids(proc.pid)];
  return { port, pids, stop, configFile, logFile, readyMs: performance.now() - started, log };
}

/** The gateway's proxy worker processes (dist/workers/worker-main.js), of its children: not its apps. */
const workerPids = (pid) =>
  childPids(pid).filter((child) => /[\\/]workers[\\/]worker-main\.js\b/.test(commandLine(child)));

// ---- TLS servers ------------------------------------------------------------

/** A self-signed ECDSA P-256 certificate for `host`, as the PEM files `name`.crt and `name`.key in `dir`. */
function makeCert(dir, name, host) {
  const cert = path.join(dir, `${name}.crt`);
  const key = path.join(dir, `${name}.key`);
  // biome-ignore format: one openssl command
  const args = ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-subj', `/CN=${host}`, '-addext', `subjectAltName=DNS:${host}`, '-days', '2', '-keyout', key, '-out', cert];
  const r = spawnSync('openssl', args, { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`openssl req failed: ${r.stderr}`);
  return { cert, key };
}

/** One TLS handshake with SNI `servername`; resolves with the served certificate's CN and the ALPN protocol. */
function tlsHandshake(port, servername = HOST) {
  return new Promise((resolve, reject) => {
    const socket = tls.connect(
      { host: '127.0.0.1', port, servername, rejectUnauthorized: false, ALPNProtocols: ['h2', 'http/1.1'] },
      () => {
        const result = { cn: socket.getPeerCertificate().subject?.CN ?? null, alpn: socket.alpnProtocol || null };
        socket.destroy();
        resolve(result);
      },
    );
    socket.setTimeout(5000, () => socket.destroy(new Error('TLS handshake timed out')));
    socket.once('error', reject);
  });
}

/** Waits until a TLS handshake on `port` succeeds (a listener that accepts TCP may not have its certificate yet). */
async function waitForTls(port, servername = HOST, timeoutMs = 20_000) {
  const deadline = Date.now() + timeoutMs;
  let last = null;
  while (Date.now() < deadline) {
    try {
      return await tlsHandshake(port, servername);
    } catch (err) {
      last = err;
    }
    await sleep(50);
  }
  throw new Error(`no TLS handshake with ${servername} on port ${port}: ${last?.message}`);
}

/** The minimal Node HTTPS proxy (HTTP/1.1 and HTTP/2) of scripts/bench/tls-proxy.mjs. */
async function startTlsProxy(upstreamPort, certificate) {
  const proc = spawnPinned(0, process.execPath, [
    path.join(BENCH, 'tls-proxy.mjs'),
    String(upstreamPort),
    certificate.cert,
    certificate.key,
  ]);
  const m = await waitForLine(proc, /listening (\d+)/);
  return { port: Number(m[1]), pids: () => [proc.pid], stop: stopper(proc) };
}

/**
 * Caddy with the same certificate, HTTP/1.1 and HTTP/2 (no HTTP/3), no admin API, no automatic HTTPS;
 * default_sni serves the certificate to clients that send no server name. With `plain`, it also
 * proxies plain HTTP on `plainPort`. When pinning, on CPU 0 with GOMAXPROCS=1; `cpu: null` leaves it
 * unpinned with Go's default GOMAXPROCS (every core).
 */
async function startCaddy(dir, upstreamPort, certificate, { keepalive = 64, cpu = 0, plain = false } = {}) {
  const port = await freePort();
  const plainPort = plain ? await freePort() : null;
  const home = path.join(dir, `caddy-${port}`);
  mkdirSync(home, { recursive: true });
  const file = path.join(home, 'Caddyfile');
  const proxy = `\treverse_proxy 127.0.0.1:${upstreamPort} {
\t\ttransport http {
\t\t\tkeepalive_idle_conns_per_host ${keepalive}
\t\t}
\t}`;
  writeFileSync(
    file,
    `{
\tauto_https off
\tadmin off
\tdefault_sni ${HOST}
\tservers {
\t\tprotocols h1 h2
\t}
}

https://${HOST}:${port} {
\tbind 127.0.0.1
\ttls ${certificate.cert} ${certificate.key}
${proxy}
}
${
  plainPort
    ? `
http://:${plainPort} {
\tbind 127.0.0.1
${proxy}
}
`
    : ''
}`,
  );
  const pinned = PIN && cpu !== null;
  const env = { HOME: home, XDG_CONFIG_HOME: home, XDG_DATA_HOME: home, ...(pinned ? { GOMAXPROCS: '1' } : {}) };
  const proc = spawnPinned(cpu, CADDY, ['run', '--config', file, '--adapter', 'caddyfile'], { env });
  proc.stdout.resume();
  const stop = stopper(proc);
  try {
    await waitForTls(port);
    if (plainPort) await waitForPort(plainPort);
  } catch (err) {
    throw new Error(`${err.message} ${proc.stderrText.slice(-1000)}`);
  }
  return { port, plainPort, pids: () => [proc.pid], stop };
}

/**
 * The gateway with `apps` hello apps and an HTTPS listener; certs[i] is app i's { cert, key }, or false.
 * `port` is the HTTPS port, `plainPort` the HTTP one; resolves once every app is ready. `options` are
 * startGateway's (access log off unless they say otherwise).
 */
async function startTlsGateway(dir, apps, certs, options = {}) {
  const tlsPort = await freePort();
  const gw = await startGateway(dir, apps, { accessLog: false, ...options, tls: { port: tlsPort, certs } });
  return { ...gw, plainPort: gw.port, port: tlsPort };
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

/** Runs a load generator on CPU 1 (when pinning; `pin` false: unpinned) and resolves with its stdout and stderr. */
function runPinned(cmd, args, env = {}, pin = true, timeoutMs = 0) {
  const [c, a] = PIN && pin ? ['taskset', ['-c', '1', cmd, ...args]] : [cmd, args];
  return new Promise((resolve, reject) => {
    execFile(
      c,
      a,
      { env: { ...process.env, ...env }, maxBuffer: 1 << 22, timeout: timeoutMs, killSignal: 'SIGKILL' },
      (err, stdout, stderr) => {
        if (err?.killed)
          return reject(Object.assign(new Error(`${cmd} did not finish within ${timeoutMs} ms`), { timedOut: true }));
        if (err) return reject(new Error(`${cmd} failed: ${err.message} ${stdout.slice(-1000)} ${stderr}`));
        resolve({ stdout, stderr });
      },
    );
  });
}

async function runJson(cmd, args, env = {}, pin = true) {
  const { stdout, stderr } = await runPinned(cmd, args, env, pin);
  const line = stdout.trim().split('\n').pop();
  try {
    return JSON.parse(line);
  } catch {
    throw new Error(`${cmd} printed no result: ${stdout} ${stderr}`);
  }
}

/**
 * Closed-loop keep-alive load: `hosts` rotate per request when more than one is given.
 * With `tls`, over HTTPS with SNI bench.test (wrk only); `headers` are extra request headers,
 * `env` extra environment for wrk (OPENSSL_CONF); `pin` false runs the load generator unpinned.
 */
async function runLoad({
  port,
  path: urlPath = '/',
  hosts = [HOST],
  seconds,
  rotate = hosts.length > 1,
  tls: https = false,
  headers = [],
  env = {},
  pin = true,
}) {
  // wrk sends the URL's host as the TLS server name and has no option for another one, so the
  // URL says bench.test and report.lua connects to 127.0.0.1 whatever the name (BENCH_CONNECT).
  const url = https ? `https://${HOST}:${port}${urlPath}` : `http://127.0.0.1:${port}${urlPath}`;
  let r;
  if (LOADGEN === 'wrk') {
    const args = ['-t1', `-c${CONNECTIONS}`, `-d${seconds}s`, '-s', path.join(BENCH, 'report.lua')];
    if (!rotate) args.push('-H', `Host: ${hosts[0]}`);
    for (const header of headers) args.push('-H', header);
    r = await runJson(
      'wrk',
      [...args, url],
      {
        BENCH_HOSTS: rotate ? hosts.join(',') : '',
        BENCH_PATH: urlPath,
        BENCH_CONNECT: https ? '127.0.0.1' : '',
        ...env,
      },
      pin,
    );
  } else {
    if (https) throw new Error('the HTTPS rows need wrk (apt-get install wrk)');
    r = await runJson(
      process.execPath,
      [path.join(BENCH, 'autocannon-run.mjs'), url, String(CONNECTIONS), String(seconds), hosts.join(',')],
      {},
      pin,
    );
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

/** A duration as h2load prints it (76us, 5.25ms, 1.2s) in ms. */
function h2loadMs(text) {
  const m = /^([\d.]+)(us|ms|s)$/.exec(text ?? '');
  if (!m) return null;
  return Number(m[1]) * { us: 1e-3, ms: 1, s: 1e3 }[m[2]];
}

/**
 * HTTP/2 load with h2load over TLS: SNI and :authority bench.test, connecting to 127.0.0.1:port.
 * Only h2 is offered (--npn-list=h2): a server without HTTP/2 fails the row rather than measuring HTTP/1.1.
 * `pin` false runs h2load unpinned.
 */
async function runH2load(port, seconds, { pin = true } = {}) {
  const args = [
    `-c${H2_CLIENTS}`,
    `-m${H2_STREAMS}`,
    '-t1',
    '-D',
    String(seconds),
    '--npn-list=h2',
    `--connect-to=127.0.0.1:${port}`,
    `https://${HOST}/`,
  ];
  // h2load -D now and then never ends: a couple of its clients go on sending past the duration (seen in
  // CI with -D 1, still running minutes later). Killed after a margin, it is run once more.
  const limitMs = (seconds + 20) * 1000;
  let stdout;
  try {
    ({ stdout } = await runPinned(H2LOAD, args, {}, pin, limitMs));
  } catch (err) {
    if (!err.timedOut) throw err;
    process.stderr.write(
      `bench: h2load did not end within ${limitMs / 1000} s of a ${seconds} s run: running it again\n`,
    );
    ({ stdout } = await runPinned(H2LOAD, args, {}, pin, limitMs));
  }
  const finished = /finished in ([\d.]+)(ms|s), ([\d.]+) req\/s/.exec(stdout);
  const counts =
    /requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, (\d+) failed(?:, (\d+) errored)?(?:, (\d+) timeout)?/.exec(
      stdout,
    );
  if (!finished || !counts) throw new Error(`h2load printed no result: ${stdout.slice(-1000)}`);
  const codes = /status codes: (\d+) 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx/.exec(stdout);
  const times = /time for request:\s+(\S+)\s+(\S+)\s+(\S+)/.exec(stdout);
  const protocol = /Application protocol: (\S+)/.exec(stdout)?.[1] ?? null;
  const [, , started, done, succeeded, failed, errored = '0', timeout = '0'] = counts;
  return {
    requests: Number(succeeded),
    rps: Number(finished[3]),
    started: Number(started),
    done: Number(done),
    failed: Number(failed),
    errors: Number(errored) + Number(timeout),
    non2xx: codes ? Number(codes[2]) + Number(codes[3]) + Number(codes[4]) : null,
    meanMs: h2loadMs(times?.[3]),
    maxMs: h2loadMs(times?.[2]),
    protocol,
  };
}

/**
 * Open-loop load at `rate` req/s for `warmup` + `seconds` seconds (scripts/bench/fixed-rate.mjs),
 * of which the warm-up is not in its latencies but is in `sent`: those requests cost CPU too.
 */
async function runFixedRate(port, { pin = true, rate = RATE, seconds = RATE_SECONDS, warmup = RATE_WARMUP } = {}) {
  const r = await runJson(
    process.execPath,
    [
      path.join(BENCH, 'fixed-rate.mjs'),
      `http://127.0.0.1:${port}/`,
      HOST,
      String(rate),
      String(seconds),
      String(warmup),
    ],
    {},
    pin,
  );
  return { ...r, sent: Math.round(rate * warmup) + Math.round(rate * seconds) };
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
      const { sent } = await runFixedRate(target.port);
      runs.get(name).push((((cpuTicks(target.pids()) - before) / CLK_TCK) * 1e6) / sent);
      await target.stop();
    }
  }
  const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor((xs.length - 1) / 2)];
  results.cpu = { rate: RATE, rows: [...runs].map(([name, us]) => ({ name, usPerReq: median(us), runs: us })) };
  for (const row of results.cpu.rows)
    process.stdout.write(`  ${row.name}: ${row.usPerReq.toFixed(1)} µs CPU per request at ${RATE} req/s\n`);
}

async function latencyRows(dir, hello, results) {
  // fixed-rate.mjs warms up for RATE_WARMUP s at the same rate before it counts.
  const fixed = (port) => runFixedRate(port);
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

/**
 * Warm up, then measure one HTTPS load `run(seconds)`. CPU is of the proxy's processes: per request,
 * and as a share of one core (well under 1: the proxy is not what limits the row; on 2 cores that is
 * the load generator, alone on CPU 1, e.g. wrk's side of full handshakes against nginx).
 */
async function measureTls(target, run) {
  if (WARMUP > 0) await run(WARMUP);
  const pids = target.pids();
  const before = cpuTicks(pids);
  const started = performance.now();
  const result = await run(DURATION);
  const seconds = (cpuTicks(pids) - before) / CLK_TCK;
  return {
    ...result,
    proxyCpuUsPerReq: result.requests ? (seconds * 1e6) / result.requests : null,
    proxyCpuShare: seconds / ((performance.now() - started) / 1000),
  };
}

/**
 * HTTPS through each proxy, all on the same hello upstream and certificate:
 *   h1            HTTP/1.1 keep-alive, wrk, CONNECTIONS connections;
 *   h2            HTTP/2, h2load, H2_CLIENTS connections × H2_STREAMS streams;
 *   newConn       wrk with "Connection: close": a TLS 1.3 connection per request. wrk reuses the
 *                 session of its previous connection on that slot: about half of these connections
 *                 are resumptions (seen against the Node proxy), as many as the server accepts;
 *   fullHandshake the same with wrk held to TLS 1.2 without session tickets (OPENSSL_CONF for wrk
 *                 only): none of these servers keeps a session-ID cache by default, so every
 *                 connection is a full handshake, whatever each does with tickets.
 * Every request's SNI and Host are bench.test.
 */
async function tlsRows(dir, hello, results) {
  if (!OPENSSL) {
    process.stdout.write('  openssl is not installed: tls section skipped\n');
    results.tls = { skipped: 'openssl is not installed' };
    return;
  }
  const tlsDir = path.join(dir, 'tls');
  mkdirSync(tlsDir, { recursive: true });
  const certificate = makeCert(tlsDir, 'bench', HOST);
  const fullHandshakeConf = path.join(tlsDir, 'openssl-full-handshake.cnf');
  writeFileSync(
    fullHandshakeConf,
    `openssl_conf = default_conf
[default_conf]
ssl_conf = ssl_sect
[ssl_sect]
system_default = system_default_sect
[system_default_sect]
MaxProtocol = TLSv1.2
Options = -SessionTicket
`,
  );
  // h2load keeps H2_CLIENTS × H2_STREAMS requests in flight: upstream pools keep that many idle connections.
  const idle = H2_CLIENTS * H2_STREAMS;
  const targets = [
    ['nano-gateway (access log off)', 'gateway', () => startTlsGateway(dir, 1, [certificate])],
    ['minimal Node http2 + undici Pool.dispatch', 'node', () => startTlsProxy(hello.port, certificate)],
    NGINX && [
      'nginx, 1 worker, upstream keepalive',
      'nginx',
      () => startNginx(dir, hello.port, { tls: certificate, keepalive: idle }),
    ],
    CADDY && [
      `Caddy${PIN ? ', GOMAXPROCS=1' : ''}`,
      'caddy',
      () => startCaddy(dir, hello.port, certificate, { keepalive: idle }),
    ],
  ].filter(Boolean);
  const loads = [
    LOADGEN === 'wrk' && ['h1', 'HTTP/1.1 keep-alive', (port, seconds) => runLoad({ port, seconds, tls: true })],
    H2LOAD && ['h2', 'HTTP/2', (port, seconds) => runH2load(port, seconds)],
    LOADGEN === 'wrk' && [
      'newConn',
      'new TLS 1.3 connections',
      (port, seconds) => runLoad({ port, seconds, tls: true, headers: ['Connection: close'] }),
    ],
    LOADGEN === 'wrk' && [
      'fullHandshake',
      'new TLS 1.2 connections, full handshakes',
      (port, seconds) =>
        runLoad({
          port,
          seconds,
          tls: true,
          headers: ['Connection: close'],
          env: { OPENSSL_CONF: fullHandshakeConf },
        }),
    ],
  ].filter(Boolean);
  const rows = [];
  for (const [name, kind, start] of targets) {
    const row = { name, kind, h1: null, h2: null, newConn: null, fullHandshake: null, error: null };
    rows.push(row);
    let target;
    try {
      target = await start();
      const served = await waitForTls(target.port);
      row.served = served;
    } catch (err) {
      row.error = `did not start: ${err.message}`;
      process.stdout.write(`  ${name}: ${row.error}\n`);
      await target?.stop();
      continue;
    }
    for (const [key, label, run] of loads) {
      try {
        row[key] = await measureTls(target, (seconds) => run(target.port, seconds));
        const r = row[key];
        process.stdout.write(
          `  ${name}, ${label}: ${Math.round(r.rps)} ${key === 'h1' || key === 'h2' ? 'req' : 'conn'}/s, ` +
            `${r.errors} errors, ${r.non2xx} non-2xx\n`,
        );
      } catch (err) {
        row[key] = { error: err.message };
        process.stdout.write(`  ${name}, ${label}: failed: ${err.message.slice(0, 500)}\n`);
      }
    }
    await target.stop();
  }
  const of = (kind, key, field = 'rps') => {
    const r = rows.find((row) => row.kind === kind)?.[key];
    return r && !r.error ? r[field] : null;
  };
  const ratio = (a, b) => (a !== null && b !== null && b > 0 ? a / b : null);
  results.tls = {
    tools: { wrk: LOADGEN === 'wrk', h2load: H2LOAD, nginx: NGINX, caddy: CADDY },
    settings: { connections: CONNECTIONS, h2Clients: H2_CLIENTS, h2Streams: H2_STREAMS, certificate: 'ECDSA P-256' },
    rows,
    ratios: {
      h1GatewayVsNode: ratio(of('gateway', 'h1'), of('node', 'h1')),
      h2GatewayVsNode: ratio(of('gateway', 'h2'), of('node', 'h2')),
      h2GatewayVsCaddy: ratio(of('gateway', 'h2'), of('caddy', 'h2')),
      newConnGatewayVsNginx: ratio(of('gateway', 'newConn'), of('nginx', 'newConn')),
      fullHandshakeGatewayVsNginx: ratio(of('gateway', 'fullHandshake'), of('nginx', 'fullHandshake')),
      fullHandshakeCpuGatewayVsNginx: ratio(
        of('gateway', 'fullHandshake', 'proxyCpuUsPerReq'),
        of('nginx', 'fullHandshake', 'proxyCpuUsPerReq'),
      ),
    },
    certs: await tlsCertRows(dir, tlsDir),
  };
}

/**
 * The gateway's own RSS (not its children's) with TLS_CERT_APPS apps, each with its own certificate,
 * against the same apps with `tls = false`: after every app is ready, and (with certificates) after
 * one handshake per host, in case certificates load on first use.
 */
async function tlsCertRows(dir, tlsDir) {
  const n = TLS_CERT_APPS;
  const name = `RSS with ${n} certificates`;
  const madeAt = performance.now();
  const certs = Array.from({ length: n }, (_, i) => makeCert(tlsDir, `app${i}`, manyHost(i)));
  const certsMs = performance.now() - madeAt;
  const one = async (withCerts) => {
    let gw;
    try {
      gw = await startTlsGateway(
        dir,
        n,
        certs.map((c) => (withCerts ? c : false)),
      );
      const pid = gw.pids()[0];
      // Without certificates there may be nothing to handshake with: the apps being ready is all there is to wait for.
      if (withCerts) await waitForTls(gw.port, manyHost(0));
      await sleep(1000);
      const rssReadyMb = rssBytes([pid]) / 2 ** 20;
      let served = null;
      let rssAfterHandshakesMb = null;
      if (withCerts) {
        served = 0;
        for (let i = 0; i < n; i++) {
          const h = await tlsHandshake(gw.port, manyHost(i)).catch(() => null);
          if (h?.cn === manyHost(i)) served++;
        }
        await sleep(500);
        rssAfterHandshakesMb = rssBytes([pid]) / 2 ** 20;
      }
      return { certificates: withCerts ? n : 0, readyMs: gw.readyMs, rssReadyMb, rssAfterHandshakesMb, served };
    } catch (err) {
      return { certificates: withCerts ? n : 0, error: err.message };
    } finally {
      await gw?.stop();
    }
  };
  const none = await one(false);
  const loaded = await one(true);
  const row = {
    name,
    apps: n,
    certsMs,
    none,
    loaded,
    addedMb: none.error || loaded.error ? null : loaded.rssReadyMb - none.rssReadyMb,
    addedAfterHandshakesMb: none.error || loaded.error ? null : loaded.rssAfterHandshakesMb - none.rssReadyMb,
  };
  for (const [label, r] of [
    ['tls = false', none],
    ['certificates', loaded],
  ]) {
    process.stdout.write(
      r.error
        ? `  ${name}, ${label}: failed: ${r.error.slice(0, 500)}\n`
        : `  ${name}, ${label}: ${n} apps ready after ${(r.readyMs / 1000).toFixed(1)} s, gateway RSS ${r.rssReadyMb.toFixed(1)} MB` +
            (r.served === null
              ? '\n'
              : `, ${r.rssAfterHandshakesMb.toFixed(1)} MB after ${r.served}/${n} handshakes\n`),
    );
  }
  return row;
}

/** CPU ticks of each of `pids` (utime + stime; 0 once gone), by pid. */
function cpuTicksByPid(pids) {
  return new Map(pids.map((pid) => [pid, cpuTicks([pid])]));
}

/** The median of `runs` by `key`, with how many there were and their range. */
function medianRun(runs, key = 'rps') {
  const ok = runs.filter((r) => r && !r.error);
  if (ok.length === 0) return runs[0] ?? null;
  const sorted = [...ok].sort((a, b) => a[key] - b[key]);
  const median = sorted[Math.floor((sorted.length - 1) / 2)];
  return { ...median, runs: runs.length, [`${key}Min`]: sorted[0][key], [`${key}Max`]: sorted[sorted.length - 1][key] };
}

/**
 * Warm up, then measure one load `run(seconds)` of a workers row. CPU is of the proxy's processes
 * (`target.pids()`, taken before the load: the gateway's primary and workers, nginx's master and
 * workers, Caddy): per request, and in cores (CPU seconds per second). With workers, `workerCpuShares`
 * is each worker's part of the workers' CPU (how evenly connections were handed out), and
 * `pidsChanged` says a proxy process was gone or replaced by the end (its CPU would be missing).
 */
async function measureWorkers(target, run) {
  if (WARMUP > 0) await run(WARMUP);
  const pids = target.pids();
  const before = cpuTicksByPid(pids);
  const started = performance.now();
  const result = await run(DURATION);
  const wallSeconds = (performance.now() - started) / 1000;
  const after = cpuTicksByPid(pids);
  const now = target.pids();
  const seconds = (pid) => ((after.get(pid) ?? 0) - (before.get(pid) ?? 0)) / CLK_TCK;
  const total = pids.reduce((sum, pid) => sum + seconds(pid), 0);
  const workers = target.kind === 'gateway' ? pids.slice(1) : [];
  const workerTotal = workers.reduce((sum, pid) => sum + seconds(pid), 0);
  return {
    ...result,
    proxyCpuUsPerReq: result.requests ? (total * 1e6) / result.requests : null,
    proxyCpuCores: total / wallSeconds,
    proxyRssMb: rssBytes(now) / 2 ** 20,
    processes: pids.length,
    workerCpuShares: workers.length && workerTotal > 0 ? workers.map((pid) => seconds(pid) / workerTotal) : null,
    pidsChanged: now.length !== pids.length || now.some((pid) => !pids.includes(pid)),
  };
}

/** How many times the gateway's log says a proxy worker exited (it is then replaced: README, Workers). */
const workerExits = (gw) => (gw.log?.() ?? '').match(/"msg":"proxy worker \d+ \(pid \d+\) exited/g)?.length ?? 0;

/**
 * `[gateway] workers = N` for each of WORKER_COUNTS, beside nginx with `worker_processes auto` and
 * Caddy with every core, all unpinned (see the top of this file), against one unpinned hello upstream
 * (the gateway's app child is its own hello.mjs, unpinned with it):
 *   h1  plain HTTP/1.1 keep-alive, wrk (or autocannon), CONNECTIONS connections;
 *   h2  HTTPS HTTP/2, h2load, H2_CLIENTS connections × H2_STREAMS streams (needs h2load and openssl).
 * The gateway rows have the access log off, like nginx (access_log off) and Caddy (no log).
 * Then proxy CPU per request at RATE req/s (open loop, plain HTTP), workers = 2 against workers = 1,
 * access log off and on: the primary's CPU and its workers' summed (utime + stime from /proc/PID/stat),
 * the app children not counted. Rows and rounds follow --match and --repeat (medians reported).
 */
async function workerRows(dir, results) {
  const cores = os.availableParallelism();
  const label = (w) => (w === 'auto' ? `auto (${cores})` : String(w));
  let certificate = null;
  if (OPENSSL) {
    const tlsDir = path.join(dir, 'workers-tls');
    mkdirSync(tlsDir, { recursive: true });
    certificate = makeCert(tlsDir, 'bench', HOST);
  } else process.stdout.write('  openssl is not installed: HTTP/2 rows and Caddy skipped\n');
  if (CADDY && !certificate) process.stdout.write('  Caddy skipped: its row needs a certificate (openssl)\n');
  const upstream = await startHello({ cpu: null });
  // h2load keeps H2_CLIENTS × H2_STREAMS requests in flight: upstream pools keep that many idle connections.
  const idle = H2_CLIENTS * H2_STREAMS;
  const gatewayStart = (workers) => async () => {
    if (certificate) return startTlsGateway(dir, 1, [certificate], { cpu: null, workers });
    const gw = await startGateway(dir, 1, { accessLog: false, cpu: null, workers });
    return { ...gw, plainPort: gw.port, port: null };
  };
  const targets = [
    ...WORKER_COUNTS.map((w) => [`nano-gateway, workers = ${label(w)}`, 'gateway', w, gatewayStart(w)]),
    NGINX && [
      `nginx, worker_processes auto (${cores})`,
      'nginx',
      'auto',
      async () => {
        const n = await startNginx(dir, upstream.port, {
          workers: 'auto',
          cpu: null,
          keepalive: idle,
          ...(certificate ? { tls: certificate, plain: true } : {}),
        });
        return certificate ? n : { ...n, plainPort: n.port, port: null };
      },
    ],
    CADDY &&
      certificate && [
        `Caddy, all cores (GOMAXPROCS ${cores})`,
        'caddy',
        null,
        () => startCaddy(dir, upstream.port, certificate, { keepalive: idle, cpu: null, plain: true }),
      ],
  ].filter((t) => t && MATCH.test(t[0]));
  const loads = [
    ['h1', 'HTTP/1.1 keep-alive', (t) => t.plainPort, (port, seconds) => runLoad({ port, seconds, pin: false })],
    H2LOAD &&
      certificate && ['h2', 'HTTPS HTTP/2', (t) => t.port, (port, seconds) => runH2load(port, seconds, { pin: false })],
  ].filter(Boolean);
  const runs = new Map(targets.map(([name]) => [name, { starts: [], h1: [], h2: [] }]));
  for (let round = 0; round < REPEAT; round++) {
    if (REPEAT > 1) process.stdout.write(`  round ${round + 1} of ${REPEAT}\n`);
    for (const [name, kind, , start] of targets) {
      const record = runs.get(name);
      let target;
      try {
        target = { ...(await start()), kind };
        if (target.port) await waitForTls(target.port);
      } catch (err) {
        record.starts.push(`did not start: ${err.message}`);
        process.stdout.write(`  ${name}: did not start: ${err.message.slice(0, 500)}\n`);
        await target?.stop();
        continue;
      }
      record.starts.push(null);
      for (const [key, what, portOf, run] of loads) {
        let r;
        try {
          r = await measureWorkers(target, (seconds) => run(portOf(target), seconds));
          const shares = r.workerCpuShares
            ? `, worker CPU split ${r.workerCpuShares.map((x) => x.toFixed(2)).join('/')}`
            : '';
          process.stdout.write(
            `  ${name}, ${what}: ${Math.round(r.rps)} req/s, ${r.errors} errors, ${r.non2xx} non-2xx, ` +
              `proxy ${r.proxyCpuCores.toFixed(2)} cores${shares}${r.pidsChanged ? ', A PROXY PROCESS WAS REPLACED' : ''}\n`,
          );
        } catch (err) {
          r = { error: err.message };
          process.stdout.write(`  ${name}, ${what}: failed: ${err.message.slice(0, 500)}\n`);
        }
        record[key].push(r);
      }
      record.exits = (record.exits ?? 0) + workerExits(target);
      await target.stop();
    }
  }
  const rows = targets.map(([name, kind, workers]) => {
    const record = runs.get(name);
    const started = record.starts.some((e) => e === null);
    const pick = (key) => (loads.some(([k]) => k === key) && started ? medianRun(record[key]) : null);
    return {
      name,
      kind,
      workers,
      // How many proxy workers the gateway runs beside its primary; 1 is the primary alone.
      workerProcesses: kind === 'gateway' ? (workers === 'auto' ? cores : workers) : null,
      h1: pick('h1'),
      h2: pick('h2'),
      workerExits: kind === 'gateway' ? (record.exits ?? 0) : null,
      error: started ? null : (record.starts[0] ?? 'did not run'),
    };
  });
  await upstream.stop();

  const fixedRate = await workerFixedRate(dir);
  const of = (pred, key) => {
    const r = rows.find(pred)?.[key];
    return r && !r.error ? r.rps : null;
  };
  const gateway = (w) => (r) => r.kind === 'gateway' && r.workers === w;
  const caddy = (r) => r.kind === 'caddy';
  const nginx = (r) => r.kind === 'nginx';
  const ratio = (a, b) => (a !== null && b !== null && b > 0 ? a / b : null);
  const cpu = (log, w, rate = RATE) =>
    fixedRate.rows.find((r) => r.accessLog === log && r.workers === w && r.rate === rate && !r.error)?.usPerReq ?? null;
  results.workers = {
    tools: { loadgen: LOADGEN, h2load: H2LOAD, nginx: NGINX, caddy: CADDY },
    settings: {
      cores,
      pinned: false,
      workers: WORKER_COUNTS,
      connections: CONNECTIONS,
      h2Clients: H2_CLIENTS,
      h2Streams: H2_STREAMS,
      accessLog: false,
    },
    rows,
    fixedRate,
    ratios: {
      h1W2VsW1: ratio(of(gateway(2), 'h1'), of(gateway(1), 'h1')),
      h2W2VsW1: ratio(of(gateway(2), 'h2'), of(gateway(1), 'h2')),
      h1W2VsCaddy: ratio(of(gateway(2), 'h1'), of(caddy, 'h1')),
      h2W2VsCaddy: ratio(of(gateway(2), 'h2'), of(caddy, 'h2')),
      h1W2VsNginx: ratio(of(gateway(2), 'h1'), of(nginx, 'h1')),
      h2W2VsNginx: ratio(of(gateway(2), 'h2'), of(nginx, 'h2')),
      // Target ≤ 1.05: a second worker should cost next to nothing per request.
      cpuW2VsW1: ratio(cpu(false, 2), cpu(false, 1)),
      cpuW2VsW1AccessLog: ratio(cpu(true, 2), cpu(true, 1)),
      // workers = 2 at RATE against workers = 1 at RATE / 2: the same rate per proxy process.
      cpuW2VsW1HalfRate: ratio(cpu(false, 2), cpu(false, 1, fixedRate.halfRate)),
    },
  };
}

/**
 * Proxy CPU per request at RATE req/s for workers = 1 and 2, access log off then on, interleaved over
 * --repeat rounds; each row reports its median. CPU is the gateway's primary's and its workers'
 * (utime + stime), over RATE_SECONDS at the rate after RATE_WARMUP seconds of it in a run of its own:
 * unlike the cpu section, the warm-up is left out, as it would count every worker's JIT warm-up
 * against workers = 2 (a cost paid once per process, not per request).
 *
 * Below saturation, a Node process's CPU per request grows as its rate falls (fewer requests share
 * each event-loop wake-up), and each of 2 workers sees half the rate. So one more row: workers = 1
 * at RATE / 2, the rate each worker sees. workers = 2 at RATE against it is what the workers
 * machinery itself (IPC, the primary, the second pool) adds; against workers = 1 at RATE, that plus
 * the thinner spread.
 */
async function workerFixedRate(dir) {
  const half = Math.max(1, Math.round(RATE / 2));
  const variants = [
    ...[false, true].flatMap((accessLog) => [1, 2].map((workers) => ({ accessLog, workers, rate: RATE }))),
    { accessLog: false, workers: 1, rate: half },
  ];
  const nameOf = ({ accessLog, workers, rate }) =>
    `nano-gateway, workers = ${workers}, access log ${accessLog ? 'on' : 'off'}${rate === RATE ? '' : `, at ${rate} req/s`}`;
  const runs = variants.map(() => []);
  for (let round = 0; round < REPEAT; round++) {
    for (const [i, variant] of variants.entries()) {
      const { accessLog, workers, rate } = variant;
      const name = nameOf(variant);
      let gw;
      try {
        gw = await startGateway(dir, 1, { accessLog, workers, cpu: null });
        if (RATE_WARMUP > 0) await runFixedRate(gw.port, { pin: false, rate, seconds: RATE_WARMUP, warmup: 0 });
        const pids = gw.pids();
        const before = cpuTicksByPid(pids);
        const r = await runFixedRate(gw.port, { pin: false, rate, warmup: 0 });
        const after = cpuTicksByPid(pids);
        const seconds = (pid) => ((after.get(pid) ?? 0) - (before.get(pid) ?? 0)) / CLK_TCK;
        const total = pids.reduce((sum, pid) => sum + seconds(pid), 0);
        const now = gw.pids();
        runs[i].push({
          usPerReq: (total * 1e6) / r.sent,
          primaryUsPerReq: (seconds(pids[0]) * 1e6) / r.sent,
          sent: r.sent,
          requests: r.requests,
          errors: r.errors,
          non2xx: r.non2xx,
          p50Ms: r.p50_us / 1000,
          p99Ms: r.p99_us / 1000,
          processes: pids.length,
          pidsChanged: now.length !== pids.length || now.some((pid) => !pids.includes(pid)),
          workerExits: workerExits(gw),
        });
      } catch (err) {
        runs[i].push({ error: err.message });
        process.stdout.write(`  ${name}: failed: ${err.message.slice(0, 500)}\n`);
      } finally {
        await gw?.stop();
      }
    }
  }
  const rows = variants.map((variant, i) => {
    const { accessLog, workers, rate } = variant;
    const name = nameOf(variant);
    const m = medianRun(runs[i], 'usPerReq');
    const row = { name, accessLog, workers, rate, ...m, usPerReqRuns: runs[i].map((r) => r.usPerReq ?? null) };
    if (!row.error)
      process.stdout.write(
        `  ${name}: ${row.usPerReq.toFixed(1)} µs proxy CPU per request at ${rate} req/s ` +
          `${workers > 1 ? `(primary ${row.primaryUsPerReq.toFixed(1)}), ` : ''}p50 ${row.p50Ms.toFixed(2)} ms, ` +
          `p99 ${row.p99Ms.toFixed(2)} ms, ${row.errors} errors, ${row.non2xx} non-2xx\n`,
      );
    return row;
  });
  return { rate: RATE, halfRate: half, seconds: RATE_SECONDS, warmupSeconds: RATE_WARMUP, target: 1.05, rows };
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
  if (results.tls?.rows) {
    const t = results.tls;
    const rate = (r) => (r === null ? '-' : r.error ? 'failed' : String(Math.round(r.rps)));
    const cpu = (r) => (r && !r.error ? fmt(r.proxyCpuUsPerReq, 0) : '-');
    console.log(
      '\nHTTPS, ECDSA P-256, %d s per row: HTTP/1.1 keep-alive (wrk, %d connections), HTTP/2 (h2load, %d × %d streams), ' +
        'a new connection per request (wrk, %d connections):',
      DURATION,
      CONNECTIONS,
      H2_CLIENTS,
      H2_STREAMS,
      CONNECTIONS,
    );
    console.table(
      t.rows.map((r) => ({
        row: r.error ? `${r.name} (did not start)` : r.name,
        'h1 TLS req/s': rate(r.h1),
        'h1 p99 ms': r.h1 && !r.h1.error ? fmt(r.h1.p99Ms) : '-',
        'h2 req/s': rate(r.h2),
        'new TLS conn/s': rate(r.newConn),
        'full handshakes/s': rate(r.fullHandshake),
        'CPU µs/req h1': cpu(r.h1),
        'CPU µs/req h2': cpu(r.h2),
        'CPU µs/conn full': cpu(r.fullHandshake),
        'CPU % full': r.fullHandshake && !r.fullHandshake.error ? fmt(r.fullHandshake.proxyCpuShare * 100, 0) : '-',
      })),
    );
    const errors = t.rows.flatMap((r) =>
      ['h1', 'h2', 'newConn', 'fullHandshake']
        .filter((k) => r[k] && !r[k].error && (r[k].errors > 0 || r[k].non2xx > 0))
        .map((k) => `${r.name} ${k}: ${r[k].errors} errors, ${r[k].non2xx} non-2xx`),
    );
    if (errors.length) console.log(`errors: ${errors.join('; ')}`);
    const x = (v) => (v === null ? '- (a row is missing or failed)' : `× ${fmt(v)}`);
    const c = t.certs;
    const rss = (r) =>
      r.error
        ? `failed: ${r.error.slice(0, 200)}`
        : `${fmt(r.rssReadyMb, 1)} MB${r.rssAfterHandshakesMb === null ? '' : `, ${fmt(r.rssAfterHandshakesMb, 1)} MB after ${r.served}/${c.apps} handshakes`}, ${c.apps} apps ready in ${fmt(r.readyMs / 1000, 1)} s`;
    console.table([
      { measure: 'h1 TLS req/s, gateway / minimal Node', value: x(t.ratios.h1GatewayVsNode) },
      { measure: 'h2 req/s, gateway / minimal Node', value: x(t.ratios.h2GatewayVsNode) },
      { measure: 'h2 req/s, gateway / Caddy', value: x(t.ratios.h2GatewayVsCaddy) },
      { measure: 'new TLS conn/s, gateway / nginx', value: x(t.ratios.newConnGatewayVsNginx) },
      { measure: 'full handshakes/s, gateway / nginx', value: x(t.ratios.fullHandshakeGatewayVsNginx) },
      {
        measure: 'proxy CPU per full handshake, gateway / nginx',
        value: x(t.ratios.fullHandshakeCpuGatewayVsNginx),
      },
      { measure: `${c.name}: gateway RSS, apps with tls = false`, value: rss(c.none) },
      { measure: `${c.name}: gateway RSS, each app its certificate`, value: rss(c.loaded) },
      {
        measure: `${c.name}: added by the certificates`,
        value:
          c.addedMb === null
            ? '-'
            : `${fmt(c.addedMb, 1)} MB when ready, ${fmt(c.addedAfterHandshakesMb, 1)} MB after the handshakes`,
      },
    ]);
  }
  if (results.workers?.rows) {
    const w = results.workers;
    const rate = (r) => (r === null ? '-' : r.error ? 'failed' : String(Math.round(r.rps)));
    const ok = (r) => r && !r.error;
    console.log(
      '\nWorkers, nothing pinned (%d cores), %d s per row: plain HTTP/1.1 keep-alive (%s, %d connections), ' +
        'HTTPS HTTP/2 (h2load, %d × %d streams); gateway access log off:',
      w.settings.cores,
      DURATION,
      LOADGEN,
      CONNECTIONS,
      H2_CLIENTS,
      H2_STREAMS,
    );
    if (w.rows.length === 0) console.log('(no row matched --match)');
    else
      console.table(
        w.rows.map((r) => ({
          row: r.error ? `${r.name} (did not start)` : r.name,
          'h1 req/s': rate(r.h1),
          'h1 p99 ms': ok(r.h1) ? fmt(r.h1.p99Ms) : '-',
          'h2 req/s': rate(r.h2),
          'CPU µs/req h1': ok(r.h1) ? fmt(r.h1.proxyCpuUsPerReq, 1) : '-',
          'CPU µs/req h2': ok(r.h2) ? fmt(r.h2.proxyCpuUsPerReq, 1) : '-',
          'proxy cores h1': ok(r.h1) ? fmt(r.h1.proxyCpuCores) : '-',
          'proxy cores h2': ok(r.h2) ? fmt(r.h2.proxyCpuCores) : '-',
          'proxy RSS MB': ok(r.h1) ? fmt(r.h1.proxyRssMb, 0) : ok(r.h2) ? fmt(r.h2.proxyRssMb, 0) : '-',
          ...(REPEAT > 1
            ? { 'h1 req/s range': ok(r.h1) ? `${Math.round(r.h1.rpsMin)}-${Math.round(r.h1.rpsMax)}` : '-' }
            : {}),
        })),
      );
    const problems = w.rows.flatMap((r) => [
      ...['h1', 'h2']
        .filter((k) => ok(r[k]) && (r[k].errors > 0 || r[k].non2xx > 0 || r[k].failed > 0))
        .map(
          (k) =>
            `${r.name} ${k}: ${r[k].errors} errors, ${r[k].non2xx} non-2xx${r[k].failed ? `, ${r[k].failed} failed` : ''}`,
        ),
      ...['h1', 'h2']
        .filter((k) => ok(r[k]) && r[k].pidsChanged)
        .map((k) => `${r.name} ${k}: a proxy process was replaced`),
      ...(r.workerExits ? [`${r.name}: ${r.workerExits} proxy worker exits in its log`] : []),
    ]);
    for (const r of w.fixedRate.rows) {
      if (r.error) problems.push(`${r.name} at ${r.rate} req/s: failed: ${r.error.slice(0, 200)}`);
      else if (r.errors > 0 || r.non2xx > 0 || r.pidsChanged || r.workerExits > 0)
        problems.push(
          `${r.name} at ${r.rate} req/s: ${r.errors} errors, ${r.non2xx} non-2xx` +
            `${r.pidsChanged ? ', a proxy process was replaced' : ''}${r.workerExits ? `, ${r.workerExits} worker exits` : ''}`,
        );
    }
    if (problems.length) console.log(`problems: ${problems.join('; ')}`);
    const x = (v) => (v === null ? '- (a row is missing or failed)' : `× ${fmt(v)}`);
    const us = (log, n, rate = w.fixedRate.rate) => {
      const r = w.fixedRate.rows.find((row) => row.accessLog === log && row.workers === n && row.rate === rate);
      return r && !r.error ? `${fmt(r.usPerReq, 1)} µs` : '-';
    };
    const target = (v) => (v === null ? '' : v <= w.fixedRate.target ? ' (within target)' : ' (OVER TARGET)');
    const fr = w.fixedRate;
    console.table([
      { measure: 'h1 req/s, workers = 2 / workers = 1', value: x(w.ratios.h1W2VsW1) },
      { measure: 'h2 req/s, workers = 2 / workers = 1', value: x(w.ratios.h2W2VsW1) },
      { measure: 'h1 req/s, workers = 2 / Caddy', value: x(w.ratios.h1W2VsCaddy) },
      { measure: 'h2 req/s, workers = 2 / Caddy', value: x(w.ratios.h2W2VsCaddy) },
      { measure: 'h1 req/s, workers = 2 / nginx auto', value: x(w.ratios.h1W2VsNginx) },
      { measure: 'h2 req/s, workers = 2 / nginx auto', value: x(w.ratios.h2W2VsNginx) },
      {
        measure: `proxy CPU per request at ${fr.rate} req/s, access log off, workers = 2 / 1 (target ≤ ${fr.target})`,
        value: `${x(w.ratios.cpuW2VsW1)}${target(w.ratios.cpuW2VsW1)}: ${us(false, 2)} / ${us(false, 1)}`,
      },
      {
        measure: `proxy CPU per request at ${fr.rate} req/s, access log on, workers = 2 / 1 (target ≤ ${fr.target})`,
        value: `${x(w.ratios.cpuW2VsW1AccessLog)}${target(w.ratios.cpuW2VsW1AccessLog)}: ${us(true, 2)} / ${us(true, 1)}`,
      },
      {
        measure: `  the same per process: workers = 2 at ${fr.rate} / workers = 1 at ${fr.halfRate} req/s, access log off`,
        value: `${x(w.ratios.cpuW2VsW1HalfRate)}: ${us(false, 2)} / ${us(false, 1, fr.halfRate)}`,
      },
    ]);
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
  if (SECTIONS.has('tls') || SECTIONS.has('workers')) {
    console.log(`h2load: ${H2LOAD ?? 'not installed, HTTP/2 rows skipped (apt-get install nghttp2-client)'}`);
    console.log(`caddy: ${CADDY ?? 'not installed, Caddy rows skipped (apt-get install caddy)'}`);
  }
  console.log(
    `pinning: ${PIN ? 'load generator on CPU 1, app and proxy on CPU 0' : 'off (needs 2 cores and taskset)'}` +
      (SECTIONS.has('workers') ? '; none in the workers section' : ''),
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
    if (SECTIONS.has('tls')) await tlsRows(dir, hello, results);
    if (SECTIONS.has('workers')) await workerRows(dir, results);
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
    h2load: H2LOAD,
    caddy: CADDY,
    pinned: PIN,
  };
  writeFileSync(
    file,
    JSON.stringify(
      {
        date: new Date().toISOString(),
        machine,
        settings: {
          DURATION,
          WARMUP,
          CONNECTIONS,
          MANY_APPS,
          STARTUP_APPS,
          RATE,
          RATE_SECONDS,
          RATE_WARMUP,
          TLS_CERT_APPS,
          WORKER_COUNTS,
        },
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
