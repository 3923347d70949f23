/**
 * HTTPS with `[gateway] workers = 2` (README, Workers): the primary keeps
 * ACME and the certificates and sends them (PEM, as plain data) to every
 * proxy worker, which serve the HTTP and HTTPS ports. node:cluster hands the
 * connections of one port to the workers in turn, so a run of fresh TLS
 * connections one after the other reaches both; the access lines'
 * `"worker": N` tell which worker served each request.
 *
 * - HTTP/2 and HTTPS/1.1 on fresh connections succeed on both workers.
 * - A certificate renewed in the primary by ACME (pebble) is what every
 *   worker serves to new handshakes once `POST .../renew` has answered.
 * - A file certificate replaced on disk is picked up by every worker.
 */
import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import type http2 from 'node:http2';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import type tls from 'node:tls';
import type { CertificateJson, WorkerJson } from '../src/wire.js';
import { adminCall, fixtureApp, freePort, GatewayProcess, type LogLine, tempDir, waitFor } from './helpers.js';
import { h2Request, httpsRequest, type TlsRequestOptions } from './tls/client.js';
import { type DnsResponder, startDnsResponder } from './tls/dns.js';
import { h2Close, h2Connect, h2Request as h2RequestOn } from './tls/https-client.js';
import { type Pebble, pebbleSkip, startPebble } from './tls/pebble.js';
import { type Leaf, makeCa, makeLeaf } from './tls/pki.js';

delete process.env.NANO_ADMIN_TOKEN;

const WORKERS = 2;
/** Fresh connections per protocol in one probe: with round-robin, half of them reach each worker. */
const CONNECTIONS = 20;

type Proto = 'h2' | 'http/1.1';

/** One request on a fresh TLS connection, and what it saw. */
interface Probe {
  path: string;
  proto: Proto;
  status: number;
  alpn: string | false;
  serial: string;
}

/**
 * CONNECTIONS HTTP/2 requests, each on a session of its own, then as many
 * HTTPS/1.1 requests, each on a connection of its own, one after the other
 * and each with its own path (`/LABEL/h2/N`, `/LABEL/h1/N`). The protocols
 * go one batch after the other, not alternately: alternating two protocols
 * over two round-robin workers would send each protocol to one worker only.
 */
async function probe(port: number, host: string, ca: string, label: string): Promise<Probe[]> {
  const probes: Probe[] = [];
  for (const proto of ['h2', 'http/1.1'] as const) {
    for (let i = 0; i < CONNECTIONS; i++) {
      const urlPath = `/${label}/${proto === 'h2' ? 'h2' : 'h1'}/${i}`;
      const options: TlsRequestOptions = { port, host, ca, path: urlPath };
      const reply = proto === 'h2' ? await h2Request(options) : await httpsRequest(options);
      probes.push({ path: urlPath, proto, status: reply.status, alpn: reply.alpn, serial: reply.serial });
    }
  }
  return probes;
}

function accessLines(gw: GatewayProcess): LogLine[] {
  return gw.logs.filter((l) => l.kind === 'access');
}

/**
 * The worker that served each probe, from its access line (waits until every
 * probe has one: the workers send their lines in batches). Each request has
 * exactly one line, with the protocol it came by, over TLS.
 */
async function workersOf(gw: GatewayProcess, probes: readonly Probe[]): Promise<Map<string, number>> {
  const wanted = new Set(probes.map((p) => p.path));
  const lines = await waitFor(
    () => {
      const found = accessLines(gw).filter((l) => wanted.has(String(l.path)));
      return new Set(found.map((l) => l.path)).size === wanted.size ? found : undefined;
    },
    `access lines of ${wanted.size} requests`,
    10_000,
  );
  assert.equal(lines.length, wanted.size, 'one access line per request');
  const byPath = new Map<string, number>();
  for (const p of probes) {
    const line = lines.find((l) => l.path === p.path) as LogLine;
    assert.equal(line.proto, p.proto, `${p.path}: logged protocol`);
    assert.equal(line.tls, true, `${p.path}: logged as TLS`);
    assert.equal(line.status, 200, `${p.path}: logged status`);
    assert.ok(Number.isInteger(line.worker), `${p.path}: the access line names its worker: ${JSON.stringify(line)}`);
    const worker = line.worker as number;
    assert.ok(worker >= 1 && worker <= WORKERS, `${p.path}: worker ${worker} is one of 1..${WORKERS}`);
    byPath.set(p.path, worker);
  }
  return byPath;
}

/** Every probe answered 200 over the protocol it asked for, with the certificate `serial`. */
function assertServed(probes: readonly Probe[], serial: string, what: string): void {
  for (const p of probes) {
    assert.equal(p.status, 200, `${p.path}: status`);
    assert.equal(p.alpn, p.proto, `${p.path}: negotiated protocol`);
    assert.equal(p.serial, serial, `${p.path}: ${what}`);
  }
}

/** Both workers served requests of each protocol (which worker served which probe: `workers`). */
function assertBothWorkers(probes: readonly Probe[], workers: ReadonlyMap<string, number>): void {
  for (const proto of ['h2', 'http/1.1'] as const) {
    const seen = new Set(probes.filter((p) => p.proto === proto).map((p) => workers.get(p.path)));
    assert.deepEqual([...seen].sort(), [1, 2], `${proto} requests reached both workers`);
  }
}

async function workerList(adminPort: number): Promise<WorkerJson[]> {
  const reply = await adminCall(adminPort, 'GET', '/admin/workers');
  assert.equal(reply.status, 200, reply.body);
  return reply.json.workers as WorkerJson[];
}

describe('workers = 2 with ACME certificates (pebble)', { skip: pebbleSkip() }, () => {
  const host = 'a.example.test';
  let dns: DnsResponder;
  let pebble: Pebble;
  let gw: GatewayProcess;
  let tlsPort: number;
  let adminPort: number;

  async function certificate(): Promise<CertificateJson | undefined> {
    const reply = await adminCall(adminPort, 'GET', '/admin/certificates');
    assert.equal(reply.status, 200, reply.body);
    return (reply.json.certificates as CertificateJson[]).find((c) => c.host === host);
  }

  /** The serial of the certificate the primary stored for `host` (storage/<directory>/<host>/cert.pem). */
  function storedSerial(): string {
    const root = path.join(gw.dir, 'certs');
    const [folder] = readdirSync(root).filter((name) => !name.startsWith('.'));
    const pem = readFileSync(path.join(root, folder as string, host, 'cert.pem'), 'utf8');
    return new X509Certificate(pem).serialNumber;
  }

  before(async () => {
    dns = await startDnsResponder();
    const plainPort = await freePort();
    pebble = await startPebble({ httpPort: plainPort, dnsPort: dns.port });
    gw = await GatewayProcess.start({
      config: `[gateway]
listen = "127.0.0.1:${plainPort}"
workers = ${WORKERS}

[admin]
listen = "127.0.0.1:0"

[tls]
listen = "127.0.0.1:0"
acme_directory = ${JSON.stringify(pebble.directoryUrl)}
acme_ca_file = ${JSON.stringify(pebble.caFile)}
acme_email = "ops@example.test"
storage = "certs"

${fixtureApp('a', [host])}
`,
    });
    adminPort = await gw.adminPort();
    tlsPort = await gw.httpsPort();
    // The first certificate came by HTTP-01 on the plain port, which only the workers serve (the
    // primary has no HTTP server there and proxies nothing): its issuance proves a worker answered
    // the challenge with the token the primary sent it.
    await waitFor(async () => (await certificate())?.state === 'valid', `the certificate of ${host}`, 20_000);
  });

  after(async () => {
    await gw?.cleanup();
    await pebble?.stop();
    await dns?.close();
  });

  test('two workers are listed, ready', async () => {
    const workers = await workerList(adminPort);
    assert.deepEqual(
      workers.map((w) => [w.id, w.state]),
      [
        [1, 'ready'],
        [2, 'ready'],
      ],
    );
    assert.equal(new Set(workers.map((w) => w.pid)).size, WORKERS, 'two processes');
    assert.ok(!workers.some((w) => w.pid === gw.pid), 'neither is the primary');
  });

  test('HTTP/2 and HTTPS/1.1 on fresh connections succeed, and both workers serve them', async () => {
    const serial = storedSerial();
    const probes = await probe(tlsPort, host, pebble.issuerRootPem, 'every-worker');
    assertServed(probes, serial, 'the stored certificate');
    const workers = await workersOf(gw, probes);
    assertBothWorkers(probes, workers);
    // The counters the workers push (every second) catch up with what each served.
    const served = (id: number) => accessLines(gw).filter((l) => l.worker === id).length;
    const counted = await waitFor(
      async () => {
        const list = await workerList(adminPort);
        return list.every((w) => w.requests >= served(w.id)) ? list : undefined;
      },
      '/admin/workers to count the requests',
      10_000,
      100,
    );
    for (const w of counted) assert.ok(w.requests > 0, `worker ${w.id} counted requests: ${JSON.stringify(counted)}`);
  });

  test('a certificate renewed in the primary is served by every worker once renew answers', async () => {
    const ca = pebble.issuerRootPem;
    const oldSerial = storedSerial();
    const issued = pebble.issuedCount();
    const before = await probe(tlsPort, host, ca, 'before-renew');
    assertServed(before, oldSerial, 'the first certificate, before the renewal');
    assertBothWorkers(before, await workersOf(gw, before));
    // An HTTP/2 session opened before the renewal keeps its connection (and certificate).
    let session: http2.ClientHttp2Session | undefined;
    try {
      session = await h2Connect(tlsPort, { ca, servername: host });

      // Again HTTP-01 on the plain port: the new order's challenge was answered by a worker.
      const renewed = await adminCall(adminPort, 'POST', `/admin/certificates/${host}/renew`);
      assert.equal(renewed.status, 200, renewed.body);
      assert.equal(renewed.json.state, 'valid');
      // (pebble's log line may come in a moment after the answer: it reaches this process on another pipe.)
      await waitFor(() => pebble.issuedCount() > issued, 'pebble to log the new certificate');
      assert.equal(pebble.issuedCount(), issued + 1, 'pebble issued one new certificate');
      const newSerial = storedSerial();
      assert.notEqual(newSerial, oldSerial, 'a new certificate was stored');

      // No waiting here: renew answers once every worker serves the new certificate.
      const after = await probe(tlsPort, host, ca, 'after-renew');
      assertServed(after, newSerial, 'the renewed certificate, right after renew answered');
      assertBothWorkers(after, await workersOf(gw, after));

      const held = await h2RequestOn(session, { authority: host, path: '/held' });
      assert.equal(held.status, 200, 'the session opened before the renewal still serves');
      assert.equal((session.socket as tls.TLSSocket).getPeerCertificate().serialNumber, oldSerial);
    } finally {
      if (session) await h2Close(session);
    }
  });
});

describe('workers = 2 with file certificates replaced on disk', () => {
  const host = 'rot.test';
  const dir = tempDir('nano-workers-https-');
  const ca = makeCa(dir, 'Nano Workers Test CA');
  const leaf = (file: string): Leaf => makeLeaf(ca, dir, { names: [host], file });
  const first = leaf('rot-1');
  let gw: GatewayProcess;
  let tlsPort: number;

  before(async () => {
    gw = await GatewayProcess.start({
      config: `[gateway]
listen = "127.0.0.1:0"
workers = ${WORKERS}

[admin]
listen = false

[tls]
listen = "127.0.0.1:0"
storage = ".certs"

${fixtureApp('rot', [host], 'tls = { cert = "rot.crt", key = "rot.key" }')}
`,
      files: { 'rot.crt': first.certPem, 'rot.key': first.keyPem },
    });
    tlsPort = await gw.httpsPort();
  });

  after(async () => {
    await gw?.cleanup();
    rmSync(dir, { recursive: true, force: true });
  });

  test('every worker serves the new certificate after the files are replaced', async () => {
    const before = await probe(tlsPort, host, ca.certPem, 'file-before');
    assertServed(before, first.serial, 'the first file certificate');
    assertBothWorkers(before, await workersOf(gw, before));

    const second = leaf('rot-2');
    assert.notEqual(second.serial, first.serial);
    // As editors and deploy tools do: a temporary file renamed over each, the key first.
    for (const [name, text] of [
      ['rot.key', second.keyPem],
      ['rot.crt', second.certPem],
    ] as const) {
      const target = path.join(gw.dir, name);
      writeFileSync(`${target}.tmp`, text);
      renameSync(`${target}.tmp`, target);
    }
    // The primary reloads and sends the new certificate to every worker (a reload from the watcher
    // answers nobody, so nothing says when the workers have it): probe again until a whole run of
    // fresh connections, which reaches both workers, gets it.
    let attempt = 0;
    const after = await waitFor(
      async () => {
        const probes = await probe(tlsPort, host, ca.certPem, `file-after-${++attempt}`);
        return probes.every((p) => p.serial === second.serial) ? probes : undefined;
      },
      `every fresh connection to get serial ${second.serial}`,
      15_000,
      100,
    );
    assertServed(after, second.serial, 'the replaced file certificate');
    assertBothWorkers(after, await workersOf(gw, after));
    assert.ok(gw.running);
  });
});
