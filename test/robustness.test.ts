/**
 * Edge cases found in review: other upgrades than WebSocket, failed
 * upgrades, a busy admin port, clients that leave, children that die between
 * readiness and the swap, removal right after a restart, timer limits.
 */
import assert from 'node:assert/strict';
import net from 'node:net';
import path from 'node:path';
import { describe, test } from 'node:test';
import { parseConfig } from '../src/config/load.js';
import {
  adminCall,
  adminGatewaySection,
  fixtureApp,
  GatewayProcess,
  gatewaySection,
  processAlive,
  rawRequest,
  runCli,
  statusOf,
  tempDir,
  waitFor,
  writeFiles,
} from './helpers.js';

describe('upgrades', () => {
  test('Upgrade: h2c is answered as plain HTTP/1.1 (like nginx); with a body it is 400; a failed WebSocket upgrade is 502', async () => {
    const gw = await GatewayProcess.start({
      config: gatewaySection('drain_timeout_ms = 20000') + fixtureApp('web', ['web.test']),
    });
    try {
      const h2c = await rawRequest(
        gw.port,
        'GET /info?h2c=1 HTTP/1.1\r\nHost: web.test\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n\r\n',
      );
      assert.equal(statusOf(h2c), 200, h2c);
      assert.match(h2c, /"app":"web"/);
      assert.doesNotMatch(h2c, /"upgrade"/, 'the child does not see the upgrade offer');
      // The request is finished like any other: logged, and not left in flight.
      const line = await gw.waitForLog((l) => l.kind === 'access' && l.path === '/info?h2c=1');
      assert.equal(line.status, 200);

      const withBody = await rawRequest(
        gw.port,
        'POST /echo HTTP/1.1\r\nHost: web.test\r\nConnection: Upgrade\r\nUpgrade: h2c\r\nContent-Length: 3\r\n\r\nabc',
      );
      assert.equal(statusOf(withBody), 400, withBody);

      // The fixture destroys the socket of a WebSocket upgrade to any path but /ws.
      const started = Date.now();
      const refusedWs = await rawRequest(
        gw.port,
        'GET /not-ws HTTP/1.1\r\nHost: web.test\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n',
      );
      assert.equal(statusOf(refusedWs), 502, refusedWs);
      assert.match(refusedWs, /web/);
      assert.ok(Date.now() - started < 4_000, 'answered, not left hanging');
      assert.equal((await gw.request({ host: 'web.test', path: '/info' })).status, 200);
      // Nothing is counted in flight any more: SIGTERM does not wait out drain_timeout_ms (20 s).
      const stopping = Date.now();
      const exit = await gw.stop('SIGTERM');
      assert.equal(exit.code, 0);
      assert.ok(Date.now() - stopping < 8_000, `shutdown took ${Date.now() - stopping} ms`);
    } finally {
      await gw.cleanup();
    }
  });
});

describe('start-up', () => {
  test('a busy admin port: exit 1 naming that address, and no app is started', async () => {
    const blocker = net.createServer();
    await new Promise<void>((r) => blocker.listen(0, '127.0.0.1', r));
    const busy = (blocker.address() as net.AddressInfo).port;
    const dir = tempDir();
    try {
      writeFiles(dir, {
        'nano.toml':
          gatewaySection().replace('listen = false', `listen = "127.0.0.1:${busy}"`) + fixtureApp('web', ['web.test']),
      });
      const res = await runCli(['start', '-c', path.join(dir, 'nano.toml'), '--json'], { cwd: dir, timeoutMs: 10_000 });
      assert.equal(res.timedOut, false, 'the gateway exited');
      assert.equal(res.code, 1);
      assert.equal(res.stderr.trim().split('\n').length, 1);
      assert.match(res.stderr, new RegExp(`cannot listen on 127\\.0\\.0\\.1:${busy}: address already in use`));
      assert.doesNotMatch(res.stdout, /instance (starting|ready)|fixture web listening/);
    } finally {
      blocker.close();
    }
  });
});

describe('clients that leave', () => {
  test('a client gone mid-request is logged as 499, not as a failed child, and is not sent again', async () => {
    const gw = await GatewayProcess.start({ config: adminGatewaySection() + fixtureApp('web', ['web.test']) });
    try {
      const admin = await gw.adminPort();
      const counts = async (): Promise<Record<string, number>> =>
        JSON.parse((await gw.request({ host: 'web.test', path: '/counts' })).body) as Record<string, number>;
      for (const method of ['GET', 'POST']) {
        const before = (await counts())['/slow'] ?? 0;
        const socket = net.connect(gw.port, '127.0.0.1');
        await new Promise<void>((r) => socket.once('connect', () => r()));
        socket.write(`${method} /slow?ms=800&leave=${method} HTTP/1.1\r\nHost: web.test\r\nContent-Length: 0\r\n\r\n`);
        await waitFor(
          async () => ((await counts())['/slow'] ?? 0) > before || undefined,
          'the slow request to reach the child',
        );
        socket.destroy();
        const line = await gw.waitForLog((l) => l.kind === 'access' && String(l.path).includes(`leave=${method}`));
        assert.equal(line.status, 499, method);
        // A resend is dispatched at once, so it would reach the child before this marker does.
        await gw.request({ host: 'web.test', path: `/info?marker=${method}` });
        assert.equal((await counts())['/slow'], before + 1, `${method} reached the child once`);
      }
      const metrics = (await adminCall(admin, 'GET', '/admin/metrics')).body;
      assert.match(metrics, /nano_upstream_errors_total\{app="web",kind="502"\} 0/);
      assert.ok(!gw.logs.some((l) => l.msg === 'upstream request failed'), 'not logged as a failed child');
    } finally {
      await gw.cleanup();
    }
  });
});

describe('reload edge cases', () => {
  test('a new child that dies after it was ready, while another app is still starting, fails its reload: the old one keeps serving', async () => {
    const config = (v: string, extraA = '', extraB = ''): string =>
      gatewaySection() +
      fixtureApp('a', ['a.test'], `env = { VERSION = "${v}"${extraA} }`) +
      fixtureApp('b', ['b.test'], `env = { VERSION = "${v}"${extraB} }`);
    const gw = await GatewayProcess.start({ config: config('1') });
    try {
      const oldA = gw.readyPids('a')[0];
      // a's new child exits 300 ms after listening; b's new child listens only after 1.5 s.
      gw.writeConfig(config('2', ', EXIT_AFTER_MS = "300"', ', START_DELAY_MS = "1500"'));
      const done = await gw.waitForReloads(1, 20_000);
      const failed = new Map((done.failed as Array<{ name: string; error: string }>).map((f) => [f.name, f.error]));
      assert.match(failed.get('a') ?? '', /exited after it was ready/);
      assert.deepEqual(done.changed, ['b']);
      const served = await gw.request({ host: 'a.test', path: '/version' });
      assert.equal(served.body, `1 ${oldA}`, 'a still served by its old child');
      assert.ok(processAlive(oldA as number));
    } finally {
      await gw.cleanup();
    }
  });

  test('deleting an app right after a restart lets its older generation finish the request in flight', async () => {
    const gw = await GatewayProcess.start({
      config: adminGatewaySection() + fixtureApp('keep', ['keep.test']) + fixtureApp('web', ['web.test']),
    });
    try {
      const admin = await gw.adminPort();
      const slow = gw.request({ host: 'web.test', path: '/slow?ms=2000' });
      await waitFor(async () => {
        const r = await gw.request({ host: 'web.test', path: '/inflight' });
        return (JSON.parse(r.body) as { inFlight: number }).inFlight >= 2 || undefined;
      }, 'the slow request to be in flight');
      assert.equal((await adminCall(admin, 'POST', '/admin/apps/web/restart')).status, 200);
      const removed = await adminCall(admin, 'DELETE', '/admin/apps/web');
      assert.equal(removed.status, 200);
      const res = await slow;
      assert.equal(res.status, 200, 'the request on the drained generation was not cut');
      assert.equal(JSON.parse(res.body).slept, 2000);
    } finally {
      await gw.cleanup();
    }
  });
});

describe('config limits', () => {
  const dir = tempDir('nano-limits-');
  writeFiles(dir, { 'app.js': '' });
  const file = path.join(dir, 'nano.toml');
  const app = '\n[apps.web]\nhosts = ["web.test"]\nentry = "app.js"\n';

  test('a timeout beyond what a timer can wait is an error, not an immediate timeout', () => {
    assert.throws(
      () => parseConfig(`[gateway]\nqueue_timeout_ms = 3000000000\n${app}`, file, { displayFile: 'nano.toml' }),
      /nano\.toml:2: gateway\.queue_timeout_ms: must be from 0 to 2147483647/,
    );
    assert.equal(
      parseConfig(`[gateway]\nqueue_timeout_ms = 2147483647\n${app}`, file).gateway.queueTimeoutMs,
      2147483647,
    );
  });

  test('default_app must name an app, not an inherited property', () => {
    assert.throws(
      () => parseConfig(`[gateway]\ndefault_app = "constructor"\n${app}`, file, { displayFile: 'nano.toml' }),
      /no app named "constructor"/,
    );
  });
});
