import assert from 'node:assert/strict';
import { readdirSync, readFileSync, rmSync } from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { ROOT, runNode, tempDir } from './helpers.js';

// Not a benchmark: proves `npm run bench` works end to end, one second per row.
test('the bench script runs every row and writes its figures as JSON', async () => {
  const out = tempDir('nano-bench-smoke-');
  try {
    const result = await runNode(path.join(ROOT, 'scripts', 'bench.mjs'), ['--duration', '1', '--warmup', '0', '--out', out]);
    assert.equal(result.code, 0, result.stderr + result.stdout);
    assert.match(result.stdout, /load generator: (wrk|autocannon)/);
    const files = readdirSync(out).filter((f) => f.endsWith('.json'));
    assert.equal(files.length, 1);
    const report = JSON.parse(readFileSync(path.join(out, files[0] as string), 'utf8')) as {
      rows: Array<{ name: string; requests: number; errors: number; non2xx: number }>;
    };
    assert.ok(report.rows.length >= 2);
    for (const row of report.rows) {
      assert.ok(row.requests > 0, `${row.name} served requests`);
      assert.equal(row.non2xx, 0, `${row.name} had non-2xx answers`);
    }
  } finally {
    rmSync(out, { recursive: true, force: true });
  }
});
