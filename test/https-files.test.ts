/**
 * HTTPS with certificates from files (SPEC §10, with §3 validation and §7
 * answers): SNI (exact, wildcard, longest wildcard, no SNI), validation of
 * the files, a certificate replaced on disk while connections stay open,
 * the plain listener's redirect, HSTS, X-Forwarded-Proto, the access log,
 * wss://, the admin API and the certs command. Everything runs against the
 * real CLI with certificates from test/tls/pki.ts.
 */
import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { mkdirSync, readFileSync, renameSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import type http2 from 'node:http2';
import https from 'node:https';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import type tls from 'node:tls';
import WebSocket from 'ws';
import type { CertificateJson } from '../src/wire.js';
import {
  adminCall,
  adminGatewaySection,
  fixtureApp,
  GatewayProcess,
  gatewaySection,
  type LogLine,
  rawRequest,
  request,
  runCli,
  tempDir,
  waitFor,
  writeFiles,
} from './helpers.js';
import { h2Close, h2Connect, h2Request, handshake, httpsRequest } from './tls/https-client.js';
import { type Leaf, makeCa, makeKey, makeLeaf } from './tls/pki.js';

delete process.env.NANO_ADMIN_TOKEN;

const tmp = tempDir('nano-https-files-');
after(() => rmSync(tmp, { recursive: true, force: true }));
const ca = makeCa(tmp, 'Nano Files Test CA');

/** A leaf for `names`, made in the scratch directory under its own base name. */
function leaf(names: string[], file: string): Leaf {
  return makeLeaf(ca, tmp, { names, file });
}

/** The `files` entries that put a leaf in the config's directory as `<base>.crt` and `<base>.key`. */
function pemFiles(cert: Leaf, base: string): Record<string, string> {
  return { [`${base}.crt`]: cert.certPem, [`${base}.key`]: cert.keyPem };
}

/** An app's `tls` key naming `<base>.crt` and `<base>.key`, relative to the config file. */
function fileTls(base: string): string {
  return `tls = { cert = "${base}.crt", key = "${base}.key" }`;
}

function tlsSection(extra = ''): string {
  return `[tls]\nlisten = "127.0.0.1:0"\nstorage = ".certs"\n${extra}\n`;
}

interface Info {
  app: string;
  headers: Record<string, string | undefined>;
}

/** The admin API's certificate object (README, HTTPS). */
type CertJson = CertificateJson;

/** The access log line of the request whose path is `urlPath`. */
function accessLine(gw: GatewayProcess, urlPath: string): Promise<LogLine> {
  return gw.waitForLog((l) => l.kind === 'access' && l.path === urlPath);
}

describe('certificates from files: SNI, redirect, HSTS, forwarding, admin', () => {
  const certs = {
    main: leaf(['main.test', 'www.main.test'], 'main'),
    other: leaf(['other.test'], 'other'),
    wild: leaf(['*.example.test'], 'wild'),
    wildB: leaf(['*.b.example.test'], 'wild-b'),
    exact: leaf(['exact.example.test'], 'exact'),
  };
  let gw: GatewayProcess;
  let tlsPort: number;
  let adminPort: number;

  before(async () => {
    gw = await GatewayProcess.start({
      config: `${adminGatewaySection('default_app = "other"')}
${tlsSection('hsts_max_age = 60')}
${fixtureApp('main', ['main.test', 'www.main.test'], fileTls('main'))}
${fixtureApp('other', ['other.test'], fileTls('other'))}
${fixtureApp('wild', ['*.example.test'], fileTls('wild'))}
${fixtureApp('wildb', ['*.b.example.test'], fileTls('wild-b'))}
${fixtureApp('exact', ['exact.example.test'], fileTls('exact'))}
${fixtureApp('plain', ['plain.test'], 'tls = false')}
`,
      files: {
        ...pemFiles(certs.main, 'main'),
        ...pemFiles(certs.other, 'other'),
        ...pemFiles(certs.wild, 'wild'),
        ...pemFiles(certs.wildB, 'wild-b'),
        ...pemFiles(certs.exact, 'exact'),
      },
    });
    tlsPort = await gw.httpsPort();
    adminPort = await gw.adminPort();
  });
  after(() => gw?.cleanup());

  test('the HTTPS listen line names its address, and the port differs from the plain one', async () => {
    const line = await gw.waitForLog((l) => l.msg?.startsWith('listening on https://') === true);
    assert.equal(line.msg, `listening on https://127.0.0.1:${tlsPort} (HTTP/2 and HTTP/1.1)`);
    assert.equal(line.address, `https://127.0.0.1:${tlsPort}`);
    assert.notEqual(tlsPort, gw.port);
  });

  test('SNI picks each app its certificate: exact first, then the longest wildcard', async () => {
    const cases: Array<[string, Leaf]> = [
      ['main.test', certs.main],
      ['www.main.test', certs.main],
      ['other.test', certs.other],
      ['y.example.test', certs.wild],
      ['x.b.example.test', certs.wildB],
      ['exact.example.test', certs.exact],
      ['MAIN.test.', certs.main],
    ];
    for (const [servername, expected] of cases) {
      const shake = await handshake(tlsPort, { ca: ca.certPem, servername });
      assert.equal(shake.authorized, true, `${servername}: the chain verifies against the test CA`);
      assert.equal(shake.serial, expected.serial, `${servername}: ${shake.subjectaltname}`);
      const name = servername.toLowerCase().replace(/\.$/, '');
      assert.ok(new X509Certificate(expected.certPem).checkHost(name), `${servername} is covered`);
    }
    // And the request on each goes to the app the Host names, over a verified connection.
    const routes: Array<[string, string]> = [
      ['main.test', 'main'],
      ['other.test', 'other'],
      ['y.example.test', 'wild'],
      ['x.b.example.test', 'wildb'],
      ['exact.example.test', 'exact'],
    ];
    for (const [host, app] of routes) {
      const reply = await httpsRequest(tlsPort, { ca: ca.certPem, servername: host, path: '/info' });
      assert.equal(reply.status, 200);
      assert.equal((JSON.parse(reply.body) as Info).app, app, host);
    }
  });

  test("no SNI, or a name no certificate covers: the default app's first host's certificate", async () => {
    // default_app = "other": not the first app of the file.
    const none = await handshake(tlsPort, { ca: ca.certPem });
    assert.equal(none.serial, certs.other.serial, none.subjectaltname);
    assert.equal(none.authorized, true);
    const unknown = await handshake(tlsPort, { ca: ca.certPem, servername: 'unknown.test' });
    assert.equal(unknown.serial, certs.other.serial);
    // Routing's "*.b.example.test" matches two labels deeper; the X.509 wildcard covers one only.
    const deep = await handshake(tlsPort, { ca: ca.certPem, servername: 'deep.x.b.example.test' });
    assert.equal(deep.serial, certs.other.serial, deep.subjectaltname);
  });

  test('the child sees X-Forwarded-Proto: https over HTTP/1.1-over-TLS and over HTTP/2', async () => {
    const h1 = await httpsRequest(tlsPort, {
      ca: ca.certPem,
      servername: 'main.test',
      path: '/info',
      headers: { 'x-forwarded-proto': 'http', 'x-forwarded-host': 'evil.test' },
    });
    assert.equal(h1.alpn, false);
    const h1Info = JSON.parse(h1.body) as Info;
    assert.equal(h1Info.headers['x-forwarded-proto'], 'https', 'the client value is replaced');
    assert.equal(h1Info.headers['x-forwarded-host'], 'main.test');
    assert.equal(h1Info.headers.host, 'main.test');

    const session = await h2Connect(tlsPort, { ca: ca.certPem, servername: 'main.test' });
    try {
      const h2 = await h2Request(session, {
        authority: 'www.main.test',
        path: '/info',
        headers: { 'x-forwarded-proto': 'http' },
      });
      assert.equal(session.alpnProtocol, 'h2');
      assert.equal(h2.status, 200);
      const h2Info = JSON.parse(h2.body) as Info;
      assert.equal(h2Info.app, 'main');
      assert.equal(h2Info.headers['x-forwarded-proto'], 'https');
      assert.equal(h2Info.headers.host, 'www.main.test', ':authority becomes Host');
      assert.equal(h2Info.headers['x-forwarded-host'], 'www.main.test');
    } finally {
      await h2Close(session);
    }
    // The same app over plain HTTP (not redirected: tls = false) says http.
    const plain = await request(gw.port, { host: 'plain.test', path: '/info' });
    assert.equal((JSON.parse(plain.body) as Info).headers['x-forwarded-proto'], 'http');
  });

  test('plain HTTP for a host with a certificate: 308 to https://HOST:TLSPORT/path?query', async () => {
    const cases: Array<[string, string]> = [
      ['main.test', '/a/b?x=1&y=%20z'],
      [`MAIN.test:${gw.port}`, '/'],
      ['www.main.test.', '/deep/path?q'],
      ['y.example.test', '/w?1'],
    ];
    for (const [host, urlPath] of cases) {
      const reply = await request(gw.port, { host, path: urlPath, method: urlPath === '/' ? 'POST' : 'GET' });
      assert.equal(reply.status, 308, `${host}${urlPath}: ${reply.body}`);
      const name = host.toLowerCase().replace(/:\d+$/, '').replace(/\.$/, '');
      assert.equal(reply.headers.location, `https://${name}:${tlsPort}${urlPath}`);
      assert.equal(reply.headers['strict-transport-security'], undefined, 'no HSTS on plain HTTP');
    }
  });

  test('no redirect for a tls = false app, a host no certificate covers, or an ACME challenge path', async () => {
    const plain = await request(gw.port, { host: 'plain.test', path: '/x?y=1' });
    assert.equal(plain.status, 200);
    assert.match(plain.body, /^plain \d+ GET \/x\?y=1$/m);
    assert.equal(plain.headers['strict-transport-security'], undefined);
    // Routed to wildb, but "*.b.example.test" does not cover two labels: no certificate, no redirect.
    const deep = await request(gw.port, { host: 'deep.x.b.example.test', path: '/deep' });
    assert.equal(deep.status, 200, deep.body);
    assert.match(deep.body, /^wildb \d+ GET \/deep$/m);
    // A challenge path with no pending token is the app's, not redirected.
    for (const host of ['main.test', 'y.example.test']) {
      const challenge = await request(gw.port, { host, path: '/.well-known/acme-challenge/whatever' });
      assert.equal(challenge.status, 200, `${host}: ${challenge.body}`);
      assert.match(challenge.body, / GET \/\.well-known\/acme-challenge\/whatever$/m);
      assert.equal(challenge.headers.location, undefined);
    }
  });

  test("hsts_max_age = 60: Strict-Transport-Security on HTTPS answers, proxied or the gateway's own", async () => {
    const h1 = await httpsRequest(tlsPort, { ca: ca.certPem, servername: 'main.test', path: '/hello' });
    assert.equal(h1.status, 200);
    assert.equal(h1.headers['strict-transport-security'], 'max-age=60');
    // The gateway's own answer over HTTPS: a child that resets the connection, 502.
    const reset = await httpsRequest(tlsPort, { ca: ca.certPem, servername: 'other.test', path: '/reset' });
    assert.equal(reset.status, 502, reset.body);
    assert.equal(reset.headers['strict-transport-security'], 'max-age=60');
    const session = await h2Connect(tlsPort, { ca: ca.certPem, servername: 'main.test' });
    try {
      const h2 = await h2Request(session, { authority: 'main.test', path: '/hello' });
      assert.equal(h2.status, 200);
      assert.equal(h2.headers['strict-transport-security'], 'max-age=60');
      const h2Reset = await h2Request(session, { authority: 'main.test', path: '/reset' });
      assert.equal(h2Reset.status, 502);
      assert.equal(h2Reset.headers['strict-transport-security'], 'max-age=60');
    } finally {
      await h2Close(session);
    }
    // Plain HTTP never carries it.
    const plain = await request(gw.port, { host: 'plain.test', path: '/hello' });
    assert.equal(plain.headers['strict-transport-security'], undefined);
  });

  test('the access log line tells proto (h2, http/1.1) and tls', async () => {
    const session = await h2Connect(tlsPort, { ca: ca.certPem, servername: 'main.test' });
    try {
      assert.equal((await h2Request(session, { authority: 'main.test', path: '/log-h2' })).status, 200);
    } finally {
      await h2Close(session);
    }
    assert.equal(
      (await httpsRequest(tlsPort, { ca: ca.certPem, servername: 'main.test', path: '/log-h1' })).status,
      200,
    );
    assert.equal((await request(gw.port, { host: 'plain.test', path: '/log-plain' })).status, 200);
    const h2 = await accessLine(gw, '/log-h2');
    assert.equal(h2.proto, 'h2');
    assert.equal(h2.tls, true);
    assert.equal(h2.host, 'main.test');
    assert.equal(h2.status, 200);
    const h1 = await accessLine(gw, '/log-h1');
    assert.equal(h1.proto, 'http/1.1');
    assert.equal(h1.tls, true);
    const plain = await accessLine(gw, '/log-plain');
    assert.equal(plain.proto, 'http/1.1');
    assert.equal(plain.tls, false);
  });

  test('wss:// on the HTTPS port reaches the app and echoes', async () => {
    // ws hands its options to tls.connect: `servername` is the SNI (its types do not list it).
    const options = { ca: ca.certPem, servername: 'www.main.test', headers: { host: 'www.main.test' } };
    const ws = new WebSocket(`wss://127.0.0.1:${tlsPort}/ws`, options as WebSocket.ClientOptions);
    try {
      const messages: string[] = [];
      ws.on('message', (data) => messages.push(String(data)));
      await new Promise<void>((resolve, reject) => {
        ws.once('open', () => resolve());
        ws.once('error', reject);
      });
      const socket = (ws as unknown as { _socket: tls.TLSSocket })._socket;
      assert.equal(socket.getPeerCertificate().serialNumber, certs.main.serial);
      await waitFor(() => messages.length >= 1 || undefined, 'the greeting');
      assert.equal((JSON.parse(messages[0] as string) as { app: string }).app, 'main');
      ws.send('over tls');
      await waitFor(() => messages.includes('echo:over tls') || undefined, 'the echo');
    } finally {
      ws.close();
    }
    const line = await gw.waitForLog((l) => l.kind === 'access' && l.path === '/ws');
    assert.equal(line.tls, true);
  });

  test('GET /admin/certificates lists the file certificates; renew: 409 for a file, 404 unknown', async () => {
    const list = await adminCall(adminPort, 'GET', '/admin/certificates');
    assert.equal(list.status, 200);
    const found = list.json.certificates as CertJson[];
    const byHost = new Map(found.map((c) => [c.host, c]));
    const expected: Array<[string, string, Leaf]> = [
      ['main.test', 'main', certs.main],
      ['www.main.test', 'main', certs.main],
      ['other.test', 'other', certs.other],
      ['*.example.test', 'wild', certs.wild],
      ['*.b.example.test', 'wildb', certs.wildB],
      ['exact.example.test', 'exact', certs.exact],
    ];
    assert.deepEqual(
      found.map((c) => c.host).sort(),
      expected.map(([h]) => h).sort(),
      'one entry per host with a certificate; plain.test (tls = false) has none',
    );
    for (const [host, app, cert] of expected) {
      const c = byHost.get(host) as CertJson;
      const x509 = new X509Certificate(cert.certPem);
      assert.equal(c.app, app, host);
      assert.equal(c.source, 'file');
      assert.equal(c.state, 'valid');
      assert.equal(c.renew_at, null);
      assert.equal(c.last_error, null);
      assert.equal(Date.parse(c.not_after as string), Date.parse(x509.validTo), host);
      assert.equal(Date.parse(c.not_before as string), Date.parse(x509.validFrom), host);
      assert.match(c.issuer ?? '', /Nano Files Test CA/);
    }
    const renewFile = await adminCall(adminPort, 'POST', '/admin/certificates/main.test/renew');
    assert.equal(renewFile.status, 409, renewFile.body);
    assert.equal(typeof renewFile.json.error.message, 'string');
    const renewUnknown = await adminCall(adminPort, 'POST', '/admin/certificates/nobody.test/renew');
    assert.equal(renewUnknown.status, 404, renewUnknown.body);
    assert.equal(renewUnknown.json.error.code, 'not_found');
  });

  test('App JSON tells tls: "file" or false; nano-gateway certs prints the table', async () => {
    const apps = await adminCall(adminPort, 'GET', '/admin/apps');
    const tlsOf = Object.fromEntries(
      (apps.json.apps as Array<{ name: string; tls: unknown }>).map((a) => [a.name, a.tls]),
    );
    assert.deepEqual(tlsOf, { main: 'file', other: 'file', wild: 'file', wildb: 'file', exact: 'file', plain: false });
    const one = await adminCall(adminPort, 'GET', '/admin/apps/plain');
    assert.equal(one.json.tls, false);

    const res = await runCli(['certs', '--admin', `http://127.0.0.1:${adminPort}`], { cwd: tmp });
    assert.equal(res.code, 0, res.stderr);
    const lines = res.stdout.trimEnd().split('\n');
    assert.deepEqual((lines[0] as string).split(/\s+/).slice(0, 4), ['HOST', 'APP', 'SOURCE', 'STATE']);
    for (const [host, app] of [
      ['main.test', 'main'],
      ['www.main.test', 'main'],
      ['*.b.example.test', 'wildb'],
    ] as const) {
      const row = lines.find((l) => l.split(/\s+/)[0] === host);
      assert.ok(row, `a row for ${host}:\n${res.stdout}`);
      assert.deepEqual(row.split(/\s+/).slice(0, 4), [host, app, 'file', 'valid']);
    }
    assert.equal(lines.length, 1 + 6, res.stdout);
  });
});

describe('redirect_http = false, default_app = false', () => {
  const only = leaf(['only.test'], 'only');
  let gw: GatewayProcess;
  let tlsPort: number;

  before(async () => {
    gw = await GatewayProcess.start({
      config: `${gatewaySection('default_app = false')}
${tlsSection('redirect_http = false\nhsts_max_age = 60')}
${fixtureApp('only', ['only.test'], fileTls('only'))}
`,
      files: pemFiles(only, 'only'),
    });
    tlsPort = await gw.httpsPort();
  });
  after(() => gw?.cleanup());

  test('plain HTTP for a host with a certificate is served, not redirected, without HSTS', async () => {
    const reply = await request(gw.port, { host: 'only.test', path: '/p?q=1' });
    assert.equal(reply.status, 200, reply.body);
    assert.match(reply.body, /^only \d+ GET \/p\?q=1$/m);
    assert.equal(reply.headers.location, undefined);
    assert.equal(reply.headers['strict-transport-security'], undefined);
    const unmatched = await request(gw.port, { host: 'nobody.test' });
    assert.equal(unmatched.status, 404);
    assert.equal(unmatched.headers['strict-transport-security'], undefined);
  });

  test("the gateway's own 404 over HTTPS and HTTP/2 carries HSTS", async () => {
    const h1 = await httpsRequest(tlsPort, { ca: ca.certPem, servername: 'only.test', host: 'nobody.test' });
    assert.equal(h1.status, 404);
    assert.match(h1.body, /nobody\.test/);
    assert.equal(h1.headers['strict-transport-security'], 'max-age=60');
    const session = await h2Connect(tlsPort, { ca: ca.certPem, servername: 'only.test' });
    try {
      const h2 = await h2Request(session, { authority: 'nobody.test', path: '/' });
      assert.equal(h2.status, 404);
      assert.match(h2.body, /nobody\.test/);
      assert.equal(h2.headers['strict-transport-security'], 'max-age=60');
    } finally {
      await h2Close(session);
    }
  });

  test('no default app: a handshake without SNI, or for an uncovered name, fails', async () => {
    await assert.rejects(handshake(tlsPort, { ca: ca.certPem }));
    await assert.rejects(handshake(tlsPort, { ca: ca.certPem, servername: 'nobody.test' }));
    // The covered name still works.
    assert.equal((await handshake(tlsPort, { ca: ca.certPem, servername: 'only.test' })).serial, only.serial);
  });
});

describe('replacing the certificate files', () => {
  const first = leaf(['rot.test'], 'rot-1');
  let gw: GatewayProcess;
  let tlsPort: number;
  let agent: https.Agent;
  let session: http2.ClientHttp2Session;

  before(async () => {
    gw = await GatewayProcess.start({
      config: `${gatewaySection()}
${tlsSection()}
${fixtureApp('rot', ['rot.test'], fileTls('rot'))}
`,
      files: pemFiles(first, 'rot'),
    });
    tlsPort = await gw.httpsPort();
    agent = new https.Agent({ keepAlive: true, maxSockets: 1 });
    session = await h2Connect(tlsPort, { ca: ca.certPem, servername: 'rot.test' });
  });
  after(async () => {
    agent?.destroy();
    if (session) await h2Close(session);
    await gw?.cleanup();
  });

  /** Requests on the connections opened before any replacement: both still serve, with the first certificate. */
  async function oldConnectionsServe(label: string): Promise<void> {
    const h1 = await httpsRequest(tlsPort, { ca: ca.certPem, servername: 'rot.test', path: `/${label}-h1`, agent });
    assert.equal(h1.status, 200);
    assert.equal(h1.reused, true, 'the keep-alive connection was not dropped');
    assert.equal(h1.serial, first.serial);
    const h2 = await h2Request(session, { authority: 'rot.test', path: `/${label}-h2` });
    assert.equal(h2.status, 200);
    assert.equal(session.closed, false);
    assert.equal((session.socket as tls.TLSSocket).getPeerCertificate().serialNumber, first.serial);
  }

  async function waitForSerial(serial: string): Promise<void> {
    await waitFor(
      async () => (await handshake(tlsPort, { ca: ca.certPem, servername: 'rot.test' })).serial === serial || undefined,
      `a new handshake to get serial ${serial}`,
      15_000,
      50,
    );
  }

  test('a new certificate written in place (key, then cert) serves new handshakes; open connections stay', async () => {
    const before = await httpsRequest(tlsPort, { ca: ca.certPem, servername: 'rot.test', path: '/before', agent });
    assert.equal(before.status, 200);
    assert.equal(before.serial, first.serial);
    assert.equal((await h2Request(session, { authority: 'rot.test', path: '/before-h2' })).status, 200);

    const second = leaf(['rot.test'], 'rot-2');
    assert.notEqual(second.serial, first.serial);
    writeFileSync(path.join(gw.dir, 'rot.key'), second.keyPem);
    writeFileSync(path.join(gw.dir, 'rot.crt'), second.certPem);
    await waitForSerial(second.serial);

    const fresh = await httpsRequest(tlsPort, { ca: ca.certPem, servername: 'rot.test', path: '/fresh' });
    assert.equal(fresh.status, 200);
    assert.equal(fresh.serial, second.serial);
    await oldConnectionsServe('after-in-place');
    assert.ok(gw.running);
  });

  test('again by rename (key, then cert): picked up, no restart, open connections stay', async () => {
    const pidsBefore = gw.readyPids('rot');
    const third = leaf(['rot.test'], 'rot-3');
    for (const [name, text] of [
      ['rot.key', third.keyPem],
      ['rot.crt', third.certPem],
    ] as const) {
      const target = path.join(gw.dir, name);
      writeFileSync(`${target}.tmp`, text);
      renameSync(`${target}.tmp`, target);
    }
    await waitForSerial(third.serial);
    await oldConnectionsServe('after-rename');
    const listed = await httpsRequest(tlsPort, { ca: ca.certPem, servername: 'rot.test', path: '/info' });
    assert.equal(listed.serial, third.serial);
    assert.deepEqual(gw.readyPids('rot'), pidsBefore, 'the app was not restarted for a certificate');
  });

  test('a key that no longer matches: the reload is rejected and the running certificate keeps serving', async () => {
    const serving = (await handshake(tlsPort, { ca: ca.certPem, servername: 'rot.test' })).serial;
    const from = gw.logs.length;
    const keyFile = path.join(gw.dir, 'rot.key');
    const goodKey = readFileSync(keyFile, 'utf8');
    writeFileSync(keyFile, makeKey(tmp, 'rot-stray.key').keyPem);
    const rejected = await gw.waitForLog((l) => String(l.msg).startsWith('reload rejected'), 15_000, from);
    assert.match(String(rejected.err), /apps\.rot\.tls\.key/);
    const still = await httpsRequest(tlsPort, { ca: ca.certPem, servername: 'rot.test', path: '/still' });
    assert.equal(still.status, 200);
    assert.equal(still.serial, serving);
    await oldConnectionsServe('after-bad-key');
    // Put back, the files are valid again: the next reload goes through and the same certificate serves.
    const restored = gw.logs.length;
    writeFileSync(keyFile, goodKey);
    await gw.waitForLog((l) => String(l.msg).startsWith('reload finished'), 15_000, restored);
    assert.equal((await handshake(tlsPort, { ca: ca.certPem, servername: 'rot.test' })).serial, serving);
  });
});

describe('certificate files: config errors', () => {
  const blog = leaf(['blog.test'], 'blog');
  const wildBlog = leaf(['*.blog.test'], 'wild-blog');
  const stray = makeKey(tmp, 'stray.key');

  interface Case {
    name: string;
    config: string;
    files?: Record<string, string>;
    /** The key the message names, and the text that marks its line. */
    key: string;
    lineOf: string;
    mentions: RegExp[];
    /** The host the message names (README, HTTPS: errors name the key and the host). */
    names?: RegExp;
  }

  const cases: Case[] = [
    {
      name: "a key that is not the certificate's",
      config: `${gatewaySection()}\n${tlsSection()}\n${fixtureApp('blog', ['blog.test'], 'tls = { cert = "blog.crt", key = "stray.key" }')}`,
      files: { 'blog.crt': blog.certPem, 'stray.key': stray.keyPem },
      key: 'apps.blog.tls.key',
      lineOf: 'tls = {',
      mentions: [/stray\.key/, /blog\.crt/],
      names: /blog\.test/,
    },
    {
      name: 'a host the certificate does not cover',
      config: `${gatewaySection()}\n${tlsSection()}\n${fixtureApp('blog', ['blog.test', 'extra.test'], fileTls('blog'))}`,
      files: pemFiles(blog, 'blog'),
      key: 'apps.blog.tls.cert',
      lineOf: 'tls = {',
      mentions: [/"?extra\.test"?/, /blog\.crt/],
    },
    {
      name: "a host two labels under the certificate's wildcard (X.509 covers one)",
      config: `${gatewaySection()}\n${tlsSection()}\n${fixtureApp('blog', ['*.blog.test', 'a.b.blog.test'], fileTls('wild-blog'))}`,
      files: pemFiles(wildBlog, 'wild-blog'),
      key: 'apps.blog.tls.cert',
      lineOf: 'tls = {',
      mentions: [/a\.b\.blog\.test/],
    },
    {
      name: 'a missing certificate file',
      config: `${gatewaySection()}\n${tlsSection()}\n${fixtureApp('blog', ['blog.test'], 'tls = { cert = "missing.crt", key = "blog.key" }')}`,
      files: { 'blog.key': blog.keyPem },
      key: 'apps.blog.tls.cert',
      lineOf: 'tls = {',
      mentions: [/missing\.crt/],
      names: /blog\.test/,
    },
    {
      name: 'a wildcard host with tls = "acme"',
      config: `${gatewaySection()}\n${tlsSection()}\n${fixtureApp('blog', ['blog.test', '*.blog.test'], 'tls = "acme"')}`,
      key: 'apps.blog.tls',
      lineOf: 'tls = "acme"',
      mentions: [/\*\.blog\.test/],
    },
    {
      name: 'a wildcard host with tls absent under a [tls] table (ACME by default)',
      config: `${gatewaySection()}\n${tlsSection()}\n${fixtureApp('blog', ['*.blog.test'])}`,
      key: 'apps.blog',
      lineOf: 'hosts = ',
      mentions: [/\*\.blog\.test/],
    },
    {
      name: 'tls = "acme" without a [tls] table',
      config: `${gatewaySection()}\n${fixtureApp('blog', ['blog.test'], 'tls = "acme"')}`,
      key: 'apps.blog.tls',
      lineOf: 'tls = "acme"',
      mentions: [/\[tls\]/],
    },
  ];

  type Outcome = Array<{
    what: 'check' | 'start';
    code: number | null;
    timedOut: boolean;
    output: string;
    message: string;
  }>;

  /** Runs `check` and `start` on the case's config, side by side; the last stderr line of each. */
  async function runBoth(c: Case): Promise<Outcome> {
    const dir = tempDir('nano-https-files-bad-');
    try {
      writeFiles(dir, { 'nano.toml': c.config, ...c.files });
      const runs = await Promise.all(
        (['check', 'start'] as const).map(async (what) => {
          const args = what === 'check' ? ['check', '-c', 'nano.toml'] : ['start', '-c', 'nano.toml', '--json'];
          const res = await runCli(args, { cwd: dir, timeoutMs: 20_000 });
          const message = res.stderr.trim().split('\n').at(-1) ?? '';
          return { what, code: res.code, timedOut: res.timedOut, output: res.stdout + res.stderr, message };
        }),
      );
      return runs;
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }

  // Every case's processes start up front, two cases (four processes) at a time; each test awaits its own.
  const outcomes = new Map<Case, Promise<Outcome>>();
  before(() => {
    const lanes: Array<Promise<unknown>> = [Promise.resolve(), Promise.resolve()];
    cases.forEach((c, i) => {
      const run = (lanes[i % 2] as Promise<unknown>).then(() => runBoth(c));
      lanes[i % 2] = run.catch(() => {});
      outcomes.set(c, run);
    });
  });

  for (const c of cases) {
    test(`${c.name}: check and start exit 1 with file:line: key`, async () => {
      const line = c.config.split('\n').findIndex((l) => l.startsWith(c.lineOf)) + 1;
      assert.ok(line > 0);
      for (const { what, code, timedOut, output, message } of await (outcomes.get(c) as Promise<Outcome>)) {
        assert.equal(timedOut, false, `${what} did not exit`);
        assert.equal(code, 1, `${what}: ${output}`);
        const prefix = `nano.toml:${line}: ${c.key}`;
        assert.ok(message.startsWith(prefix), `${what}: ${JSON.stringify(message)} starts with ${prefix}`);
        for (const re of c.mentions) assert.match(message, re, `${what}: ${message}`);
      }
    });
    const names = c.names;
    if (names) {
      test(`${c.name}: the message names the host`, async () => {
        for (const { what, message } of await (outcomes.get(c) as Promise<Outcome>))
          assert.match(message, names, `${what}: ${message}`);
      });
    }
  }
});

describe('[tls] keys on reload: listen needs a restart, the others apply at once', () => {
  const cert = leaf(['reload.test'], 'reload');
  let gw: GatewayProcess;
  let tlsPort: number;
  const config = (tls: string): string =>
    `${gatewaySection()}\n${tlsSection(tls)}\n${fixtureApp('reload', ['reload.test'], fileTls('reload'))}`;

  before(async () => {
    gw = await GatewayProcess.start({ config: config(''), files: pemFiles(cert, 'reload') });
    tlsPort = await gw.httpsPort();
  });
  after(() => gw?.cleanup());

  test('hsts_max_age and redirect_http apply at the next reload; a new [tls] listen is logged, the old port serves', async () => {
    const before = await httpsRequest(tlsPort, { ca: ca.certPem, servername: 'reload.test', path: '/health' });
    assert.equal(before.headers['strict-transport-security'], undefined);
    assert.equal((await request(gw.port, { host: 'reload.test', path: '/health' })).status, 308);

    const reloads = gw.reloadsEnded().length;
    gw.writeConfig(
      config('hsts_max_age = 30\nredirect_http = false').replace(
        'listen = "127.0.0.1:0"\nstorage',
        'listen = "127.0.0.1:1"\nstorage',
      ),
    );
    await gw.waitForReloads(reloads + 1);
    const warning = await gw.waitForLog((l) => String(l.msg).includes('[tls] listen changed to 127.0.0.1:1'));
    assert.match(String(warning.msg), /restart/);
    const after = await httpsRequest(tlsPort, { ca: ca.certPem, servername: 'reload.test', path: '/health' });
    assert.equal(after.status, 200, 'the HTTPS listener stays where it is until a restart');
    assert.equal(after.headers['strict-transport-security'], 'max-age=30');
    const plain = await request(gw.port, { host: 'reload.test', path: '/health' });
    assert.equal(plain.status, 200, 'redirect_http = false: no redirect');
  });
});

describe('certbot-style renewal, a default that goes away, absolute-form targets, an app with its own HSTS', () => {
  const first = leaf(['bot.test'], 'bot-1');
  const second = leaf(['bot.test'], 'bot-2');
  let gw: GatewayProcess;
  let tlsPort: number;

  before(async () => {
    const dir = tempDir('nano-certbot-');
    // certbot's layout: live/ holds symlinks into archive/, and a renewal points them at new files.
    writeFiles(dir, {
      'archive/fullchain1.pem': first.certPem,
      'archive/privkey1.pem': first.keyPem,
      'archive/fullchain2.pem': second.certPem,
      'archive/privkey2.pem': second.keyPem,
    });
    mkdirSync(path.join(dir, 'live'));
    symlinkSync('../archive/fullchain1.pem', path.join(dir, 'live/fullchain.pem'));
    symlinkSync('../archive/privkey1.pem', path.join(dir, 'live/privkey.pem'));
    writeFiles(dir, {
      'nano.toml': `${gatewaySection()}\n${tlsSection('hsts_max_age = 100')}
${fixtureApp('bot', ['bot.test'], 'tls = { cert = "live/fullchain.pem", key = "live/privkey.pem" }')}`,
    });
    gw = await GatewayProcess.startIn(dir);
    tlsPort = await gw.httpsPort();
  });
  after(() => gw?.cleanup());

  test('an absolute-form request target is redirected to its path and query', async () => {
    const raw = await rawRequest(
      gw.port,
      'GET http://bot.test/abs?x=1 HTTP/1.1\r\nHost: bot.test\r\nConnection: close\r\n\r\n',
    );
    assert.match(raw, /^HTTP\/1\.1 308 /);
    assert.match(raw, new RegExp(`\\r\\nlocation: https://bot\\.test:${tlsPort}/abs\\?x=1\\r\\n`, 'i'));
  });

  test("the app's own Strict-Transport-Security wins; the gateway adds none beside it", async () => {
    const reply = await httpsRequest(tlsPort, { ca: ca.certPem, servername: 'bot.test', path: '/dup?sts=5' });
    assert.equal(reply.status, 200);
    assert.equal(reply.headers['strict-transport-security'], 'max-age=5');
    const own = await httpsRequest(tlsPort, { ca: ca.certPem, servername: 'bot.test', path: '/health' });
    assert.equal(own.headers['strict-transport-security'], 'max-age=100');
  });

  test('symlinks pointed at new files, as certbot renews, serve the new certificate', async () => {
    assert.equal((await handshake(tlsPort, { ca: ca.certPem, servername: 'bot.test' })).serial, first.serial);
    for (const [link, target] of [
      ['live/privkey.pem', '../archive/privkey2.pem'],
      ['live/fullchain.pem', '../archive/fullchain2.pem'],
    ] as const) {
      rmSync(path.join(gw.dir, link));
      symlinkSync(target, path.join(gw.dir, link));
    }
    await waitFor(
      async () => (await handshake(tlsPort, { ca: ca.certPem, servername: 'bot.test' })).serial === second.serial,
      'the renewed certificate',
    );
  });

  test('once the default app has no certificate, a handshake without SNI fails instead of getting the old one', async () => {
    assert.equal((await handshake(tlsPort, { ca: ca.certPem })).serial, second.serial);
    const reloads = gw.reloadsEnded().length;
    gw.writeConfig(gw.readConfig().replace(/tls = \{[^}]*\}/, 'tls = false'));
    await gw.waitForReloads(reloads + 1);
    await assert.rejects(handshake(tlsPort, { ca: ca.certPem }));
    await assert.rejects(handshake(tlsPort, { ca: ca.certPem, servername: 'bot.test' }));
  });
});
