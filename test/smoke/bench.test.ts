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
    const report = JSON.parse(readFileSync(path.join(out, files[0] as string), 'utf8')) as {
      results: {
        main: Row[];
        latency: { direct: { requests: number }; gateway: { requests: number; errors: number } };
        big: Row[];
        apps: { single: Row; many: Row };
        reload: { steady: Row; during: Row; reloads: number };
        startup: { apps: number; allReadyMs: number };
        cpu: { rows: Array<{ name: string; usPerReq: number }> };
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
  } finally {
    rmSync(out, { recursive: true, force: true });
  }
});
