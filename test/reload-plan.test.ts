/**
 * Reload planning (README, Reloading), in process: the real reloader, app
 * set and config parsing, with a fake app runtime in place of child
 * processes and a fake data plane that records what it is told. Which apps
 * keep their old version, which hosts are held back, where the default app
 * goes, and the order of the swap: publish, then drain, then stop.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { pino } from 'pino';
import { loadConfig } from '../src/config/load.js';
import type { AppConfig } from '../src/config/schema.js';
import { AppSet } from '../src/control/app-set.js';
import { ConfigSource } from '../src/control/config-source.js';
import { Drainer } from '../src/control/drainer.js';
import { IdleController } from '../src/control/idle.js';
import { OperationQueue } from '../src/control/operation-queue.js';
import { Reloader } from '../src/control/reloader.js';
import type { GenerationHandle, SupervisedApp } from '../src/control/supervised.js';
import type { DataPlane, DataPlaneSettings } from '../src/dataplane/data-plane.js';
import type { TrafficSnapshot } from '../src/dataplane/stats.js';
import type { RouteTableData, UpstreamAddress } from '../src/routing/table.js';
import type { AppState, InstanceInfo } from '../src/supervisor/generation.js';

/** Everything the fakes were asked to do, in order. */
type Event = string;

class FakeGeneration implements GenerationHandle {
  constructor(
    readonly id: number,
    readonly config: AppConfig,
  ) {}
  allAlive(): boolean {
    return true;
  }
}

let generations = 0;

/** An app whose generations start at once, or fail when the runtime says so. */
class FakeApp implements SupervisedApp {
  readonly name: string;
  config: AppConfig;
  lastError: string | null = null;
  current: FakeGeneration | null = null;
  isIdle = false;
  private readonly live = new Set<FakeGeneration>();

  constructor(
    config: AppConfig,
    private readonly runtime: FakeRuntime,
  ) {
    this.name = config.name;
    this.config = config;
  }

  start(): void {
    this.current = this.generation(this.config);
  }

  async prepare(config: AppConfig): Promise<FakeGeneration> {
    this.runtime.prepared.push(config);
    const reason = this.runtime.failing.get(config.name);
    if (reason) {
      this.lastError = reason;
      throw new Error(reason);
    }
    return this.generation(config);
  }

  promote(gen: FakeGeneration): FakeGeneration | null {
    const old = this.current;
    this.current = gen;
    this.config = gen.config;
    this.lastError = null;
    this.isIdle = false;
    return old;
  }

  sleep(): FakeGeneration | null {
    const old = this.current;
    this.current = null;
    this.isIdle = true;
    return old;
  }

  adopt(config: AppConfig): void {
    this.config = config;
  }

  async discard(gen: FakeGeneration): Promise<void> {
    this.live.delete(gen);
    this.runtime.events.push(`discard ${this.id(gen)}`);
  }

  beginDrain(gen: FakeGeneration): string[] {
    return [this.id(gen)];
  }

  async stopGeneration(gen: FakeGeneration): Promise<void> {
    this.live.delete(gen);
    this.runtime.events.push(`stop ${this.id(gen)}`);
  }

  liveGenerations(): FakeGeneration[] {
    return [...this.live].sort((a) => (a === this.current ? -1 : 1));
  }

  async stop(): Promise<void> {
    for (const gen of this.live) await this.stopGeneration(gen);
  }

  killAll(): void {}

  servingUpstreams(): UpstreamAddress[] {
    return this.current ? [{ id: this.id(this.current), host: '127.0.0.1', port: 1 }] : [];
  }

  state(): AppState {
    return this.isIdle ? 'idle' : 'ready';
  }

  instances(): InstanceInfo[] {
    return [];
  }

  private generation(config: AppConfig): FakeGeneration {
    const gen = new FakeGeneration(++generations, config);
    this.live.add(gen);
    return gen;
  }

  private id(gen: FakeGeneration): string {
    return `${this.name}@${gen.id}`;
  }
}

class FakeRuntime {
  readonly failing = new Map<string, string>();
  /** Every config a generation was prepared for. */
  readonly prepared: AppConfig[] = [];
  readonly events: Event[] = [];
}

class FakeDataPlane implements DataPlane {
  readonly tables: RouteTableData[] = [];
  constructor(private readonly events: Event[]) {}
  publish(table: RouteTableData): void {
    this.tables.push(table);
    this.events.push(`publish ${table.version}`);
  }
  configure(_settings: DataPlaneSettings): void {}
  publishCertificates(): void {}
  publishChallenges(): void {}
  async drain(ids: readonly string[]): Promise<void> {
    this.events.push(`drain ${ids.join(',')}`);
  }
  forget(): void {}
  onWake(): void {}
  async settled(): Promise<void> {}
  stats(): TrafficSnapshot {
    return {};
  }
  get last(): RouteTableData {
    return this.tables.at(-1) as RouteTableData;
  }
}

let dir: string;
let file: string;

before(() => {
  dir = mkdtempSync(path.join(os.tmpdir(), 'nano-plan-'));
  file = path.join(dir, 'nano.toml');
  writeFileSync(path.join(dir, 'app.js'), '// never run: the runtime is a fake\n');
});

after(() => rmSync(dir, { recursive: true, force: true }));

function toml(apps: Record<string, { hosts: string[]; version?: string; extra?: string }>, gateway = ''): string {
  let text = `[gateway]\nlisten = "127.0.0.1:0"\n${gateway}\n[admin]\nlisten = false\n`;
  for (const [name, app] of Object.entries(apps)) {
    text += `\n[apps.${name}]\nhosts = ${JSON.stringify(app.hosts)}\nentry = "app.js"\nenv = { VERSION = "${app.version ?? '1'}" }\n${app.extra ?? ''}\n`;
  }
  return text;
}

/** A running gateway's control plane over fakes, started on `text`. */
function start(text: string) {
  writeFileSync(file, text);
  const { config } = loadConfig(file);
  const runtime = new FakeRuntime();
  const dataPlane = new FakeDataPlane(runtime.events);
  const apps = new AppSet(config);
  const publish = (): number => {
    const table = apps.routeTable();
    dataPlane.publish(table);
    return table.version;
  };
  for (const app of config.apps) {
    const fake = new FakeApp(app, runtime);
    apps.attach(app.name, fake);
    fake.start();
    apps.setRoutes(fake, fake.servingUpstreams());
  }
  const ops = new OperationQueue();
  const drainer = new Drainer(dataPlane, () => 1000);
  const reloader = new Reloader({
    apps,
    dataPlane,
    source: new ConfigSource(file, 'nano.toml', text),
    ops,
    drainer,
    newSupervisor: (app) => new FakeApp(app, runtime),
    publish,
    logger: pino({ level: 'silent' }),
    onApplied: async () => {},
  });
  publish();
  const reload = async (next: string) => {
    writeFileSync(file, next);
    runtime.events.length = 0;
    const outcome = await reloader.reload('admin');
    assert.ok(outcome.ok, JSON.stringify(outcome));
    return outcome.summary;
  };
  /** Host → the upstream ids the last table sends it to. */
  const routes = (): Record<string, string[]> => {
    const out: Record<string, string[]> = {};
    for (const app of dataPlane.last.apps) for (const host of app.hosts) out[host] = app.upstreams.map((u) => u.id);
    return out;
  };
  // Scale to zero over the same fakes: traffic counters and the clock are the test's.
  let traffic: TrafficSnapshot = {};
  const clock = { now: 0 };
  const idle = new IdleController({
    apps,
    ops,
    drainer,
    traffic: () => traffic,
    publish,
    logger: pino({ level: 'silent' }),
    now: () => clock.now,
  });
  const setTraffic = (app: string, active: number, lastActiveAt: number): void => {
    traffic = { ...traffic, [app]: { ...NO_TRAFFIC, active, lastActiveAt } };
  };
  /** Resolves once every operation queued so far has run. */
  const settled = (): Promise<void> => ops.run(async () => {});
  return { runtime, dataPlane, apps, reload, routes, idle, clock, setTraffic, settled };
}

const NO_TRAFFIC = {
  requests: 0,
  statusClasses: [0, 0, 0, 0, 0, 0],
  durationCounts: [],
  durationSumSeconds: 0,
  upstreamErrors: { 502: 0, 503: 0, 504: 0 },
  active: 0,
  lastActiveAt: 0,
};

describe('reload planning (fake runtime)', () => {
  test('a changed app is swapped in one table, then its old generation drains, then stops', async () => {
    const gw = start(toml({ a: { hosts: ['a.test'] }, b: { hosts: ['b.test'] } }));
    const before = gw.routes();
    const summary = await gw.reload(toml({ a: { hosts: ['a.test'], version: '2' }, b: { hosts: ['b.test'] } }));
    assert.deepEqual(summary.changed, ['a']);
    assert.deepEqual(summary.unchanged, ['b']);
    const after = gw.routes();
    assert.notDeepEqual(after['a.test'], before['a.test'], 'a is served by its new generation');
    assert.deepEqual(after['b.test'], before['b.test'], 'b is not touched');
    const old = before['a.test']?.[0];
    assert.deepEqual(gw.runtime.events, [`publish ${gw.dataPlane.last.version}`, `drain ${old}`, `stop ${old}`]);
    // What crosses to the data plane is plain data, as a message to a worker process would be.
    assert.deepEqual(structuredClone(gw.dataPlane.last), gw.dataPlane.last);
  });

  test('a failed change keeps the old version serving and discards the new one', async () => {
    const gw = start(toml({ a: { hosts: ['a.test'] }, b: { hosts: ['b.test'] } }));
    const before = gw.routes();
    gw.runtime.failing.set('a', 'a: not ready within 100 ms');
    const summary = await gw.reload(toml({ a: { hosts: ['a.test'], version: '2' }, b: { hosts: ['b.test'] } }));
    assert.deepEqual(summary.failed, [{ name: 'a', error: 'a: not ready within 100 ms' }]);
    assert.deepEqual(summary.changed, []);
    assert.deepEqual(gw.routes(), before);
    assert.equal(gw.apps.supervisor('a')?.lastError, 'a: not ready within 100 ms');
    assert.ok(!gw.runtime.events.some((e) => e.startsWith('drain')), 'nothing serving was drained');
  });

  test('hosts held back: an app that claims a host still served by a failed app keeps its old version too', async () => {
    const gw = start(toml({ a: { hosts: ['x.test'] }, b: { hosts: ['b.test'] } }));
    const before = gw.routes();
    gw.runtime.failing.set('a', 'a failed');
    // a moves to y.test and fails, so it keeps x.test; b now claims x.test and must wait.
    const summary = await gw.reload(
      toml({ a: { hosts: ['y.test'], version: '2' }, b: { hosts: ['x.test', 'b.test'] } }),
    );
    const failed = Object.fromEntries(summary.failed.map((f) => [f.name, f.error]));
    assert.equal(failed.a, 'a failed');
    assert.match(failed.b ?? '', /host "x\.test" is still served by app "a"/);
    assert.deepEqual(gw.routes(), before, 'both keep what they served');
    assert.equal(gw.apps.runningConfig('b')?.hosts.join(','), 'b.test');
  });

  test('a failed new app is not routed: its hosts go where they went, and it is listed as failed', async () => {
    const gw = start(toml({ a: { hosts: ['a.test'] } }));
    gw.runtime.failing.set('c', 'c crashed at start');
    const summary = await gw.reload(toml({ a: { hosts: ['a.test'] }, c: { hosts: ['c.test'] } }));
    assert.deepEqual(summary.added, []);
    assert.deepEqual(
      summary.failed.map((f) => f.name),
      ['c'],
    );
    assert.equal(gw.routes()['c.test'], undefined, 'c.test is in no app: the default app answers it');
    assert.equal(gw.apps.failure('c')?.error, 'c crashed at start');
    assert.deepEqual(gw.apps.order, ['a', 'c']);
  });

  test('the default app moves: the first app removed makes the next the default; a named default that fails keeps the old', async () => {
    const gw = start(toml({ a: { hosts: ['a.test'] }, b: { hosts: ['b.test'] } }));
    assert.equal(gw.dataPlane.last.defaultApp, 'a');
    const oldA = gw.routes()['a.test']?.[0];
    const summary = await gw.reload(toml({ b: { hosts: ['b.test'] } }));
    assert.deepEqual(summary.removed, ['a']);
    assert.equal(gw.dataPlane.last.defaultApp, 'b');
    assert.deepEqual(
      gw.runtime.events.slice(1),
      [`drain ${oldA}`, `stop ${oldA}`],
      'the removed app drains after the swap',
    );

    gw.runtime.failing.set('d', 'd failed');
    await gw.reload(toml({ b: { hosts: ['b.test'] }, d: { hosts: ['d.test'] } }, 'default_app = "d"'));
    assert.equal(gw.dataPlane.last.defaultApp, 'b', 'd does not run, so b stays the default');
  });
});

describe('scale to zero (fake runtime)', () => {
  const quiet = { extra: 'idle_timeout_ms = 1000' };

  test('an app quiet for idle_timeout_ms sleeps: one table marks it idle with no upstream, then its children drain and stop', async () => {
    const gw = start(toml({ a: { hosts: ['a.test'], ...quiet }, b: { hosts: ['b.test'] } }));
    gw.idle.check();
    gw.clock.now = 999;
    gw.idle.check();
    await gw.settled();
    assert.equal(gw.apps.supervisor('a')?.isIdle, false, 'not before its timeout');
    gw.runtime.events.length = 0;
    gw.clock.now = 1000;
    gw.idle.check();
    await gw.settled();
    const a = gw.apps.supervisor('a');
    assert.equal(a?.isIdle, true);
    assert.equal(a?.state(), 'idle');
    const table = gw.dataPlane.last.apps.find((app) => app.name === 'a');
    assert.equal(table?.idle, true);
    assert.deepEqual(table?.upstreams, []);
    await waitForEvent(gw.runtime.events, /^stop a@/);
    assert.match(gw.runtime.events[0] ?? '', /^publish/, 'the table first, then the drain');
    assert.equal(gw.apps.supervisor('b')?.isIdle, false, 'an app without idle_timeout_ms never sleeps');
  });

  test('a request in flight, a recent one, or a pause keeps an app awake', async () => {
    const gw = start(toml({ a: { hosts: ['a.test'], ...quiet } }));
    gw.idle.check();
    gw.clock.now = 5000;
    gw.setTraffic('a', 1, 0);
    gw.idle.check();
    await gw.settled();
    assert.equal(gw.apps.supervisor('a')?.isIdle, false, 'an open request (or WebSocket) keeps it awake');
    gw.setTraffic('a', 0, 4500);
    gw.idle.check();
    await gw.settled();
    assert.equal(gw.apps.supervisor('a')?.isIdle, false, 'its last request ended 500 ms ago');
    gw.apps.setHold('a', { mode: 'hold' });
    gw.clock.now = 9000;
    gw.idle.check();
    await gw.settled();
    assert.equal(gw.apps.supervisor('a')?.isIdle, false, 'a paused app keeps its children');
    gw.apps.setHold('a', null);
    gw.idle.check();
    await gw.settled();
    assert.equal(gw.apps.supervisor('a')?.isIdle, true);
  });

  test('wakes asked for together start the app once, and a table with its children follows', async () => {
    const gw = start(toml({ a: { hosts: ['a.test'], ...quiet } }));
    gw.idle.check();
    gw.clock.now = 1000;
    gw.idle.check();
    await gw.settled();
    gw.runtime.prepared.length = 0;
    await Promise.all([gw.idle.wake('a'), gw.idle.wake('a'), gw.idle.wake('a')]);
    assert.equal(gw.runtime.prepared.length, 1);
    const table = gw.dataPlane.last.apps.find((app) => app.name === 'a');
    assert.equal(table?.idle, false);
    assert.equal(table?.upstreams.length, 1);
    assert.equal(gw.apps.supervisor('a')?.state(), 'ready');
    // Awake again: it sleeps a full idle_timeout_ms after its wake, not at once.
    gw.clock.now = 1500;
    gw.idle.check();
    await gw.settled();
    assert.equal(gw.apps.supervisor('a')?.isIdle, false);
  });

  test('a wake that fails leaves the app idle with last_error', async () => {
    const gw = start(toml({ a: { hosts: ['a.test'], ...quiet } }));
    gw.idle.check();
    gw.clock.now = 1000;
    gw.idle.check();
    await gw.settled();
    gw.runtime.failing.set('a', 'exited with code 1 before it was ready');
    await gw.idle.wake('a');
    const a = gw.apps.supervisor('a');
    assert.equal(a?.isIdle, true);
    assert.equal(a?.lastError, 'exited with code 1 before it was ready');
    assert.equal(gw.dataPlane.last.apps.find((app) => app.name === 'a')?.idle, true);
  });

  test('a reload that changes an idle app keeps it idle with the new config; the next wake starts that', async () => {
    const gw = start(toml({ a: { hosts: ['a.test'], ...quiet }, b: { hosts: ['b.test'] } }));
    gw.idle.check();
    gw.clock.now = 1000;
    gw.idle.check();
    await gw.settled();
    gw.runtime.prepared.length = 0;
    const summary = await gw.reload(
      toml({ a: { hosts: ['a.test', 'a2.test'], version: '2', ...quiet }, b: { hosts: ['b.test'] } }),
    );
    assert.deepEqual(summary.changed, ['a']);
    assert.equal(gw.runtime.prepared.length, 0, 'nothing started for the idle app');
    const a = gw.apps.supervisor('a');
    assert.equal(a?.isIdle, true);
    assert.equal(a?.config.env.VERSION, '2');
    const table = gw.dataPlane.last.apps.find((app) => app.name === 'a');
    assert.deepEqual(table?.hosts, ['a.test', 'a2.test'], 'the new hosts are routed (to the wake)');
    assert.equal(table?.idle, true);
    await gw.idle.wake('a');
    assert.equal(gw.runtime.prepared[0]?.env.VERSION, '2');
  });
});

async function waitForEvent(events: readonly string[], pattern: RegExp): Promise<void> {
  for (let i = 0; i < 100 && !events.some((e) => pattern.test(e)); i++) await new Promise((r) => setImmediate(r));
  assert.ok(
    events.some((e) => pattern.test(e)),
    `no event matching ${pattern}: ${events.join(' | ')}`,
  );
}
