/**
 * The HTTPS/ACME test harness on its own, without the gateway: test/tls/pki.ts
 * makes certificates that say what was asked, and pebble (test/tls/pebble.ts)
 * with the loopback DNS responder (test/tls/dns.ts) issues a two-name
 * certificate by HTTP-01 to acme-client, which chains to `issuerRootPem`.
 */
import assert from 'node:assert/strict';
import { createPrivateKey, X509Certificate } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import type net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { after, describe, test } from 'node:test';
import tls from 'node:tls';
import acme from 'acme-client';
import { startDnsResponder } from './tls/dns.js';
import { requirePebble, startPebble } from './tls/pebble.js';
import { makeCa, makeKey, makeLeaf } from './tls/pki.js';

const tmp = mkdtempSync(path.join(os.tmpdir(), 'nano-tls-harness-'));
after(() => rmSync(tmp, { recursive: true, force: true }));

function sans(pem: string): string[] {
  return (new X509Certificate(pem).subjectAltName ?? '').split(', ').filter(Boolean);
}

function pemBlocks(text: string): string[] {
  return text.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----\n?/g) ?? [];
}

describe('pki', () => {
  const dir = mkdtempSync(path.join(tmp, 'pki-'));
  const ca = makeCa(dir, 'Harness Test CA');
  const caCert = new X509Certificate(ca.certPem);

  test('the CA is a self-signed CA', () => {
    assert.equal(caCert.ca, true);
    assert.ok(caCert.checkIssued(caCert));
    assert.ok(caCert.verify(caCert.publicKey));
    assert.equal(caCert.publicKey.asymmetricKeyType, 'ec');
  });

  test('a leaf has the SANs asked for, serverAuth, its own key, and is signed by the CA', () => {
    const leaf = makeLeaf(ca, dir, { names: ['a.example.test', 'b.example.test', '127.0.0.1'], days: 2 });
    const cert = new X509Certificate(leaf.certPem);
    assert.deepEqual(sans(leaf.certPem), ['DNS:a.example.test', 'DNS:b.example.test', 'IP Address:127.0.0.1']);
    assert.equal(cert.ca, false);
    assert.deepEqual(cert.keyUsage, ['1.3.6.1.5.5.7.3.1']);
    assert.equal(cert.serialNumber, leaf.serial);
    assert.ok(cert.checkIssued(caCert));
    assert.ok(cert.verify(caCert.publicKey));
    assert.ok(cert.checkPrivateKey(createPrivateKey(leaf.keyPem)));
    assert.equal(cert.publicKey.asymmetricKeyDetails?.namedCurve, 'prime256v1');
    const lifetime = Date.parse(cert.validTo) - Date.parse(cert.validFrom);
    assert.equal(lifetime, 2 * 86_400_000);
    assert.equal(path.basename(leaf.certFile), 'a.example.test.crt');
  });

  test('a wildcard leaf, under its own file name', () => {
    const leaf = makeLeaf(ca, dir, { names: ['*.example.test', 'example.test'], file: 'wild' });
    assert.deepEqual(sans(leaf.certPem), ['DNS:*.example.test', 'DNS:example.test']);
    assert.equal(path.basename(leaf.certFile), 'wild.crt');
    assert.equal(path.basename(leaf.keyFile), 'wild.key');
    assert.ok(new X509Certificate(leaf.certPem).checkIssued(caCert));
    assert.ok(
      tls.checkServerIdentity('x.example.test', new X509Certificate(leaf.certPem).toLegacyObject()) === undefined,
    );
  });

  test('makeKey makes a key that matches no certificate', () => {
    const leaf = makeLeaf(ca, dir, { names: ['c.example.test'] });
    const stray = makeKey(dir, 'stray.key');
    assert.equal(path.basename(stray.keyFile), 'stray.key');
    assert.equal(createPrivateKey(stray.keyPem).asymmetricKeyType, 'ec');
    assert.equal(new X509Certificate(leaf.certPem).checkPrivateKey(createPrivateKey(stray.keyPem)), false);
  });
});

describe('pebble', () => {
  test('issues a two-name certificate by HTTP-01 that chains to issuerRootPem', async (t) => {
    if (!requirePebble(t)) return;
    const dns = await startDnsResponder();
    t.after(() => dns.close());

    // The HTTP-01 responder pebble validates against (the gateway's plain port, later).
    const challenges = new Map<string, string>();
    const requests: string[] = [];
    const challengeServer = http.createServer((req, res) => {
      requests.push(`${req.headers.host} ${req.url}`);
      const token = /^\/\.well-known\/acme-challenge\/([^/?]+)$/.exec(req.url ?? '')?.[1];
      const answer = token === undefined ? undefined : challenges.get(token);
      res.writeHead(answer === undefined ? 404 : 200, { 'content-type': 'text/plain' }).end(answer ?? 'not found');
    });
    await new Promise<void>((resolve) => challengeServer.listen(0, '127.0.0.1', resolve));
    t.after(() => new Promise<void>((resolve) => challengeServer.close(() => resolve())));
    const httpPort = (challengeServer.address() as net.AddressInfo).port;

    const pebble = await startPebble({ httpPort, dnsPort: dns.port, certificateValidityPeriod: 3600 });
    t.after(() => pebble.stop());
    assert.match(pebble.directoryUrl, /^https:\/\/127\.0\.0\.1:\d+\/dir$/);
    assert.match(pebble.issuerRootPem, /BEGIN CERTIFICATE/);

    // acme-client's shared axios instance: trust pebble's HTTPS CA, no slow retries.
    const settings = (acme.axios.defaults as any).acmeSettings;
    const saved = { httpsAgent: acme.axios.defaults.httpsAgent, retryMaxAttempts: settings.retryMaxAttempts };
    acme.axios.defaults.httpsAgent = new https.Agent({ ca: pebble.caPem });
    settings.retryMaxAttempts = 1;
    t.after(() => {
      acme.axios.defaults.httpsAgent = saved.httpsAgent;
      settings.retryMaxAttempts = saved.retryMaxAttempts;
    });

    const client = new acme.Client({
      directoryUrl: pebble.directoryUrl,
      accountKey: await acme.crypto.createPrivateEcdsaKey(),
      backoffMin: 100,
      backoffMax: 1000,
      backoffAttempts: 10,
    });
    await client.createAccount({ termsOfServiceAgreed: true, contact: ['mailto:test@example.test'] });
    const names = ['a.example.test', 'b.example.test'];
    const order = await client.createOrder({ identifiers: names.map((value) => ({ type: 'dns', value })) });
    for (const authz of await client.getAuthorizations(order)) {
      const challenge = authz.challenges.find((c) => c.type === 'http-01');
      assert.ok(challenge, `an http-01 challenge for ${authz.identifier.value}`);
      challenges.set(challenge.token, await client.getChallengeKeyAuthorization(challenge));
      await client.completeChallenge(challenge);
      await client.waitForValidStatus(challenge);
    }
    const [key, csr] = await acme.crypto.createCsr(
      { commonName: names[0], altNames: names },
      await acme.crypto.createPrivateEcdsaKey(),
    );
    const finalized = await client.finalizeOrder(order, csr);
    const chainPem = await client.getCertificate(finalized);

    // Pebble resolved both names through our responder and fetched both tokens from our port.
    for (const name of names) {
      assert.ok(dns.queries.includes(name), `DNS query for ${name}: ${dns.queries.join(' ')}`);
      assert.ok(
        requests.some((r) => r.startsWith(`${name}:${httpPort} /.well-known/acme-challenge/`)),
        `challenge fetch for ${name}: ${requests.join(', ')}`,
      );
    }
    assert.equal(pebble.orderCount(), 1);
    assert.equal(pebble.issuedCount(), 1);

    // The chain: leaf (both names, the CSR's key) <- intermediate <- issuerRootPem.
    const [leafPem, ...intermediates] = pemBlocks(chainPem);
    assert.ok(leafPem);
    assert.equal(intermediates.length, 1);
    const leaf = new X509Certificate(leafPem);
    const intermediate = new X509Certificate(intermediates[0]!);
    const root = new X509Certificate(pebble.issuerRootPem);
    assert.deepEqual(sans(leafPem).sort(), ['DNS:a.example.test', 'DNS:b.example.test']);
    assert.ok(leaf.checkPrivateKey(createPrivateKey(key)));
    assert.ok(leaf.checkIssued(intermediate) && leaf.verify(intermediate.publicKey));
    assert.ok(intermediate.checkIssued(root) && intermediate.verify(root.publicKey));
    assert.ok(root.checkIssued(root));
    const lifetime = (Date.parse(leaf.validTo) - Date.parse(leaf.validFrom)) / 1000;
    assert.ok(lifetime >= 3599 && lifetime <= 3601, `lifetime ${lifetime} s`);

    // And a real TLS client that trusts only issuerRootPem accepts it for both names.
    const server = tls.createServer({ key, cert: chainPem });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    t.after(() => new Promise<void>((resolve) => server.close(() => resolve())));
    const tlsPort = (server.address() as net.AddressInfo).port;
    for (const servername of names) {
      const authorized = await new Promise<boolean>((resolve, reject) => {
        const socket = tls.connect({ host: '127.0.0.1', port: tlsPort, servername, ca: pebble.issuerRootPem }, () => {
          resolve(socket.authorized);
          socket.end();
        });
        socket.on('error', reject);
      });
      assert.equal(authorized, true, servername);
    }
  });
  test('restart: same URLs, a new issuing root, its own DNS responder, and stop() cleans up', async (t) => {
    if (!requirePebble(t)) return;
    const pebble = await startPebble({ httpPort: 9 });
    t.after(() => pebble.stop());
    assert.ok(pebble.dns, 'without dnsPort pebble gets its own responder');
    const { directoryUrl, issuerRootPem, dir } = pebble;
    assert.equal(readFileSync(pebble.issuerRootFile, 'utf8'), issuerRootPem);
    await pebble.restart();
    assert.equal(pebble.directoryUrl, directoryUrl);
    assert.notEqual(pebble.issuerRootPem, issuerRootPem);
    assert.equal(readFileSync(pebble.issuerRootFile, 'utf8'), pebble.issuerRootPem);
    assert.equal(pebble.logs.match(/Starting Pebble ACME server/g)?.length, 2);
    await pebble.stop();
    assert.equal(existsSync(dir), false);
    await pebble.stop();
  });
});
