/**
 * Certificates from a real ACME server (pebble) by real HTTP-01 validation
 * (README, HTTPS). pebble resolves every name through the test's DNS
 * responder (127.0.0.1), so its checks reach the gateway's plain port.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createPrivateKey } from 'node:crypto';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { CertificateJson } from '../src/wire.js';
import { adminCall, FIXTURE_APP, fixtureApp, freePort, GatewayProcess, request, runCli, waitFor } from './helpers.js';
import { h2Request, httpsPortOf, httpsRequest } from './tls/client.js';
import { type DnsResponder, startDnsResponder } from './tls/dns.js';
import { type Pebble, pebbleSkip, startPebble } from './tls/pebble.js';

/** The admin API's certificate object (README, HTTPS). */
type CertJson = CertificateJson;

function gatewayConfig(plainPort: number, pebble: Pebble, apps: string, extraTls = ''): string {
  return `[gateway]
listen = "127.0.0.1:${plainPort}"

[admin]
listen = "127.0.0.1:0"

[tls]
listen = "127.0.0.1:0"
acme_directory = ${JSON.stringify(pebble.directoryUrl)}
acme_ca_file = ${JSON.stringify(pebble.caFile)}
acme_email = "ops@example.test"
storage = "certs"
${extraTls}

${apps}
`;
}

async function certificates(adminPort: number): Promise<CertJson[]> {
  const reply = await adminCall(adminPort, 'GET', '/admin/certificates');
  assert.equal(reply.status, 200, reply.body);
  return reply.json.certificates as CertJson[];
}

function waitForState(adminPort: number, host: string, state: string, timeoutMs = 20_000): Promise<CertJson> {
  return waitFor(
    async () => (await certificates(adminPort)).find((c) => c.host === host && c.state === state),
    `certificate of ${host} ${state}`,
    timeoutMs,
  );
}

describe('HTTPS with certificates from ACME (pebble)', { skip: pebbleSkip() }, () => {
  /** Roots of earlier pebble runs (a restart makes a new one), which older certificates chain to. */
  const rootsSeen: string[] = [];
  let dns: DnsResponder;
  let pebble: Pebble;
  let gw: GatewayProcess;
  let plainPort: number;
  let tlsPort: number;
  let adminPort: number;
  const apps = `${fixtureApp('a', ['a.example.test'])}
${fixtureApp('b', ['b.example.test', 'www.b.example.test'])}
${fixtureApp('plain', ['plain.example.test'], 'tls = false')}`;

  before(async () => {
    dns = await startDnsResponder();
    plainPort = await freePort();
    // Every renewal reuses the host's valid authorization, so its order is `ready` at once: the case pebble
    // picks at random by default (50 %), which once made a renewal fail in CI.
    pebble = await startPebble({ httpPort: plainPort, dnsPort: dns.port, env: { PEBBLE_AUTHZREUSE: '100' } });
    gw = await GatewayProcess.start({ config: gatewayConfig(plainPort, pebble, apps, 'hsts_max_age = 120') });
    adminPort = await gw.adminPort();
    tlsPort = httpsPortOf(gw.logs) as number;
    for (const host of ['a.example.test', 'b.example.test', 'www.b.example.test'])
      await waitForState(adminPort, host, 'valid');
  });

  after(async () => {
    await gw?.cleanup();
    await pebble?.stop();
    await dns?.close();
  });

  test('each host got its own certificate by HTTP-01 and is served with it over HTTPS', async () => {
    const serials = new Set<string>();
    for (const host of ['a.example.test', 'b.example.test', 'www.b.example.test']) {
      const reply = await httpsRequest({ port: tlsPort, host, ca: pebble.issuerRootPem, path: '/info' });
      assert.equal(reply.status, 200);
      assert.equal(reply.subjectaltname, `DNS:${host}`);
      serials.add(reply.serial);
      const info = JSON.parse(reply.body) as { env: { NANO_APP: string }; headers: Record<string, string> };
      assert.equal(info.env.NANO_APP, host.includes('b.') ? 'b' : 'a');
      assert.equal(info.headers['x-forwarded-proto'], 'https');
    }
    assert.equal(serials.size, 3, 'one certificate per host');
    // pebble asked the gateway for the tokens on its plain port: one validation per host.
    assert.ok(dns.queries.includes('a.example.test'));
    const listed = await certificates(adminPort);
    const a = listed.find((c) => c.host === 'a.example.test') as CertJson;
    assert.equal(a.source, 'acme');
    assert.equal(a.app, 'a');
    assert.equal(a.last_error, null);
    assert.ok(a.not_before && a.not_after && a.renew_at && a.issuer);
    const lifetime = Date.parse(a.not_after) - Date.parse(a.not_before);
    assert.equal(Date.parse(a.renew_at), Date.parse(a.not_after) - Math.floor(lifetime / 3));
    assert.equal(
      listed.some((c) => c.host === 'plain.example.test'),
      false,
      'an app with tls = false has no certificate',
    );
  });

  test('HTTP/2 and HTTP/1.1 on the one port; curl negotiates h2', async () => {
    const h2 = await h2Request({ port: tlsPort, host: 'a.example.test', ca: pebble.issuerRootPem, path: '/info' });
    assert.equal(h2.status, 200);
    assert.equal(h2.alpn, 'h2');
    assert.equal((JSON.parse(h2.body) as { headers: Record<string, string> }).headers['x-forwarded-proto'], 'https');
    const h1 = await httpsRequest({ port: tlsPort, host: 'a.example.test', ca: pebble.issuerRootPem });
    assert.equal(h1.alpn, 'http/1.1');
    const curl = execFileSync(
      'curl',
      [
        '-sS',
        '--cacert',
        pebble.issuerRootFile,
        '--resolve',
        `b.example.test:${tlsPort}:127.0.0.1`,
        '-o',
        '/dev/null',
        '-w',
        '%{http_version} %{http_code}',
        `https://b.example.test:${tlsPort}/health`,
      ],
      { encoding: 'utf8' },
    );
    assert.equal(curl, '2 200');
  });

  test('plain HTTP gets 308 to https, except tls = false apps; HSTS on HTTPS only', async () => {
    const redirected = await request(plainPort, { host: 'a.example.test', path: '/x?y=1' });
    assert.equal(redirected.status, 308);
    assert.equal(redirected.headers.location, `https://a.example.test:${tlsPort}/x?y=1`);
    assert.equal(redirected.headers['strict-transport-security'], undefined);
    const plain = await request(plainPort, { host: 'plain.example.test', path: '/health' });
    assert.equal(plain.status, 200);
    const secure = await httpsRequest({ port: tlsPort, host: 'a.example.test', ca: pebble.issuerRootPem });
    assert.equal(secure.headers['strict-transport-security'], 'max-age=120');
    // A challenge path with no pending token is the app's, and not redirected.
    const challenge = await request(plainPort, { host: 'a.example.test', path: '/.well-known/acme-challenge/nope' });
    assert.equal(challenge.status, 200);
    assert.match(challenge.body, /^a \d+ GET \/\.well-known\/acme-challenge\/nope$/m);
  });

  test('storage: ECDSA P-256 keys, files 0600 in 0700 folders, one folder per directory', async () => {
    const root = path.join(gw.dir, 'certs');
    const [folder] = readdirSync(root);
    assert.match(folder ?? '', /^127\.0\.0\.1-\d+-dir$/, 'named after the ACME directory');
    const dir = path.join(root, folder as string);
    for (const file of ['account.key', 'a.example.test/key.pem', 'a.example.test/cert.pem']) {
      assert.equal(statSync(path.join(dir, file)).mode & 0o777, 0o600, file);
    }
    assert.equal(statSync(path.join(dir, 'a.example.test')).mode & 0o777, 0o700);
    for (const file of ['account.key', 'a.example.test/key.pem']) {
      const key = createPrivateKey(readFileSync(path.join(dir, file), 'utf8'));
      assert.equal(key.asymmetricKeyType, 'ec', file);
      assert.equal(key.asymmetricKeyDetails?.namedCurve, 'prime256v1', file);
    }
  });

  test('POST /admin/apps with a new host orders its certificate', async () => {
    const added = await adminCall(adminPort, 'POST', '/admin/apps', {
      body: { name: 'admin-added', hosts: ['f.example.test'], entry: FIXTURE_APP, health_path: '/health' },
    });
    assert.equal(added.status, 201, added.body);
    assert.equal(added.json.tls, 'acme');
    await waitForState(adminPort, 'f.example.test', 'valid');
    const reply = await httpsRequest({ port: tlsPort, host: 'f.example.test', ca: pebble.issuerRootPem });
    assert.equal(reply.subjectaltname, 'DNS:f.example.test');
  });

  test('a reload that adds a host gets its certificate without a restart', async () => {
    const before = pebble.orderCount();
    const text = gw.readConfig();
    gw.writeConfig(`${text}\n${fixtureApp('c', ['c.example.test'])}`);
    await waitForState(adminPort, 'c.example.test', 'valid');
    const reply = await httpsRequest({ port: tlsPort, host: 'c.example.test', ca: pebble.issuerRootPem });
    assert.equal(reply.status, 200);
    assert.equal(reply.subjectaltname, 'DNS:c.example.test');
    assert.equal(pebble.orderCount(), before + 1, 'only the new host was ordered');
  });

  test('the metrics count the orders and show each expiry; certs prints the table', async () => {
    const metrics = await adminCall(adminPort, 'GET', '/admin/metrics');
    assert.match(metrics.body, /nano_acme_orders_total\{result="ok"\} [1-9]/);
    assert.match(metrics.body, /nano_certificate_expiry_timestamp_seconds\{host="a\.example\.test"\} \d+/);
    const app = await adminCall(adminPort, 'GET', '/admin/apps/a');
    assert.equal(app.json.tls, 'acme');
    const plain = await adminCall(adminPort, 'GET', '/admin/apps/plain');
    assert.equal(plain.json.tls, false);
    const cli = await runCli(['certs', '--admin', `http://127.0.0.1:${adminPort}`]);
    assert.equal(cli.code, 0, cli.stderr);
    assert.match(cli.stdout, /^HOST\s+APP\s+SOURCE\s+STATE\s+EXPIRES\s+RENEWS\s+ERROR/m);
    assert.match(cli.stdout, /^a\.example\.test\s+a\s+acme\s+valid\s/m);
  });

  test('renew: a new certificate for new handshakes at once; 404 for an unknown host', async () => {
    const old = await httpsRequest({ port: tlsPort, host: 'a.example.test', ca: pebble.issuerRootPem });
    const renewed = await adminCall(adminPort, 'POST', '/admin/certificates/a.example.test/renew');
    assert.equal(renewed.status, 200, renewed.body);
    assert.equal(renewed.json.state, 'valid');
    const now = await httpsRequest({ port: tlsPort, host: 'a.example.test', ca: pebble.issuerRootPem });
    assert.notEqual(now.serial, old.serial);
    const unknown = await adminCall(adminPort, 'POST', '/admin/certificates/nobody.example.test/renew');
    assert.equal(unknown.status, 404);
  });

  test('pebble down: the new host fails with a clear error, plain HTTP serves, a later retry succeeds', async () => {
    await pebble.halt();
    try {
      const text = gw.readConfig();
      gw.writeConfig(`${text}\n${fixtureApp('d', ['d.example.test'])}`);
      const failed = await waitForState(adminPort, 'd.example.test', 'failed', 30_000);
      assert.match(failed.last_error ?? '', new RegExp(pebble.directoryUrl.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')));
      assert.match(failed.last_error ?? '', /refused|not running/);
      // Without a certificate the host is served over plain HTTP, not redirected.
      const plain = await request(plainPort, { host: 'd.example.test', path: '/health' });
      assert.equal(plain.status, 200);
      // Hosts with certificates keep serving HTTPS.
      const a = await httpsRequest({ port: tlsPort, host: 'a.example.test', ca: pebble.issuerRootPem });
      assert.equal(a.status, 200);
      const renew = await adminCall(adminPort, 'POST', '/admin/certificates/a.example.test/renew');
      assert.equal(renew.status, 502);
      assert.match(renew.json.error.message, /refused|not running/);
      const kept = (await certificates(adminPort)).find((c) => c.host === 'a.example.test') as CertJson;
      assert.equal(kept.state, 'valid', 'a still valid certificate stays valid when its renewal fails');
      assert.ok(kept.last_error);
    } finally {
      rootsSeen.push(pebble.issuerRootPem);
      await pebble.restart();
    }
    const retried = await adminCall(adminPort, 'POST', '/admin/certificates/d.example.test/renew');
    assert.equal(retried.status, 200, retried.body);
    const reply = await httpsRequest({ port: tlsPort, host: 'd.example.test', ca: pebble.issuerRootPem });
    assert.equal(reply.subjectaltname, 'DNS:d.example.test');
    const redirected = await request(plainPort, { host: 'd.example.test' });
    assert.equal(redirected.status, 308);
  });

  test('an untrusted directory: a clear error naming it and acme_ca_file; trusted again, the host gets one', async () => {
    const trusted = gw.readConfig();
    const untrusted = trusted.replace(/^acme_ca_file = .*$/m, '');
    gw.writeConfig(`${untrusted}\n${fixtureApp('e', ['e.example.test'])}`);
    const failed = await waitForState(adminPort, 'e.example.test', 'failed', 30_000);
    assert.match(failed.last_error ?? '', /not trusted/);
    assert.match(failed.last_error ?? '', /acme_ca_file/);
    assert.ok((failed.last_error ?? '').includes(pebble.directoryUrl));
    const reloads = gw.reloadsEnded().length;
    gw.writeConfig(`${trusted}\n${fixtureApp('e', ['e.example.test'])}`);
    await gw.waitForReloads(reloads + 1);
    const renewed = await adminCall(adminPort, 'POST', '/admin/certificates/e.example.test/renew');
    assert.equal(renewed.status, 200, renewed.body);
  });

  test('a restart with the same storage orders nothing and serves the stored certificates', async () => {
    const orders = pebble.orderCount();
    const roots = [pebble.issuerRootPem, ...rootsSeen];
    const issued = await httpsRequest({ port: tlsPort, host: 'b.example.test', ca: roots });
    await gw.stop();
    gw = await GatewayProcess.startIn(gw.dir);
    adminPort = await gw.adminPort();
    tlsPort = httpsPortOf(gw.logs) as number;
    await waitForState(adminPort, 'b.example.test', 'valid', 5_000);
    const reply = await httpsRequest({ port: tlsPort, host: 'b.example.test', ca: roots });
    assert.equal(reply.serial, issued.serial);
    assert.equal(pebble.orderCount(), orders, 'no new order');
    const metrics = await adminCall(adminPort, 'GET', '/admin/metrics');
    assert.match(metrics.body, /nano_acme_orders_total\{result="ok"\} 0/);
  });
});
