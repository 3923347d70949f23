/**
 * GET /admin/metrics (SPEC §8): the Prometheus text format, checked line by
 * line, and counters that move with what the gateway does.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { adminCall, adminGatewaySection, childPidsOf, fixtureApp, GatewayProcess, waitFor } from './helpers.js';

delete process.env.NANO_ADMIN_TOKEN;

interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

interface Exposition {
  types: Map<string, string>;
  help: Map<string, string>;
  samples: Sample[];
}

const NAME = '[a-zA-Z_:][a-zA-Z0-9_:]*';
const SAMPLE = new RegExp(
  `^(${NAME})(\\{(?:[a-zA-Z_][a-zA-Z0-9_]*="(?:\\\\.|[^"\\\\])*",?)*\\})? (-?[0-9.eE+-]+|NaN|[+-]Inf)$`,
);
const LABEL = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:\\.|[^"\\])*)"/g;

/** The family a sample belongs to: histogram samples carry a _bucket, _sum or _count suffix. */
function familyOf(name: string, types: Map<string, string>): string {
  const m = /^(.*)_(bucket|sum|count)$/.exec(name);
  if (m && types.get(m[1] as string) === 'histogram') return m[1] as string;
  return name;
}

/** A strict parser for the subset of the text format the gateway writes; throws on any other line. */
function parseExposition(text: string): Exposition {
  assert.ok(text.endsWith('\n'), 'the exposition ends with a newline');
  const types = new Map<string, string>();
  const help = new Map<string, string>();
  const samples: Sample[] = [];
  const seen = new Set<string>();
  text
    .slice(0, -1)
    .split('\n')
    .forEach((line, i) => {
      const where = `line ${i + 1}: ${JSON.stringify(line)}`;
      if (line === '') return;
      if (line.startsWith('#')) {
        const helpMatch = new RegExp(`^# HELP (${NAME}) (.+)$`).exec(line);
        if (helpMatch) {
          assert.ok(!help.has(helpMatch[1] as string), `${where}: a second HELP`);
          help.set(helpMatch[1] as string, helpMatch[2] as string);
          return;
        }
        const typeMatch = new RegExp(`^# TYPE (${NAME}) (counter|gauge|histogram)$`).exec(line);
        assert.ok(typeMatch, `${where}: neither # HELP nor # TYPE`);
        const name = typeMatch[1] as string;
        assert.ok(!types.has(name), `${where}: a second TYPE`);
        assert.ok(!samples.some((s) => familyOf(s.name, types) === name), `${where}: TYPE after samples of it`);
        types.set(name, typeMatch[2] as string);
        return;
      }
      const m = SAMPLE.exec(line);
      assert.ok(m, `${where}: not a sample line`);
      const name = m[1] as string;
      const labels: Record<string, string> = {};
      for (const l of (m[2] ?? '').matchAll(LABEL)) {
        assert.ok(!((l[1] as string) in labels), `${where}: label ${l[1]} twice`);
        labels[l[1] as string] = (l[2] as string).replace(/\\n/g, '\n').replace(/\\"/g, '"').replace(/\\\\/g, '\\');
      }
      const raw = m[3] as string;
      const value = raw === 'NaN' ? NaN : raw === '+Inf' ? Infinity : raw === '-Inf' ? -Infinity : Number(raw);
      assert.ok(raw === 'NaN' || !Number.isNaN(value), `${where}: value ${raw}`);
      const family = familyOf(name, types);
      assert.ok(types.has(family), `${where}: no # TYPE line for ${family} before it`);
      const key = `${name}${JSON.stringify(Object.entries(labels).sort())}`;
      assert.ok(!seen.has(key), `${where}: duplicate series`);
      seen.add(key);
      samples.push({ name, labels, value });
    });
  for (const name of types.keys()) assert.ok(help.has(name), `# HELP for ${name}`);
  return { types, help, samples };
}

/** The value of the one sample with this name and these labels (among others). */
function sampleValue(exp: Exposition, name: string, labels: Record<string, string> = {}): number {
  const found = exp.samples.filter(
    (s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v),
  );
  assert.equal(found.length, 1, `one sample ${name}${JSON.stringify(labels)}, found ${found.length}`);
  return (found[0] as Sample).value;
}

/** Histogram buckets per app: cumulative, non-decreasing, +Inf equal to _count, bounds increasing. */
function checkHistograms(exp: Exposition): void {
  for (const [family, type] of exp.types) {
    if (type !== 'histogram') continue;
    const apps = new Set(exp.samples.filter((s) => s.name === `${family}_count`).map((s) => s.labels.app));
    assert.ok(apps.size > 0, `${family} has series`);
    for (const app of apps) {
      const buckets = exp.samples.filter((s) => s.name === `${family}_bucket` && s.labels.app === app);
      assert.ok(buckets.length >= 2);
      const bounds = buckets.map((b) => (b.labels.le === '+Inf' ? Infinity : Number(b.labels.le)));
      for (let i = 1; i < buckets.length; i++) {
        assert.ok((bounds[i] as number) > (bounds[i - 1] as number), `${family}{app=${app}} bounds increase`);
        assert.ok(
          (buckets[i] as Sample).value >= (buckets[i - 1] as Sample).value,
          `${family}{app=${app}} buckets are cumulative`,
        );
      }
      assert.equal(bounds[bounds.length - 1], Infinity, 'the last bucket is +Inf');
      const count = sampleValue(exp, `${family}_count`, { app: app as string });
      assert.equal((buckets[buckets.length - 1] as Sample).value, count, '+Inf bucket == _count');
      const sum = sampleValue(exp, `${family}_sum`, { app: app as string });
      assert.ok(sum >= 0 && (count === 0 ? sum === 0 : sum > 0), `${family}_sum ${sum} for ${count} requests`);
    }
  }
}

describe('GET /admin/metrics', () => {
  let gw: GatewayProcess;
  let port: number;
  const config = (m2Version: string, extra = ''): string =>
    adminGatewaySection('upstream_timeout_ms = 400') +
    fixtureApp('m1', ['m1.test'], 'instances = 2') +
    fixtureApp('m2', ['m2.test'], `env = { VERSION = "${m2Version}" }`) +
    extra;

  const scrape = async (): Promise<Exposition> => {
    const res = await adminCall(port, 'GET', '/admin/metrics');
    assert.equal(res.status, 200);
    assert.match(String(res.headers['content-type']), /^text\/plain/);
    const exp = parseExposition(res.body);
    checkHistograms(exp);
    return exp;
  };

  /** Waits until the sample reaches at least `target` (the proxy counts a request when its response has ended). */
  const reach = async (name: string, labels: Record<string, string>, target: number): Promise<number> =>
    waitFor(
      async () => {
        const v = sampleValue(await scrape(), name, labels);
        return v >= target ? v : undefined;
      },
      `${name}${JSON.stringify(labels)} to reach ${target}`,
    );

  before(async () => {
    gw = await GatewayProcess.start({ config: config('1'), readyApps: { m1: 2, m2: 1 } });
    port = await gw.adminPort();
  });
  after(async () => {
    await gw?.cleanup();
  });

  test('text format: every line is a HELP, a TYPE or a sample of a TYPEd metric; histograms are consistent', async () => {
    const exp = await scrape();
    for (const [name, type] of [
      ['nano_requests_total', 'counter'],
      ['nano_request_duration_seconds', 'histogram'],
      ['nano_upstream_errors_total', 'counter'],
      ['nano_restarts_total', 'counter'],
      ['nano_children_up', 'gauge'],
      ['nano_reloads_total', 'counter'],
    ]) {
      assert.equal(exp.types.get(name as string), type, `${name} is a ${type}`);
    }
    assert.equal(sampleValue(exp, 'nano_children_up', { app: 'm1' }), 2, 'children_up equals instances');
    assert.equal(sampleValue(exp, 'nano_children_up', { app: 'm2' }), 1);
    assert.ok(sampleValue(exp, 'nano_child_rss_bytes', { app: 'm1' }) > 0);
    assert.ok(sampleValue(exp, 'nano_gateway_rss_bytes') > 0);
    for (const s of exp.samples) {
      if (exp.types.get(familyOf(s.name, exp.types)) === 'counter')
        assert.ok(s.value >= 0 && Number.isFinite(s.value), `${s.name} ${s.value}`);
    }
  });

  test('requests_total and the duration histogram grow by N after N requests', async () => {
    const before = await scrape();
    const ok0 = sampleValue(before, 'nano_requests_total', { app: 'm2', class: '2xx' });
    const count0 = sampleValue(before, 'nano_request_duration_seconds_count', { app: 'm2' });
    const m1ok0 = sampleValue(before, 'nano_requests_total', { app: 'm1', class: '2xx' });
    const N = 7;
    for (let i = 0; i < N; i++) assert.equal((await gw.request({ host: 'm2.test', path: '/version' })).status, 200);
    await reach('nano_requests_total', { app: 'm2', class: '2xx' }, ok0 + N);
    const after = await scrape();
    assert.equal(sampleValue(after, 'nano_requests_total', { app: 'm2', class: '2xx' }), ok0 + N);
    assert.equal(sampleValue(after, 'nano_request_duration_seconds_count', { app: 'm2' }), count0 + N);
    assert.equal(
      sampleValue(after, 'nano_requests_total', { app: 'm1', class: '2xx' }),
      m1ok0,
      'other apps do not move',
    );
    // A slow request lands in a bucket above 0.25 s, not in the lower ones.
    const le = (exp: Exposition, bound: string): number =>
      sampleValue(exp, 'nano_request_duration_seconds_bucket', { app: 'm2', le: bound });
    assert.equal((await gw.request({ host: 'm2.test', path: '/slow?ms=300' })).status, 200);
    await reach('nano_request_duration_seconds_count', { app: 'm2' }, count0 + N + 1);
    const slow = await scrape();
    assert.equal(le(slow, '0.25'), le(after, '0.25'));
    assert.equal(le(slow, '0.5'), le(after, '0.5') + 1);
  });

  test('an app 500 counts as 5xx; a 504 (upstream timeout) and a 502 (reset) count as upstream errors', async () => {
    const before = await scrape();
    const c5 = sampleValue(before, 'nano_requests_total', { app: 'm2', class: '5xx' });
    const e = (exp: Exposition, kind: string): number =>
      sampleValue(exp, 'nano_upstream_errors_total', { app: 'm2', kind });
    const [e502, e503, e504] = [e(before, '502'), e(before, '503'), e(before, '504')];

    assert.equal((await gw.request({ host: 'm2.test', path: '/status?code=500' })).status, 500);
    await reach('nano_requests_total', { app: 'm2', class: '5xx' }, c5 + 1);
    let now = await scrape();
    assert.equal(
      e(now, '502') + e(now, '503') + e(now, '504'),
      e502 + e503 + e504,
      "an app's own 500 is not an upstream error",
    );

    assert.equal((await gw.request({ host: 'm2.test', path: '/hang' })).status, 504);
    await reach('nano_upstream_errors_total', { app: 'm2', kind: '504' }, e504 + 1);
    // A POST is never resent, so a reset connection is a 502.
    assert.equal((await gw.request({ host: 'm2.test', path: '/reset', method: 'POST', body: 'x' })).status, 502);
    await reach('nano_upstream_errors_total', { app: 'm2', kind: '502' }, e502 + 1);
    await reach('nano_requests_total', { app: 'm2', class: '5xx' }, c5 + 3);
    now = await scrape();
    assert.equal(e(now, '504'), e504 + 1);
    assert.equal(e(now, '502'), e502 + 1);
    assert.equal(e(now, '503'), e503);
    assert.equal(sampleValue(now, 'nano_requests_total', { app: 'm2', class: '5xx' }), c5 + 3);
  });

  test('restarts_total moves after a crash; children_up drops and comes back', async () => {
    const r0 = sampleValue(await scrape(), 'nano_restarts_total', { app: 'm1' });
    const children = childPidsOf(gw.pid).length;
    const crash = await gw.request({ host: 'm1.test', path: '/crash' });
    assert.equal(crash.status, 200);
    const crashed = JSON.parse(crash.body).pid as number;
    await reach('nano_restarts_total', { app: 'm1' }, r0 + 1);
    await waitFor(
      async () =>
        sampleValue(await scrape(), 'nano_children_up', { app: 'm1' }) === 2 &&
        !childPidsOf(gw.pid).includes(crashed) &&
        childPidsOf(gw.pid).length === children,
      'm1 back to 2 children',
    );
    const exp = await scrape();
    assert.equal(sampleValue(exp, 'nano_restarts_total', { app: 'm1' }), r0 + 1);
    assert.equal(sampleValue(exp, 'nano_restarts_total', { app: 'm2' }), 0);
    const app = (await adminCall(port, 'GET', '/admin/apps/m1')).json;
    assert.equal(
      app.instances.reduce((n: number, i: { restarts: number }) => n + i.restarts, 0),
      r0 + 1,
      'the App object agrees',
    );
  });

  test('reloads_total{result="ok"} and {result="invalid"}; counters survive a reload of the app', async () => {
    const before = await scrape();
    const ok0 = sampleValue(before, 'nano_reloads_total', { result: 'ok' });
    const invalid0 = sampleValue(before, 'nano_reloads_total', { result: 'invalid' });
    const m2ok = sampleValue(before, 'nano_requests_total', { app: 'm2', class: '2xx' });
    const m2count = sampleValue(before, 'nano_request_duration_seconds_count', { app: 'm2' });
    const m2err = sampleValue(before, 'nano_upstream_errors_total', { app: 'm2', kind: '504' });
    const m1restarts = sampleValue(before, 'nano_restarts_total', { app: 'm1' });
    assert.ok(m2ok > 0 && m2err > 0, 'earlier tests left counts to keep');

    const ended = gw.reloadsEnded().length;
    gw.writeConfig(config('2'));
    await gw.waitForReloads(ended + 1);
    assert.match((await gw.request({ host: 'm2.test', path: '/version' })).body, /^2 /, 'm2 was reloaded');
    let exp = await reach('nano_reloads_total', { result: 'ok' }, ok0 + 1).then(() => scrape());
    assert.equal(sampleValue(exp, 'nano_reloads_total', { result: 'ok' }), ok0 + 1);
    assert.equal(sampleValue(exp, 'nano_reloads_total', { result: 'invalid' }), invalid0);
    assert.ok(
      sampleValue(exp, 'nano_requests_total', { app: 'm2', class: '2xx' }) >= m2ok + 1,
      'requests_total survives the reload',
    );
    assert.ok(sampleValue(exp, 'nano_request_duration_seconds_count', { app: 'm2' }) >= m2count + 1);
    assert.equal(sampleValue(exp, 'nano_upstream_errors_total', { app: 'm2', kind: '504' }), m2err);
    assert.equal(sampleValue(exp, 'nano_restarts_total', { app: 'm1' }), m1restarts);
    assert.equal(sampleValue(exp, 'nano_children_up', { app: 'm2' }), 1);

    gw.writeConfig(config('2', '\n[apps.broken]\nhosts = 42\n'));
    await gw.waitForReloads(ended + 2);
    exp = await scrape();
    assert.equal(sampleValue(exp, 'nano_reloads_total', { result: 'invalid' }), invalid0 + 1);
    assert.equal(sampleValue(exp, 'nano_reloads_total', { result: 'ok' }), ok0 + 1);
    gw.writeConfig(config('2'));
    await gw.waitForReloads(ended + 3);
    assert.equal(sampleValue(await scrape(), 'nano_reloads_total', { result: 'ok' }), ok0 + 2);
  });
});
