/**
 * The admin API (SPEC §8) through a running gateway: every endpoint and
 * status code, the App object, persistence into nano.toml, auth and limits.
 */
import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import toml from 'toml';
import {
  type AdminReply,
  adminCall,
  adminGatewaySection,
  childPidsOf,
  FIXTURE_APP,
  fixtureApp,
  GatewayProcess,
  gatewaySection,
  processAlive,
  rawRequest,
  request,
  waitFor,
} from './helpers.js';

delete process.env.NANO_ADMIN_TOKEN;

/** A parsed JSON answer. */
type Json = any;

/** An admin error answer: status, JSON content type and the {"error":{"code","message"}} shape. */
function assertError(res: AdminReply, status: number, code?: string): void {
  assert.equal(res.status, status, `expected ${status}, got ${res.status}: ${res.body}`);
  assert.match(String(res.headers['content-type']), /^application\/json/);
  assert.equal(typeof res.json, 'object', `error body is JSON: ${res.body}`);
  assert.deepEqual(Object.keys(res.json), ['error']);
  assert.deepEqual(Object.keys(res.json.error).sort(), ['code', 'message']);
  assert.equal(typeof res.json.error.code, 'string');
  assert.equal(typeof res.json.error.message, 'string');
  assert.ok(res.json.error.message.length > 0);
  if (code !== undefined) assert.equal(res.json.error.code, code, res.body);
}

/** A JSON success answer with this status. */
function assertOk(res: AdminReply, status = 200): Json {
  assert.equal(res.status, status, `expected ${status}, got ${res.status}: ${res.body}`);
  assert.match(String(res.headers['content-type']), /^application\/json/);
  return res.json;
}

/** The App object of SPEC §8, with every field of the right type. */
function assertApp(
  app: Json,
  expected: { name: string; hosts: string[]; default: boolean; instances: number; gatewayPid: number; state?: string },
): void {
  assert.deepEqual(Object.keys(app).sort(), [
    'default',
    'entry',
    'hosts',
    'instances',
    'last_error',
    'name',
    'requests_total',
    'state',
    'tls',
  ]);
  assert.equal(app.tls, false, 'no [tls] table: plain HTTP only');
  assert.equal(app.name, expected.name);
  assert.deepEqual(app.hosts, expected.hosts);
  assert.equal(app.entry, FIXTURE_APP, 'an entry outside the config directory is shown as its absolute path');
  assert.equal(app.default, expected.default, `${app.name}.default`);
  assert.equal(app.state, expected.state ?? 'ready');
  assert.ok(Number.isInteger(app.requests_total) && app.requests_total >= 0);
  assert.equal(app.last_error, null);
  assert.equal(app.instances.length, expected.instances);
  const children = childPidsOf(expected.gatewayPid);
  for (const inst of app.instances) {
    assert.deepEqual(Object.keys(inst).sort(), ['pid', 'port', 'restarts', 'rss_bytes', 'started_at', 'state']);
    assert.ok(Number.isInteger(inst.pid) && inst.pid > 0);
    assert.ok(children.includes(inst.pid), `instance pid ${inst.pid} is a child of the gateway`);
    assert.ok(Number.isInteger(inst.port) && inst.port > 0 && inst.port < 65536);
    assert.equal(inst.state, 'ready');
    assert.equal(typeof inst.started_at, 'string');
    assert.equal(new Date(inst.started_at).toISOString(), inst.started_at, 'started_at is an ISO date');
    const age = Date.now() - Date.parse(inst.started_at);
    assert.ok(age >= 0 && age < 120_000, `started_at is recent (${inst.started_at})`);
    assert.equal(inst.restarts, 0);
    assert.ok(Number.isInteger(inst.rss_bytes) && inst.rss_bytes > 0, `rss_bytes ${inst.rss_bytes}`);
  }
}

/** Which app answered a request for `host` through the proxy. */
async function appAt(gw: GatewayProcess, host: string): Promise<{ app: string; pid: number }> {
  const res = await gw.request({ host, path: '/info' });
  assert.equal(res.status, 200, `${host}: ${res.status} ${res.body}`);
  const info = JSON.parse(res.body) as { app: string; pid: number };
  return { app: info.app, pid: info.pid };
}

/** A POST /admin/apps body for an app running the fixture. */
function newApp(name: string, hosts: string[], extra: Record<string, unknown> = {}): Record<string, unknown> {
  return { name, hosts, entry: FIXTURE_APP, health_path: '/health', ready_timeout_ms: 8000, ...extra };
}

function pidsOf(app: Json): number[] {
  return (app.instances as Array<{ pid: number }>).map((i) => i.pid);
}

describe('read endpoints, errors and the separate listener', () => {
  let gw: GatewayProcess;
  let port: number;

  before(async () => {
    gw = await GatewayProcess.start({
      config:
        adminGatewaySection() +
        fixtureApp('alpha', ['alpha.test', '*.alpha.test'], 'instances = 2') +
        fixtureApp('beta', ['beta.test']),
      readyApps: { alpha: 2, beta: 1 },
    });
    port = await gw.adminPort();
  });
  after(async () => {
    await gw?.cleanup();
  });

  test('GET /admin/health: 200 {"status":"ok","config_error":null}', async () => {
    const res = await adminCall(port, 'GET', '/admin/health');
    assert.deepEqual(assertOk(res), { status: 'ok', config_error: null });
  });

  test('GET /admin/apps: every app in config order with every App field', async () => {
    const res = await adminCall(port, 'GET', '/admin/apps');
    const body = assertOk(res);
    assert.deepEqual(Object.keys(body), ['apps']);
    assert.deepEqual(
      body.apps.map((a: Json) => a.name),
      ['alpha', 'beta'],
    );
    assertApp(body.apps[0], {
      name: 'alpha',
      hosts: ['alpha.test', '*.alpha.test'],
      default: true,
      instances: 2,
      gatewayPid: gw.pid,
    });
    assertApp(body.apps[1], { name: 'beta', hosts: ['beta.test'], default: false, instances: 1, gatewayPid: gw.pid });
    assert.deepEqual(new Set([...pidsOf(body.apps[0]), ...pidsOf(body.apps[1])]), new Set(childPidsOf(gw.pid)));
  });

  test('requests_total counts the requests proxied to the app', async () => {
    const count = async (name: string): Promise<number> =>
      assertOk(await adminCall(port, 'GET', `/admin/apps/${name}`)).requests_total;
    const beta0 = await count('beta');
    const alpha0 = await count('alpha');
    for (let i = 0; i < 5; i++)
      assert.equal((await gw.request({ host: 'beta.test', path: '/status?code=204' })).status, 204);
    await waitFor(async () => (await count('beta')) >= beta0 + 5 || undefined, 'beta.requests_total to grow by 5');
    assert.equal(await count('beta'), beta0 + 5);
    assert.equal(await count('alpha'), alpha0, 'traffic to beta does not count for alpha');
  });

  test('GET /admin/apps/:name: 200 App; unknown: 404 with the error shape', async () => {
    const beta = assertOk(await adminCall(port, 'GET', '/admin/apps/beta'));
    assertApp(beta, { name: 'beta', hosts: ['beta.test'], default: false, instances: 1, gatewayPid: gw.pid });
    assertError(await adminCall(port, 'GET', '/admin/apps/nosuchapp'), 404);
    assertError(await adminCall(port, 'DELETE', '/admin/apps/nosuchapp'), 404);
    assertError(await adminCall(port, 'POST', '/admin/apps/nosuchapp/restart'), 404);
  });

  test('unknown paths are 404, wrong methods 405, always with the error shape', async () => {
    assertError(await adminCall(port, 'GET', '/admin/nope'), 404);
    assertError(await adminCall(port, 'GET', '/admin/apps/beta/nope'), 404);
    assertError(await adminCall(port, 'GET', '/admin/apps/beta/restart/again'), 404);
    assertError(await adminCall(port, 'GET', '/'), 404);
    assertError(await adminCall(port, 'GET', '/apps'), 404);
    const wrong: Array<[string, string]> = [
      ['POST', '/admin/health'],
      ['DELETE', '/admin/apps'],
      ['PUT', '/admin/apps/beta'],
      ['GET', '/admin/apps/beta/restart'],
      ['GET', '/admin/reload'],
      ['POST', '/admin/metrics'],
    ];
    for (const [method, path] of wrong) {
      const res = await adminCall(port, method, path, method === 'POST' || method === 'PUT' ? { body: {} } : {});
      assertError(res, 405);
      assert.ok(res.headers.allow, `${method} ${path}: 405 names the allowed methods`);
    }
  });

  test('a path with a malformed percent-escape is a client error (4xx), not 500', async () => {
    const res = await adminCall(port, 'GET', '/admin/apps/%E0%A4%A');
    assert.match(String(res.headers['content-type']), /^application\/json/);
    assert.ok(res.status >= 400 && res.status < 500, `expected 400 or 404, got ${res.status}: ${res.body}`);
  });

  test('POST bodies: not JSON → 400 invalid_json; JSON but not an object → 400; over 1 MiB → 413', async () => {
    const before = gw.readConfig();
    assertError(
      await adminCall(port, 'POST', '/admin/apps', {
        body: '{"name": "x",',
        headers: { 'content-type': 'application/json' },
      }),
      400,
      'invalid_json',
    );
    assertError(await adminCall(port, 'POST', '/admin/apps', { body: 'hello' }), 400, 'invalid_json');
    assertError(await adminCall(port, 'POST', '/admin/apps', { body: '' }), 400);
    for (const body of ['[]', '"web"', '42', 'null', '[{"name":"x"}]']) {
      assertError(
        await adminCall(port, 'POST', '/admin/apps', { body, headers: { 'content-type': 'application/json' } }),
        400,
      );
    }
    // Declared too large: refused before the body is read.
    const declared = await rawRequest(
      port,
      `POST /admin/apps HTTP/1.1\r\nHost: admin\r\nContent-Type: application/json\r\nContent-Length: ${2 * 1024 * 1024}\r\n\r\n{"name":`,
    );
    assert.match(declared, /^HTTP\/1\.1 413 /);
    assert.match(declared, /content-type: application\/json/i);
    assert.match(declared, /"error":\{"code":"[^"]+","message":"[^"]+"\}/);
    // Streamed without a length: refused once it passes 1 MiB.
    const big = JSON.stringify({
      name: 'big',
      hosts: ['big.test'],
      entry: FIXTURE_APP,
      env: { PAD: 'x'.repeat(1024 * 1024 + 100) },
    });
    const streamed = await chunkedPost(port, '/admin/apps', big);
    assert.equal(streamed.status, 413, streamed.body);
    assert.match(String(streamed.headers['content-type']), /^application\/json/);
    assert.equal(typeof JSON.parse(streamed.body).error.code, 'string');
    // Just under the limit is read (and then refused as an invalid app, not as too large).
    const under = JSON.stringify({
      name: 'under',
      hosts: 'not-a-list',
      entry: FIXTURE_APP,
      pad: 'x'.repeat(1024 * 1024 - 200),
    });
    assert.ok(Buffer.byteLength(under) <= 1024 * 1024);
    assertError(
      await adminCall(port, 'POST', '/admin/apps', { body: under, headers: { 'content-type': 'application/json' } }),
      400,
    );
    assert.equal(gw.readConfig(), before, 'none of these wrote the file');
    assert.deepEqual(
      assertOk(await adminCall(port, 'GET', '/admin/apps')).apps.map((a: Json) => a.name),
      ['alpha', 'beta'],
    );
  });

  test('the admin listener is separate from the proxy: no app path is shadowed, no admin path is reachable through the proxy', async () => {
    // An app's Host on the admin port does not reach the app.
    const onAdmin = await request(port, { host: 'beta.test', path: '/info' });
    assert.equal(onAdmin.status, 404);
    assert.equal(JSON.parse(onAdmin.body).error.code, 'not_found');
    const appsOnAdmin = await request(port, { host: 'beta.test', path: '/admin/apps' });
    assert.equal(appsOnAdmin.status, 200);
    assert.ok(Array.isArray(JSON.parse(appsOnAdmin.body).apps), 'the admin API answers whatever the Host');
    // /admin/... on the proxy port goes to the app of that Host.
    const onProxy = await gw.request({ host: 'beta.test', path: '/admin/apps' });
    assert.equal(onProxy.status, 200);
    assert.match(onProxy.body, /^beta \d+ GET \/admin\/apps\n$/, 'the app answered, not the admin API');
    const health = await gw.request({ host: 'alpha.test', path: '/admin/health' });
    assert.match(health.body, /^alpha \d+ GET \/admin\/health\n$/);
    assert.notEqual(port, gw.port);
  });

  test('config_error: the last reload error as "file:line: key: message", until a valid edit', async () => {
    const good = gw.readConfig();
    const pids = childPidsOf(gw.pid).sort();
    const broken = `${good}\n[apps.broken]\nhosts = "not-a-list"\nentry = ${JSON.stringify(FIXTURE_APP)}\n`;
    const hostsLine = broken.split('\n').indexOf('hosts = "not-a-list"') + 1;
    const reloads = gw.reloadsEnded().length;
    gw.writeConfig(broken);
    await gw.waitForReloads(reloads + 1);
    const health = assertOk(await adminCall(port, 'GET', '/admin/health'));
    assert.equal(health.status, 'ok');
    assert.equal(health.config_error, `nano.toml:${hostsLine}: apps.broken.hosts: expected an array of strings`);
    assert.deepEqual(childPidsOf(gw.pid).sort(), pids, 'the running apps are untouched');
    assert.deepEqual(
      assertOk(await adminCall(port, 'GET', '/admin/apps')).apps.map((a: Json) => a.name),
      ['alpha', 'beta'],
    );
    // Still reported while the file stays broken.
    assert.equal(assertOk(await adminCall(port, 'GET', '/admin/health')).config_error, health.config_error);

    gw.writeConfig(`${good}\n# a valid edit\n`);
    await gw.waitForReloads(reloads + 2);
    assert.deepEqual(assertOk(await adminCall(port, 'GET', '/admin/health')), { status: 'ok', config_error: null });
  });
});

/** A POST with a chunked body (no Content-Length), written in 64 KiB pieces. */
function chunkedPost(
  port: number,
  path: string,
  body: string,
): Promise<{ status: number; headers: http.IncomingHttpHeaders; body: string }> {
  return new Promise((resolve, reject) => {
    const req = http.request(
      { host: '127.0.0.1', port, path, method: 'POST', agent: false, headers: { 'content-type': 'application/json' } },
      (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (d: string) => (text += d));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: text }));
        res.on('error', reject);
      },
    );
    let answered = false;
    req.on('response', () => (answered = true));
    // The server may close while the client still writes: only an error before any answer counts.
    req.on('error', (err) => {
      if (!answered) reject(err);
    });
    const buf = Buffer.from(body);
    let offset = 0;
    const pump = (): void => {
      while (offset < buf.length && !answered) {
        const piece = buf.subarray(offset, offset + 65536);
        offset += piece.length;
        if (!req.write(piece)) {
          req.once('drain', pump);
          return;
        }
      }
      if (!answered) req.end();
    };
    pump();
  });
}

describe('POST /admin/apps', () => {
  const original = `# nano-gateway test config: comments, odd spacing and blank lines stay as they are
[gateway]
listen   =   "127.0.0.1:0"      # a trailing comment


[admin]
listen = "127.0.0.1:0"
# a comment at the end of [admin]

[apps.first]    # the first app
hosts = [ "first.test" ,"*.first.test" ]
entry = ${JSON.stringify(FIXTURE_APP)}
health_path = "/health"

  # an indented comment before the last line, which has no newline
# trailing comment`;

  test('201 once ready; the new table is appended, every other byte kept; it serves at once; the watcher does not apply it again', async () => {
    const gw = await GatewayProcess.start({ config: original, args: ['--log-level', 'debug'] });
    try {
      const port = await gw.adminPort();
      const body = newApp('added', ['added.test', 'Www.Added.Test'], {
        env: { VERSION: 'v "quoted" \\ back', GREETING: 'grüß dich' },
        args: ['--flag'],
        instances: 2,
      });
      const reloadsBefore = gw.reloadsEnded().length;
      const logsBefore = gw.logs.length;
      const res = await adminCall(port, 'POST', '/admin/apps', { body });
      const app = assertOk(res, 201);
      assertApp(app, {
        name: 'added',
        hosts: ['added.test', 'www.added.test'],
        default: false,
        instances: 2,
        gatewayPid: gw.pid,
      });
      const pids = pidsOf(app);

      // Served right away, by the children of the 201.
      const seen = new Set<number>();
      for (let i = 0; i < 6; i++) {
        const served = await appAt(gw, 'added.test');
        assert.equal(served.app, 'added');
        seen.add(served.pid);
      }
      assert.ok(
        [...seen].every((p) => pids.includes(p)),
        `served by ${[...seen]} not by the 201's ${pids}`,
      );
      const info = JSON.parse((await gw.request({ host: 'www.added.test', path: '/info' })).body);
      assert.deepEqual(info.argv, ['--flag']);
      assert.equal(info.version, 'v "quoted" \\ back');
      assert.equal(info.env.GREETING, 'grüß dich');

      // The file: the original, byte for byte, then the new table, which parses back to what was sent.
      const text = gw.readConfig();
      assert.ok(text.startsWith(original), `the original text is a prefix:\n${text}`);
      const appended = text.slice(original.length);
      assert.match(appended, /^\n+\[apps\.added\]\n/);
      const parsed = toml.parse(text) as Json;
      assert.deepEqual(Object.keys(parsed.apps), ['first', 'added']);
      const { name: _name, ...keys } = body;
      assert.deepEqual(JSON.parse(JSON.stringify(parsed.apps.added)), keys);
      assert.deepEqual(JSON.parse(JSON.stringify(parsed.apps.first)), {
        hosts: ['first.test', '*.first.test'],
        entry: FIXTURE_APP,
        health_path: '/health',
      });

      // The watcher sees the gateway's own write and skips it...
      await gw.waitForLog((l) => l.msg === 'config file unchanged: nothing to reload', 10_000, logsBefore);
      // ...and an explicit reload afterwards finds the added app already running, unchanged.
      const reload = assertOk(await adminCall(port, 'POST', '/admin/reload'));
      assert.deepEqual(reload, { added: [], removed: [], changed: [], unchanged: ['first', 'added'], failed: [] });
      // Log lines come through a pipe: wait for the explicit reload's; anything before it has arrived too.
      await gw.waitForReloads(reloadsBefore + 1);
      assert.equal(gw.reloadsEnded().length, reloadsBefore + 1, 'only the explicit reload ran');
      assert.equal(gw.logs.filter((l) => l.msg === 'routing table swapped').length, 1, 'one swap: the explicit reload');
      assert.deepEqual(
        gw.logs.filter((l) => String(l.msg).startsWith('reload finished')).map((l) => l.msg),
        ['reload finished: nothing changed'],
      );
      assert.equal(gw.readyLogs('added').length, 2, 'the added app was started once (two instances)');
      assert.deepEqual(pidsOf(assertOk(await adminCall(port, 'GET', '/admin/apps/added'))), pids);
      for (const pid of pids) assert.ok(processAlive(pid));
      assert.equal(childPidsOf(gw.pid).length, 3);
    } finally {
      await gw.cleanup();
    }
  });

  test('400 for an invalid app, 409 for a taken name or host; the file is untouched', async () => {
    const gw = await GatewayProcess.start({ config: original });
    try {
      const port = await gw.adminPort();
      const invalid: Array<[string, Record<string, unknown>]> = [
        ['bad name', newApp('Bad Name', ['bad.test'])],
        ['upper-case name', newApp('Web', ['bad.test'])],
        ['name too long', newApp('x'.repeat(64), ['bad.test'])],
        ['no name', { hosts: ['bad.test'], entry: FIXTURE_APP }],
        ['name not a string', { ...newApp('x', ['bad.test']), name: 42 }],
        ['hosts not an array', newApp('bad', 'bad.test' as unknown as string[])],
        ['hosts empty', newApp('bad', [])],
        ['hosts missing', { name: 'bad', entry: FIXTURE_APP }],
        ['host with a port', newApp('bad', ['bad.test:8080'])],
        ['unknown key', newApp('bad', ['bad.test'], { colour: 'blue' })],
        ['missing entry file', newApp('bad', ['bad.test'], { entry: '/nonexistent/nowhere.js' })],
        ['entry missing', { name: 'bad', hosts: ['bad.test'] }],
        ['instances not a number', newApp('bad', ['bad.test'], { instances: 'two' })],
        ['env not a table', newApp('bad', ['bad.test'], { env: ['A=1'] })],
        ['a null value', newApp('bad', ['bad.test'], { cwd: null })],
      ];
      for (const [what, body] of invalid) {
        const res = await adminCall(port, 'POST', '/admin/apps', { body });
        assertError(res, 400);
        assert.equal(gw.readConfig(), original, `${what}: the file is untouched`);
      }
      const unknown = await adminCall(port, 'POST', '/admin/apps', {
        body: newApp('bad', ['bad.test'], { colour: 'blue' }),
      });
      assert.match(unknown.json.error.message, /colour/, 'the message names the key');

      assertError(await adminCall(port, 'POST', '/admin/apps', { body: newApp('first', ['other.test']) }), 409);
      assertError(await adminCall(port, 'POST', '/admin/apps', { body: newApp('second', ['First.Test']) }), 409);
      assertError(
        await adminCall(port, 'POST', '/admin/apps', { body: newApp('second', ['new.test', '*.first.test']) }),
        409,
      );
      const taken = await adminCall(port, 'POST', '/admin/apps', { body: newApp('second', ['first.test']) });
      assertError(taken, 409);
      assert.match(taken.json.error.message, /first\.test/);
      assert.equal(gw.readConfig(), original);
      assert.deepEqual(
        assertOk(await adminCall(port, 'GET', '/admin/apps')).apps.map((a: Json) => a.name),
        ['first'],
      );
      assert.equal(childPidsOf(gw.pid).length, 1, 'no child was started for a refused app');
    } finally {
      await gw.cleanup();
    }
  });

  test('422 when the app never becomes ready: nothing kept in the file or running; the name stays free', async () => {
    const gw = await GatewayProcess.start({ config: original });
    try {
      const port = await gw.adminPort();
      const children = childPidsOf(gw.pid);
      const exits = await adminCall(port, 'POST', '/admin/apps', {
        body: newApp('doomed', ['doomed.test'], { env: { EXIT_AT_START: '3' } }),
      });
      assertError(exits, 422);
      assert.equal(gw.readConfig(), original, 'the file is byte-identical');
      assert.deepEqual(childPidsOf(gw.pid), children, 'no child of the failed app is left');

      const unhealthy = await adminCall(port, 'POST', '/admin/apps', {
        body: newApp('doomed', ['doomed.test'], {
          health_path: '/status?code=500',
          ready_timeout_ms: 600,
          instances: 2,
        }),
      });
      assertError(unhealthy, 422);
      assert.match(unhealthy.json.error.message, /500|ready/);
      assert.equal(gw.readConfig(), original);
      assert.deepEqual(childPidsOf(gw.pid), children, 'the unhealthy children were stopped before the answer');
      assertError(await adminCall(port, 'GET', '/admin/apps/doomed'), 404);
      assert.equal((await appAt(gw, 'doomed.test')).app, 'first', 'its host is not routed to it');

      // Nothing was kept: the same name and hosts can be added now.
      const ok = assertOk(
        await adminCall(port, 'POST', '/admin/apps', { body: newApp('doomed', ['doomed.test']) }),
        201,
      );
      assert.equal((await appAt(gw, 'doomed.test')).pid, pidsOf(ok)[0]);
      assert.ok(gw.readConfig().startsWith(original));
    } finally {
      await gw.cleanup();
    }
  });
});

describe('DELETE /admin/apps/:name', () => {
  const head = `[gateway]
listen = "127.0.0.1:0"

[admin]
listen = "127.0.0.1:0"
`;
  const entry = JSON.stringify(FIXTURE_APP);
  const firstTable = `[apps.first]
hosts = ["first.test"]
entry = ${entry}
health_path = "/health"
`;
  const midTable = `[apps.mid]
hosts = ["mid.test"]
entry = ${entry}
health_path = "/health"
[apps.mid.env]
EXTRA = "yes"
`;
  const lastTable = `[apps.last]
hosts = ["last.test"]   # the last app
entry = ${entry}
health_path = "/health"
`;
  const file = (first: string, mid: string): string =>
    `${head}
# --- first: the implicit default ---
${first}# a comment under first

# --- mid ---
${mid}# a comment under mid, after its sub-table

# --- last ---
${lastTable}# the end
`;

  test('200 once drained and stopped; in-flight requests finish; exactly its table leaves the file; the implicit default may go', async () => {
    const config = file(firstTable, midTable);
    const gw = await GatewayProcess.start({ config });
    try {
      const port = await gw.adminPort();
      const midPid = (await appAt(gw, 'mid.test')).pid;
      const slow = gw.request({ host: 'mid.test', path: '/slow?ms=1000' });
      await waitFor(async () => {
        const r = await gw.request({ host: 'mid.test', path: '/inflight' });
        return (JSON.parse(r.body) as { inFlight: number }).inFlight >= 2 || undefined;
      }, 'the slow request to be in flight');
      let slowDone = false;
      void slow.then(() => (slowDone = true));

      const removed = assertOk(await adminCall(port, 'DELETE', '/admin/apps/mid'));
      assert.equal(removed.name, 'mid');
      assert.ok(slowDone, 'the in-flight request finished before the DELETE answered');
      const slowRes = await slow;
      assert.equal(slowRes.status, 200);
      assert.equal(JSON.parse(slowRes.body).pid, midPid);
      assert.ok(!processAlive(midPid), 'its child is gone when the answer arrives');
      assert.ok(!childPidsOf(gw.pid).includes(midPid));

      assert.equal(
        gw.readConfig(),
        file(firstTable, ''),
        'exactly [apps.mid] and [apps.mid.env] are gone, every other line stays',
      );
      assert.deepEqual(
        assertOk(await adminCall(port, 'GET', '/admin/apps')).apps.map((a: Json) => a.name),
        ['first', 'last'],
      );
      assertError(await adminCall(port, 'GET', '/admin/apps/mid'), 404);
      assert.equal((await appAt(gw, 'mid.test')).app, 'first', 'its host now goes to the default app');

      // The implicit default (the first app) may go: the next one becomes the default.
      const firstPid = (await appAt(gw, 'first.test')).pid;
      assertOk(await adminCall(port, 'DELETE', '/admin/apps/first'));
      assert.ok(!processAlive(firstPid));
      assert.equal((await appAt(gw, 'nobody.test')).app, 'last', 'unmatched hosts go to the new default');
      const apps = assertOk(await adminCall(port, 'GET', '/admin/apps')).apps;
      assert.deepEqual(
        apps.map((a: Json) => [a.name, a.default]),
        [['last', true]],
      );
      assert.equal(gw.readConfig(), file('', ''));

      // The last app cannot go; an unknown one is 404; the file stays.
      assertError(await adminCall(port, 'DELETE', '/admin/apps/last'), 409);
      assertError(await adminCall(port, 'DELETE', '/admin/apps/nosuchapp'), 404);
      assert.equal(gw.readConfig(), file('', ''));
      assert.equal((await appAt(gw, 'last.test')).app, 'last');
      assert.equal(childPidsOf(gw.pid).length, 1);
    } finally {
      await gw.cleanup();
    }
  });

  test('409 for the app named by default_app; the file and the app stay', async () => {
    const config =
      head.replace('listen = "127.0.0.1:0"\n', 'listen = "127.0.0.1:0"\ndefault_app = "b"\n') +
      '\n' +
      fixtureApp('a', ['a.test']) +
      '\n' +
      fixtureApp('b', ['b.test']);
    const gw = await GatewayProcess.start({ config });
    try {
      const port = await gw.adminPort();
      const res = await adminCall(port, 'DELETE', '/admin/apps/b');
      assertError(res, 409);
      assert.match(res.json.error.message, /default_app/);
      assert.equal(gw.readConfig(), config);
      assert.equal((await appAt(gw, 'nobody.test')).app, 'b');
      assert.equal(assertOk(await adminCall(port, 'GET', '/admin/apps/b')).default, true);
    } finally {
      await gw.cleanup();
    }
  });
});

describe('persistence', () => {
  test('an app added and one removed through the API are still so after the gateway restarts', async () => {
    const config = adminGatewaySection() + fixtureApp('keep', ['keep.test']) + fixtureApp('drop', ['drop.test']);
    const first = await GatewayProcess.start({ config });
    let second: GatewayProcess | null = null;
    try {
      const port = await first.adminPort();
      assertOk(
        await adminCall(port, 'POST', '/admin/apps', {
          body: newApp('added', ['added.test'], { env: { VERSION: 'persisted' } }),
        }),
        201,
      );
      assertOk(await adminCall(port, 'DELETE', '/admin/apps/drop'));
      const exit = await first.stop('SIGTERM');
      assert.equal(exit.code, 0);

      second = await GatewayProcess.startIn(first.dir);
      const port2 = await second.adminPort();
      assert.deepEqual(
        assertOk(await adminCall(port2, 'GET', '/admin/apps')).apps.map((a: Json) => a.name),
        ['keep', 'added'],
      );
      const version = await second.request({ host: 'added.test', path: '/version' });
      assert.equal(version.status, 200);
      assert.match(version.body, /^persisted \d+$/);
      assert.equal(
        (await appAt(second, 'drop.test')).app,
        'keep',
        'the removed app is gone: its host goes to the default',
      );
    } finally {
      if (second) await second.cleanup();
      await first.cleanup();
    }
  });
});

describe('operations are serialised', () => {
  test('two POSTs at once: both are added, the file has both tables', async () => {
    const config = adminGatewaySection() + fixtureApp('base', ['base.test']);
    const gw = await GatewayProcess.start({ config });
    try {
      const port = await gw.adminPort();
      const [one, two] = await Promise.all([
        adminCall(port, 'POST', '/admin/apps', {
          body: newApp('one', ['one.test'], { env: { START_DELAY_MS: '300' } }),
        }),
        adminCall(port, 'POST', '/admin/apps', { body: newApp('two', ['two.test']) }),
      ]);
      assertOk(one, 201);
      assertOk(two, 201);
      const text = gw.readConfig();
      assert.ok(text.startsWith(config));
      const parsed = toml.parse(text) as Json;
      assert.deepEqual(Object.keys(parsed.apps).sort(), ['base', 'one', 'two']);
      assert.equal((await appAt(gw, 'one.test')).app, 'one');
      assert.equal((await appAt(gw, 'two.test')).app, 'two');
      // A conflicting pair: exactly one wins.
      const [a, b] = await Promise.all([
        adminCall(port, 'POST', '/admin/apps', { body: newApp('three', ['shared.test']) }),
        adminCall(port, 'POST', '/admin/apps', { body: newApp('four', ['shared.test']) }),
      ]);
      assert.deepEqual([a.status, b.status].sort(), [201, 409]);
      assert.equal(Object.keys((toml.parse(gw.readConfig()) as Json).apps).length, 4);
    } finally {
      await gw.cleanup();
    }
  });

  test('a file edit just before a POST: both take effect', async () => {
    const config = adminGatewaySection() + fixtureApp('base', ['base.test']);
    const gw = await GatewayProcess.start({ config });
    try {
      const port = await gw.adminPort();
      const edited = `${config}\n${fixtureApp('byhand', ['byhand.test'])}`;
      gw.writeConfig(edited);
      assertOk(await adminCall(port, 'POST', '/admin/apps', { body: newApp('byapi', ['byapi.test']) }), 201);
      const text = gw.readConfig();
      assert.ok(text.startsWith(edited), 'the hand edit is kept');
      assert.match(text, /\[apps\.byapi\]/);
      assert.equal((await appAt(gw, 'byhand.test')).app, 'byhand');
      assert.equal((await appAt(gw, 'byapi.test')).app, 'byapi');
      assert.deepEqual(
        assertOk(await adminCall(port, 'GET', '/admin/apps')).apps.map((a: Json) => a.name),
        ['base', 'byhand', 'byapi'],
      );
    } finally {
      await gw.cleanup();
    }
  });

  test('a file edit while a POST is starting its app: neither is lost', async () => {
    const config = adminGatewaySection() + fixtureApp('base', ['base.test']);
    const gw = await GatewayProcess.start({ config });
    try {
      const port = await gw.adminPort();
      const post = adminCall(port, 'POST', '/admin/apps', {
        body: newApp('slowapi', ['slowapi.test'], { env: { START_DELAY_MS: '1200' } }),
      });
      // Its child exists but is not ready yet: edit the file by hand now.
      await waitFor(() => childPidsOf(gw.pid).length === 2 || undefined, 'the new app child to be spawned');
      const edited = `${gw.readConfig()}\n${fixtureApp('byhand', ['byhand.test'])}`;
      gw.writeConfig(edited);
      assertOk(await post, 201);
      const text = gw.readConfig();
      assert.match(text, /\[apps\.slowapi\]/, 'the API add is in the file');
      assert.match(text, /\[apps\.byhand\]/, `the hand edit made during the POST was lost from the file:\n${text}`);
      await waitFor(
        async () => (await appAt(gw, 'byhand.test')).app === 'byhand' || undefined,
        'the hand-added app to serve',
        8_000,
      );
      assert.equal((await appAt(gw, 'slowapi.test')).app, 'slowapi');
    } finally {
      await gw.cleanup();
    }
  });
});

interface LoadResult {
  total: number;
  errors: string[];
  non2xx: string[];
  pids: Set<number>;
}

/** Keep-alive GET load from `clients` concurrent clients until `stop()`, counted into `result`; loopback, bounded by the caller. */
async function loadUntil(
  port: number,
  host: string,
  clients: number,
  stop: () => boolean,
  result: LoadResult,
): Promise<LoadResult> {
  const agent = new http.Agent({ keepAlive: true, maxSockets: clients });
  const worker = async (): Promise<void> => {
    while (!stop()) {
      result.total++;
      try {
        const res = await request(port, { host, agent, path: '/version' });
        if (res.status !== 200) result.non2xx.push(`${res.status} ${res.body.trim()}`);
        else result.pids.add(Number(res.body.trim().split(' ')[1]));
      } catch (err) {
        result.errors.push((err as Error).message);
      }
    }
  };
  try {
    await Promise.all(Array.from({ length: clients }, () => worker()));
  } finally {
    agent.destroy();
  }
  return result;
}

describe('POST /admin/apps/:name/restart', () => {
  let gw: GatewayProcess;
  let port: number;
  before(async () => {
    gw = await GatewayProcess.start({
      config:
        adminGatewaySection() +
        fixtureApp(
          'web',
          ['web.test'],
          'instances = 2\ncwd = "."\nready_timeout_ms = 1000\nenv = { HEALTH_FILE = "healthy", VERSION = "1" }',
        ) +
        fixtureApp('other', ['other.test']),
      files: { healthy: '' },
      readyApps: { web: 2, other: 1 },
    });
    port = await gw.adminPort();
  });
  after(async () => {
    await gw?.cleanup();
  });

  test('200 once the new children serve; pids change; 8 keep-alive clients see no failure', async () => {
    const before = pidsOf(assertOk(await adminCall(port, 'GET', '/admin/apps/web')));
    const otherPid = (await appAt(gw, 'other.test')).pid;
    let stop = false;
    let newPidsSeen = false;
    let fresh: number[] = [];
    const counts: LoadResult = { total: 0, errors: [], non2xx: [], pids: new Set() };
    const load = loadUntil(gw.port, 'web.test', 8, () => stop, counts);
    try {
      await waitFor(() => counts.total >= 200 || undefined, 'the load to be under way');
      const res = await adminCall(port, 'POST', '/admin/apps/web/restart');
      const app = assertOk(res);
      assertApp(app, { name: 'web', hosts: ['web.test'], default: true, instances: 2, gatewayPid: gw.pid });
      fresh = pidsOf(app);
      assert.equal(fresh.filter((p) => before.includes(p)).length, 0, `new pids ${fresh} vs old ${before}`);
      // Keep the load on until it reaches the new children and the old ones have drained away.
      await waitFor(async () => {
        const r = await gw.request({ host: 'web.test', path: '/version' });
        newPidsSeen = fresh.includes(Number(r.body.split(' ')[1]));
        return newPidsSeen && before.every((p) => !processAlive(p)) ? true : undefined;
      }, 'old children to drain and stop');
    } finally {
      stop = true;
    }
    const result = await load;
    console.log(
      `load across an admin restart: ${result.total} requests, ${result.errors.length} errors, ${result.non2xx.length} non-2xx`,
    );
    assert.ok(result.total > 100, `only ${result.total} requests`);
    assert.deepEqual(result.errors, []);
    assert.deepEqual(result.non2xx, []);
    assert.ok(
      fresh.some((p) => result.pids.has(p)),
      'the load reached the new children',
    );
    assert.ok(
      before.some((p) => result.pids.has(p)),
      'the load started on the old children',
    );
    assert.equal((await appAt(gw, 'other.test')).pid, otherPid, 'other apps are not touched');
    assert.deepEqual(childPidsOf(gw.pid).sort(), [...fresh, otherPid].sort());
  });

  test('404 for an unknown app', async () => {
    assertError(await adminCall(port, 'POST', '/admin/apps/nosuchapp/restart'), 404);
  });

  test('422 when the new children do not become ready; the old ones keep serving', async () => {
    const before = pidsOf(assertOk(await adminCall(port, 'GET', '/admin/apps/web')));
    const children = childPidsOf(gw.pid).sort();
    rmSync(`${gw.dir}/healthy`);
    const res = await adminCall(port, 'POST', '/admin/apps/web/restart');
    assertError(res, 422);
    const app = assertOk(await adminCall(port, 'GET', '/admin/apps/web'));
    assert.deepEqual(pidsOf(app), before, 'the old children are still the instances');
    assert.equal(app.state, 'ready');
    assert.equal(typeof app.last_error, 'string');
    assert.ok(app.last_error.length > 0);
    for (let i = 0; i < 4; i++) assert.ok(before.includes((await appAt(gw, 'web.test')).pid));
    assert.deepEqual(childPidsOf(gw.pid).sort(), children, 'the failed new children were stopped');
  });
});

describe('POST /admin/reload', () => {
  test('200 with the summary after a file edit; 400 config_error for an invalid file, nothing changed', async () => {
    const config = (extra: string, version: string): string =>
      adminGatewaySection() +
      fixtureApp('keep', ['keep.test']) +
      fixtureApp('change', ['change.test'], `env = { VERSION = "${version}" }`) +
      fixtureApp('gone', ['gone.test']) +
      extra;
    const gw = await GatewayProcess.start({ config: config('', '1') });
    try {
      const port = await gw.adminPort();
      const keepPid = (await appAt(gw, 'keep.test')).pid;
      const next =
        adminGatewaySection() +
        fixtureApp('keep', ['keep.test']) +
        fixtureApp('change', ['change.test'], 'env = { VERSION = "2" }') +
        fixtureApp('fresh', ['fresh.test']) +
        fixtureApp('bad', ['bad.test'], 'env = { EXIT_AT_START = "1" }');
      gw.writeConfig(next);
      const res = await adminCall(port, 'POST', '/admin/reload');
      const summary = assertOk(res);
      assert.deepEqual(Object.keys(summary).sort(), ['added', 'changed', 'failed', 'removed', 'unchanged']);
      assert.deepEqual(summary.added, ['fresh']);
      assert.deepEqual(summary.removed, ['gone']);
      assert.deepEqual(summary.changed, ['change']);
      assert.deepEqual(summary.unchanged, ['keep']);
      assert.equal(summary.failed.length, 1);
      assert.equal(summary.failed[0].name, 'bad');
      assert.equal(typeof summary.failed[0].error, 'string');
      // 200 means finished: the new versions serve, the removed app is gone.
      assert.match((await gw.request({ host: 'change.test', path: '/version' })).body, /^2 /);
      assert.equal((await appAt(gw, 'fresh.test')).app, 'fresh');
      assert.equal((await appAt(gw, 'gone.test')).app, 'keep');
      assert.equal((await appAt(gw, 'keep.test')).pid, keepPid);
      assert.equal(childPidsOf(gw.pid).length, 3);

      const pids = childPidsOf(gw.pid).sort();
      gw.writeConfig(next.replace('hosts = ["fresh.test"]', 'hosts = "fresh.test"'));
      const bad = await adminCall(port, 'POST', '/admin/reload');
      assertError(bad, 400, 'config_error');
      assert.match(bad.json.error.message, /^nano\.toml:\d+: apps\.fresh\.hosts: /);
      assert.deepEqual(childPidsOf(gw.pid).sort(), pids, 'running apps unchanged');
      assert.equal((await appAt(gw, 'fresh.test')).app, 'fresh');
      assert.equal(assertOk(await adminCall(port, 'GET', '/admin/health')).config_error, bad.json.error.message);
      // While the file is invalid, edits through the API are refused rather than written over it.
      const refused = await adminCall(port, 'POST', '/admin/apps', { body: newApp('late', ['late.test']) });
      assert.ok(refused.status >= 400 && refused.status < 500, `${refused.status}`);
      assert.doesNotMatch(gw.readConfig(), /apps\.late/);
    } finally {
      await gw.cleanup();
    }
  });
});

describe('reload failures are shown by the admin API', () => {
  test('an app added by a file edit that does not start: its error is visible through the admin API', async () => {
    const base = adminGatewaySection() + fixtureApp('web', ['web.test']);
    const gw = await GatewayProcess.start({ config: base });
    try {
      const port = await gw.adminPort();
      gw.writeConfig(base + fixtureApp('bad', ['bad.test'], 'env = { EXIT_AT_START = "1" }'));
      const done = await gw.waitForReloads(1);
      const failed = done.failed as Array<{ name: string; error: string }>;
      assert.deepEqual(
        failed.map((f) => f.name),
        ['bad'],
      );
      const error = (failed[0] as { error: string }).error;
      // SPEC §6: "the error is logged and shown by the admin API"; an app whose latest start never became ready is "failed".
      const shown = [
        (await adminCall(port, 'GET', '/admin/apps')).body,
        (await adminCall(port, 'GET', '/admin/apps/bad')).body,
        (await adminCall(port, 'GET', '/admin/health')).body,
      ];
      assert.ok(
        shown.some((body) => body.includes(error)),
        `the start failure of "bad" (${error}) appears in no admin answer:\n${shown.join('')}`,
      );
      assert.equal((await appAt(gw, 'web.test')).app, 'web', 'the running app keeps serving');
    } finally {
      await gw.cleanup();
    }
  });
});

describe('token', () => {
  const check = async (port: number, token: string): Promise<void> => {
    for (const path of ['/admin/health', '/admin/apps', '/admin/metrics', '/admin/apps/web']) {
      const none = await adminCall(port, 'GET', path);
      assertError(none, 401);
      const wrong = await adminCall(port, 'GET', path, { token: `${token}x` });
      assertError(wrong, 401);
      assertError(await adminCall(port, 'GET', path, { token: token.slice(0, -1) }), 401);
      assertError(await adminCall(port, 'GET', path, { headers: { authorization: token } }), 401);
      assertError(
        await adminCall(port, 'GET', path, {
          headers: { authorization: `Basic ${Buffer.from(`u:${token}`).toString('base64')}` },
        }),
        401,
      );
      const right = await adminCall(port, 'GET', path, { token });
      assert.equal(right.status, 200, `${path}: ${right.body}`);
    }
    // A refused write does nothing.
    assertError(await adminCall(port, 'POST', '/admin/apps/web/restart'), 401);
    assertError(await adminCall(port, 'POST', '/admin/apps', { body: newApp('sneaky', ['sneaky.test']) }), 401);
    assertError(await adminCall(port, 'DELETE', '/admin/apps/web'), 401);
  };

  test('[admin] token: without it or with a wrong one 401, with Bearer <token> 200', async () => {
    const gw = await GatewayProcess.start({
      config: adminGatewaySection('', 'token = "s3cret-file"') + fixtureApp('web', ['web.test']),
    });
    try {
      const port = await gw.adminPort();
      const pid = (await appAt(gw, 'web.test')).pid;
      await check(port, 's3cret-file');
      assert.equal((await appAt(gw, 'web.test')).pid, pid, 'the refused restart and delete did nothing');
      assert.doesNotMatch(gw.readConfig(), /sneaky/);
    } finally {
      await gw.cleanup();
    }
  });

  test('NANO_ADMIN_TOKEN in the gateway environment sets the token (and wins over the file)', async () => {
    const gw = await GatewayProcess.start({
      config: adminGatewaySection('', 'token = "from-file"') + fixtureApp('web', ['web.test']),
      env: { NANO_ADMIN_TOKEN: 'from-env' },
    });
    try {
      const port = await gw.adminPort();
      await check(port, 'from-env');
      assertError(await adminCall(port, 'GET', '/admin/health', { token: 'from-file' }), 401);
    } finally {
      await gw.cleanup();
    }
  });

  test('without a token no auth is needed; [admin] listen = false: no admin listener', async () => {
    const gw = await GatewayProcess.start({ config: gatewaySection() + fixtureApp('web', ['web.test']) });
    try {
      // SIGHUP's handler is installed after start-up (admin included) has finished; its reload comes after.
      gw.proc.kill('SIGHUP');
      await gw.waitForReloads(1);
      assert.equal(gw.logs.filter((l) => String(l.msg).startsWith('admin API')).length, 0, 'no admin API line');
      assert.equal((await appAt(gw, 'web.test')).app, 'web');
    } finally {
      await gw.cleanup();
    }
    const open = await GatewayProcess.start({ config: adminGatewaySection() + fixtureApp('web', ['web.test']) });
    try {
      const port = await open.adminPort();
      assert.equal((await adminCall(port, 'GET', '/admin/apps')).status, 200);
      assert.equal((await adminCall(port, 'GET', '/admin/health', { token: 'anything' })).status, 200);
      // A token added by a reload applies at once.
      open.writeConfig(open.readConfig().replace('[admin]\n', '[admin]\ntoken = "added-later"\n'));
      await open.waitForReloads(1);
      assertError(await adminCall(port, 'GET', '/admin/apps'), 401);
      assert.equal((await adminCall(port, 'GET', '/admin/apps', { token: 'added-later' })).status, 200);
    } finally {
      await open.cleanup();
    }
  });
});

describe('app states (SPEC §6)', () => {
  test('starting until ready, failed when the latest start never became ready, restarting after a crash', async () => {
    const gw = await GatewayProcess.start({
      config:
        adminGatewaySection() +
        fixtureApp(
          'starter',
          ['starter.test'],
          'env = { HEALTH_FILE = "never.flag" }\ncwd = "."\nready_timeout_ms = 60000',
        ) +
        fixtureApp('failer', ['failer.test'], 'env = { HEALTH_STATUS = "500" }\nready_timeout_ms = 300') +
        fixtureApp(
          'crasher',
          ['crasher.test'],
          'env = { HEALTH_FILE = "ok.flag" }\ncwd = "."\nready_timeout_ms = 60000',
        ),
      files: { 'ok.flag': 'ok' },
      readyApps: { crasher: 1 },
    });
    try {
      const admin = await gw.adminPort();
      const state = async (name: string): Promise<{ state: string; last_error: string | null }> =>
        (await adminCall(admin, 'GET', `/admin/apps/${name}`)).json as { state: string; last_error: string | null };
      assert.equal((await state('starter')).state, 'starting');
      assert.equal((await state('crasher')).state, 'ready');
      await gw.waitForLog((l) => l.app === 'failer' && l.msg === 'instance failed to start');
      const failer = await state('failer');
      assert.equal(failer.state, 'failed');
      assert.match(failer.last_error ?? '', /not ready within 300 ms/);
      // The restarted child will never be healthy, so the app stays without a ready instance.
      rmSync(path.join(gw.dir, 'ok.flag'));
      await gw.request({ host: 'crasher.test', path: '/crash' });
      await waitFor(
        async () => (await state('crasher')).state === 'restarting' || undefined,
        'crasher to be restarting',
      );
      assert.match((await state('crasher')).last_error ?? '', /exited with code 1/);
    } finally {
      await gw.cleanup();
    }
  });
});
