import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import {
  canConnect,
  childPidsOf,
  fixtureApp,
  GatewayProcess,
  gatewaySection,
  processAlive,
  waitFor,
} from './helpers.js';

describe('shutdown', () => {
  test('SIGTERM: new connections are refused, the in-flight request completes, children stop, exit 0', async () => {
    const gw = await GatewayProcess.start({ config: gatewaySection() + fixtureApp('web', ['web.test']) });
    try {
      const children = childPidsOf(gw.pid);
      assert.equal(children.length, 1);
      const inFlight = gw.request({ host: 'web.test', path: '/slow?ms=1500' });
      // The slow request has reached the child once the child counts it (plus this probe) in flight.
      await waitFor(async () => {
        const r = await gw.request({ host: 'web.test', path: '/inflight' });
        return (JSON.parse(r.body) as { inFlight: number }).inFlight >= 2 || undefined;
      }, 'the slow request to be in flight');
      gw.proc.kill('SIGTERM');
      await gw.waitForLog((l) => l.msg === 'shutting down: finishing in-flight requests');
      assert.equal(await canConnect(gw.port), false, 'the listener is closed');
      const res = await inFlight;
      assert.equal(res.status, 200);
      assert.equal(JSON.parse(res.body).slept, 1500);
      const exit = await gw.exit;
      assert.equal(exit.code, 0);
      await waitFor(() => children.every((pid) => !processAlive(pid)), 'children to exit');
    } finally {
      await gw.cleanup();
    }
  });

  test('SIGINT shuts down the same way', async () => {
    const gw = await GatewayProcess.start({ config: gatewaySection() + fixtureApp('web', ['web.test']) });
    try {
      const children = childPidsOf(gw.pid);
      const exit = await gw.stop('SIGINT');
      assert.equal(exit.code, 0);
      assert.ok(children.length === 1 && children.every((pid) => !processAlive(pid)));
    } finally {
      await gw.cleanup();
    }
  });

  test('a child that ignores SIGTERM is killed after kill_timeout_ms', async () => {
    const gw = await GatewayProcess.start({
      config:
        gatewaySection() +
        fixtureApp('stubborn', ['stubborn.test'], 'env = { IGNORE_SIGTERM = "1" }\nkill_timeout_ms = 400'),
    });
    try {
      const [child] = childPidsOf(gw.pid);
      assert.ok(child);
      const started = Date.now();
      const exit = await gw.stop('SIGTERM');
      assert.equal(exit.code, 0);
      assert.ok(!processAlive(child));
      assert.ok(
        gw.logs.some((l) => l.app === 'stubborn' && l.msg === 'fixture: ignoring SIGTERM'),
        'it got SIGTERM first',
      );
      assert.ok(Date.now() - started >= 380, 'SIGKILL came only after kill_timeout_ms');
    } finally {
      await gw.cleanup();
    }
  });
});

describe('no orphans', () => {
  test('children exit when the gateway is killed with SIGKILL', async () => {
    const gw = await GatewayProcess.start({
      config: gatewaySection() + fixtureApp('one', ['one.test'], 'instances = 2') + fixtureApp('two', ['two.test']),
      readyApps: { one: 2, two: 1 },
    });
    try {
      const children = childPidsOf(gw.pid);
      assert.equal(children.length, 3);
      await gw.kill();
      await waitFor(
        () => children.every((pid) => !processAlive(pid)),
        'every child to exit after the gateway died',
        10_000,
      );
    } finally {
      await gw.cleanup();
    }
  });

  test('children that ignore SIGTERM still exit when the gateway is gone', async () => {
    const gw = await GatewayProcess.start({
      config: gatewaySection() + fixtureApp('stubborn', ['stubborn.test'], 'env = { IGNORE_SIGTERM = "1" }'),
    });
    try {
      const children = childPidsOf(gw.pid);
      assert.equal(children.length, 1);
      await gw.kill();
      await waitFor(() => children.every((pid) => !processAlive(pid)), 'the child to exit', 10_000);
    } finally {
      await gw.cleanup();
    }
  });
});
