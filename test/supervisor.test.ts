import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { RestartBackoff } from '../src/supervisor/backoff.js';
import { FIXTURE_APP, fixtureApp, GatewayProcess, gatewaySection, processAlive, waitFor } from './helpers.js';

interface Info {
  app: string;
  pid: number;
  ppid: number;
  port: string;
  host: string;
  cwd: string;
  argv: string[];
  execArgv: string[];
  heapLimit: number;
  env: Record<string, string | null>;
}

describe('the child process', () => {
  let gw: GatewayProcess;
  let info: Info;

  before(async () => {
    gw = await GatewayProcess.start({
      env: { FROM_GATEWAY: 'inherited', GREETING: 'from-gateway-env' },
      config:
        gatewaySection() +
        fixtureApp(
          'envapp',
          ['env.test'],
          `max_memory_mb = 96
node_args = ["--stack-size=900"]
args = ["--flag", "value with space"]
env = { GREETING = "hi", PORT = "1", NANO_APP = "spoofed" }`,
        ),
    });
    const res = await gw.request({ host: 'env.test', path: '/info' });
    assert.equal(res.status, 200);
    info = JSON.parse(res.body) as Info;
  });
  after(async () => {
    await gw?.cleanup();
  });

  test('is a direct child of the gateway, started as node --max-old-space-size=N [node_args] entry [args]', () => {
    assert.equal(info.ppid, gw.pid, 'no wrapper process in between');
    assert.ok(info.execArgv.includes('--max-old-space-size=96'), info.execArgv.join(' '));
    assert.ok(info.execArgv.includes('--stack-size=900'), 'node_args reach node');
    assert.ok(
      info.execArgv.indexOf('--max-old-space-size=96') < info.execArgv.indexOf('--stack-size=900'),
      'memory cap comes before node_args',
    );
    assert.deepEqual(info.argv, ['--flag', 'value with space']);
    // A 96 MB old space gives a heap limit far below the multi-GB default of this machine.
    assert.ok(info.heapLimit < 200 * 1024 * 1024, `heap limit ${info.heapLimit}`);
  });

  test("env: the gateway's, then the app's, then PORT, HOST and NANO_APP set by the gateway", () => {
    assert.equal(info.env.FROM_GATEWAY, 'inherited');
    assert.equal(info.env.GREETING, 'hi', "the app's env wins over the gateway's");
    assert.equal(info.env.NANO_APP, 'envapp', 'NANO_APP cannot be overridden');
    assert.equal(info.host, '127.0.0.1');
    assert.notEqual(info.port, '1', 'PORT is chosen by the gateway');
    const ready = gw.readyLogs('envapp')[0];
    assert.equal(String(ready?.port), info.port, 'the child listens on the port the gateway gave it');
  });

  test('runs in the entry directory by default', () => {
    assert.equal(info.cwd, path.dirname(FIXTURE_APP));
  });

  test('its stdout and stderr lines become gateway log lines tagged with app, pid and stream', async () => {
    const out = await gw.waitForLog((l) => l.stream === 'stdout' && String(l.msg).includes('listening on'));
    const err = await gw.waitForLog((l) => l.stream === 'stderr' && String(l.msg).includes('stderr hello'));
    for (const line of [out, err]) {
      assert.equal(line.app, 'envapp');
      assert.equal(line.pid, info.pid);
    }
  });
});

describe('readiness', () => {
  test('a child gets traffic only once its health check answers 2xx; until then requests wait', async () => {
    const gw = await GatewayProcess.start({
      config:
        gatewaySection('queue_timeout_ms = 8000') +
        fixtureApp('gated', ['gated.test'], 'env = { HEALTH_FILE = "healthy.flag", LOG_HEALTH = "1" }\ncwd = "."'),
      readyApps: {},
    });
    try {
      const unhealthy = (): number =>
        gw.logs.filter((l) => l.app === 'gated' && l.msg === 'health check answered 503').length;
      await waitFor(() => unhealthy() >= 1, 'a failing health check');
      let answeredAt = 0;
      const pending = gw.request({ host: 'gated.test', path: '/info' }).then((r) => {
        answeredAt = Date.now();
        return r;
      });
      // Two more failing checks after the request went out: it must still be waiting.
      const seen = unhealthy();
      await waitFor(() => unhealthy() >= seen + 2, 'two more failing health checks');
      assert.equal(answeredAt, 0, 'no answer while the child is unhealthy');
      assert.equal(gw.readyLogs('gated').length, 0);
      const flaggedAt = Date.now();
      writeFileSync(path.join(gw.dir, 'healthy.flag'), 'ok');
      const res = await pending;
      assert.equal(res.status, 200);
      assert.ok(answeredAt >= flaggedAt, 'answered after the health check passed');
      assert.equal(gw.readyLogs('gated').length, 1);
    } finally {
      await gw.cleanup();
    }
  });

  test('an app that never becomes ready: requests wait queue_timeout_ms, then 503 with Retry-After', async () => {
    const gw = await GatewayProcess.start({
      config:
        gatewaySection('queue_timeout_ms = 400') +
        fixtureApp('never', ['never.test'], 'env = { HEALTH_STATUS = "500" }\nready_timeout_ms = 60000'),
      readyApps: {},
    });
    try {
      const started = Date.now();
      const res = await gw.request({ host: 'never.test', path: '/' });
      const waited = Date.now() - started;
      assert.equal(res.status, 503);
      assert.ok(res.headers['retry-after'], 'Retry-After is set');
      assert.match(res.body, /never/);
      assert.ok(waited >= 350, `waited ${waited} ms before answering`);
    } finally {
      await gw.cleanup();
    }
  });

  test('a child not ready within ready_timeout_ms is killed and started again', async () => {
    const gw = await GatewayProcess.start({
      config:
        gatewaySection() +
        fixtureApp('slowpoke', ['slow.test'], 'env = { NEVER_LISTEN = "1" }\nready_timeout_ms = 300'),
      readyApps: {},
      // The pids come from the gateway's own "instance starting" lines: with 300 ms, readiness can
      // expire before a loaded machine's node has printed anything, so the child's output may never come.
      args: ['--log-level', 'debug'],
    });
    const starts = (): number[] =>
      gw.logs.filter((l) => l.app === 'slowpoke' && l.msg === 'instance starting').map((l) => Number(l.pid));
    try {
      const failed = await gw.waitForLog((l) => l.app === 'slowpoke' && l.msg === 'instance failed to start');
      assert.match(String(failed.err), /not ready within 300 ms/);
      const firstPid = starts()[0] ?? 0;
      assert.ok(firstPid > 0);
      await waitFor(() => !processAlive(firstPid), 'the never-ready child to be killed', 8000);
      await gw.waitForLog((l) => l.app === 'slowpoke' && l.msg === 'restarting instance');
      await waitFor(() => starts().some((pid) => pid !== firstPid), 'a second attempt with a new process');
    } finally {
      await gw.cleanup();
    }
  });
});

describe('crashes', () => {
  let gw: GatewayProcess;

  before(async () => {
    gw = await GatewayProcess.start({
      config:
        gatewaySection('queue_timeout_ms = 300') +
        fixtureApp('crashy', ['crashy.test']) +
        fixtureApp('looper', ['looper.test'], 'env = { EXIT_AT_START = "1" }'),
      readyApps: { crashy: 1 },
    });
  });
  after(async () => {
    await gw?.cleanup();
  });

  test('a child that exits is restarted with a new pid, and serves again', async () => {
    const first = gw.readyPids('crashy')[0];
    const res = await gw.request({ host: 'crashy.test', path: '/crash' });
    assert.equal(res.status, 200);
    assert.equal(JSON.parse(res.body).pid, first);
    await gw.waitForLog((l) => l.app === 'crashy' && l.msg === 'instance exited unexpectedly');
    await waitFor(() => gw.readyPids('crashy').length >= 2 || undefined, 'the restarted child to be ready');
    const second = gw.readyPids('crashy')[1];
    assert.notEqual(second, first);
    assert.ok(!processAlive(first as number));
    const again = await gw.request({ host: 'crashy.test', path: '/info' });
    assert.equal(again.status, 200);
    assert.equal(JSON.parse(again.body).pid, second);
  });

  test('a crash loop backs off: 100 ms doubling, so only a handful of restarts in seconds', async () => {
    const firstLog = gw.logs.findIndex((l) => l.app === 'looper' && l.msg === 'restarting instance');
    await gw.waitForLog(
      (l) => l.app === 'looper' && l.msg === 'restarting instance' && Number(l.delay_ms) >= 1600,
      15_000,
    );
    const restarts = gw.logs.filter((l) => l.app === 'looper' && l.msg === 'restarting instance');
    assert.ok(firstLog !== -1 || restarts.length > 0);
    assert.deepEqual(
      restarts.slice(0, 5).map((l) => l.delay_ms),
      [100, 200, 400, 800, 1600],
    );
    const elapsed = Number(restarts[4]?.time) - Number(restarts[0]?.time);
    assert.ok(elapsed >= 1500 - 50, `the 5th restart came ${elapsed} ms after the first (backoff 100+200+400+800)`);
    // While it has no ready child, its requests wait, then get 503.
    const res = await gw.request({ host: 'looper.test' });
    assert.equal(res.status, 503);
  });

  test('the other app is not disturbed by a crash-looping neighbour', async () => {
    const res = await gw.request({ host: 'crashy.test', path: '/info' });
    assert.equal(res.status, 200);
  });
});

describe('instances', () => {
  test('requests are balanced across the ready instances', async () => {
    const gw = await GatewayProcess.start({
      config: gatewaySection() + fixtureApp('multi', ['multi.test'], 'instances = 3'),
      readyApps: { multi: 3 },
    });
    try {
      const pids = new Set(gw.readyPids('multi'));
      assert.equal(pids.size, 3);
      const counts = new Map<number, number>();
      for (let i = 0; i < 30; i++) {
        const res = await gw.request({ host: 'multi.test', path: '/info' });
        const pid = (JSON.parse(res.body) as Info).pid;
        assert.ok(pids.has(pid));
        counts.set(pid, (counts.get(pid) ?? 0) + 1);
      }
      assert.equal(counts.size, 3, 'every instance served');
      for (const [pid, n] of counts) assert.ok(n >= 5, `instance ${pid} served ${n} of 30`);
    } finally {
      await gw.cleanup();
    }
  });

  test('when one instance dies its requests go to the others while it restarts', async () => {
    const gw = await GatewayProcess.start({
      config: gatewaySection() + fixtureApp('pair', ['pair.test'], 'instances = 2'),
      readyApps: { pair: 2 },
    });
    try {
      const [a, b] = gw.readyPids('pair');
      await gw.request({ host: 'pair.test', path: '/crash' });
      const statuses: number[] = [];
      for (let i = 0; i < 20; i++) statuses.push((await gw.request({ host: 'pair.test', path: '/info' })).status);
      assert.deepEqual(new Set(statuses), new Set([200]));
      await waitFor(() => gw.readyPids('pair').length >= 3 || undefined, 'the crashed instance to come back');
      assert.ok(a !== b);
    } finally {
      await gw.cleanup();
    }
  });
});

describe('restart backoff', () => {
  test('100 ms doubling to 30 s, back to 100 ms after a child stayed up 60 s', () => {
    const backoff = new RestartBackoff();
    const delays = Array.from({ length: 11 }, () => backoff.next(50));
    assert.deepEqual(delays, [100, 200, 400, 800, 1600, 3200, 6400, 12800, 25600, 30000, 30000]);
    assert.equal(backoff.next(59_999), 30000, 'under a minute up: still backing off');
    assert.equal(backoff.next(60_000), 100, 'a minute up: the next crash starts over');
    assert.equal(backoff.next(10), 200);
  });
});
