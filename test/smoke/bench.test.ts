import assert from 'node:assert/strict';
import { readdirSync, readFileSync, rmSync } from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { ROOT, runNode, tempDir } from '../helpers.js';

// Not a benchmark: proves `npm run bench` works end to end, one second per row.
test('the bench script runs every row and writes its figures as JSON', async () => {
  const out = tempDir('nano-bench-smoke-');
  try {
    const result = await runNode(
      path.join(ROOT, 'scripts', 'bench.mjs'),
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
        '--tls-certs',
        '3',
        '--out',
        out,
      ],
      { timeoutMs: 240_000 },
    );
    assert.equal(result.code, 0, result.stderr + result.stdout);
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
  } finally {
    rmSync(out, { recursive: true, force: true });
  }
});
