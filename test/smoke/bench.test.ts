import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readdirSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { ROOT, type RunResult, tempDir } from '../helpers.js';

// `workers = auto` is a worker per core: on a big machine, that many processes would make the smoke slow.
const WORKER_COUNTS = os.availableParallelism() <= 8 ? ['1', '2', 'auto'] : ['1', '2'];

/**
 * Runs the bench to completion; past `timeoutMs`, SIGINT first, so that it stops the gateways,
 * nginx and Caddy it started (its SIGINT handler) rather than leaving them behind, then SIGKILL.
 */
function runBench(args: string[], timeoutMs: number): Promise<RunResult> {
  return new Promise((resolve) => {
    const proc = spawn(process.execPath, [path.join(ROOT, 'scripts', 'bench.mjs'), ...args], {
      cwd: ROOT,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    let timedOut = false;
    proc.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    proc.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    let kill: NodeJS.Timeout | undefined;
    const timer = setTimeout(() => {
      timedOut = true;
      proc.kill('SIGINT');
      kill = setTimeout(() => proc.kill('SIGKILL'), 15_000);
    }, timeoutMs);
    proc.on('close', (code) => {
      clearTimeout(timer);
      clearTimeout(kill);
      resolve({ code, stdout, stderr, timedOut });
    });
  });
}

// Not a benchmark: proves `npm run bench` works end to end, one second per row. About 90 s on
// 2 cores; the timeout leaves room for a slow CI machine.
test('the bench script runs every row and writes its figures as JSON', { timeout: 600_000 }, async () => {
  const out = tempDir('nano-bench-smoke-');
  try {
    const result = await runBench(
      [
        '--duration',
        '1',
        '--warmup',
        '0',
        '--apps',
        '3',
        '--startup-apps',
        '3',
        '--rate',
        '300',
        '--rate-seconds',
        '1',
        '--rate-warmup',
        '0.5',
        '--tls-certs',
        '3',
        '--workers',
        WORKER_COUNTS.join(','),
        '--out',
        out,
      ],
      570_000,
    );
    assert.equal(result.code, 0, `${result.timedOut ? 'timed out: ' : ''}${result.stderr}${result.stdout}`);
    assert.match(result.stdout, /load generator: (wrk|autocannon)/);
    const files = readdirSync(out).filter((f) => f.endsWith('.json'));
    assert.equal(files.length, 1);
    type Row = { name: string; requests: number; errors: number; non2xx: number };
    type TlsLoad = Row & { error?: string; rps: number; protocol?: string };
    type TlsRow = {
      name: string;
      kind: string;
      error: string | null;
      served?: { cn: string | null; alpn: string | null };
      h1: TlsLoad | null;
      h2: TlsLoad | null;
      newConn: TlsLoad | null;
      fullHandshake: TlsLoad | null;
    };
    type RssRow = { rssReadyMb: number; rssAfterHandshakesMb: number | null; served: number | null; error?: string };
    type WorkersLoad = TlsLoad & { failed?: number; pidsChanged: boolean; workerCpuShares: number[] | null };
    type WorkersRow = {
      name: string;
      kind: string;
      workers: number | 'auto' | null;
      workerProcesses: number | null;
      error: string | null;
      h1: WorkersLoad | null;
      h2: WorkersLoad | null;
      workerExits: number | null;
    };
    type FixedRateRow = Row & { accessLog: boolean; workers: number; rate: number; usPerReq: number; error?: string };
    const report = JSON.parse(readFileSync(path.join(out, files[0] as string), 'utf8')) as {
      machine: { loadgen: string; nginx: string | null; h2load: string | null; caddy: string | null };
      results: {
        main: Row[];
        latency: { direct: { requests: number }; gateway: { requests: number; errors: number } };
        big: Row[];
        apps: { single: Row; many: Row };
        reload: { steady: Row; during: Row; reloads: number };
        startup: { apps: number; allReadyMs: number };
        cpu: { rows: Array<{ name: string; usPerReq: number }> };
        tls: {
          rows: TlsRow[];
          ratios: Record<string, number | null>;
          certs: { name: string; apps: number; none: RssRow; loaded: RssRow; addedMb: number | null };
        };
        workers: {
          settings: { cores: number; pinned: boolean };
          rows: WorkersRow[];
          fixedRate: { rows: FixedRateRow[] };
          ratios: Record<string, number | null>;
        };
      };
    };
    const { main, latency, big, apps, reload, startup, cpu } = report.results;
    assert.equal(cpu.rows.length, 3);
    for (const row of cpu.rows) assert.ok(row.usPerReq > 0, `${row.name} used CPU`);
    const names = main.map((r) => r.name).join(' | ');
    for (const expected of [
      /^direct/,
      /access log on/,
      /access log off/,
      /Pool\.dispatch/,
      /Pool\.stream/,
      /http-proxy-3/,
      /TCP pipe/,
    ]) {
      assert.ok(
        main.some((r) => expected.test(r.name)),
        `row ${expected} in ${names}`,
      );
    }
    for (const row of [...main, ...big, apps.single, apps.many, reload.steady, reload.during]) {
      assert.ok(row.requests > 0, `${row.name} served requests`);
      assert.equal(row.non2xx, 0, `${row.name} had non-2xx answers`);
    }
    assert.ok(latency.direct.requests > 0 && latency.gateway.requests > 0);
    assert.equal(startup.apps, 3);
    assert.ok(startup.allReadyMs > 0);
    assert.match(result.stdout, /Throughput/);

    // HTTPS: every proxy started, served the bench.test certificate and answered each load its tools allow.
    const { tls } = report.results;
    const { machine } = report;
    assert.ok(tls.rows, `tls section skipped: ${(tls as { skipped?: string }).skipped}`);
    const kinds = ['gateway', 'node', ...(machine.nginx ? ['nginx'] : []), ...(machine.caddy ? ['caddy'] : [])];
    assert.deepEqual(
      tls.rows.map((r) => r.kind),
      kinds,
    );
    const wrk = machine.loadgen === 'wrk';
    for (const row of tls.rows) {
      assert.equal(row.error, null, `${row.name}: ${row.error}`);
      assert.equal(row.served?.cn, 'bench.test', `${row.name} served the bench.test certificate`);
      const loads = { h1: wrk, h2: machine.h2load !== null, newConn: wrk, fullHandshake: wrk } as const;
      for (const [key, expected] of Object.entries(loads) as Array<[keyof typeof loads, boolean]>) {
        const load = row[key];
        if (!expected) {
          assert.equal(load, null, `${row.name} ${key} needs a tool that is missing`);
          continue;
        }
        assert.ok(load && !load.error, `${row.name} ${key}: ${load?.error}`);
        assert.ok(load.requests > 0 && load.rps > 0, `${row.name} ${key} served requests`);
        assert.equal(load.non2xx, 0, `${row.name} ${key} had non-2xx answers`);
        if (key === 'h2') assert.equal(load.protocol, 'h2', `${row.name} spoke HTTP/2`);
      }
    }
    if (wrk) assert.ok((tls.ratios.h1GatewayVsNode ?? 0) > 0);
    if (machine.h2load) assert.ok((tls.ratios.h2GatewayVsNode ?? 0) > 0);
    assert.equal(tls.certs.name, 'RSS with 3 certificates');
    for (const side of [tls.certs.none, tls.certs.loaded])
      assert.ok(!side.error && side.rssReadyMb > 0, `gateway RSS measured: ${side.error}`);
    assert.equal(tls.certs.loaded.served, 3, 'each app served its own certificate');
    assert.match(result.stdout, /HTTPS, ECDSA P-256/);

    // Workers: each gateway row served both loads without an error, on every worker; nginx and Caddy when installed.
    const { workers } = report.results;
    assert.equal(workers.settings.pinned, false);
    assert.deepEqual(
      workers.rows.map((r) => [r.kind, r.workers]),
      [
        ...WORKER_COUNTS.map((w) => ['gateway', w === 'auto' ? w : Number(w)]),
        ...(machine.nginx ? [['nginx', 'auto']] : []),
        ...(machine.caddy ? [['caddy', null]] : []),
      ],
    );
    for (const row of workers.rows) {
      assert.equal(row.error, null, `${row.name}: ${row.error}`);
      const gateway = row.kind === 'gateway';
      const loads = { h1: true, h2: machine.h2load !== null } as const;
      for (const [key, expected] of Object.entries(loads) as Array<[keyof typeof loads, boolean]>) {
        const load = row[key];
        if (!expected) {
          assert.equal(load, null, `${row.name} ${key} needs h2load`);
          continue;
        }
        assert.ok(load && !load.error, `${row.name} ${key}: ${load?.error}`);
        assert.ok(load.requests > 0 && load.rps > 0, `${row.name} ${key} served requests`);
        assert.equal(load.non2xx, 0, `${row.name} ${key} had non-2xx answers`);
        if (key === 'h2') assert.equal(load.protocol, 'h2', `${row.name} spoke HTTP/2`);
        if (!gateway) continue;
        assert.equal(load.errors, 0, `${row.name} ${key} had errors`);
        assert.equal(load.failed ?? 0, 0, `${row.name} ${key} had failed requests`);
        assert.equal(load.pidsChanged, false, `${row.name} ${key}: a proxy process was replaced`);
        if (row.workerProcesses !== null && row.workerProcesses > 1) {
          // Every worker took connections (and so CPU) under the load: node:cluster handed them round.
          assert.equal(load.workerCpuShares?.length, row.workerProcesses, `${row.name} ${key}: one share per worker`);
          for (const share of load.workerCpuShares ?? [])
            assert.ok(share > 0, `${row.name} ${key}: a worker did nothing: ${load.workerCpuShares}`);
        }
      }
      if (gateway) assert.equal(row.workerExits, 0, `${row.name}: a proxy worker exited`);
    }
    assert.deepEqual(
      workers.fixedRate.rows.map((r) => [r.workers, r.accessLog, r.rate]),
      [
        [1, false, 300],
        [2, false, 300],
        [1, true, 300],
        [2, true, 300],
        [1, false, 150],
      ],
    );
    for (const row of workers.fixedRate.rows) {
      assert.ok(!row.error && row.usPerReq > 0, `${row.name} used CPU: ${row.error}`);
      assert.ok(row.requests > 0, `${row.name} served requests`);
      assert.equal(row.errors, 0, `${row.name} had errors`);
      assert.equal(row.non2xx, 0, `${row.name} had non-2xx answers`);
    }
    const ratios = ['h1W2VsW1', 'cpuW2VsW1', 'cpuW2VsW1AccessLog', 'cpuW2VsW1HalfRate'];
    for (const ratio of [...ratios, ...(machine.h2load ? ['h2W2VsW1'] : [])])
      assert.ok((workers.ratios[ratio] ?? 0) > 0, `ratio ${ratio}`);
    if (machine.caddy) assert.ok((workers.ratios.h1W2VsCaddy ?? 0) > 0, 'ratio h1W2VsCaddy');
    assert.match(result.stdout, /Workers, nothing pinned/);
  } finally {
    rmSync(out, { recursive: true, force: true });
  }
});
