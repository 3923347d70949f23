import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { hostNameOf, normalizeConfigHost, normalizeHost } from '../src/routing/host.js';
import { RouteTable } from '../src/routing/table.js';
import { fixtureApp, GatewayProcess, gatewaySection, rawRequest, statusOf } from './helpers.js';

describe('host normalisation', () => {
  test('ignores case, port, IPv6 brackets and one trailing dot', () => {
    assert.equal(normalizeHost('App.Local'), 'app.local');
    assert.equal(normalizeHost('app.local:8080'), 'app.local');
    assert.equal(normalizeHost('app.local.'), 'app.local');
    assert.equal(normalizeHost('APP.local.:80'), 'app.local');
    assert.equal(normalizeHost('[::1]:8080'), '::1');
    assert.equal(normalizeHost('[::1]'), '::1');
    assert.equal(normalizeHost('plain.host'), 'plain.host');
  });

  test('config hosts are validated and normalised the same way', () => {
    assert.deepEqual(normalizeConfigHost('Blog.Example.COM.'), { ok: true, host: 'blog.example.com' });
    assert.deepEqual(normalizeConfigHost('*.Example.com'), { ok: true, host: '*.example.com' });
    assert.deepEqual(normalizeConfigHost('[::1]'), { ok: true, host: '::1' });
    assert.equal(normalizeConfigHost('app.local:8080').ok, false);
    assert.equal(normalizeConfigHost('a.*.com').ok, false);
    assert.equal(normalizeConfigHost('').ok, false);
    assert.equal(normalizeConfigHost('http://x').ok, false);
  });
});

describe('an app as a Host value (for HTTP/1.0 requests without one)', () => {
  test("the first host; a wildcard's domain; an IPv6 literal in brackets", () => {
    assert.equal(hostNameOf(['blog.example.com', 'www.blog.example.com']), 'blog.example.com');
    assert.equal(hostNameOf(['*.example.com', 'other.test']), 'example.com');
    assert.equal(hostNameOf(['::1']), '[::1]');
  });
});

describe('RouteTable', () => {
  const table = new RouteTable(
    {
      version: 1,
      defaultApp: 'fallback',
      apps: [
        { name: 'fallback', hosts: ['fallback.test'], upstreams: [], tls: false },
        { name: 'exact', hosts: ['www.example.com'], upstreams: [], tls: false },
        { name: 'wide', hosts: ['*.example.com'], upstreams: [], tls: false },
        { name: 'narrow', hosts: ['*.api.example.com'], upstreams: [], tls: false },
      ],
    },
    (app) => app.name,
  );

  test('exact beats wildcard; longest wildcard suffix wins; wildcard needs a subdomain', () => {
    assert.equal(table.lookup('www.example.com'), 'exact');
    assert.equal(table.lookup('shop.example.com'), 'wide');
    assert.equal(table.lookup('a.b.example.com'), 'wide');
    assert.equal(table.lookup('v1.api.example.com'), 'narrow');
    assert.equal(table.lookup('x.v1.api.example.com'), 'narrow');
    assert.equal(table.lookup('api.example.com'), 'wide');
    assert.equal(table.match('example.com'), undefined);
    assert.equal(table.lookup('example.com'), 'fallback');
  });

  test('unmatched and absent hosts go to the default; without one, nothing', () => {
    assert.equal(table.lookup(undefined), 'fallback');
    assert.equal(table.lookup('elsewhere.org'), 'fallback');
    const strict = new RouteTable(
      { version: 1, defaultApp: null, apps: [{ name: 'a', hosts: ['a.test'], upstreams: [], tls: false }] },
      (a) => a.name,
    );
    assert.equal(strict.lookup('b.test'), undefined);
    assert.equal(strict.lookup(undefined), undefined);
  });

  test('a cached lookup gives the same answer', () => {
    for (let i = 0; i < 3; i++) assert.equal(table.lookup('Shop.Example.com:443'), 'wide');
  });
});

describe('routing through a running gateway', () => {
  let gw: GatewayProcess;

  before(async () => {
    gw = await GatewayProcess.start({
      config:
        gatewaySection() +
        fixtureApp('alpha', ['alpha.test', '*.alpha.test']) +
        fixtureApp('beta', ['beta.test', '*.deep.alpha.test']) +
        fixtureApp('gamma', ['gamma.test']),
    });
  });
  after(async () => {
    await gw?.cleanup();
  });

  const appFor = async (host: string): Promise<string> => {
    const res = await gw.request({ host, path: '/info' });
    assert.equal(res.status, 200, `status for ${host}: ${res.body}`);
    return (JSON.parse(res.body) as { app: string }).app;
  };

  test('exact hosts, case, port and trailing dot', async () => {
    assert.equal(await appFor('alpha.test'), 'alpha');
    assert.equal(await appFor('BETA.Test'), 'beta');
    assert.equal(await appFor('gamma.test:8080'), 'gamma');
    assert.equal(await appFor('gamma.test.'), 'gamma');
    assert.equal(await appFor('Gamma.TEST.:1234'), 'gamma');
  });

  test('wildcards at any depth, longest suffix first', async () => {
    assert.equal(await appFor('x.alpha.test'), 'alpha');
    assert.equal(await appFor('x.y.alpha.test'), 'alpha');
    assert.equal(await appFor('z.deep.alpha.test'), 'beta');
    assert.equal(await appFor('deep.alpha.test'), 'alpha');
  });

  test('unmatched host goes to the first app, the implicit default', async () => {
    assert.equal(await appFor('unknown.example'), 'alpha');
  });

  test('HTTP/1.0 without Host goes to the default app, which sees its first host name as Host, not its own port', async () => {
    const raw = await rawRequest(gw.port, 'GET /info HTTP/1.0\r\n\r\n');
    assert.equal(statusOf(raw), 200, raw);
    const info = JSON.parse(raw.slice(raw.indexOf('\r\n\r\n') + 4)) as { app: string; headers: Record<string, string> };
    assert.equal(info.app, 'alpha');
    // As nginx's $host: the name of the server that matched (README, Routing).
    assert.equal(info.headers.host, 'alpha.test');
    // The client sent no Host, so there is none to forward.
    assert.equal(info.headers['x-forwarded-host'], undefined);
  });

  test('HTTP/1.1 without Host, or with two, is 400 and reaches no app', async () => {
    const none = await rawRequest(gw.port, 'GET /info?probe=nohost HTTP/1.1\r\nConnection: close\r\n\r\n');
    assert.equal(statusOf(none), 400, none);
    assert.match(none, /without a Host header/);
    const two = await rawRequest(
      gw.port,
      'GET /info?probe=twohosts HTTP/1.1\r\nHost: alpha.test\r\nHost: beta.test\r\nConnection: close\r\n\r\n',
    );
    assert.equal(statusOf(two), 400, two);
    assert.match(two, /more than one Host header/);
    assert.doesNotMatch(none + two, /"app"/);
    // Access lines are written in order: once the marker's line is out, a proxied probe would be too.
    await gw.request({ host: 'alpha.test', path: '/marker-after-probes' });
    await gw.waitForLog((l) => l.kind === 'access' && l.path === '/marker-after-probes');
    assert.equal(gw.logs.filter((l) => l.kind === 'access' && String(l.path).includes('probe=')).length, 0);
  });

  test('each request is logged once with app, method, host, path, status and duration', async () => {
    await gw.request({ host: 'gamma.test', path: '/logged?x=1', method: 'GET' });
    const line = await gw.waitForLog((l) => l.kind === 'access' && l.path === '/logged?x=1');
    assert.equal(line.app, 'gamma');
    assert.equal(line.method, 'GET');
    assert.equal(line.host, 'gamma.test');
    assert.equal(line.status, 200);
    assert.equal(typeof line.duration_ms, 'number');
  });
});

describe('default_app', () => {
  test('a named default app takes unmatched hosts', async () => {
    const gw = await GatewayProcess.start({
      config:
        gatewaySection('default_app = "second"') +
        fixtureApp('first', ['first.test']) +
        fixtureApp('second', ['second.test']),
    });
    try {
      const res = await gw.request({ host: 'nobody.test', path: '/info' });
      assert.equal(JSON.parse(res.body).app, 'second');
    } finally {
      await gw.cleanup();
    }
  });

  test('default_app = false: unmatched hosts get 404 naming the host', async () => {
    const gw = await GatewayProcess.start({
      config: gatewaySection('default_app = false') + fixtureApp('only', ['only.test']),
    });
    try {
      const res = await gw.request({ host: 'nobody.test:8080', path: '/info' });
      assert.equal(res.status, 404);
      assert.match(res.body, /nobody\.test/);
      assert.match(String(res.headers['content-type']), /text\/plain/);
      const raw = await rawRequest(gw.port, 'GET / HTTP/1.0\r\n\r\n');
      assert.equal(statusOf(raw), 404, 'HTTP/1.0 without Host and no default app');
      assert.equal((await gw.request({ host: 'only.test', path: '/info' })).status, 200);
    } finally {
      await gw.cleanup();
    }
  });
});

describe('access_log', () => {
  test('access_log = false writes no access lines; a reload that turns it on applies at once', async () => {
    const config = (on: boolean): string => gatewaySection(`access_log = ${on}`) + fixtureApp('quiet', ['quiet.test']);
    const gw = await GatewayProcess.start({ config: config(false) });
    try {
      for (let i = 0; i < 5; i++)
        assert.equal((await gw.request({ host: 'quiet.test', path: `/info?off=${i}` })).status, 200);
      // The reload's own line is written after anything the requests logged.
      gw.proc.kill('SIGHUP');
      await gw.waitForReloads(1);
      assert.equal(gw.logs.filter((l) => l.kind === 'access').length, 0, 'no access lines while off');
      gw.writeConfig(config(true));
      await gw.waitForReloads(2);
      await gw.request({ host: 'quiet.test', path: '/info?on=1' });
      const line = await gw.waitForLog((l) => l.kind === 'access' && l.path === '/info?on=1');
      assert.equal(line.app, 'quiet');
      assert.equal(line.status, 200);
    } finally {
      await gw.cleanup();
    }
  });
});
