import assert from 'node:assert/strict';
import { rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { MemoryWatchdogPolicy, SAMPLES_OVER_LIMIT } from '../src/supervisor/memory-watchdog.js';
import {
  type AdminReply,
  adminCall,
  adminGatewaySection,
  GatewayProcess,
  type LoadResult,
  type LogLine,
  loadUntil,
  processAlive,
  ROOT,
  request,
  tempDir,
  versionOf,
  waitFor,
} from './helpers.js';

const MB = 1024 * 1024;

describe('MemoryWatchdogPolicy', () => {
  const LIMIT = 100 * MB;
  const over = 150 * MB;
  const under = 50 * MB;
  const one = (rss: number): Map<string, number> => new Map([['a', rss]]);

  test('a child is due after 3 samples over the limit in a row, not before', () => {
    assert.equal(SAMPLES_OVER_LIMIT, 3);
    const policy = new MemoryWatchdogPolicy();
    assert.equal(policy.sample(one(over), LIMIT, 1000), null);
    assert.equal(policy.sample(one(over), LIMIT, 2000), null);
    assert.equal(policy.sample(one(LIMIT), LIMIT, 3000), null, 'exactly at the limit is not over it');
    assert.equal(policy.sample(one(over), LIMIT, 4000), null);
    assert.equal(policy.sample(one(over), LIMIT, 5000), null, '2 over, 1 under, 2 over: not yet');
    assert.equal(policy.busy, false);
    assert.equal(policy.sample(one(over), LIMIT, 6000), 'a', 'the third in a row');
    assert.equal(policy.busy, true);
  });

  test('of the children due, the largest is picked; one over the limit for less long is not', () => {
    const policy = new MemoryWatchdogPolicy();
    const round = (c: number): Map<string, number> =>
      new Map([
        ['small', 200 * MB],
        ['big', 300 * MB],
        ['fine', under],
        ['smaller', 150 * MB],
        ...(c > 0 ? ([['late', 900 * MB]] as const) : []),
      ]);
    assert.equal(policy.sample(round(0), LIMIT, 1000), null);
    assert.equal(policy.sample(round(0), LIMIT, 2000), null);
    // `late` is the largest but over for the first time only.
    assert.equal(policy.sample(round(1), LIMIT, 3000), 'big');
  });

  test('one replacement at a time: nothing else is due until finished()', () => {
    const policy = new MemoryWatchdogPolicy();
    const both = new Map([
      ['a', 200 * MB],
      ['b', 300 * MB],
    ]);
    policy.sample(both, LIMIT, 1000);
    policy.sample(both, LIMIT, 2000);
    assert.equal(policy.sample(both, LIMIT, 3000), 'b');
    // b is being replaced (out of the samples); a stays over the limit but waits.
    for (let t = 4000; t <= 10_000; t += 1000) assert.equal(policy.sample(one(200 * MB), LIMIT, t), null, `at ${t}`);
    assert.equal(policy.busy, true);
    policy.finished(true, 10_500, 0);
    assert.equal(policy.busy, false);
    assert.equal(policy.sample(one(200 * MB), LIMIT, 11_000), 'a');
  });

  test('after a failed replacement nothing is due before the retry delay has passed; then it goes', () => {
    const policy = new MemoryWatchdogPolicy();
    for (const t of [1000, 2000]) assert.equal(policy.sample(one(over), LIMIT, t), null);
    assert.equal(policy.sample(one(over), LIMIT, 3000), 'a');
    policy.finished(false, 4000, 5000);
    assert.equal(policy.busy, false);
    for (const t of [4000, 5000, 6000, 7000, 8000, 8999])
      assert.equal(policy.sample(one(over), LIMIT, t), null, `${t}`);
    assert.equal(policy.sample(one(over), LIMIT, 9000), 'a', 'at now + retryAfterMs');
    // A successful one does not wait, whatever delay it is given: the next is due once it has 3 samples.
    policy.finished(true, 9100, 60_000);
    for (const t of [10_000, 11_000]) assert.equal(policy.sample(one(over), LIMIT, t), null);
    assert.equal(policy.sample(one(over), LIMIT, 12_000), 'a');
  });

  test('a child that disappears from the samples is forgotten: it starts again from 0', () => {
    const policy = new MemoryWatchdogPolicy();
    const other = new Map([['b', under]]);
    assert.equal(policy.sample(one(over), LIMIT, 1000), null);
    assert.equal(policy.sample(one(over), LIMIT, 2000), null);
    assert.equal(policy.sample(other, LIMIT, 3000), null, 'a is not sampled (not ready, or gone)');
    assert.equal(policy.sample(one(over), LIMIT, 4000), null);
    assert.equal(policy.sample(one(over), LIMIT, 5000), null, 'its earlier 2 samples were forgotten');
    assert.equal(policy.sample(one(over), LIMIT, 6000), 'a');
  });

  test('an RSS of 0 (unreadable) never counts as over, and breaks a row', () => {
    const policy = new MemoryWatchdogPolicy();
    for (let t = 1000; t <= 10_000; t += 1000) assert.equal(policy.sample(one(0), LIMIT, t), null);
    // Even with the smallest limit there is.
    for (let t = 11_000; t <= 20_000; t += 1000) assert.equal(policy.sample(one(0), 1, t), null);
    assert.equal(policy.sample(one(over), LIMIT, 21_000), null);
    assert.equal(policy.sample(one(over), LIMIT, 22_000), null);
    assert.equal(policy.sample(one(0), LIMIT, 23_000), null);
    assert.equal(policy.sample(one(over), LIMIT, 24_000), null);
    assert.equal(policy.sample(one(over), LIMIT, 25_000), null, 'the unreadable sample broke the row');
    assert.equal(policy.sample(one(over), LIMIT, 26_000), 'a');
  });
});

// ---------------------------------------------------------------------------
// Black box: the real CLI and real children that grow on demand.

const GROW_APP = path.join(ROOT, 'test', 'fixtures', 'grow-app.mjs');
const HOST = 'grow.test';
/** Well above a fresh Node child's RSS (about 45-60 MB); /grow?mb=100 takes it well past. */
const MAX_RSS_MB = 120;

function growApp(extra = ''): string {
  return `[apps.grow]
hosts = ["${HOST}"]
entry = ${JSON.stringify(GROW_APP)}
health_path = "/health"
max_rss_mb = ${MAX_RSS_MB}
${extra}
`;
}

function ok(res: AdminReply): any {
  assert.equal(res.status, 200, `${res.status} ${res.body}`);
  return res.json;
}

async function servedPid(gw: GatewayProcess): Promise<number> {
  const res = await gw.request({ host: HOST, path: '/version' });
  assert.equal(res.status, 200, `${res.status} ${res.body}`);
  return versionOf(res.body).pid;
}

/** A counter from GET /admin/metrics for app "grow". */
async function metric(adminPort: number, name: string): Promise<number> {
  const res = await adminCall(adminPort, 'GET', '/admin/metrics');
  assert.equal(res.status, 200);
  const m = new RegExp(`^${name}\\{app="grow"\\} (\\d+)$`, 'm').exec(res.body);
  assert.ok(m, `${name}{app="grow"} in\n${res.body}`);
  return Number(m[1]);
}

async function grow(gw: GatewayProcess, mb: number): Promise<void> {
  const res = await gw.request({ host: HOST, path: `/grow?mb=${mb}` });
  assert.equal(res.status, 200, `${res.status} ${res.body}`);
}

const isReplaced = (l: LogLine): boolean => / replaced for its memory: pid \d+ -> \d+$/.test(String(l.msg));
const isOver = (l: LogLine): boolean => /over max_rss_mb \(\d+ MB > \d+ MB\): replacing it$/.test(String(l.msg));
const isFailed = (l: LogLine): boolean => l.msg === 'memory replacement failed';

/**
 * Keep-alive load (loadUntil: every fourth request a POST) that runs until `release()`
 * has been called and then `after` more requests have been started, so that
 * the load is seen to go on past the switch.
 */
function loadAcross(
  gw: GatewayProcess,
  clients: number,
  after = 200,
): { done: Promise<LoadResult>; release: () => void; startedAfter: () => number } {
  let released = false;
  let startedAfter = 0;
  const done = loadUntil(gw.port, [HOST], clients, () => {
    if (!released) return false;
    return startedAfter++ >= after;
  });
  return { done, release: () => (released = true), startedAfter: () => startedAfter };
}

/**
 * Slow POSTs (answered 250 ms after their body) from `clients` keep-alive
 * clients until `stop()`: requests that are in flight whenever the old child
 * is switched out, and that fail unless it is drained before it stops.
 */
function slowPosts(
  gw: GatewayProcess,
  clients: number,
  stop: () => boolean,
): { done: Promise<SlowResult>; pids: Set<number> } {
  const out: SlowResult = { total: 0, errors: [], pids: new Set() };
  return { done: runSlowPosts(gw, clients, stop, out), pids: out.pids };
}

interface SlowResult {
  total: number;
  errors: string[];
  /** Pids that answered, as they come. */
  pids: Set<number>;
}

async function runSlowPosts(
  gw: GatewayProcess,
  clients: number,
  stop: () => boolean,
  out: SlowResult,
): Promise<SlowResult> {
  const agent = new http.Agent({ keepAlive: true, maxSockets: clients });
  const worker = async (i: number): Promise<void> => {
    for (let n = 0; !stop(); n++) {
      out.total++;
      try {
        const res = await request(gw.port, {
          host: HOST,
          agent,
          method: 'POST',
          path: '/hash?ms=250',
          body: `slow ${i} ${n}`,
        });
        if (res.status !== 200) out.errors.push(`${res.status} ${res.body.trim()}`);
        else out.pids.add(Number(res.body.trim().split(' ').at(-1)));
      } catch (err) {
        out.errors.push((err as Error).message);
      }
    }
  };
  try {
    await Promise.all(Array.from({ length: clients }, (_, i) => worker(i)));
  } finally {
    agent.destroy();
  }
  return out;
}

describe('memory watchdog (black box)', () => {
  let gw: GatewayProcess;
  let adminPort: number;
  let oldPid: number;
  let newPid: number;

  before(async () => {
    gw = await GatewayProcess.start({
      config:
        adminGatewaySection() + growApp('ready_timeout_ms = 8000\nenv = { VERSION = "1", EXIT_ON_SIGTERM = "1" }'),
    });
    adminPort = await gw.adminPort();
    oldPid = gw.readyPids('grow')[0] as number;
  });
  after(async () => {
    await gw?.cleanup();
  });

  test('a child grown past max_rss_mb under 20 keep-alive clients is replaced with no failed request', async () => {
    // A fresh child is under the limit (else the test would prove nothing), and it is the one serving.
    const fresh = await waitFor(async () => {
      const app = ok(await adminCall(adminPort, 'GET', '/admin/apps/grow'));
      return app.instances[0].rss_bytes > 0 ? app.instances[0] : undefined;
    }, 'rss_bytes of the first child');
    assert.equal(fresh.pid, oldPid);
    assert.ok(fresh.rss_bytes < MAX_RSS_MB * MB, `a fresh child has ${fresh.rss_bytes} bytes`);
    assert.equal(await servedPid(gw), oldPid);

    const load = loadAcross(gw, 20);
    let slowDone = false;
    const slow = slowPosts(gw, 4, () => slowDone);
    let result: LoadResult;
    try {
      await grow(gw, 100);
      // The admin API sees it over the limit (the watchdog samples the same number).
      await waitFor(
        async () =>
          ok(await adminCall(adminPort, 'GET', '/admin/apps/grow')).instances[0].rss_bytes > MAX_RSS_MB * MB ||
          undefined,
        'rss_bytes over max_rss_mb',
      );
      const replaced = await gw.waitForLog(isReplaced, 20_000);
      assert.equal(replaced.old_pid, oldPid);
      newPid = Number(replaced.pid);
      assert.notEqual(newPid, oldPid);
      assert.equal(replaced.msg, `instance 0 replaced for its memory: pid ${oldPid} -> ${newPid}`);
      await waitFor(async () => (await servedPid(gw)) === newPid || undefined, 'the new pid to serve');
      await waitFor(() => slow.pids.has(newPid) || undefined, 'a slow POST answered by the new pid');
      load.release();
      await waitFor(() => load.startedAfter() > 200 || undefined, 'the load to go on past the switch', 20_000);
    } finally {
      load.release();
      result = await load.done;
      slowDone = true;
    }
    const slowResult = await slow.done;
    console.log(
      `load across a memory replacement: ${result.total} requests, ${result.errors.length} errors, ${result.non2xx.length} non-2xx; ` +
        `slow POSTs: ${slowResult.total} requests, ${slowResult.errors.length} failed`,
    );
    assert.deepEqual(result.errors, []);
    assert.deepEqual(result.non2xx, []);
    assert.ok(result.total > 200, `only ${result.total} requests`);
    // The slow POSTs were answered by both children, so some were in flight to the old one when it was switched out.
    assert.deepEqual(slowResult.errors, []);
    assert.deepEqual([...slowResult.pids].sort(), [oldPid, newPid].sort(), 'slow POSTs answered by both children');

    // The warning came first, with the numbers it acted on.
    const warned = gw.logs.find(isOver);
    assert.ok(warned, 'the "over max_rss_mb" warning');
    assert.equal(warned.level, 40);
    assert.equal(warned.pid, oldPid);
    assert.equal(warned.max_rss_mb, MAX_RSS_MB);
    assert.ok(Number(warned.rss_mb) > MAX_RSS_MB, `rss_mb ${warned.rss_mb}`);
    assert.ok(gw.logs.indexOf(warned) < gw.logs.findIndex(isReplaced));

    // The old child drained and stopped; the new one serves, GET and /info alike.
    await waitFor(() => !processAlive(oldPid) || undefined, `old child ${oldPid} to exit`);
    await gw.waitForLog((l) => l.msg === 'old instance stopped' && l.pid === oldPid);
    assert.ok(processAlive(newPid));
    const info = await gw.request({ host: HOST, path: '/info' });
    assert.equal(JSON.parse(info.body).pid, newPid);
    assert.equal(gw.logs.filter(isOver).length, 1, 'one replacement, the new child is under the limit');
  });

  test('the replacement is counted: nano_memory_replacements_total, nano_restarts_total, instance restarts', async () => {
    assert.ok(newPid, 'needs the replacement of the previous test');
    assert.equal(await metric(adminPort, 'nano_memory_replacements_total'), 1);
    assert.equal(await metric(adminPort, 'nano_restarts_total'), 1);
    const app = ok(await adminCall(adminPort, 'GET', '/admin/apps/grow'));
    assert.equal(app.instances.length, 1);
    assert.equal(app.instances[0].pid, newPid);
    assert.equal(app.instances[0].restarts, 1);
    assert.ok(app.instances[0].rss_bytes > 0 && app.instances[0].rss_bytes < MAX_RSS_MB * MB);
    assert.equal(app.last_error, null);
  });
});

describe('memory watchdog: a replacement that never becomes ready', () => {
  test('the old child keeps serving, the error is kept; once it can be ready, a later try replaces it', async () => {
    const dir = tempDir('nano-health-');
    const healthFile = path.join(dir, 'healthy');
    writeFileSync(healthFile, 'yes');
    let gw: GatewayProcess | undefined;
    try {
      gw = await GatewayProcess.start({
        config:
          adminGatewaySection() +
          growApp(`ready_timeout_ms = 1500\nenv = { HEALTH_FILE = ${JSON.stringify(healthFile)} }`),
      });
      const g = gw;
      const adminPort = await g.adminPort();
      const oldPid = g.readyPids('grow')[0] as number;

      const load = loadAcross(g, 10);
      let result: LoadResult;
      let newPid = 0;
      try {
        // From now on a new child answers 503 to its health check; the serving one is not checked again.
        rmSync(healthFile);
        await grow(g, 100);
        const failed = await g.waitForLog(isFailed, 20_000);
        assert.equal(failed.level, 50);
        assert.match(String(failed.err), /503/);
        assert.ok(Number(failed.retry_ms) >= 100, `retry_ms ${failed.retry_ms}`);

        // The old child still serves, and is the only one counted.
        for (let i = 0; i < 10; i++) assert.equal(await servedPid(g), oldPid);
        const app = ok(await adminCall(adminPort, 'GET', '/admin/apps/grow'));
        assert.equal(app.instances[0].pid, oldPid);
        assert.equal(app.instances[0].restarts, 0);
        assert.equal(app.state, 'ready');
        assert.match(String(app.last_error), /memory replacement failed/);
        assert.match(String(app.last_error), /503/);
        assert.equal(await metric(adminPort, 'nano_memory_replacements_total'), 0);
        assert.equal(await metric(adminPort, 'nano_restarts_total'), 0);
        assert.equal(g.logs.filter(isReplaced).length, 0);
        assert.ok(processAlive(oldPid));

        // Healthy again: a later try (after the crash backoff) replaces it.
        writeFileSync(healthFile, 'yes');
        const replaced = await g.waitForLog(isReplaced, 20_000);
        assert.equal(replaced.old_pid, oldPid);
        newPid = Number(replaced.pid);
        assert.notEqual(newPid, oldPid);
        assert.ok(g.logs.filter(isOver).length >= 2, 'the replacement was tried again');
        await waitFor(async () => (await servedPid(g)) === newPid || undefined, 'the new pid to serve');
        load.release();
        await waitFor(() => load.startedAfter() > 200 || undefined, 'the load to go on past the switch', 20_000);
      } finally {
        load.release();
        result = await load.done;
      }
      console.log(
        `load across a failed, then successful memory replacement: ${result.total} requests, ${result.errors.length} errors, ${result.non2xx.length} non-2xx`,
      );
      assert.deepEqual(result.errors, []);
      assert.deepEqual(result.non2xx, []);

      await waitFor(() => !processAlive(oldPid) || undefined, `old child ${oldPid} to exit`);
      assert.equal(await metric(adminPort, 'nano_memory_replacements_total'), 1);
      assert.equal(await metric(adminPort, 'nano_restarts_total'), 1);
      const app = ok(await adminCall(adminPort, 'GET', '/admin/apps/grow'));
      assert.equal(app.instances[0].pid, newPid);
      assert.equal(app.instances[0].restarts, 1);
    } finally {
      await gw?.cleanup();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
