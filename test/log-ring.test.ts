/**
 * The log ring (README, Logs), in process: LineRing's bounds (lines, 1 MiB
 * of message text, resize), LogRing's reading of the logger's JSON lines
 * (access lines, reload results, retain, follow), and its memory with 200
 * apps at their limits, measured in a child process with `--expose-gc`.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { describe, test } from 'node:test';
import { pathToFileURL } from 'node:url';
import { LineRing, type LogEntry, LogRing, MAX_RING_BYTES } from '../src/logs/ring.js';
import { ROOT, tempDir } from './helpers.js';

let seq = 0;
function entry(msg: string, app: string | null = 'a'): LogEntry {
  return { seq: ++seq, time: Date.now(), app, pid: 1, stream: 'stdout', msg, bytes: Buffer.byteLength(msg) };
}

/** A line as pino writes it for a child's output (see supervisor/child.ts). */
function childLine(app: string, msg: string, stream: 'stdout' | 'stderr' = 'stdout', pid = 4242): string {
  return `${JSON.stringify({ level: stream === 'stdout' ? 30 : 40, time: Date.now(), app, pid, stream, msg })}\n`;
}

function gatewayLine(fields: Record<string, unknown>): string {
  return `${JSON.stringify({ level: 30, time: Date.now(), ...fields })}\n`;
}

describe('LineRing', () => {
  test('keeps the last maxLines lines, oldest first', () => {
    const ring = new LineRing(5);
    for (let i = 1; i <= 20; i++) ring.push(entry(`line ${i}`));
    assert.equal(ring.size, 5);
    assert.deepEqual(
      ring.tail(100).map((e) => e.msg),
      ['line 16', 'line 17', 'line 18', 'line 19', 'line 20'],
    );
    assert.deepEqual(
      ring.tail(2).map((e) => e.msg),
      ['line 19', 'line 20'],
    );
    assert.equal(ring.bytes, 5 * 'line 16'.length);
  });

  test('keeps at most 1 MiB of message text, the newest', () => {
    const ring = new LineRing(100_000);
    const text = 'x'.repeat(1000);
    for (let i = 0; i < 3000; i++) ring.push(entry(`${String(i).padStart(6, '0')}${text.slice(6)}`));
    assert.ok(ring.bytes <= MAX_RING_BYTES, `${ring.bytes} bytes`);
    assert.equal(ring.size, Math.floor(MAX_RING_BYTES / 1000));
    assert.ok(ring.tail(1)[0]?.msg.startsWith('002999'), 'the newest line is kept');
    // Bytes, not characters: a 3-byte character counts 3.
    const wide = new LineRing(100_000, 3000);
    for (let i = 0; i < 10; i++) wide.push(entry('€'.repeat(100)));
    assert.equal(wide.size, 10);
    assert.equal(wide.bytes, 3000);
    wide.push(entry('€'));
    assert.equal(wide.size, 10, 'the oldest went for the new one');
    assert.equal(wide.bytes, 2703);
  });

  test('resize keeps the newest lines; growing keeps them all', () => {
    const ring = new LineRing(10);
    for (let i = 1; i <= 10; i++) ring.push(entry(`line ${i}`));
    ring.resize(3);
    assert.deepEqual(
      ring.tail(100).map((e) => e.msg),
      ['line 8', 'line 9', 'line 10'],
    );
    assert.equal(ring.bytes, 'line 8line 9line 10'.length);
    ring.resize(6);
    for (let i = 11; i <= 14; i++) ring.push(entry(`line ${i}`));
    assert.deepEqual(
      ring.tail(100).map((e) => e.msg),
      ['line 9', 'line 10', 'line 11', 'line 12', 'line 13', 'line 14'],
    );
    ring.resize(0);
    ring.push(entry('nothing kept'));
    assert.equal(ring.size, 0);
    assert.deepEqual(ring.tail(10), []);
  });
});

describe('LogRing', () => {
  test('reads the fields of pino lines; access lines and non-JSON are not kept', () => {
    const logs = new LogRing(100);
    logs.ingest(childLine('a', 'out line'));
    logs.ingest(childLine('a', 'err line', 'stderr'));
    logs.ingest(gatewayLine({ app: 'a', pid: 4242, msg: 'instance ready' }));
    logs.ingest(gatewayLine({ msg: 'listening on http://127.0.0.1:1' }));
    logs.ingest(gatewayLine({ kind: 'access', app: 'a', status: 200, msg: 'GET / 200' }));
    logs.ingest(gatewayLine({ kind: 'access', app: 'b', status: 200, msg: 'GET / 200' }));
    logs.ingest('not json at all\n');
    const a = logs.lines('a', 100);
    assert.deepEqual(
      a.map((e) => [e.stream, e.pid, e.msg]),
      [
        ['stdout', 4242, 'out line'],
        ['stderr', 4242, 'err line'],
        ['gateway', 4242, 'instance ready'],
      ],
    );
    assert.equal(logs.hasApp('b'), false, 'an access line makes no ring');
    const all = logs.lines(null, 100);
    assert.equal(all.length, 4);
    assert.deepEqual(all.at(-1), { ...all.at(-1), app: null, pid: null, stream: 'gateway' });
  });

  test('a single huge line is cut to 16 KiB', () => {
    const logs = new LogRing(100);
    logs.ingest(childLine('a', 'y'.repeat(100_000)));
    const [line] = logs.lines('a', 1);
    assert.ok(line && line.bytes <= 16 * 1024 + 3, `${line?.bytes} bytes`);
    assert.ok(line.msg.endsWith('…'));
  });

  test("a reload's result goes to each named app's ring, once in the merged view", () => {
    const logs = new LogRing(100);
    logs.ingest(childLine('a', 'a before'));
    logs.ingest(childLine('b', 'b before'));
    logs.ingest(childLine('c', 'c before'));
    const summary = {
      added: ['d'],
      removed: [],
      changed: ['a'],
      unchanged: ['c'],
      failed: [{ name: 'b', error: 'exited with code 1 before it was ready' }],
    };
    logs.ingest(gatewayLine({ ...summary, ms: 12, msg: 'reload finished: changed a, added d, failed b' }));
    for (const app of ['a', 'b', 'd']) {
      const last = logs.lines(app, 100).at(-1);
      assert.equal(last?.msg, 'reload finished: changed a, added d, failed b', app);
      assert.equal(last?.stream, 'gateway');
      assert.equal(last?.app, app);
      assert.equal(last?.pid, null);
    }
    assert.equal(logs.lines('c', 100).at(-1)?.msg, 'c before', 'an unchanged app is not named');
    const merged = logs.lines(null, 100);
    assert.equal(merged.filter((e) => e.msg.startsWith('reload finished')).length, 1);
    assert.equal(merged.at(-1)?.app, null, 'the merged view shows the gateway-wide original');
    assert.equal(merged.length, 4);
    // A line that merely starts like one, from an app, is not copied anywhere.
    logs.ingest(childLine('c', 'reload finished: not really'));
    assert.equal(logs.lines('a', 100).at(-1)?.msg, 'reload finished: changed a, added d, failed b');
  });

  test('the merged view is in logging order, the last n lines of all', () => {
    const logs = new LogRing(100);
    for (let i = 0; i < 30; i++) {
      logs.ingest(childLine(`app${i % 3}`, `line ${i}`));
      if (i % 10 === 0) logs.ingest(gatewayLine({ msg: `gateway ${i}` }));
    }
    const merged = logs.lines(null, 1000);
    assert.equal(merged.length, 33);
    assert.deepEqual(
      merged.map((e) => e.seq),
      [...merged.map((e) => e.seq)].sort((x, y) => x - y),
    );
    for (let k = 1; k < merged.length; k++) assert.ok((merged[k]?.time ?? 0) >= (merged[k - 1]?.time ?? 0));
    assert.deepEqual(
      logs.lines(null, 3).map((e) => e.msg),
      ['line 27', 'line 28', 'line 29'],
    );
  });

  test('retain drops the rings of apps that are gone', () => {
    const logs = new LogRing(100);
    logs.ingest(childLine('a', 'a line'));
    logs.ingest(childLine('b', 'b line'));
    const before = logs.bytes;
    logs.retain(['a', 'z']);
    assert.equal(logs.hasApp('a'), true);
    assert.equal(logs.hasApp('b'), false);
    assert.equal(logs.hasApp('z'), false, 'retain makes no ring');
    assert.deepEqual(logs.lines('b', 100), []);
    assert.deepEqual(
      logs.lines(null, 100).map((e) => e.msg),
      ['a line'],
    );
    assert.equal(logs.bytes, before - 'b line'.length);
  });

  test('setLimit resizes every ring, the gateway-wide one too', () => {
    const logs = new LogRing(100);
    for (let i = 1; i <= 10; i++) {
      logs.ingest(childLine('a', `a ${i}`));
      logs.ingest(gatewayLine({ msg: `g ${i}` }));
    }
    logs.setLimit(2);
    assert.deepEqual(
      logs.lines('a', 100).map((e) => e.msg),
      ['a 9', 'a 10'],
    );
    assert.deepEqual(
      logs.lines(null, 100).map((e) => e.msg),
      ['a 9', 'g 9', 'a 10', 'g 10'],
    );
  });

  test('follow: per app or everything; unsubscribe; followerCount', () => {
    const logs = new LogRing(100);
    const ofA: string[] = [];
    const ofAll: string[] = [];
    assert.equal(logs.followerCount, 0);
    const stopA = logs.follow('a', (e) => ofA.push(e.msg));
    const stopAll = logs.follow(null, (e) => ofAll.push(`${e.app}:${e.msg}`));
    assert.equal(logs.followerCount, 2);
    logs.ingest(childLine('a', 'one'));
    logs.ingest(childLine('b', 'two'));
    logs.ingest(gatewayLine({ msg: 'three' }));
    logs.ingest(gatewayLine({ kind: 'access', app: 'a', msg: 'GET / 200' }));
    logs.ingest(gatewayLine({ changed: ['a', 'b'], msg: 'reload finished: changed a, b' }));
    assert.deepEqual(ofA, ['one', 'reload finished: changed a, b'], "a's follower gets a's copy of the reload line");
    assert.deepEqual(ofAll, ['a:one', 'b:two', 'null:three', 'null:reload finished: changed a, b']);
    stopA();
    assert.equal(logs.followerCount, 1);
    logs.ingest(childLine('a', 'four'));
    assert.equal(ofA.length, 2);
    assert.equal(ofAll.at(-1), 'a:four');
    stopAll();
    stopAll();
    assert.equal(logs.followerCount, 0);
  });

  test('memory: 200 apps x 1000 lines of 200 bytes', (t) => {
    const dir = tempDir('nano-ring-mem-');
    const script = path.join(dir, 'measure.mjs');
    const ringUrl = pathToFileURL(path.join(ROOT, 'src', 'logs', 'ring.ts')).href;
    writeFileSync(
      script,
      `import { LogRing, MAX_RING_BYTES } from ${JSON.stringify(ringUrl)};
const APPS = 200, LINES = 1000, BYTES = 200;
const heap = () => { globalThis.gc(); globalThis.gc(); return process.memoryUsage().heapUsed; };
const base = heap();
const logs = new LogRing(1000);
// Twice the limit: the rings fill, then turn over once.
for (let round = 0; round < 2; round++) {
  for (let i = 0; i < LINES; i++) {
    for (let a = 0; a < APPS; a++) {
      const head = 'app' + a + ' line ' + (round * LINES + i) + ' ';
      const msg = head + 'x'.repeat(BYTES - head.length);
      logs.ingest(JSON.stringify({ level: 30, time: Date.now(), app: 'app' + a, pid: 1000 + a, stream: 'stdout', msg }) + '\\n');
    }
  }
}
const full = heap();
let worstLines = 0, worstBytes = 0;
for (let a = 0; a < APPS; a++) {
  const lines = logs.lines('app' + a, 100000);
  worstLines = Math.max(worstLines, lines.length);
  worstBytes = Math.max(worstBytes, lines.reduce((n, e) => n + e.bytes, 0));
}
const last = logs.lines('app7', 1)[0].msg;
logs.retain([]);
const emptied = heap();
console.log(JSON.stringify({ heapMB: (full - base) / 1048576, afterRetainMB: (emptied - base) / 1048576,
  textMB: logs.bytes / 1048576, worstLines, worstBytes, max: MAX_RING_BYTES, last }));
`,
    );
    try {
      const started = Date.now();
      const run = spawnSync(process.execPath, ['--expose-gc', '--import', 'tsx', script], {
        cwd: ROOT,
        encoding: 'utf8',
        timeout: 120_000,
      });
      assert.equal(run.status, 0, run.stderr);
      const result = JSON.parse(run.stdout.trim().split('\n').at(-1) as string) as {
        heapMB: number;
        afterRetainMB: number;
        worstLines: number;
        worstBytes: number;
        max: number;
        last: string;
      };
      t.diagnostic(
        `heap growth with 200 full rings: ${result.heapMB.toFixed(1)} MB for 40 MB of text ` +
          `(${result.afterRetainMB.toFixed(1)} MB after retain([])), ${Date.now() - started} ms`,
      );
      assert.ok(result.worstLines <= 1000, `${result.worstLines} lines`);
      assert.ok(result.worstBytes <= result.max, `${result.worstBytes} bytes`);
      assert.ok(result.last.startsWith('app7 line 1999 '), result.last);
      assert.ok(result.heapMB < 120, `heap grew ${result.heapMB.toFixed(1)} MB`);
      assert.ok(result.afterRetainMB < 10, `retain([]) freed the rings: ${result.afterRetainMB.toFixed(1)} MB left`);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
