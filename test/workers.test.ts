/**
 * `[gateway] workers = N` (README, Workers), black box: the real CLI as the
 * primary, N node:cluster proxy workers, real children and sockets on
 * loopback. node:cluster hands each new connection to the next worker in
 * turn, so fresh connections one after the other reach every worker, and
 * the access lines' `"worker": N` (written by the primary) tell which one
 * served each request.
 *
 * - Reloads under keep-alive load: no request fails, and once a reload has
 *   answered every request routes to the new generation on every worker.
 * - An admin call answers only once every worker uses the change: a worker
 *   held with SIGSTOP holds the answer.
 * - A worker killed with SIGKILL is replaced in its slot; only requests in
 *   flight on it fail, and the sums of its counters are kept.
 * - Metrics, requests_total and access lines are sums over the workers.
 * - SIGTERM drains in-flight requests on every worker, exit 0; SIGKILL of
 *   the primary leaves no worker and no child behind.
 * - A change of `workers` on reload is a warning and changes nothing;
 *   `status` shows the workers; `workers = 1` has none.
 */
import assert from 'node:assert/strict';
import http from 'node:http';
import { after, before, describe, test } from 'node:test';
import type { ReloadSummary, WorkerJson } from '../src/wire.js';
import {
  type AdminReply,
  adminCall,
  adminGatewaySection,
  canConnect,
  childPidsOf,
  fixtureApp,
  GatewayProcess,
  type LogLine,
  processAlive,
  type Reply,
  request,
  runCli,
  versionOf,
  waitFor,
} from './helpers.js';

delete process.env.NANO_ADMIN_TOKEN;

const WORKERS = 2;
const HOST = 'web.test';

/** A gateway with `workers` proxy workers, the admin API on an OS-chosen port, and app `web` at VERSION `version`. */
function config(version: number, options: { workers?: number; extra?: string; app?: string } = {}): string {
  return (
    adminGatewaySection(`workers = ${options.workers ?? WORKERS}`) +
    fixtureApp('web', [HOST], `env = { VERSION = "${version}" }\n${options.app ?? ''}`) +
    (options.extra ?? '')
  );
}

async function workerList(adminPort: number): Promise<WorkerJson[]> {
  const reply = await adminCall(adminPort, 'GET', '/admin/workers');
  assert.equal(reply.status, 200, reply.body);
  return reply.json.workers as WorkerJson[];
}

async function metricsText(adminPort: number): Promise<string> {
  const reply = await adminCall(adminPort, 'GET', '/admin/metrics');
  assert.equal(reply.status, 200, reply.body);
  return reply.body;
}

/** The samples of one metric in the text format, with their labels. */
function samples(text: string, name: string): Array<{ labels: Record<string, string>; value: number }> {
  const out: Array<{ labels: Record<string, string>; value: number }> = [];
  for (const line of text.split('\n')) {
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!m || m[1] !== name) continue;
    const labels: Record<string, string> = {};
    for (const l of (m[2] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:\\.|[^"\\])*)"/g))
      labels[l[1] as string] = l[2] as string;
    out.push({ labels, value: Number(m[3]) });
  }
  return out;
}

/** The value of the one sample of `name` with these labels (among others); undefined when there is none. */
function metric(text: string, name: string, labels: Record<string, string> = {}): number | undefined {
  const found = samples(text, name).filter((s) => Object.entries(labels).every(([k, v]) => s.labels[k] === v));
  assert.ok(found.length <= 1, `at most one sample ${name}${JSON.stringify(labels)}, found ${found.length}`);
  return found[0]?.value;
}

function accessLines(gw: GatewayProcess, from = 0): LogLine[] {
  return gw.logs.slice(from).filter((l) => l.kind === 'access');
}

/** The workers named by access lines, sorted. */
function workersIn(lines: readonly LogLine[]): number[] {
  return [...new Set(lines.map((l) => l.worker as number))].sort((a, b) => a - b);
}

interface Load {
  total: number;
  errors: string[];
  non2xx: string[];
  /** Responses older than the generation that was in use, by every worker, when the request was sent. */
  stale: string[];
  versions: Set<number>;
}

/**
 * GET /version from `clients` keep-alive clients until `stop()` (bounded:
 * one request in flight per client, loopback only). A client whose request
 * fails goes on with the next (the agent opens a new connection). Each
 * response's VERSION must be at least `minVersion()` as it was when its
 * request was sent. A request unanswered after `timeoutMs` counts as failed.
 */
function keepAliveLoad(
  port: number,
  clients: number,
  stop: () => boolean,
  minVersion: () => number = () => 0,
  timeoutMs = 15_000,
): { result: Load; done: Promise<Load> } {
  const agent = new http.Agent({ keepAlive: true, maxSockets: clients });
  const result: Load = { total: 0, errors: [], non2xx: [], stale: [], versions: new Set() };
  const client = async (): Promise<void> => {
    while (!stop()) {
      const want = minVersion();
      result.total++;
      try {
        const res = await request(port, { host: HOST, path: '/version', agent, timeoutMs });
        if (res.status !== 200) {
          result.non2xx.push(`${res.status} ${res.body.trim()}`);
          continue;
        }
        const { version, pid } = versionOf(res.body);
        result.versions.add(Number(version));
        if (Number(version) < want) result.stale.push(`version ${version} (pid ${pid}) after reload ${want} answered`);
      } catch (err) {
        result.errors.push((err as Error).message);
      }
    }
  };
  const done = Promise.all(Array.from({ length: clients }, client))
    .then(() => result)
    .finally(() => agent.destroy());
  return { result, done };
}

/** `count` GETs of `/PREFIX/i` on `host`, one after the other, each on a connection of its own (so they alternate workers). */
async function freshRequests(gw: GatewayProcess, prefix: string, count: number, host = HOST): Promise<void> {
  for (let i = 0; i < count; i++) {
    const res = await gw.request({ host, path: `/${prefix}/${i}` });
    assert.equal(res.status, 200, `/${prefix}/${i}: ${res.status} ${res.body}`);
  }
}

/** The access lines of paths under `/PREFIX/`, once there are `count` (they come in batches). */
function accessOf(gw: GatewayProcess, prefix: string, count: number): Promise<LogLine[]> {
  return waitFor(() => {
    const lines = accessLines(gw).filter((l) => String(l.path).startsWith(`/${prefix}/`));
    return lines.length >= count ? lines : undefined;
  }, `${count} access lines under /${prefix}/`);
}

/** Parses an aligned table (header of upper-case column names) starting at `lines[at]`, until a blank line. */
function parseTable(lines: readonly string[], at: number): Array<Record<string, string>> {
  const headerLine = lines[at] as string;
  const header = headerLine.split(/\s{2,}/);
  const starts = header.map((h) => headerLine.indexOf(h));
  const rows: Array<Record<string, string>> = [];
  for (const line of lines.slice(at + 1)) {
    if (line.trim() === '') break;
    const cells: Record<string, string> = {};
    header.forEach((h, i) => {
      const start = starts[i] as number;
      const end = i + 1 < starts.length ? (starts[i + 1] as number) : line.length;
      assert.ok(start === 0 || line[start - 1] === ' ', `column ${h} starts after a space in ${JSON.stringify(line)}`);
      cells[h] = line.slice(start, end).trim();
    });
    rows.push(cells);
  }
  return rows;
}

describe('workers = 2: reloads, status and a change of workers', () => {
  let gw: GatewayProcess;
  let adminPort: number;
  let version = 1;

  before(async () => {
    gw = await GatewayProcess.start({ config: config(version) });
    adminPort = await gw.adminPort();
  });
  after(async () => {
    await gw?.cleanup();
  });

  test('two ready workers, neither the primary, each a child of it', async () => {
    const workers = await workerList(adminPort);
    assert.deepEqual(
      workers.map((w) => [w.id, w.state, w.restarts]),
      [
        [1, 'ready', 0],
        [2, 'ready', 0],
      ],
    );
    const pids = workers.map((w) => w.pid);
    assert.equal(new Set(pids).size, WORKERS);
    assert.ok(!pids.includes(gw.pid), 'no worker is the primary');
    const children = childPidsOf(gw.pid);
    for (const pid of pids) assert.ok(children.includes(pid), `worker ${pid} is a child of the primary`);
    for (const w of workers) {
      assert.ok(w.rss_bytes > 0, `worker ${w.id} has an RSS`);
      assert.ok(!Number.isNaN(Date.parse(w.started_at)), `worker ${w.id} started_at is a date: ${w.started_at}`);
    }
    const startLine = gw.logs.find((l) => l.msg === `${WORKERS} proxy workers listening`);
    assert.ok(startLine, 'the primary says its workers listen');
    assert.deepEqual([...(startLine.pids as number[])].sort(), [...pids].sort());
  });

  test('16 keep-alive clients across 4 reloads: none fails, and after each reload answers only the new generation serves', async () => {
    const from = gw.logs.length;
    const oldPids: number[] = [];
    let stop = false;
    let answered = version;
    const load = keepAliveLoad(
      gw.port,
      16,
      () => stop,
      () => answered,
    );
    try {
      await waitFor(() => load.result.total >= 200 || undefined, 'the load to get going');
      for (let i = 0; i < 4; i++) {
        oldPids.push(...gw.readyPids('web'));
        version++;
        gw.writeConfig(config(version));
        if (i % 2 === 0) {
          const reply = await adminCall(adminPort, 'POST', '/admin/reload');
          assert.equal(reply.status, 200, reply.body);
          const summary = reply.json as ReloadSummary;
          assert.deepEqual(summary.failed, []);
        } else {
          const res = await runCli(['reload', '--admin', `http://127.0.0.1:${adminPort}`]);
          assert.equal(res.code, 0, `${res.stdout}${res.stderr}`);
          assert.match(res.stdout, /^reloaded: /);
        }
        // The file watcher may have run the reload first: either way it has been applied now.
        answered = version;
        const seen = load.result.total;
        await waitFor(() => load.result.total >= seen + 100 || undefined, 'requests after the reload');
      }
    } finally {
      stop = true;
    }
    const result = await load.done;
    assert.deepEqual(result.errors, []);
    assert.deepEqual(result.non2xx, []);
    assert.deepEqual(result.stale, [], 'no worker routed by an older table once the reload answered');
    assert.deepEqual(
      [...result.versions].sort((a, b) => a - b),
      [1, 2, 3, 4, 5],
      'every generation served (the load went on across the reloads)',
    );
    const current = versionOf((await gw.request({ host: HOST, path: '/version' })).body);
    assert.equal(current.version, String(version));
    await waitFor(() => oldPids.every((pid) => !processAlive(pid)), 'every drained child to stop');
    assert.ok(!oldPids.includes(current.pid));

    // Both workers served the keep-alive clients, and their counters say so.
    const lines = accessLines(gw, from).filter((l) => l.path === '/version');
    assert.deepEqual(workersIn(lines), [1, 2], 'access lines of both workers');
    const workers = await waitFor(
      async () => {
        const list = await workerList(adminPort);
        return list.every((w) => w.requests > 0) ? list : undefined;
      },
      'both workers to count requests',
      5_000,
      100,
    );
    assert.equal(workers.length, WORKERS);
    assert.ok(
      workers.every((w) => w.restarts === 0 && w.state === 'ready'),
      `no worker was replaced: ${JSON.stringify(workers)}`,
    );
  });

  test('status prints the workers table under the apps, with each worker pid, state and requests', async () => {
    const before = await workerList(adminPort);
    const res = await runCli(['status', '--admin', `http://127.0.0.1:${adminPort}`]);
    const after = await workerList(adminPort);
    assert.equal(res.code, 0, res.stderr);
    assert.equal(res.stderr, '');
    const lines = res.stdout.split('\n');
    assert.match(lines[0] as string, /^APP\s/, 'the apps table comes first');
    const at = lines.findIndex((l) => l.startsWith('WORKER'));
    assert.ok(at > 0, `a workers table in\n${res.stdout}`);
    assert.deepEqual((lines[at] as string).split(/\s{2,}/), [
      'WORKER',
      'PID',
      'STATE',
      'MEMORY',
      'UPTIME',
      'RESTARTS',
      'REQUESTS',
    ]);
    const rows = parseTable(lines, at);
    assert.equal(rows.length, WORKERS, res.stdout);
    for (const [i, row] of rows.entries()) {
      const w = before[i] as WorkerJson;
      assert.equal(row.WORKER, String(w.id));
      assert.equal(row.PID, String(w.pid));
      assert.equal(row.STATE, 'ready');
      assert.match(row.MEMORY as string, /^\d+(\.\d)? MB$/);
      assert.match(row.UPTIME as string, /^\d+s$|^\d+m\d\ds$/);
      assert.equal(row.RESTARTS, '0');
      const requests = Number(row.REQUESTS);
      assert.ok(
        requests > 0 && requests >= w.requests && requests <= (after[i] as WorkerJson).requests,
        `worker ${w.id}: ${row.REQUESTS} requests, /admin/workers said ${w.requests}..${(after[i] as WorkerJson).requests}`,
      );
    }
  });

  test('worker metrics: nano_workers_up, nano_worker_restarts_total and nano_worker_rss_bytes per worker', async () => {
    const text = await metricsText(adminPort);
    assert.equal(metric(text, 'nano_workers_up'), WORKERS);
    assert.equal(metric(text, 'nano_worker_restarts_total'), 0);
    assert.match(text, /^# TYPE nano_workers_up gauge$/m);
    assert.match(text, /^# TYPE nano_worker_restarts_total counter$/m);
    const rss = samples(text, 'nano_worker_rss_bytes');
    assert.deepEqual(rss.map((s) => s.labels.worker).sort(), ['1', '2']);
    for (const s of rss) assert.ok(s.value > 0, `worker ${s.labels.worker} RSS ${s.value}`);
  });

  test('an admin call answers only once every worker uses the change: a stopped worker holds the answer', async () => {
    const [w1, w2] = await workerList(adminPort);
    assert.ok(w1 && w2);
    const from = gw.logs.length;
    const probes: Array<Promise<Reply>> = [];
    const replies: Reply[] = [];
    let answered = false;
    let call: Promise<AdminReply> | undefined;
    process.kill(w2.pid, 'SIGSTOP');
    try {
      call = adminCall(adminPort, 'POST', '/admin/apps/web/maintenance', { body: { message: 'held by a test' } });
      call.then(
        () => (answered = true),
        () => (answered = true),
      );
      // Fresh connections, one more each round: the stopped worker can take at most one (it does not
      // accept it), worker 1 the others; worker 1 answers 503 once it uses the change.
      await waitFor(
        () => {
          const probe = gw.request({ host: HOST, path: '/version', timeoutMs: 20_000 });
          probes.push(probe);
          probe.then((r) => replies.push(r)).catch(() => {});
          return replies.some((r) => r.status === 503) || undefined;
        },
        'worker 1 to answer with the maintenance page',
        8_000,
        50,
      );
      assert.equal(answered, false, 'no answer while worker 2 has not taken the change');
    } finally {
      process.kill(w2.pid, 'SIGCONT');
    }
    const reply = await call;
    assert.equal(reply.status, 200, reply.body);
    assert.equal(reply.json.state, 'maintenance');
    assert.ok(
      !gw.logs.slice(from).some((l) => /did not take the new table/.test(String(l.msg))),
      'no worker was left behind',
    );
    for (const r of await Promise.all(probes))
      assert.ok(
        r.status === 200 || (r.status === 503 && r.body.includes('held by a test')),
        `the old answer or the maintenance page, got ${r.status} ${r.body}`,
      );
    // Once it answered, every worker uses it.
    for (let i = 0; i < 4; i++) assert.equal((await gw.request({ host: HOST, path: `/maint/${i}` })).status, 503);
    assert.deepEqual(workersIn(await accessOf(gw, 'maint', 4)), [1, 2]);
    const resumed = await adminCall(adminPort, 'POST', '/admin/apps/web/resume');
    assert.equal(resumed.status, 200, resumed.body);
    await freshRequests(gw, 'resumed', 4);
    const workers = await workerList(adminPort);
    assert.deepEqual(
      workers.map((w) => [w.pid, w.restarts]),
      [
        [w1.pid, 0],
        [w2.pid, 0],
      ],
      'the stopped worker was not replaced',
    );
  });

  test('workers = 3 in a reload: a warning naming workers, and the same 2 workers keep serving', async () => {
    const before = await workerList(adminPort);
    const from = gw.logs.length;
    version++;
    gw.writeConfig(config(version, { workers: 3 }));
    const reply = await adminCall(adminPort, 'POST', '/admin/reload');
    assert.equal(reply.status, 200, reply.body);
    const warned = gw.logs
      .slice(from)
      .filter((l) => String(l.msg).includes(`[gateway] workers changed from ${WORKERS} to 3: restart the gateway`));
    assert.equal(warned.length, 1, 'one warning');
    assert.equal(warned[0]?.level, 40, 'at level warn');
    const after = await workerList(adminPort);
    assert.deepEqual(
      after.map((w) => [w.id, w.pid, w.state]),
      before.map((w) => [w.id, w.pid, 'ready']),
      'the same two workers',
    );
    assert.equal(metric(await metricsText(adminPort), 'nano_workers_up'), WORKERS);
    // The rest of the reload applied: the new version serves, on both workers.
    await freshRequests(gw, 'after-workers-change', 6);
    const lines = await accessOf(gw, 'after-workers-change', 6);
    assert.deepEqual(workersIn(lines), [1, 2]);
    const served = versionOf((await gw.request({ host: HOST, path: '/version' })).body);
    assert.equal(served.version, String(version));
  });
});

describe('workers = 2: a worker killed with SIGKILL', () => {
  let gw: GatewayProcess;
  let adminPort: number;

  before(async () => {
    gw = await GatewayProcess.start({ config: config(1) });
    adminPort = await gw.adminPort();
  });
  after(async () => {
    await gw?.cleanup();
  });

  test('under keep-alive load: replaced in its slot, at most the in-flight requests fail, service goes on', async () => {
    const CLIENTS = 8;
    const workers = await workerList(adminPort);
    const victim = workers[0] as WorkerJson;
    const other = workers[1] as WorkerJson;
    let stop = false;
    // A connection node:cluster handed to the worker just before it died is neither answered nor closed:
    // it fails by the client's timeout only, kept short here so that it does not hold the test up.
    const load = keepAliveLoad(gw.port, CLIENTS, () => stop, undefined, 5_000);
    let replacedAt = 0;
    try {
      await waitFor(() => load.result.total >= 300 || undefined, 'the load to get going');
      // Both workers hold some of the clients' connections.
      await waitFor(
        () => workersIn(accessLines(gw).filter((l) => l.path === '/version')).length === WORKERS || undefined,
        'access lines of both workers',
      );
      process.kill(victim.pid, 'SIGKILL');
      const exited = await gw.waitForLog(
        (l) => l.msg === `proxy worker ${victim.id} (pid ${victim.pid}) exited (SIGKILL): replacing it`,
      );
      assert.equal(exited.level, 40);
      const replaced = await gw.waitForLog((l) => /^proxy worker \d+ replaced \(pid \d+\)$/.test(String(l.msg)));
      replacedAt = gw.logs.indexOf(replaced);
      assert.equal(replaced.msg, `proxy worker ${victim.id} replaced (pid ${replaced.pid})`);
      assert.notEqual(replaced.pid, victim.pid);
      const seen = load.result.total;
      await waitFor(() => load.result.total >= seen + 300 || undefined, 'the load to go on after the replacement');
    } finally {
      stop = true;
    }
    const result = await load.done;
    assert.deepEqual(result.non2xx, []);
    assert.ok(
      result.errors.length <= CLIENTS,
      `at most one failure per client connection on the dead worker, got ${result.errors.length}: ${result.errors.join('; ')}`,
    );
    assert.ok(!processAlive(victim.pid), 'the killed worker is gone');

    const now = await workerList(adminPort);
    assert.equal(now.length, WORKERS);
    const slot = now.find((w) => w.id === victim.id) as WorkerJson;
    assert.notEqual(slot.pid, victim.pid, 'a new process in the slot');
    assert.ok(processAlive(slot.pid));
    assert.ok(childPidsOf(gw.pid).includes(slot.pid), 'the replacement is a child of the primary');
    assert.equal(slot.state, 'ready');
    assert.equal(slot.restarts, 1);
    const kept = now.find((w) => w.id === other.id) as WorkerJson;
    assert.equal(kept.pid, other.pid, 'the other worker was not touched');
    assert.equal(kept.restarts, 0);
    const text = await metricsText(adminPort);
    assert.equal(metric(text, 'nano_worker_restarts_total'), 1);
    assert.equal(metric(text, 'nano_workers_up'), WORKERS);

    // New connections reach both workers, the replacement included.
    await freshRequests(gw, 'after-kill', 8);
    const lines = (await accessOf(gw, 'after-kill', 8)).filter((l) => gw.logs.indexOf(l) > replacedAt);
    assert.equal(lines.length, 8);
    assert.deepEqual(workersIn(lines), [1, 2], 'the replacement serves too');
  });
});

describe('workers = 2: counters are summed over the workers', () => {
  let gw: GatewayProcess;
  let adminPort: number;
  const N = 50;

  before(async () => {
    gw = await GatewayProcess.start({ config: config(1, { extra: fixtureApp('metered', ['metered.test']) }) });
    adminPort = await gw.adminPort();
  });
  after(async () => {
    await gw?.cleanup();
  });

  const requestsTotal = async (): Promise<number> => {
    const reply = await adminCall(adminPort, 'GET', '/admin/apps/metered');
    assert.equal(reply.status, 200, reply.body);
    return reply.json.requests_total as number;
  };
  const twoXx = async (): Promise<number> =>
    metric(await metricsText(adminPort), 'nano_requests_total', { app: 'metered', class: '2xx' }) ?? 0;

  test(`${N} requests on fresh connections: nano_requests_total, requests_total and the access log all say ${N}`, async () => {
    await freshRequests(gw, 'metered', N, 'metered.test');
    const counted = await waitFor(
      async () => {
        const v = await twoXx();
        return v >= N ? v : undefined;
      },
      `nano_requests_total{app="metered",class="2xx"} to reach ${N}`,
      5_000,
      100,
    );
    assert.equal(counted, N);
    const total = await waitFor(
      async () => {
        const v = await requestsTotal();
        return v >= N ? v : undefined;
      },
      `requests_total to reach ${N}`,
      5_000,
      100,
    );
    assert.equal(total, N);
    const lines = await waitFor(() => {
      const found = accessLines(gw).filter((l) => String(l.path).startsWith('/metered/'));
      return found.length >= N ? found : undefined;
    }, `${N} access lines`);
    assert.equal(lines.length, N, 'exactly one access line per request');
    assert.equal(new Set(lines.map((l) => l.path)).size, N);
    for (const l of lines) {
      assert.equal(l.app, 'metered');
      assert.equal(l.status, 200);
    }
    const perWorker = workersIn(lines).map((id) => lines.filter((l) => l.worker === id).length);
    assert.deepEqual(workersIn(lines), [1, 2], 'both workers served some');
    // Every access line is one request: none is counted twice, none is lost in the sums.
    assert.equal(
      perWorker.reduce((a, b) => a + b, 0),
      N,
    );
    const workers = await waitFor(
      async () => {
        const list = await workerList(adminPort);
        return list.every((w) => w.requests >= (perWorker[w.id - 1] ?? 0)) ? list : undefined;
      },
      'each worker to count what it served',
      5_000,
      100,
    );
    for (const w of workers) assert.equal(w.requests, perWorker[w.id - 1], `worker ${w.id} requests`);
  });

  test('the counters of a worker that died stay in the sums', async () => {
    const [victim] = await workerList(adminPort);
    assert.ok(victim && victim.requests > 0);
    process.kill(victim.pid, 'SIGKILL');
    await gw.waitForLog((l) => l.msg === `proxy worker ${victim.id} replaced (pid ${l.pid})`);
    assert.equal(await twoXx(), N);
    assert.equal(await requestsTotal(), N);
    // And new requests add to them, whichever worker takes them.
    await freshRequests(gw, 'metered-after', 4, 'metered.test');
    await waitFor(async () => ((await twoXx()) >= N + 4 ? true : undefined), 'the sums to go on', 5_000, 100);
    assert.equal(await twoXx(), N + 4);
  });
});

describe('workers = 2: stopping', () => {
  test('SIGTERM with slow requests in flight on both workers: listeners close, every request completes, exit 0', async () => {
    const gw = await GatewayProcess.start({ config: config(1) });
    try {
      const adminPort = await gw.adminPort();
      const workerPids = (await workerList(adminPort)).map((w) => w.pid);
      const children = childPidsOf(gw.pid).filter((pid) => !workerPids.includes(pid));
      assert.equal(children.length, 1, 'one app child');
      // One connection each, opened one after the other: the workers take them in turn.
      const SLOW = 8;
      const slow = Array.from({ length: SLOW }, (_, i) =>
        gw.request({ host: HOST, path: `/slow?ms=3500&n=${i}`, timeoutMs: 20_000 }),
      );
      let settled = 0;
      for (const p of slow)
        p.then(
          () => settled++,
          () => settled++,
        );
      await waitFor(async () => {
        const r = await gw.request({ host: HOST, path: '/inflight' });
        return (JSON.parse(r.body) as { inFlight: number }).inFlight >= SLOW + 1 || undefined;
      }, 'the slow requests to be in flight');
      gw.proc.kill('SIGTERM');
      await gw.waitForLog((l) => l.msg === 'shutting down: finishing in-flight requests');
      const refused = await waitFor(
        async () => (!gw.running ? 'exited' : (await canConnect(gw.port)) ? undefined : 'refused'),
        'the listeners to close',
      );
      assert.equal(refused, 'refused', 'new connections are refused while the requests finish');
      assert.equal(settled, 0, 'the in-flight requests were still running when the listeners closed');
      const replies = await Promise.all(slow);
      for (const res of replies) {
        assert.equal(res.status, 200, res.body);
        assert.equal(JSON.parse(res.body).slept, 3500);
      }
      const exit = await gw.exit;
      assert.deepEqual(exit, { code: 0, signal: null });
      const lines = accessLines(gw).filter((l) => String(l.path).startsWith('/slow?'));
      assert.equal(lines.length, SLOW, 'an access line for each slow request');
      assert.deepEqual(workersIn(lines), [1, 2], 'both workers had slow requests in flight');
      for (const l of lines) assert.equal(l.status, 200);
      await waitFor(
        () => [...workerPids, ...children].every((pid) => !processAlive(pid)),
        'workers and children to be gone',
      );
    } finally {
      await gw.cleanup();
    }
  });

  test('SIGTERM while a replacement worker starts: it never serves and the exit does not wait out drain_timeout_ms', async () => {
    // drain_timeout_ms far above the test's timeout: a worker left running would hold the exit that long.
    const gw = await GatewayProcess.start({
      config: config(1).replace('workers = 2', 'workers = 2\ndrain_timeout_ms = 120000'),
    });
    try {
      const adminPort = await gw.adminPort();
      const [first] = await workerList(adminPort);
      assert.ok(first);
      process.kill(first.pid, 'SIGKILL');
      // Stopped while the replacement loads, before it says hello: the case a stop used to miss.
      await waitFor(
        async () => (await workerList(adminPort)).some((w) => w.state === 'starting') || undefined,
        'the replacement worker to be starting',
      );
      gw.proc.kill('SIGTERM');
      const exit = await gw.exit;
      assert.deepEqual(exit, { code: 0, signal: null });
      const stopAt = gw.logs.findIndex((l) => l.msg === 'shutting down: finishing in-flight requests');
      assert.ok(stopAt >= 0);
      const after = gw.logs.slice(stopAt).map((l) => String(l.msg));
      assert.ok(
        !after.some((m) => /replaced|did not start/.test(m)),
        `no worker started after the stop:\n${after.join('\n')}`,
      );
    } finally {
      await gw.cleanup();
    }
  });

  test('SIGKILL of the primary: every worker and every app child exits', async () => {
    const gw = await GatewayProcess.start({ config: config(1, { app: 'instances = 2' }), readyApps: { web: 2 } });
    try {
      const adminPort = await gw.adminPort();
      const workerPids = (await workerList(adminPort)).map((w) => w.pid);
      const appPids = gw.readyPids('web');
      const children = childPidsOf(gw.pid);
      assert.equal(workerPids.length, WORKERS);
      assert.equal(appPids.length, 2);
      assert.deepEqual([...children].sort(), [...workerPids, ...appPids].sort(), 'the workers and the app children');
      await gw.kill();
      await waitFor(
        () => children.every((pid) => !processAlive(pid)),
        `workers ${workerPids} and children ${appPids} to exit after the primary died`,
        10_000,
      );
    } finally {
      await gw.cleanup();
    }
  });
});

describe('workers = 1', () => {
  test('no workers: GET /admin/workers is [], no worker metrics, no workers table in status', async () => {
    const gw = await GatewayProcess.start({ config: config(1, { workers: 1 }) });
    try {
      const adminPort = await gw.adminPort();
      const reply = await adminCall(adminPort, 'GET', '/admin/workers');
      assert.equal(reply.status, 200, reply.body);
      assert.deepEqual(reply.json, { workers: [] });
      assert.equal((await gw.request({ host: HOST, path: '/one' })).status, 200);
      const text = await waitFor(async () => {
        const t = await metricsText(adminPort);
        return (metric(t, 'nano_requests_total', { app: 'web', class: '2xx' }) ?? 0) >= 1 ? t : undefined;
      }, 'the request to be counted');
      for (const name of ['nano_workers_up', 'nano_worker_restarts_total', 'nano_worker_rss_bytes'])
        assert.ok(!text.includes(name), `no ${name} with workers = 1`);
      const res = await runCli(['status', '--admin', `http://127.0.0.1:${adminPort}`]);
      assert.equal(res.code, 0, res.stderr);
      assert.match(res.stdout, /^APP\s/);
      assert.ok(!/^WORKER/m.test(res.stdout), `no workers table in\n${res.stdout}`);
      // The gateway serves in one process: its only child is the app's.
      assert.deepEqual(childPidsOf(gw.pid), gw.readyPids('web'));
    } finally {
      await gw.cleanup();
    }
  });
});
