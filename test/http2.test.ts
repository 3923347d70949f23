/**
 * HTTP/2 on the HTTPS port (SPEC §10, with §7 answers): ALPN (h2 and
 * http/1.1 on one port), connection-specific headers never sent on HTTP/2,
 * trailers, large streamed bodies both ways, cancelled streams cancel the
 * child's request and leave the pool usable, the gateway's own answers over
 * HTTP/2, and `:authority` routing. Against the real CLI, with certificates
 * from test/tls/pki.ts.
 */
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { rmSync } from 'node:fs';
import http2 from 'node:http2';
import https from 'node:https';
import { after, before, describe, test } from 'node:test';
import { fixtureApp, GatewayProcess, gatewaySection, tempDir, waitFor } from './helpers.js';
import { h2Close, h2Connect, h2Request, handshake, httpsRequest } from './tls/https-client.js';
import { type Leaf, makeCa, makeLeaf } from './tls/pki.js';

const tmp = tempDir('nano-http2-');
after(() => rmSync(tmp, { recursive: true, force: true }));
const ca = makeCa(tmp, 'Nano HTTP2 Test CA');

function pemFiles(cert: Leaf, base: string): Record<string, string> {
  return { [`${base}.crt`]: cert.certPem, [`${base}.key`]: cert.keyPem };
}

function fileTls(base: string): string {
  return `tls = { cert = "${base}.crt", key = "${base}.key" }`;
}

const TLS_SECTION = '[tls]\nlisten = "127.0.0.1:0"\nstorage = ".certs"\n';

/** Connection-specific header fields (RFC 9113 §8.2.2). */
const CONNECTION_SPECIFIC = [
  'connection',
  'keep-alive',
  'proxy-connection',
  'transfer-encoding',
  'upgrade',
  'http2-settings',
];

interface Info {
  app: string;
  method: string;
  url: string;
  headers: Record<string, string | undefined>;
}

/** Runs `fn` over `items` with at most `limit` at a time. */
async function bounded<T, R>(items: readonly T[], limit: number, fn: (item: T) => Promise<R>): Promise<R[]> {
  const results: R[] = new Array(items.length);
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < items.length) {
      const i = next++;
      results[i] = await fn(items[i] as T);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return results;
}

function sha256(data: Buffer | Buffer[]): string {
  const hash = createHash('sha256');
  for (const chunk of Array.isArray(data) ? data : [data]) hash.update(chunk);
  return hash.digest('hex');
}

describe('HTTP/2: ALPN, headers, trailers, bodies, cancellation, routing', () => {
  const alpha = makeLeaf(ca, tmp, { names: ['alpha.test'], file: 'alpha' });
  const beta = makeLeaf(ca, tmp, { names: ['beta.test'], file: 'beta' });
  let gw: GatewayProcess;
  let port: number;
  let session: http2.ClientHttp2Session;

  before(async () => {
    gw = await GatewayProcess.start({
      config: `${gatewaySection()}
${TLS_SECTION}
${fixtureApp('alpha', ['alpha.test'], fileTls('alpha'))}
${fixtureApp('beta', ['beta.test'], fileTls('beta'))}
`,
      files: { ...pemFiles(alpha, 'alpha'), ...pemFiles(beta, 'beta') },
    });
    port = await gw.httpsPort();
    session = await h2Connect(port, { ca: ca.certPem, servername: 'alpha.test' });
  });
  after(async () => {
    if (session) await h2Close(session);
    await gw?.cleanup();
  });

  /** The child's requests in flight (the asking one included), through the gateway. */
  async function inFlight(authority = 'alpha.test'): Promise<number> {
    const reply = await h2Request(session, { authority, path: '/inflight' });
    assert.equal(reply.status, 200);
    return (JSON.parse(reply.body) as { inFlight: number }).inFlight;
  }

  test('ALPN: h2 and http/1.1 are both negotiated on the one port, and both serve', async () => {
    assert.equal(session.alpnProtocol, 'h2');
    const h2 = await h2Request(session, { authority: 'alpha.test', path: '/info' });
    assert.equal(h2.status, 200);
    assert.equal((JSON.parse(h2.body) as Info).app, 'alpha');

    const both = await handshake(port, { ca: ca.certPem, servername: 'alpha.test', ALPNProtocols: ['h2', 'http/1.1'] });
    assert.equal(both.alpn, 'h2', 'h2 is preferred');
    const h1Only = await handshake(port, { ca: ca.certPem, servername: 'alpha.test', ALPNProtocols: ['http/1.1'] });
    assert.equal(h1Only.alpn, 'http/1.1');

    const h1 = await httpsRequest(port, {
      ca: ca.certPem,
      servername: 'alpha.test',
      path: '/info',
      ALPNProtocols: ['http/1.1'],
    });
    assert.equal(h1.alpn, 'http/1.1');
    assert.equal(h1.status, 200);
    assert.equal((JSON.parse(h1.body) as Info).app, 'alpha');
    // A client that offers no ALPN at all gets HTTP/1.1.
    const none = await httpsRequest(port, { ca: ca.certPem, servername: 'beta.test', path: '/info' });
    assert.equal(none.alpn, false);
    assert.equal(none.status, 200);
    assert.equal((JSON.parse(none.body) as Info).app, 'beta');
  });

  test(':authority routes, whatever the SNI; a POST body reaches the child and comes back', async () => {
    // The session's SNI is alpha.test; each stream names its own host.
    for (const [authority, app] of [
      ['beta.test', 'beta'],
      ['alpha.test', 'alpha'],
      ['BETA.test:443', 'beta'],
    ] as const) {
      const reply = await h2Request(session, { authority, path: '/info?who' });
      assert.equal(reply.status, 200);
      const info = JSON.parse(reply.body) as Info;
      assert.equal(info.app, app, authority);
      assert.equal(info.url, '/info?who');
      assert.equal(info.headers.host, authority);
    }
    const body = randomBytes(10_000);
    const echo = await h2Request(session, {
      authority: 'beta.test',
      path: '/echo',
      method: 'POST',
      headers: { 'content-type': 'application/x-test' },
      body,
    });
    assert.equal(echo.status, 200);
    assert.equal(echo.headers['content-type'], 'application/x-test');
    assert.ok(echo.raw.equals(body), 'the echo is the body sent');
    const info = await h2Request(session, {
      authority: 'beta.test',
      path: '/info',
      method: 'POST',
      body: 'x=1',
    });
    assert.equal((JSON.parse(info.body) as Info).method, 'POST');
  });

  test('connection-specific headers from the child never reach an HTTP/2 client; the response does', async () => {
    for (const connection of ['keep-alive', 'close']) {
      const reply = await h2Request(session, { authority: 'alpha.test', path: `/hop?connection=${connection}` });
      assert.equal(reply.status, 200, `Connection: ${connection}`);
      assert.equal(reply.body, 'hop-by-hop headers sent');
      assert.equal(reply.headers['x-kept'], 'yes', 'other headers pass');
      for (const name of CONNECTION_SPECIFIC) assert.equal(reply.headers[name], undefined, `${name} on HTTP/2`);
    }
    // The session survived them all.
    assert.equal((await h2Request(session, { authority: 'alpha.test', path: '/after-hop' })).status, 200);
  });

  const TRAILER_SHA = createHash('sha256').update('trailer body').digest('hex');

  test('a once-only header the child sends twice does not reset the stream, nor crash the gateway', async () => {
    // The trailer announcement takes the request down the path that can forward request trailers.
    for (const headers of [{}, { trailer: 'x-sum' }] as Array<Record<string, string>>) {
      const reply = await h2Request(session, {
        authority: 'alpha.test',
        path: '/dup',
        method: 'POST',
        headers,
        body: 'b',
      });
      assert.equal(reply.status, 200, JSON.stringify(headers));
      assert.equal(reply.body, 'dup');
      assert.equal(reply.headers['content-type'], 'text/plain', 'the first one, as browsers read it');
      assert.equal(reply.headers['x-many'], '1, 2', 'headers that may repeat all pass');
    }
    assert.ok(gw.running, 'the gateway is still up');
    assert.equal((await h2Request(session, { authority: 'alpha.test', path: '/health' })).status, 200);
  });

  test(':authority is the Host the child sees, whatever a host header says', async () => {
    const reply = await h2Request(session, { authority: 'alpha.test', path: '/info', headers: { host: 'beta.test' } });
    const info = JSON.parse(reply.body) as Info;
    assert.equal(info.app, 'alpha');
    assert.equal(info.headers.host, 'alpha.test');
  });

  test('trailers from the child reach an HTTP/2 client', async () => {
    const h2 = await h2Request(session, { authority: 'alpha.test', path: '/trailers' });
    assert.equal(h2.status, 200);
    assert.equal(h2.body, 'trailer body');
    assert.ok(h2.trailers, 'a trailing HEADERS frame');
    assert.equal(h2.trailers['x-body-sha256'], TRAILER_SHA, JSON.stringify(h2.trailers));
    assert.equal(h2.trailers['x-parts'], '2');
  });

  test('trailers from the child reach an HTTP/1.1-over-TLS client', async () => {
    const h1 = await httpsRequest(port, { ca: ca.certPem, servername: 'alpha.test', path: '/trailers' });
    assert.equal(h1.status, 200);
    assert.equal(h1.body, 'trailer body');
    assert.equal(h1.headers.trailer, 'x-body-sha256, x-parts', 'the announcement passes');
    assert.equal(h1.trailers['x-body-sha256'], TRAILER_SHA);
    assert.equal(h1.trailers['x-parts'], '2');
  });

  test('request trailers from an HTTP/2 client reach the child', async () => {
    const reply = await new Promise<{ bytes: number; trailers: Record<string, string> }>((resolve, reject) => {
      const stream = session.request(
        // Announced, as RFC 9110 §6.6.2 asks: undici cannot send trailers, so the gateway needs to know up front.
        { ':method': 'POST', ':path': '/req-trailers', ':authority': 'alpha.test', trailer: 'x-request-sum' },
        { waitForTrailers: true },
      );
      stream.on('wantTrailers', () => stream.sendTrailers({ 'x-request-sum': 'abc123' }));
      const chunks: Buffer[] = [];
      stream.on('data', (c: Buffer) => chunks.push(c));
      stream.on('end', () => resolve(JSON.parse(Buffer.concat(chunks).toString('utf8'))));
      stream.on('error', reject);
      stream.end('body with trailers');
    });
    assert.equal(reply.bytes, 'body with trailers'.length);
    assert.deepEqual(reply.trailers, { 'x-request-sum': 'abc123' });
  });

  test('request trailers from an HTTP/1.1-over-TLS client reach the child', async () => {
    const reply = await new Promise<{ bytes: number; trailers: Record<string, string> }>((resolve, reject) => {
      const req = https.request(
        {
          host: '127.0.0.1',
          port,
          servername: 'alpha.test',
          ca: ca.certPem,
          method: 'POST',
          path: '/req-trailers',
          headers: { host: 'alpha.test', trailer: 'x-request-sum' },
          agent: false,
        },
        (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('end', () => resolve(JSON.parse(Buffer.concat(chunks).toString('utf8'))));
        },
      );
      req.on('error', reject);
      req.write('body with trailers');
      req.addTrailers({ 'x-request-sum': 'abc123' });
      req.end();
    });
    assert.equal(reply.bytes, 'body with trailers'.length);
    assert.deepEqual(reply.trailers, { 'x-request-sum': 'abc123' });
  });

  test('a 2 MiB upload streamed without content-length reaches the child intact, over h2 and HTTP/1.1', async () => {
    const chunks = Array.from({ length: 32 }, () => randomBytes(64 * 1024));
    const expected = { bytes: 2 * 1024 * 1024, sha256: sha256(chunks) };
    const h2 = await h2Request(session, { authority: 'alpha.test', path: '/hash', method: 'POST', body: chunks });
    assert.equal(h2.status, 200, h2.body);
    assert.deepEqual(JSON.parse(h2.body), expected);
    // HTTP/1.1 over TLS, chunked (several writes, no content-length).
    const h1 = await httpsRequest(port, {
      ca: ca.certPem,
      servername: 'beta.test',
      path: '/hash',
      method: 'POST',
      body: chunks,
    });
    assert.equal(h1.status, 200, h1.body);
    assert.deepEqual(JSON.parse(h1.body), expected);
  });

  test('a streamed response arrives as it is sent, and whole; a large download too', async () => {
    // The first part arrives while the child still holds the rest: it is not buffered.
    const stream = session.request({ ':path': '/gate?id=g1', ':authority': 'alpha.test' });
    stream.end();
    const received: Buffer[] = [];
    stream.on('data', (c: Buffer) => received.push(c));
    const ended = new Promise<void>((resolve, reject) => {
      stream.on('end', resolve);
      stream.on('error', reject);
    });
    await waitFor(() => Buffer.concat(received).toString().includes('first g1\n') || undefined, 'the first part');
    assert.equal(Buffer.concat(received).toString(), 'first g1\n');
    const release = await h2Request(session, { authority: 'alpha.test', path: '/release?id=g1' });
    assert.equal(release.status, 200);
    await ended;
    assert.equal(Buffer.concat(received).toString(), 'first g1\nlast g1\n');

    const streamed = await h2Request(session, { authority: 'alpha.test', path: '/stream?chunks=20&interval=5' });
    assert.equal(streamed.status, 200);
    const lines = streamed.body.trimEnd().split('\n');
    assert.deepEqual(
      lines.map((l) => l.split(' at ')[0]),
      Array.from({ length: 20 }, (_, i) => `chunk ${i}`),
    );

    const big = await h2Request(session, { authority: 'beta.test', path: `/big?bytes=${4 * 1024 * 1024}` });
    assert.equal(big.status, 200);
    assert.equal(big.raw.length, 4 * 1024 * 1024);
    assert.ok(big.raw.every((b) => b === 97));
  });

  test('100 cancelled streams cancel their requests to the child; the next 100 requests all succeed', {
    timeout: 60_000,
  }, async () => {
    await waitFor(async () => (await inFlight()) === 1 || undefined, 'a quiet child');
    const BATCH = 25;
    let cancelled = 0;
    for (let round = 0; round < 4; round++) {
      // Rounds 0 and 2 cancel before any response header (the child never answers /hang);
      // rounds 1 and 3 after the headers and a first part of the body (/gate holds the rest).
      const beforeHeaders = round % 2 === 0;
      const streams = Array.from({ length: BATCH }, (_, i) => {
        const stream = session.request({
          ':path': beforeHeaders ? `/hang?r=${round}&i=${i}` : `/gate?id=c${round}-${i}`,
          ':authority': 'alpha.test',
        });
        stream.on('error', () => {});
        stream.end();
        return stream;
      });
      if (beforeHeaders) {
        await waitFor(async () => (await inFlight()) >= BATCH + 1 || undefined, `round ${round}: all at the child`);
      } else {
        await Promise.all(streams.map((s) => new Promise<void>((resolve) => s.once('data', () => resolve()))));
      }
      for (const stream of streams) stream.close(http2.constants.NGHTTP2_CANCEL);
      cancelled += streams.length;
      // The child sees each of them end: the gateway cancelled its upstream requests.
      await waitFor(async () => (await inFlight()) === 1 || undefined, `round ${round}: the child's requests ended`);
    }
    assert.equal(cancelled, 100);
    assert.equal(session.closed, false);

    const hosts = Array.from({ length: 100 }, (_, i) => (i % 2 === 0 ? 'alpha.test' : 'beta.test'));
    const replies = await bounded(hosts, 10, (authority) => h2Request(session, { authority, path: '/info' }));
    assert.deepEqual(
      replies.map((r) => r.status),
      hosts.map(() => 200),
    );
    assert.deepEqual(
      replies.map((r) => (JSON.parse(r.body) as Info).app),
      hosts.map((h) => h.replace('.test', '')),
    );
    // And on a new session too.
    const fresh = await h2Connect(port, { ca: ca.certPem, servername: 'beta.test' });
    try {
      assert.equal((await h2Request(fresh, { authority: 'beta.test', path: '/info' })).status, 200);
    } finally {
      await h2Close(fresh);
    }
    const hung = () => gw.logs.filter((l) => l.kind === 'access' && String(l.path).startsWith('/hang?r='));
    await waitFor(() => hung().length >= 50 || undefined, 'an access line for each cancelled /hang');
    assert.equal(hung().length, 50);
    assert.ok(
      hung().every((l) => l.proto === 'h2' && l.status === 499),
      JSON.stringify(hung()[0]),
    );
  });
});

describe("HTTP/2: the gateway's own answers", () => {
  const cert = makeLeaf(ca, tmp, { names: ['errs.test', 'sick.test'], file: 'errs' });
  let gw: GatewayProcess;
  let port: number;
  let session: http2.ClientHttp2Session;

  before(async () => {
    gw = await GatewayProcess.start({
      config: `${gatewaySection('default_app = false\nupstream_timeout_ms = 400\nqueue_timeout_ms = 300')}
${TLS_SECTION}
${fixtureApp('errs', ['errs.test'], fileTls('errs'))}
${fixtureApp('sick', ['sick.test'], `${fileTls('errs')}\nenv = { HEALTH_STATUS = "500" }`)}
`,
      files: pemFiles(cert, 'errs'),
      readyApps: { errs: 1 },
    });
    port = await gw.httpsPort();
    session = await h2Connect(port, { ca: ca.certPem, servername: 'errs.test' });
  });
  after(async () => {
    if (session) await h2Close(session);
    await gw?.cleanup();
  });

  const cases: Array<{ what: string; authority: string; path: string; status: number; body: RegExp }> = [
    { what: 'a child that resets the connection', authority: 'errs.test', path: '/reset', status: 502, body: /"errs"/ },
    { what: 'an app with no ready instance', authority: 'sick.test', path: '/', status: 503, body: /"sick"/ },
    { what: 'no response headers in time', authority: 'errs.test', path: '/slow?ms=5000', status: 504, body: /"errs"/ },
    {
      what: 'an unmatched host (default_app = false)',
      authority: 'nobody.test',
      path: '/',
      status: 404,
      body: /nobody\.test/,
    },
  ];

  for (const c of cases) {
    test(`${c.what}: ${c.status} over HTTP/2 and over HTTP/1.1-over-TLS`, async () => {
      const h2 = await h2Request(session, { authority: c.authority, path: c.path });
      assert.equal(h2.status, c.status, h2.body);
      assert.match(h2.body, c.body);
      assert.match(String(h2.headers['content-type']), /^text\/plain/);
      if (c.status === 503) assert.ok(h2.headers['retry-after'], 'Retry-After');
      const h1 = await httpsRequest(port, { ca: ca.certPem, servername: 'errs.test', host: c.authority, path: c.path });
      assert.equal(h1.status, c.status, h1.body);
      assert.match(h1.body, c.body);
      if (c.status === 503) assert.ok(h1.headers['retry-after'], 'Retry-After');
      // The session carries on.
      assert.equal((await h2Request(session, { authority: 'errs.test', path: '/ok' })).status, 200);
    });
  }

  test('CONNECT over HTTP/2 gets 400 on its stream; the session carries on', async () => {
    const reply = await new Promise<{ status: number; body: string }>((resolve, reject) => {
      const stream = session.request({ ':method': 'CONNECT', ':authority': 'errs.test:443' });
      let status = 0;
      const chunks: Buffer[] = [];
      stream.on('response', (h) => (status = Number(h[':status'])));
      stream.on('data', (c: Buffer) => chunks.push(c));
      stream.on('end', () => resolve({ status, body: Buffer.concat(chunks).toString() }));
      stream.on('close', () => resolve({ status, body: Buffer.concat(chunks).toString() }));
      stream.on('error', reject);
    });
    assert.equal(reply.status, 400);
    assert.match(reply.body, /CONNECT/);
    const after = await h2Request(session, { authority: 'errs.test', path: '/info' });
    assert.equal(after.status, 200);
  });
});
