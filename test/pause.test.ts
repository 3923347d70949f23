/**
 * Pause and maintenance (SPEC §12, README "Pause and maintenance"), black-box
 * against the real CLI: held requests go on in arrival order after resume,
 * in-flight requests finish, a pause times out into 503, maintenance answers
 * 503 with Retry-After: 30 and the (escaped) message, holds survive reloads,
 * and the admin API and `nano-gateway pause|resume|maintenance` behave.
 */
import assert from 'node:assert/strict';
import http from 'node:http';
import { after, afterEach, before, describe, test } from 'node:test';
import {
  type AdminReply,
  adminCall,
  adminGatewaySection,
  fixtureApp,
  freePort,
  GatewayProcess,
  type Reply,
  type RunResult,
  rawRequest,
  request,
  runCli,
  statusOf,
  versionOf,
  waitFor,
} from './helpers.js';

delete process.env.NANO_ADMIN_TOKEN;

/**
 * An app that records the order in which it receives requests (their `?n=`)
 * and serves that order on /order (then forgets it with ?clear): the fixture counts per path but keeps no order.
 */
const ORDER_APP = `import http from 'node:http';
const seen = [];
const server = http.createServer((req, res) => {
  const url = new URL(req.url, 'http://x');
  if (url.pathname === '/health') {
    res.end('ok');
    return;
  }
  if (url.pathname === '/order') {
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify(seen));
    if (url.searchParams.has('clear')) seen.length = 0;
    return;
  }
  const n = url.searchParams.get('n');
  seen.push(n);
  res.writeHead(200, { 'content-type': 'text/plain' });
  res.end(\`\${process.env.VERSION ?? '-'} \${process.pid} \${n}\`);
});
server.listen(Number(process.env.PORT), process.env.HOST);
process.on('SIGTERM', () => {
  server.close(() => process.exit(0));
  server.closeIdleConnections();
  setTimeout(() => process.exit(0), 2000).unref();
});
`;

function orderApp(name: string, hosts: string[]): string {
  return `[apps.${name}]
hosts = ${JSON.stringify(hosts)}
entry = "order.mjs"
health_path = "/health"
ready_timeout_ms = 8000
`;
}

/** A request that the test can tell has been taken in by the gateway (and so queued) before it is answered. */
interface HeldRequest {
  /** Resolves once the gateway has parsed the request and handed it to its dispatch (its `100 Continue`). */
  accepted: Promise<void>;
  reply: Promise<Reply>;
  answered(): boolean;
}

/**
 * GET with `Expect: 100-continue`: Node's server answers `100 Continue`
 * right before it emits 'request', and the gateway dispatches (queues) a
 * request synchronously in that handler. So once the client has its 100,
 * the request is in the queue, and any request sent after it arrives later.
 */
function heldRequest(port: number, host: string, path: string, headers: Record<string, string> = {}): HeldRequest {
  let answered = false;
  let onContinue: () => void = () => {};
  const accepted = new Promise<void>((resolve) => {
    onContinue = resolve;
  });
  const reply = new Promise<Reply>((resolve, reject) => {
    const req = http.request(
      {
        host: '127.0.0.1',
        port,
        path,
        method: 'GET',
        agent: false,
        headers: { host, expect: '100-continue', ...headers },
      },
      (res) => {
        answered = true;
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          const raw = Buffer.concat(chunks);
          resolve({ status: res.statusCode ?? 0, headers: res.headers, body: raw.toString('utf8'), raw });
        });
        res.on('error', reject);
      },
    );
    req.once('continue', () => onContinue());
    req.setTimeout(30_000, () => req.destroy(new Error('client timeout')));
    req.on('error', reject);
    req.end();
  });
  // Awaited later; a test that fails before then must not leave an unhandled rejection behind.
  reply.catch(() => {});
  return { accepted, reply, answered: () => answered };
}

/** Waits until the gateway has queued the request; fails if it was answered instead. */
async function queued(held: HeldRequest, what: string): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  try {
    await Promise.race([
      held.accepted,
      held.reply.then((r) => {
        throw new Error(`${what} was answered (${r.status} ${r.body.trim()}) instead of being held`);
      }),
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`${what} was not taken in by the gateway within 10 s`)), 10_000);
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

/** A /gate request of the fixture: `started` once its first chunk arrived (it is in flight at the child). */
function openGate(port: number, host: string, id: string): { started: Promise<void>; reply: Promise<Reply> } {
  let onStart: () => void = () => {};
  const started = new Promise<void>((resolve) => {
    onStart = resolve;
  });
  const reply = new Promise<Reply>((resolve, reject) => {
    const req = http.request(
      { host: '127.0.0.1', port, path: `/gate?id=${id}`, agent: false, headers: { host } },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => {
          chunks.push(c);
          onStart();
        });
        res.on('end', () => {
          const raw = Buffer.concat(chunks);
          resolve({ status: res.statusCode ?? 0, headers: res.headers, body: raw.toString('utf8'), raw });
        });
        res.on('error', reject);
      },
    );
    req.setTimeout(30_000, () => req.destroy(new Error('client timeout')));
    req.on('error', reject);
    req.end();
  });
  reply.catch(() => {});
  return { started, reply };
}

async function appJson(port: number, name: string): Promise<any> {
  const res = await adminCall(port, 'GET', `/admin/apps/${name}`);
  assert.equal(res.status, 200, res.body);
  return res.json;
}

async function stateOf(port: number, name: string): Promise<string> {
  return (await appJson(port, name)).state;
}

/** The loopback port of the app's (single) child, to reach it around the gateway. */
async function childPort(port: number, name: string): Promise<number> {
  const app = await appJson(port, name);
  const ready = app.instances.filter((i: { state: string }) => i.state === 'ready');
  assert.equal(ready.length, 1, JSON.stringify(app));
  return ready[0].port as number;
}

function assertOk(res: AdminReply, state: string): void {
  assert.equal(res.status, 200, res.body);
  assert.equal(res.json.state, state, res.body);
}

function assertError(res: AdminReply, status: number): void {
  assert.equal(res.status, status, `expected ${status}, got ${res.status}: ${res.body}`);
  assert.equal(typeof res.json?.error?.message, 'string', res.body);
  assert.ok(res.json.error.message.length > 0);
}

/** stderr is exactly one non-empty line; stdout is empty. */
function assertOneErrorLine(res: RunResult): void {
  assert.equal(res.stdout, '', `stdout: ${JSON.stringify(res.stdout)}`);
  assert.ok(res.stderr.endsWith('\n'), `stderr ends with a newline: ${JSON.stringify(res.stderr)}`);
  const lines = res.stderr.slice(0, -1).split('\n');
  assert.equal(lines.length, 1, `stderr is one line: ${JSON.stringify(res.stderr)}`);
  assert.ok((lines[0] as string).trim().length > 0);
}

/** stdout is exactly one non-empty line containing `text`; stderr is empty. */
function assertOneOutputLine(res: RunResult, text: string): void {
  assert.equal(res.code, 0, `exit ${res.code}; stderr: ${res.stderr}`);
  assert.equal(res.stderr, '');
  assert.ok(res.stdout.endsWith('\n'), JSON.stringify(res.stdout));
  assert.equal(res.stdout.slice(0, -1).split('\n').length, 1, JSON.stringify(res.stdout));
  assert.ok(res.stdout.includes(text), `${JSON.stringify(res.stdout)} names ${text}`);
}

/**
 * Pauses `ord`, holds 10 requests one after another, resumes: all answered,
 * each with its own answer, and the child got them in arrival order.
 */
async function assertHeldInArrivalOrder(gw: GatewayProcess, admin: number, slack = 0): Promise<void> {
  const child = await childPort(admin, 'ord');
  await request(child, { path: '/order?clear' });
  assertOk(await adminCall(admin, 'POST', '/admin/apps/ord/pause'), 'paused');
  const held: HeldRequest[] = [];
  for (let i = 0; i < 10; i++) {
    const h = heldRequest(gw.port, 'ord.test', `/?n=${i}`);
    await queued(h, `request ${i}`);
    held.push(h);
  }
  assert.equal(await stateOf(admin, 'ord'), 'paused');
  assert.deepEqual(
    held.map((h) => h.answered()),
    new Array(10).fill(false),
    'no request is answered while paused',
  );
  const seenWhilePaused = JSON.parse((await request(child, { path: '/order' })).body);
  assert.deepEqual(seenWhilePaused, [], 'the child saw none of them while paused');

  assertOk(await adminCall(admin, 'POST', '/admin/apps/ord/resume'), 'ready');
  const replies = await Promise.all(held.map((h) => h.reply));
  replies.forEach((r, i) => {
    assert.equal(r.status, 200, `request ${i}: ${r.status} ${r.body}`);
    assert.equal(r.body.split(' ')[2], String(i), `request ${i} got its own answer: ${r.body}`);
  });
  const order = JSON.parse((await request(child, { path: '/order' })).body) as string[];
  const arrival = held.map((_, i) => String(i));
  if (slack === 0) assert.deepEqual(order, arrival, 'the child got them in the order they arrived');
  else {
    assert.deepEqual([...order].sort(), [...arrival].sort(), 'the child got each once');
    for (const [place, n] of order.entries()) {
      assert.ok(
        Math.abs(Number(n) - place) <= slack,
        `request ${n} reached the child in place ${place}, more than ${slack} from its arrival: ${order.join(',')}`,
      );
    }
  }
  assert.equal(await stateOf(admin, 'ord'), 'ready');
}

describe('pause and resume (long queue timeout)', () => {
  let gw: GatewayProcess;
  let admin: number;
  const base = (version: string): string =>
    adminGatewaySection('queue_timeout_ms = 20000') +
    orderApp('ord', ['ord.test']) +
    fixtureApp('web', ['web.test'], `env = { VERSION = "${version}" }`);

  before(async () => {
    gw = await GatewayProcess.start({ config: base('1'), files: { 'order.mjs': ORDER_APP } });
    admin = await gw.adminPort();
  });
  // A test that fails half-way must not leave an app held for the next one.
  afterEach(async () => {
    if (!gw?.running) return;
    for (const name of ['ord', 'web']) await adminCall(admin, 'POST', `/admin/apps/${name}/resume`);
  });
  after(async () => {
    await gw?.cleanup();
  });

  test('requests sent while paused are held, then all served after resume, in arrival order', async () => {
    await assertHeldInArrivalOrder(gw, admin);
  });

  test('a request in flight when the pause begins finishes normally while paused', async () => {
    const before = versionOf((await gw.request({ host: 'web.test', path: '/version' })).body);
    const child = await childPort(admin, 'web');
    const gate = openGate(gw.port, 'web.test', 'inflight');
    await gate.started;
    assertOk(await adminCall(admin, 'POST', '/admin/apps/web/pause'), 'paused');
    const later = heldRequest(gw.port, 'web.test', '/version');
    await queued(later, 'a request sent after the pause');

    const release = await request(child, { path: '/release?id=inflight' });
    assert.equal(release.status, 200, release.body);
    const done = await gate.reply;
    assert.equal(done.status, 200);
    assert.equal(done.body, 'first inflight\nlast inflight\n', 'the in-flight response completed');
    assert.equal(await stateOf(admin, 'web'), 'paused', 'still paused');
    assert.equal(later.answered(), false, 'the request sent after the pause is still held');

    assertOk(await adminCall(admin, 'POST', '/admin/apps/web/resume'), 'ready');
    const res = await later.reply;
    assert.equal(res.status, 200, res.body);
    assert.equal(versionOf(res.body).pid, before.pid, 'served by the same child: a pause stops nothing');
  });

  test('requests held by a pause get the maintenance answer when maintenance starts', async () => {
    assertOk(await adminCall(admin, 'POST', '/admin/apps/web/pause'), 'paused');
    const h = heldRequest(gw.port, 'web.test', '/version');
    await queued(h, 'a held request');
    assertOk(
      await adminCall(admin, 'POST', '/admin/apps/web/maintenance', { body: { message: 'migrating' } }),
      'maintenance',
    );
    const res = await h.reply;
    assert.equal(res.status, 503, res.body);
    assert.equal(res.headers['retry-after'], '30');
    assert.equal(res.body.trim(), 'migrating');
    assertOk(await adminCall(admin, 'POST', '/admin/apps/web/resume'), 'ready');
    assert.equal((await gw.request({ host: 'web.test', path: '/version' })).status, 200);
  });

  test('pause and maintenance survive a reload that changes the app; held requests go to the new version', async () => {
    const oldPid = versionOf((await gw.request({ host: 'web.test', path: '/version' })).body).pid;
    const readyBefore = gw.readyPids('web').length;
    const reloadsBefore = gw.reloadsEnded().length;
    assertOk(await adminCall(admin, 'POST', '/admin/apps/web/pause'), 'paused');
    const early = heldRequest(gw.port, 'web.test', '/version');
    await queued(early, 'a request held before the reload');

    gw.writeConfig(base('2'));
    const reload = await gw.waitForReloads(reloadsBefore + 1);
    assert.deepEqual(reload.failed ?? [], [], JSON.stringify(reload));
    await waitFor(() => gw.readyPids('web').length > readyBefore || undefined, 'the new child of web');
    const newPid = gw.readyPids('web').at(-1) as number;
    assert.notEqual(newPid, oldPid);
    assert.equal(await stateOf(admin, 'web'), 'paused', 'the pause holds across the reload');
    assert.equal(early.answered(), false, 'the request held before the reload is still held');
    const late = heldRequest(gw.port, 'web.test', '/version');
    await queued(late, 'a request sent after the reload');

    assertOk(await adminCall(admin, 'POST', '/admin/apps/web/resume'), 'ready');
    for (const [what, h] of [
      ['held before the reload', early],
      ['held after the reload', late],
    ] as const) {
      const res = await h.reply;
      assert.equal(res.status, 200, `${what}: ${res.body}`);
      assert.deepEqual(versionOf(res.body), { version: '2', pid: newPid }, `${what}: served by the new version`);
    }

    // Maintenance holds across a reload too.
    assertOk(
      await adminCall(admin, 'POST', '/admin/apps/web/maintenance', { body: { message: 'upgrade' } }),
      'maintenance',
    );
    gw.writeConfig(base('3'));
    await gw.waitForReloads(reloadsBefore + 2);
    await waitFor(() => gw.readyPids('web').length > readyBefore + 1 || undefined, 'the third child of web');
    assert.equal(await stateOf(admin, 'web'), 'maintenance', 'maintenance holds across the reload');
    const during = await gw.request({ host: 'web.test', path: '/version' });
    assert.equal(during.status, 503);
    assert.equal(during.body.trim(), 'upgrade');
    assertOk(await adminCall(admin, 'POST', '/admin/apps/web/resume'), 'ready');
    const after = await gw.request({ host: 'web.test', path: '/version' });
    assert.equal(after.status, 200);
    assert.deepEqual(versionOf(after.body), { version: '3', pid: gw.readyPids('web').at(-1) as number });
  });
});

describe('pause and resume with workers = 2', () => {
  test('requests held by both workers go on in one arrival order across them', async () => {
    const gw = await GatewayProcess.start({
      config: adminGatewaySection('queue_timeout_ms = 20000\nworkers = 2') + orderApp('ord', ['ord.test']),
      files: { 'order.mjs': ORDER_APP },
    });
    try {
      const admin = await gw.adminPort();
      // Warm both workers first: a worker's first request runs cold code for milliseconds after its
      // 100 Continue, and the next request, in the other worker, could come to the gateway first.
      for (let i = 0; i < 20; i++)
        await gw.request({ host: 'ord.test', path: '/warm', headers: { connection: 'close' } });
      // Each worker holds its own share; without the ordered release they reach the child interleaved.
      // Sent on in arrival order across the workers; over separate connections two neighbours may still
      // reach the child swapped (README, Workers: pause and resume). Each worker releasing its own share
      // at once, as before, puts them 4 and more places out.
      for (let round = 0; round < 3; round++) await assertHeldInArrivalOrder(gw, admin, 1);
      const workers = await waitFor(() => {
        const seen = new Set(
          gw.logs.filter((l) => l.kind === 'access' && String(l.path).startsWith('/?n=')).map((l) => l.worker),
        );
        return seen.size === 2 ? seen : undefined;
      }, 'access lines of held requests from both workers');
      assert.deepEqual([...workers].sort(), [1, 2]);
    } finally {
      await gw.cleanup();
    }
  });
});

describe('pause timeout, maintenance, admin errors and the CLI (queue_timeout_ms = 800)', () => {
  let gw: GatewayProcess;
  let admin: number;
  const config = adminGatewaySection('queue_timeout_ms = 800') + fixtureApp('web', ['web.test']);

  before(async () => {
    gw = await GatewayProcess.start({ config });
    admin = await gw.adminPort();
  });
  // A test that fails half-way must not leave web held for the next one.
  afterEach(async () => {
    if (gw?.running) await adminCall(admin, 'POST', '/admin/apps/web/resume');
  });
  after(async () => {
    await gw?.cleanup();
  });

  test('a request held past queue_timeout_ms gets 503 with Retry-After', async () => {
    assertOk(await adminCall(admin, 'POST', '/admin/apps/web/pause'), 'paused');
    try {
      const res = await gw.request({ host: 'web.test', path: '/version' });
      assert.equal(res.status, 503, res.body);
      assert.equal(res.headers['retry-after'], '2');
      assert.match(res.body, /web/);
      assert.match(res.body, /paused/);
      assert.equal(await stateOf(admin, 'web'), 'paused');
    } finally {
      assertOk(await adminCall(admin, 'POST', '/admin/apps/web/resume'), 'ready');
    }
    assert.equal((await gw.request({ host: 'web.test', path: '/version' })).status, 200);
  });

  test('maintenance: 503, Retry-After: 30, an escaped HTML page for browsers, plain text otherwise; resume restores service', async () => {
    const child = await childPort(admin, 'web');
    const pid = versionOf((await gw.request({ host: 'web.test', path: '/version' })).body).pid;
    const message = 'Back <b>soon</b> & "later"';
    assertOk(await adminCall(admin, 'POST', '/admin/apps/web/maintenance', { body: { message } }), 'maintenance');
    assert.equal(await stateOf(admin, 'web'), 'maintenance');

    const html = await gw.request({
      host: 'web.test',
      path: '/maint-probe',
      headers: { accept: 'text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8' },
    });
    assert.equal(html.status, 503);
    assert.equal(html.headers['retry-after'], '30');
    assert.match(String(html.headers['content-type']), /^text\/html/);
    assert.ok(html.body.includes('Back &lt;b&gt;soon&lt;/b&gt; &amp; &quot;later&quot;'), html.body);
    assert.ok(!html.body.includes('<b>'), `the message is escaped: ${html.body}`);

    for (const accept of [undefined, 'application/json', '*/*']) {
      const res = await gw.request({
        host: 'web.test',
        path: '/maint-probe',
        ...(accept ? { headers: { accept } } : {}),
      });
      assert.equal(res.status, 503, `Accept ${accept}`);
      assert.equal(res.headers['retry-after'], '30', `Accept ${accept}`);
      assert.match(String(res.headers['content-type']), /^text\/plain/, `Accept ${accept}`);
      assert.equal(res.body.trim(), message, `Accept ${accept}: the message as plain text`);
    }

    // A WebSocket upgrade is refused the same way.
    const ws = await rawRequest(
      gw.port,
      'GET /ws HTTP/1.1\r\nHost: web.test\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n' +
        'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n',
    );
    assert.equal(statusOf(ws), 503, ws);
    assert.match(ws, /\r\nretry-after: 30\r\n/i);

    const counts = JSON.parse((await request(child, { path: '/counts' })).body);
    assert.equal(counts['/maint-probe'], undefined, 'the child saw none of the requests');

    // Without a body (and with an empty object): the default message.
    for (const body of [undefined, {}]) {
      assertOk(await adminCall(admin, 'POST', '/admin/apps/web/maintenance', body ? { body } : {}), 'maintenance');
      const plain = await gw.request({ host: 'web.test', path: '/version' });
      assert.equal(plain.status, 503);
      assert.equal(plain.body.trim(), 'web is down for maintenance', `body ${JSON.stringify(body)}`);
      const page = await gw.request({ host: 'web.test', path: '/version', headers: { accept: 'text/html' } });
      assert.equal(page.status, 503);
      assert.ok(page.body.includes('web is down for maintenance'), page.body);
    }

    assertOk(await adminCall(admin, 'POST', '/admin/apps/web/resume'), 'ready');
    const back = await gw.request({ host: 'web.test', path: '/version' });
    assert.equal(back.status, 200, back.body);
    assert.equal(versionOf(back.body).pid, pid, 'the same child serves again');
    assert.equal(await stateOf(admin, 'web'), 'ready');
    // Resume of a serving app changes nothing.
    assertOk(await adminCall(admin, 'POST', '/admin/apps/web/resume'), 'ready');
  });

  test('admin errors: 404 unknown app, 400 bad message, 405 wrong method', async () => {
    for (const action of ['pause', 'resume', 'maintenance']) {
      assertError(await adminCall(admin, 'POST', `/admin/apps/nope/${action}`), 404);
      assertError(await adminCall(admin, 'GET', `/admin/apps/web/${action}`), 405);
    }
    for (const body of [
      { message: 5 },
      { message: '' },
      { message: null },
      { message: 'x'.repeat(2001) },
      [1],
      'nope',
    ]) {
      const res = await adminCall(admin, 'POST', '/admin/apps/web/maintenance', { body });
      assertError(res, 400);
    }
    assert.equal(await stateOf(admin, 'web'), 'ready', 'a refused maintenance changes nothing');
    assert.equal((await gw.request({ host: 'web.test', path: '/version' })).status, 200);
  });

  test('CLI: pause, maintenance --message and resume exit 0 with one line, and take effect', async () => {
    const url = `http://127.0.0.1:${admin}`;
    const pause = await runCli(['pause', 'web', '--admin', url]);
    assertOneOutputLine(pause, 'web');
    assert.equal(await stateOf(admin, 'web'), 'paused');

    const maint = await runCli(['maintenance', 'web', '--message', 'Back at 14:00 UTC', '--admin', url]);
    assertOneOutputLine(maint, 'web');
    assert.equal(await stateOf(admin, 'web'), 'maintenance');
    const res = await gw.request({ host: 'web.test', path: '/version' });
    assert.equal(res.status, 503);
    assert.equal(res.body.trim(), 'Back at 14:00 UTC');

    const resume = await runCli(['resume', 'web', '--admin', url]);
    assertOneOutputLine(resume, 'web');
    assert.equal(await stateOf(admin, 'web'), 'ready');
    assert.equal((await gw.request({ host: 'web.test', path: '/version' })).status, 200);
  });

  test('CLI failures: unknown app and no gateway exit 1 with one line on stderr; usage errors exit 2', async () => {
    const url = `http://127.0.0.1:${admin}`;
    for (const command of ['pause', 'resume', 'maintenance']) {
      const unknown = await runCli([command, 'nope', '--admin', url]);
      assert.equal(unknown.code, 1, `${command} nope: ${unknown.stderr}`);
      assertOneErrorLine(unknown);
      assert.match(unknown.stderr, /nope/);
    }
    const free = await freePort();
    const none = await runCli(['pause', 'web', '--admin', `http://127.0.0.1:${free}`]);
    assert.equal(none.code, 1, none.stderr);
    assertOneErrorLine(none);

    for (const args of [['pause'], ['resume'], ['maintenance'], ['pause', 'web', '--message', 'x']]) {
      const usage = await runCli([...args, '--admin', url]);
      assert.equal(usage.code, 2, `${args.join(' ')}: ${usage.stderr}`);
      assert.ok(usage.stderr.trim().length > 0);
    }
    assert.equal(await stateOf(admin, 'web'), 'ready', 'the failed commands changed nothing');
  });

  test('409 for an app whose start failed', async () => {
    const reloads = gw.reloadsEnded().length;
    gw.writeConfig(config + fixtureApp('bad', ['bad.test'], 'env = { EXIT_AT_START = "1" }\nready_timeout_ms = 1500'));
    const done = await gw.waitForReloads(reloads + 1);
    assert.deepEqual(
      ((done.failed ?? []) as Array<{ name: string }>).map((f) => f.name),
      ['bad'],
      JSON.stringify(done),
    );
    for (const action of ['pause', 'resume', 'maintenance']) {
      assertError(await adminCall(admin, 'POST', `/admin/apps/bad/${action}`), 409);
    }
    const cli = await runCli(['pause', 'bad', '--admin', `http://127.0.0.1:${admin}`]);
    assert.equal(cli.code, 1, cli.stderr);
    assertOneErrorLine(cli);
  });
});

describe('shutdown while paused', () => {
  test('SIGTERM answers the held requests with 503 at once (they reached no child) and exits 0', async () => {
    // queue_timeout_ms far above the test's timeout: a gateway that waited it out would fail the test.
    const gw = await GatewayProcess.start({
      config: adminGatewaySection('queue_timeout_ms = 600000') + fixtureApp('web', ['web.test']),
    });
    try {
      const admin = await gw.adminPort();
      assertOk(await adminCall(admin, 'POST', '/admin/apps/web/pause'), 'paused');
      const held = heldRequest(gw.port, 'web.test', '/version');
      await queued(held, 'the held request');
      const exit = gw.stop('SIGTERM');
      const reply = await held.reply;
      assert.equal(reply.status, 503);
      assert.match(reply.body, /shutting down/);
      assert.deepEqual(await exit, { code: 0, signal: null });
    } finally {
      await gw.cleanup();
    }
  });
});
