/**
 * Renewal on time (README, HTTPS: lifecycle): with 60-second certificates
 * from pebble, the gateway renews when a third of the lifetime is left, by
 * its own timer, and new handshakes get the new certificate while light
 * HTTPS traffic sees no failure.
 */
import assert from 'node:assert/strict';
import http2 from 'node:http2';
import { after, before, describe, test } from 'node:test';
import { adminCall, fixtureApp, freePort, GatewayProcess, waitFor } from './helpers.js';
import { httpsPortOf, httpsRequest } from './tls/client.js';
import { type Pebble, pebbleSkip, startPebble } from './tls/pebble.js';

const LIFETIME_S = 60;

describe('renewal of short-lived ACME certificates', { skip: pebbleSkip() }, () => {
  let pebble: Pebble;
  let gw: GatewayProcess;

  before(async () => {
    const plainPort = await freePort();
    pebble = await startPebble({ httpPort: plainPort, certificateValidityPeriod: LIFETIME_S });
    gw = await GatewayProcess.start({
      config: `[gateway]
listen = "127.0.0.1:${plainPort}"

[admin]
listen = "127.0.0.1:0"

[tls]
listen = "127.0.0.1:0"
acme_directory = ${JSON.stringify(pebble.directoryUrl)}
acme_ca_file = ${JSON.stringify(pebble.caFile)}
storage = "certs"

${fixtureApp('a', ['a.example.test'])}
`,
    });
  });

  after(async () => {
    await gw?.cleanup();
    await pebble?.stop();
  });

  test('renewed at renew_at; the serial changes; no request fails meanwhile', async () => {
    const adminPort = await gw.adminPort();
    const tlsPort = httpsPortOf(gw.logs) as number;
    type Cert = { state: string; renew_at: string; not_after: string; not_before: string };
    const first = await waitFor(async () => {
      const reply = await adminCall(adminPort, 'GET', '/admin/certificates');
      const cert = (reply.json.certificates as Cert[])[0];
      return cert?.state === 'valid' ? cert : undefined;
    }, 'the first certificate');
    const renewAt = Date.parse(first.renew_at);
    const lifetime = Date.parse(first.not_after) - Date.parse(first.not_before);
    assert.ok(lifetime <= (LIFETIME_S + 1) * 1000, `a short certificate (${lifetime} ms)`);
    const ca = pebble.issuerRootPem;
    const original = (await httpsRequest({ port: tlsPort, host: 'a.example.test', ca })).serial;

    // Light load across the renewal: a new TLS connection per request, and one HTTP/2 session kept open.
    const session = http2.connect(`https://127.0.0.1:${tlsPort}`, { ca, servername: 'a.example.test' });
    session.on('error', () => {});
    const h2Get = (): Promise<number> =>
      new Promise((resolve, reject) => {
        const stream = session.request({ ':path': '/health', ':authority': `a.example.test:${tlsPort}` });
        stream.on('response', (h) => resolve(Number(h[':status'])));
        stream.on('error', reject);
        stream.resume();
      });
    let sent = 0;
    const failures: string[] = [];
    let serial = original;
    await waitFor(
      async () => {
        sent += 2;
        try {
          const reply = await httpsRequest({ port: tlsPort, host: 'a.example.test', ca, path: '/health' });
          if (reply.status !== 200) failures.push(`status ${reply.status}`);
          serial = reply.serial;
        } catch (err) {
          failures.push((err as Error).message);
        }
        try {
          const status = await h2Get();
          if (status !== 200) failures.push(`h2 status ${status}`);
        } catch (err) {
          failures.push(`h2: ${(err as Error).message}`);
        }
        return serial !== original;
      },
      'a renewed certificate',
      lifetime,
      100,
    );
    session.close();
    assert.deepEqual(failures, [], `${failures.length} of ${sent} requests failed`);
    const renewing = gw.logs.find((l) => l.msg === 'renewing certificate');
    assert.ok(renewing, 'renewed by the gateway itself');
    const startedAt = Number(renewing.time);
    // By its own timer, at renew_at (README: within 10 s of it), not before.
    assert.ok(startedAt >= renewAt - 1000, `renewal started ${renewAt - startedAt} ms before renew_at`);
    assert.ok(startedAt <= renewAt + 10_000, `renewal started ${startedAt - renewAt} ms after renew_at`);
    const metrics = await adminCall(adminPort, 'GET', '/admin/metrics');
    assert.match(metrics.body, /nano_acme_orders_total\{result="ok"\} 2/);
  });
});
