#!/usr/bin/env node
// npm run bench [-- --duration 8 --warmup 2 --connections 50]
//
// Measures requests/s and latency through the gateway beside a reference
// measured in the same run (direct to the app), on loopback. Uses wrk when
// installed, else autocannon (a devDependency), and says which. On a machine
// with 2+ cores the load generator runs alone on CPU 1 and the app and proxy
// share CPU 0, so the proxy's CPU cost shows.
import { execFile, spawn, spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const HELLO = path.join(ROOT, 'scripts', 'bench', 'hello.mjs');
const REPORT_LUA = path.join(ROOT, 'scripts', 'bench', 'report.lua');
const CLI = path.join(ROOT, 'dist', 'cli', 'main.js');
const HOST = 'bench.test';

const { values: opts } = parseArgs({
  options: {
    duration: { type: 'string', default: '8' },
    warmup: { type: 'string', default: '2' },
    connections: { type: 'string', default: '50' },
    out: { type: 'string', default: path.join(ROOT, 'bench') },
  },
});
const DURATION = Number(opts.duration);
const WARMUP = Number(opts.warmup);
const CONNECTIONS = Number(opts.connections);

const has = (cmd) => spawnSync('sh', ['-c', `command -v ${cmd}`]).status === 0;
const PIN = os.availableParallelism() >= 2 && has('taskset');
const LOADGEN = has('wrk') ? 'wrk' : 'autocannon';
const CLK_TCK = Number(spawnSync('getconf', ['CLK_TCK']).stdout?.toString().trim()) || 100;

/** Spawns a server process pinned to CPU 0 (with its children) when pinning is possible. */
function spawnServer(args, env = {}) {
  const [cmd, argv] = PIN ? ['taskset', ['-c', '0', process.execPath, ...args]] : [process.execPath, args];
  return spawn(cmd, argv, { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
}

function waitForLine(proc, pattern, timeoutMs = 15_000) {
  return new Promise((resolve, reject) => {
    let buffer = '';
    const timer = setTimeout(() => reject(new Error(`timed out waiting for ${pattern}; got: ${buffer.slice(-2000)}`)), timeoutMs);
    proc.stdout.setEncoding('utf8');
    proc.stdout.on('data', (chunk) => {
      buffer += chunk;
      const m = pattern.exec(buffer);
      if (m) {
        clearTimeout(timer);
        resolve(m);
      }
    });
    proc.once('exit', (code) => reject(new Error(`process exited (${code}) before ${pattern}: ${buffer.slice(-2000)}`)));
  });
}

async function startHello() {
  const proc = spawnServer([HELLO], { PORT: '0' });
  const m = await waitForLine(proc, /listening (\d+)/);
  return { proc, port: Number(m[1]), pid: proc.pid, stop: () => proc.kill('SIGTERM') };
}

async function startGateway(dir, extraGateway = '') {
  const config = `[gateway]
listen = "127.0.0.1:0"
${extraGateway}

[admin]
listen = false

[apps.bench]
hosts = ["${HOST}"]
entry = ${JSON.stringify(HELLO)}
health_path = "/health"
`;
  const file = path.join(dir, 'nano.toml');
  writeFileSync(file, config);
  const proc = spawnServer([CLI, 'start', '-c', file, '--json', '--log-level', 'warn']);
  // At warn level the listen line is not logged; find the port from /proc instead.
  proc.stdout.resume();
  const port = await findListeningPort(proc.pid);
  await waitUntilRoutable(port);
  return { proc, port, pid: proc.pid, stop: () => proc.kill('SIGTERM') };
}

/** The TCP port a process listens on, read from /proc (the gateway picks port 0). */
async function findListeningPort(pid, timeoutMs = 15_000) {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const inodes = new Set();
    try {
      for (const fd of (await import('node:fs')).readdirSync(`/proc/${pid}/fd`)) {
        try {
          const link = (await import('node:fs')).readlinkSync(`/proc/${pid}/fd/${fd}`);
          const m = /^socket:\[(\d+)\]$/.exec(link);
          if (m) inodes.add(m[1]);
        } catch {}
      }
      for (const table of ['/proc/net/tcp', '/proc/net/tcp6']) {
        for (const line of readFileSync(table, 'utf8').split('\n').slice(1)) {
          const f = line.trim().split(/\s+/);
          if (f.length > 9 && f[3] === '0A' && inodes.has(f[9])) return parseInt(f[1].split(':')[1], 16);
        }
      }
    } catch {}
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`process ${pid} is not listening`);
}

async function waitUntilRoutable(port, timeoutMs = 15_000) {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    try {
      const res = await fetch(`http://127.0.0.1:${port}/`, { headers: { host: HOST } });
      if (res.ok) return;
    } catch {}
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error('the gateway did not route to the bench app in time');
}

function cpuTicks(pid) {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return Number(fields[11]) + Number(fields[12]);
}

function rssBytes(pid) {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) * 1024 : 0;
}

function runWrk(port, seconds) {
  const args = ['-t1', `-c${CONNECTIONS}`, `-d${seconds}s`, '-s', REPORT_LUA, '-H', `Host: ${HOST}`, `http://127.0.0.1:${port}/`];
  const [cmd, argv] = PIN ? ['taskset', ['-c', '1', 'wrk', ...args]] : ['wrk', args];
  return new Promise((resolve, reject) => {
    execFile(cmd, argv, { maxBuffer: 1 << 20 }, (err, stdout) => {
      if (err) return reject(err);
      const line = stdout.trim().split('\n').pop();
      const r = JSON.parse(line);
      resolve({
        requests: r.requests,
        rps: r.requests / (r.duration_us / 1e6),
        p50Ms: r.p50_us / 1000,
        p99Ms: r.p99_us / 1000,
        errors: r.errors,
        non2xx: r.non2xx,
      });
    });
  });
}

async function runAutocannon(port, seconds) {
  const { default: autocannon } = await import('autocannon');
  const r = await autocannon({ url: `http://127.0.0.1:${port}/`, connections: CONNECTIONS, duration: seconds, headers: { host: HOST } });
  return {
    requests: r.requests.total,
    rps: r.requests.total / seconds,
    p50Ms: r.latency.p50,
    p99Ms: r.latency.p99,
    errors: r.errors + r.timeouts,
    non2xx: r.non2xx,
  };
}

const runLoad = (port, seconds) => (LOADGEN === 'wrk' ? runWrk(port, seconds) : runAutocannon(port, seconds));

/** Warm up, then measure one row; `proxyPid` is the process whose CPU and RSS are reported. */
async function measure(name, port, proxyPid) {
  if (WARMUP > 0) await runLoad(port, WARMUP);
  const before = proxyPid ? cpuTicks(proxyPid) : 0;
  const result = await runLoad(port, DURATION);
  const ticks = proxyPid ? cpuTicks(proxyPid) - before : 0;
  return {
    name,
    ...result,
    proxyCpuUsPerReq: proxyPid && result.requests ? (ticks / CLK_TCK) * 1e6 / result.requests : null,
    proxyRssMb: proxyPid ? rssBytes(proxyPid) / 2 ** 20 : null,
  };
}

async function main() {
  console.log(`load generator: ${LOADGEN}${LOADGEN === 'autocannon' ? ' (wrk not installed: apt-get install wrk for steadier figures)' : ''}`);
  console.log(`pinning: ${PIN ? 'load generator on CPU 1, app and proxy on CPU 0' : 'off (needs 2 cores and taskset)'}`);
  console.log(`settings: ${CONNECTIONS} connections, keep-alive, ${WARMUP} s warm-up, ${DURATION} s per row\n`);
  const dir = mkdtempSync(path.join(os.tmpdir(), 'nano-bench-'));
  const rows = [];
  const hello = await startHello();
  try {
    rows.push(await measure('direct (no proxy)', hello.port, null));
    const gw = await startGateway(dir);
    try {
      rows.push(await measure('nano-gateway', gw.port, gw.pid));
    } finally {
      gw.stop();
    }
  } finally {
    hello.stop();
    rmSync(dir, { recursive: true, force: true });
  }
  const direct = rows[0];
  const table = rows.map((r) => ({
    row: r.name,
    'req/s': Math.round(r.rps),
    'p50 ms': r.p50Ms.toFixed(2),
    'p99 ms': r.p99Ms.toFixed(2),
    errors: r.errors,
    non2xx: r.non2xx,
    'x direct': (r.rps / direct.rps).toFixed(2),
    'proxy CPU µs/req': r.proxyCpuUsPerReq === null ? '-' : r.proxyCpuUsPerReq.toFixed(1),
    'proxy RSS MB': r.proxyRssMb === null ? '-' : r.proxyRssMb.toFixed(0),
  }));
  console.table(table);
  mkdirSync(opts.out, { recursive: true });
  const file = path.join(opts.out, `bench-${new Date().toISOString().replace(/[:.]/g, '-')}.json`);
  writeFileSync(
    file,
    JSON.stringify({ date: new Date().toISOString(), node: process.version, cpus: os.cpus().length, loadgen: LOADGEN, pinned: PIN, duration: DURATION, connections: CONNECTIONS, rows }, null, 2),
  );
  console.log(`raw figures: ${path.relative(process.cwd(), file)}`);
}

main().catch((err) => {
  console.error(`bench: ${err.message}`);
  process.exitCode = 1;
});
