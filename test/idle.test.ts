/**
 * Scale to zero (SPEC §12, README Scale to zero) through the real CLI: an
 * app with `idle_timeout_ms` stops its children once quiet, the next
 * request starts it once however many arrive together, an open WebSocket
 * or a long request keeps it awake, and a reload or a restart of an idle
 * app keeps it idle with its new config.
 */
import assert from 'node:assert/strict';
import http from 'node:http';
import { after, before, describe, test } from 'node:test';
import WebSocket from 'ws';
import {
  type AdminReply,
  adminCall,
  adminGatewaySection,
  fixtureApp,
  GatewayProcess,
  processAlive,
  type Reply,
  versionOf,
  waitFor,
} from './helpers.js';

delete process.env.NANO_ADMIN_TOKEN;

/** A parsed JSON answer. */
type Json = any;

async function appJson(adminPort: number, name: string): Promise<Json> {
  const res: AdminReply = await adminCall(adminPort, 'GET', `/admin/apps/${name}`);
  assert.equal(res.status, 200, res.body);
  return res.json;
}

/** Waits until the app's `state` is `state`; returns its App object. */
function waitForState(adminPort: number, name: string, state: string, timeoutMs = 10_000): Promise<Json> {
  return waitFor(
    async () => {
      const app = await appJson(adminPort, name);
      return app.state === state ? app : undefined;
    },
    `${name} to be ${state}`,
    timeoutMs,
  );
}

/** `nano_children_up{app="NAME"}` from GET /admin/metrics. */
async function childrenUp(adminPort: number, name: string): Promise<number> {
  const res = await adminCall(adminPort, 'GET', '/admin/metrics');
  assert.equal(res.status, 200);
  const m = new RegExp(`^nano_children_up\\{app="${name}"\\} (\\d+)$`, 'm').exec(res.body);
  assert.ok(m, `nano_children_up for ${name} in:\n${res.body}`);
  return Number(m[1]);
}

function logCount(gw: GatewayProcess, app: string, prefix: string): number {
  return gw.logs.filter((l) => l.app === app && String(l.msg).startsWith(prefix)).length;
}

/** Waits until a pid has exited (its child is stopped after the idle table is out and it drained). */
function waitForExit(pid: number, what: string): Promise<true> {
  return waitFor(() => !processAlive(pid) || undefined, `${what} (pid ${pid}) to exit`, 10_000);
}

/**
 * The app's children that became ready, once there are `count` of them: the gateway writes its log
 * asynchronously, so an answer from a new child can arrive before that child's `instance ready` line.
 */
async function readyPidsWhen(gw: GatewayProcess, app: string, count: number): Promise<number[]> {
  await waitFor(() => gw.readyPids(app).length >= count, `${app} ready x${count}`);
  return gw.readyPids(app);
}

function version(gw: GatewayProcess, host: string): Promise<Reply> {
  return gw.request({ host, path: '/version' });
}

describe('an idle app stops its children and the next requests start it once', () => {
  let gw: GatewayProcess;
  let adminPort: number;

  before(async () => {
    gw = await GatewayProcess.start({
      config: `${adminGatewaySection()}
${fixtureApp('sleepy', ['sleepy.test'], 'idle_timeout_ms = 1000\nenv = { VERSION = "s" }')}
${fixtureApp('steady', ['steady.test'], 'env = { VERSION = "t" }')}
`,
    });
    adminPort = await gw.adminPort();
  });
  after(async () => {
    await gw?.cleanup();
  });

  test('after idle_timeout_ms without requests: state idle, instances [], child exited, children_up 0', async () => {
    const [sleepyPid] = gw.readyPids('sleepy');
    const [steadyPid] = gw.readyPids('steady');
    assert.ok(sleepyPid && steadyPid);
    assert.equal(processAlive(sleepyPid), true);

    const idle = await waitForState(adminPort, 'sleepy', 'idle');
    assert.deepEqual(idle.instances, []);
    assert.equal(idle.last_error, null);
    await waitForExit(sleepyPid, "sleepy's child");
    assert.equal(await childrenUp(adminPort, 'sleepy'), 0);
    // Log lines are written asynchronously: wait for the line, then count.
    await gw.waitForLog((l) => l.app === 'sleepy' && String(l.msg).startsWith('app sleepy idle for 1000 ms'));
    assert.equal(logCount(gw, 'sleepy', 'app sleepy idle for 1000 ms'), 1, 'the sleep is logged once');

    // The app without idle_timeout_ms is untouched: same child, still serving.
    const steady = await appJson(adminPort, 'steady');
    assert.equal(steady.state, 'ready');
    assert.deepEqual(
      steady.instances.map((i: Json) => i.pid),
      [steadyPid],
    );
    assert.equal(await childrenUp(adminPort, 'steady'), 1);
    assert.equal(processAlive(steadyPid), true);
    const res = await version(gw, 'steady.test');
    assert.equal(res.status, 200);
    assert.deepEqual(versionOf(res.body), { version: 't', pid: steadyPid });
    assert.deepEqual(gw.readyPids('steady'), [steadyPid], 'steady never started another child');
    assert.equal(logCount(gw, 'steady', 'app steady idle'), 0);
  });

  test('20 parallel first requests all get 200 from one new child', async () => {
    await waitForState(adminPort, 'sleepy', 'idle');
    const readyBefore = gw.readyPids('sleepy');
    const wakesBefore = logCount(gw, 'sleepy', 'app sleepy woken by a request');

    const replies = await Promise.all(Array.from({ length: 20 }, () => version(gw, 'sleepy.test')));
    for (const r of replies) assert.equal(r.status, 200, r.body);

    // A reload through the admin API runs on the operation queue after any wake queued before it, and
    // its log line comes after theirs: once it is read, every child those wakes started has been logged.
    const reload = await adminCall(adminPort, 'POST', '/admin/reload');
    assert.equal(reload.status, 200, reload.body);
    await gw.waitForReloads(1);
    const readyAfter = gw.readyPids('sleepy');
    assert.equal(readyAfter.length, readyBefore.length + 1, 'exactly one child started');
    const newPid = readyAfter.at(-1) as number;
    assert.ok(!readyBefore.includes(newPid));
    assert.deepEqual(new Set(replies.map((r) => versionOf(r.body).pid)), new Set([newPid]));
    assert.deepEqual(new Set(replies.map((r) => versionOf(r.body).version)), new Set(['s']));
    assert.equal(logCount(gw, 'sleepy', 'app sleepy woken by a request'), wakesBefore + 1, 'woken once');

    const app = await waitForState(adminPort, 'sleepy', 'ready');
    assert.deepEqual(
      app.instances.map((i: Json) => i.pid),
      [newPid],
    );
    assert.equal(await childrenUp(adminPort, 'sleepy'), 1);
  });
});

/** A GET /gate?id= whose first chunk has arrived; `done` resolves with the whole body once released. */
function openGate(port: number, host: string, id: string): Promise<{ status: number; done: Promise<string> }> {
  return new Promise((resolve, reject) => {
    const req = http.get(
      { host: '127.0.0.1', port, path: `/gate?id=${id}`, headers: { host }, agent: false },
      (res) => {
        let body = '';
        res.setEncoding('utf8');
        const done = new Promise<string>((resolveDone, rejectDone) => {
          res.on('end', () => resolveDone(body));
          res.on('error', rejectDone);
        });
        res.on('data', (chunk: string) => {
          const first = body === '';
          body += chunk;
          if (first) resolve({ status: res.statusCode ?? 0, done });
        });
      },
    );
    req.setTimeout(20_000, () => req.destroy(new Error('client timeout')));
    req.on('error', reject);
  });
}

describe('what keeps an idle app awake', () => {
  let gw: GatewayProcess;
  let adminPort: number;

  before(async () => {
    // `ref` has the same idle_timeout_ms and gets its last request after the others': once it is idle,
    // an app whose WebSocket or request did not count would have been put to sleep too (it comes first).
    gw = await GatewayProcess.start({
      config: `${adminGatewaySection()}
${fixtureApp('sock', ['sock.test'], 'idle_timeout_ms = 1200')}
${fixtureApp('gated', ['gated.test'], 'idle_timeout_ms = 1200')}
${fixtureApp('ref', ['ref.test'], 'idle_timeout_ms = 1200')}
`,
    });
    adminPort = await gw.adminPort();
  });
  after(async () => {
    await gw?.cleanup();
  });

  test('an open WebSocket keeps the app awake; once it closes, the app goes idle', async () => {
    const ws = new WebSocket(`ws://127.0.0.1:${gw.port}/ws`, { headers: { host: 'sock.test' } });
    const messages: string[] = [];
    ws.on('message', (data: WebSocket.RawData) => messages.push(data.toString()));
    try {
      await new Promise<void>((resolve, reject) => {
        ws.once('open', () => resolve());
        ws.once('error', reject);
      });
      const hello = JSON.parse(await waitFor(() => messages[0], 'the WebSocket greeting'));
      const [sockPid] = gw.readyPids('sock');
      assert.equal(hello.pid, sockPid);

      const refReply = await version(gw, 'ref.test');
      assert.equal(refReply.status, 200);
      await waitForState(adminPort, 'ref', 'idle');

      const sock = await appJson(adminPort, 'sock');
      assert.equal(sock.state, 'ready', 'the open WebSocket kept it awake');
      assert.deepEqual(
        sock.instances.map((i: Json) => i.pid),
        [sockPid],
      );
      assert.equal(processAlive(sockPid as number), true);
      assert.equal(logCount(gw, 'sock', 'app sock idle'), 0);
      ws.send('still there');
      await waitFor(() => messages.includes('echo:still there'), 'the echo through the tunnel');

      const closed = new Promise<number>((resolve) => ws.once('close', (code: number) => resolve(code)));
      ws.close(1000);
      assert.equal(await closed, 1000);
      const idle = await waitForState(adminPort, 'sock', 'idle');
      assert.deepEqual(idle.instances, []);
      await waitForExit(sockPid as number, "sock's child");
    } finally {
      ws.terminate();
    }
  });

  test('a long request in flight keeps the app awake; once it ends, the app goes idle', async () => {
    // `gated` had no traffic: it went idle with `ref`, so the long request first wakes it.
    await waitForState(adminPort, 'gated', 'idle');
    const gate = await openGate(gw.port, 'gated.test', 'long');
    assert.equal(gate.status, 200);
    const gated = await waitForState(adminPort, 'gated', 'ready');
    const [gatedPid] = gated.instances.map((i: Json) => i.pid as number);
    assert.ok(gatedPid);

    const refReply = await version(gw, 'ref.test');
    assert.equal(refReply.status, 200);
    await waitForState(adminPort, 'ref', 'idle');

    const still = await appJson(adminPort, 'gated');
    assert.equal(still.state, 'ready', 'the request in flight kept it awake');
    assert.deepEqual(
      still.instances.map((i: Json) => i.pid),
      [gatedPid],
    );
    assert.equal(processAlive(gatedPid), true);
    const idleLines = logCount(gw, 'gated', 'app gated idle');

    const release = await gw.request({ host: 'gated.test', path: '/release?id=long' });
    assert.equal(release.status, 200, 'the gate was still open in the same child');
    assert.equal(await gate.done, 'first long\nlast long\n');
    await waitForState(adminPort, 'gated', 'idle');
    await waitFor(() => logCount(gw, 'gated', 'app gated idle') === idleLines + 1, 'the sleep to be logged');
    await waitForExit(gatedPid, "gated's child");
  });
});

describe('reload and restart of an idle app', () => {
  let gw: GatewayProcess;
  let adminPort: number;
  const config = (lazyEnv: string): string => `${adminGatewaySection('queue_timeout_ms = 1500')}
${fixtureApp('lazy', ['lazy.test'], `idle_timeout_ms = 1000\nenv = { ${lazyEnv} }`)}
${fixtureApp('other', ['other.test'], 'env = { VERSION = "o" }')}
`;

  before(async () => {
    gw = await GatewayProcess.start({ config: config('VERSION = "1"') });
    adminPort = await gw.adminPort();
  });
  after(async () => {
    await gw?.cleanup();
  });

  test('a reload that changes an idle app keeps it idle; the next request gets the new config', async () => {
    await waitForState(adminPort, 'lazy', 'idle');
    const readyBefore = gw.readyPids('lazy').length;

    gw.writeConfig(config('VERSION = "2"'));
    const reload = await gw.waitForReloads(1);
    assert.match(String(reload.msg), /^reload finished/, JSON.stringify(reload));

    const app = await appJson(adminPort, 'lazy');
    assert.equal(app.state, 'idle');
    assert.deepEqual(app.instances, []);
    assert.equal(gw.readyPids('lazy').length, readyBefore, 'no child started for the reload');
    assert.equal(await childrenUp(adminPort, 'lazy'), 0);

    const res = await version(gw, 'lazy.test');
    assert.equal(res.status, 200, res.body);
    const pids = await readyPidsWhen(gw, 'lazy', readyBefore + 1);
    assert.equal(pids.length, readyBefore + 1);
    assert.deepEqual(versionOf(res.body), { version: '2', pid: pids.at(-1) });
  });

  test('restart of an idle app answers 200 and keeps it idle; the next request wakes it', async () => {
    await waitForState(adminPort, 'lazy', 'idle');
    const readyBefore = gw.readyPids('lazy').length;

    const res = await adminCall(adminPort, 'POST', '/admin/apps/lazy/restart');
    assert.equal(res.status, 200, res.body);
    assert.equal(res.json.state, 'idle');
    assert.deepEqual(res.json.instances, []);
    const app = await appJson(adminPort, 'lazy');
    assert.equal(app.state, 'idle');
    assert.equal(gw.readyPids('lazy').length, readyBefore, 'nothing was started to replace');

    const reply = await version(gw, 'lazy.test');
    assert.equal(reply.status, 200, reply.body);
    const pids = await readyPidsWhen(gw, 'lazy', readyBefore + 1);
    assert.equal(pids.length, readyBefore + 1);
    assert.deepEqual(versionOf(reply.body), { version: '2', pid: pids.at(-1) });
    assert.equal((await appJson(adminPort, 'lazy')).state, 'ready');
  });

  test('a wake whose start fails answers 503 after queue_timeout_ms, sets last_error, and a fix wakes it', async () => {
    await waitForState(adminPort, 'lazy', 'idle');
    const readyBefore = gw.readyPids('lazy').length;

    gw.writeConfig(config('VERSION = "3", EXIT_AT_START = "1"'));
    await gw.waitForReloads(2);
    assert.equal((await appJson(adminPort, 'lazy')).state, 'idle', 'the broken config was not started by the reload');

    const res = await version(gw, 'lazy.test');
    assert.equal(res.status, 503, res.body);
    assert.ok(res.headers['retry-after'], 'a 503 for a waiting request has Retry-After');
    await gw.waitForLog((l) => l.app === 'lazy' && String(l.msg).startsWith('app lazy did not start from idle'));
    const app = await appJson(adminPort, 'lazy');
    assert.equal(app.state, 'idle');
    assert.deepEqual(app.instances, []);
    assert.equal(typeof app.last_error, 'string');
    assert.ok(app.last_error.length > 0);
    assert.equal(gw.readyPids('lazy').length, readyBefore);

    // The gateway keeps running and serving the other app.
    assert.equal(gw.running, true);
    const other = await version(gw, 'other.test');
    assert.equal(other.status, 200);
    assert.equal(versionOf(other.body).version, 'o');

    // A fixed config: a later request (once the crash backoff allows) starts it.
    gw.writeConfig(config('VERSION = "4"'));
    await gw.waitForReloads(3);
    const fixed = await waitFor(
      async () => {
        const r = await version(gw, 'lazy.test');
        return r.status === 200 ? r : undefined;
      },
      'a request answered by the fixed config',
      15_000,
      100,
    );
    const pids = await readyPidsWhen(gw, 'lazy', readyBefore + 1);
    assert.equal(pids.length, readyBefore + 1, 'one child started, by the request after the fix');
    assert.deepEqual(versionOf(fixed.body), { version: '4', pid: pids.at(-1) });
    const awake = await appJson(adminPort, 'lazy');
    assert.equal(awake.state, 'ready');
    assert.equal(awake.last_error, null);
  });
});
