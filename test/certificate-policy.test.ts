/**
 * The certificate manager's policy (SPEC §10, Lifecycle), in process: a
 * fake CertificateIssuer answers orders with certificates openssl signs for
 * exact validity windows, a fake data plane records what is published, and
 * time is node:test's mock timers (setTimeout and Date), so renewals and
 * retries are checked at the millisecond they are due without waiting.
 */
import assert from 'node:assert/strict';
import { createPrivateKey, X509Certificate } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, afterEach, before, beforeEach, describe, mock, test } from 'node:test';
import { pino } from 'pino';
import { parseConfig } from '../src/config/load.js';
import type { GatewayConfig, TlsSettings } from '../src/config/schema.js';
import { CertificateManager } from '../src/control/certificates.js';
import type { CertificateSetData } from '../src/dataplane/data-plane.js';
import { GatewayOpError } from '../src/errors.js';
import type { CertificateIssuer, ChallengeBoard } from '../src/tls/acme-issuer.js';
import { RETRY_MAX_MS, RETRY_MIN_MS, renewAt, retryDelay } from '../src/tls/renewal.js';
import { CertificateStorage, directoryFolder, type KeyPair } from '../src/tls/storage.js';
import { coversHost } from '../src/tls/x509.js';
import type { CertificateJson } from '../src/wire.js';
import { type Ca, makeCa } from './tls/pki.js';
import { makeLeafValid } from './tls/pki-dates.js';

const SECOND = 1000;
const MINUTE = 60 * SECOND;
const HOUR = 60 * MINUTE;
const DAY = 24 * HOUR;
/** Every test starts its fake clock here (whole seconds, as certificates keep). */
const T0 = Date.UTC(2031, 0, 1);
const LETS_ENCRYPT = 'https://acme-v02.api.letsencrypt.org/directory';
const LE_FOLDER = 'acme-v02.api.letsencrypt.org-directory';
const STAGING = 'https://acme-staging-v02.api.letsencrypt.org/directory';
const CA_NAME = 'Policy Test CA';

let root: string;
let ca: Ca;
let leafCount = 0;

before(() => {
  root = mkdtempSync(path.join(os.tmpdir(), 'nano-cert-policy-'));
  mkdirSync(path.join(root, 'leaves'));
  ca = makeCa(root, CA_NAME, 3650);
});
after(() => rmSync(root, { recursive: true, force: true }));

/**
 * setTimeout calls since the clock last moved. A timer re-armed for "now"
 * over and over (a policy bug) would keep mock.timers.tick() from ever
 * returning; past this many the test fails instead of hanging.
 */
let armedSinceTick = 0;
const RUNAWAY_TIMERS = 10_000;

beforeEach(() => {
  mock.timers.enable({ apis: ['setTimeout', 'Date'], now: T0 });
  const mocked = globalThis.setTimeout;
  armedSinceTick = 0;
  globalThis.setTimeout = ((callback: (...args: unknown[]) => void, ms?: number) => {
    if (++armedSinceTick > RUNAWAY_TIMERS) {
      throw new Error(`runaway timers: ${RUNAWAY_TIMERS} setTimeout calls without the clock moving on`);
    }
    return mocked(callback, ms);
  }) as unknown as typeof setTimeout;
});
// reset() puts the real setTimeout back, over the wrapper too.
afterEach(() => mock.timers.reset());

const iso = (ms: number) => new Date(ms).toISOString();

/** A certificate for `names` valid from `from` to `to` (ms, rounded down to whole seconds). */
function leaf(names: string[], from: number, to: number, dir = path.join(root, 'leaves'), file?: string): KeyPair {
  const whole = (ms: number) => Math.floor(ms / SECOND) * SECOND;
  const made = makeLeafValid(ca, dir, {
    names,
    notBefore: new Date(whole(from)),
    notAfter: new Date(whole(to)),
    file: file ?? `leaf-${++leafCount}`,
  });
  return { certPem: made.certPem, keyPem: made.keyPem };
}

/** What an ACME CA hands out now: 90 days, backdated a minute. */
function ninetyDays(host: string): KeyPair {
  return leaf([host], Date.now() - MINUTE, Date.now() + 90 * DAY);
}

/** Advances the fake clock to `at` (ms since the epoch), firing the timers due by then. */
function tickTo(at: number): void {
  const delta = at - Date.now();
  assert.ok(delta >= 0, `cannot go back in time to ${iso(at)}`);
  advance(delta);
}

/** Advances the fake clock by `ms`. */
function advance(ms: number): void {
  armedSinceTick = 0;
  mock.timers.tick(ms);
}

/** Lets promise callbacks run (real setImmediate: only setTimeout and Date are mocked), until `check` holds. */
async function until(check: () => boolean, what: string): Promise<void> {
  for (let turn = 0; turn < 200; turn++) {
    if (check()) return;
    await new Promise<void>((resolve) => setImmediate(resolve));
  }
  assert.fail(`never happened: ${what}`);
}

/** A few event-loop turns, for checking that something did not happen. */
async function settle(): Promise<void> {
  for (let turn = 0; turn < 5; turn++) await new Promise<void>((resolve) => setImmediate(resolve));
}

interface Call {
  host: string;
  at: number;
  resolve(pair: KeyPair): void;
  reject(err: Error): void;
}

/** Records every order; answers it at once with `auto`, else when the test resolves or rejects the call. */
class FakeIssuer implements CertificateIssuer {
  readonly calls: Call[] = [];
  auto: ((host: string) => KeyPair | Error) | null = null;
  /** Runs when an order starts, with what the manager gave the factory. */
  onIssue: ((host: string) => void) | null = null;

  issue(host: string): Promise<KeyPair> {
    return new Promise<KeyPair>((resolve, reject) => {
      this.calls.push({ host, at: Date.now(), resolve, reject });
      this.onIssue?.(host);
      const answer = this.auto?.(host);
      if (answer instanceof Error) reject(answer);
      else if (answer) resolve(answer);
    });
  }

  hosts(): string[] {
    return this.calls.map((c) => c.host);
  }

  count(host: string): number {
    return this.calls.filter((c) => c.host === host).length;
  }

  last(): Call {
    const call = this.calls.at(-1);
    assert.ok(call, 'an order was made');
    return call;
  }
}

class FakePlane {
  readonly sets: CertificateSetData[] = [];
  readonly challenges: Record<string, string>[] = [];

  publishCertificates(set: CertificateSetData): void {
    this.sets.push(structuredClone(set));
  }

  publishChallenges(challenges: Readonly<Record<string, string>>): void {
    this.challenges.push({ ...challenges });
  }

  get last(): CertificateSetData {
    const set = this.sets.at(-1);
    assert.ok(set, 'a certificate set was published');
    return set;
  }

  /** The names of every certificate published last, in order. */
  names(): string[][] {
    return this.last.certificates.map((c) => [...c.names]);
  }

  /** The certificate published last under exactly `[host]`, or undefined. */
  served(host: string): string | undefined {
    return this.last.certificates.find((c) => c.names.length === 1 && c.names[0] === host)?.certPem;
  }
}

interface FactoryCall {
  tls: TlsSettings;
  storage: CertificateStorage;
  board: ChallengeBoard;
}

class Harness {
  readonly plane = new FakePlane();
  readonly issuer = new FakeIssuer();
  readonly factory: FactoryCall[] = [];
  readonly manager = new CertificateManager({
    logger: pino({ level: 'silent' }),
    dataPlane: this.plane,
    issuerFor: (tls, storage, board) => {
      this.factory.push({ tls, storage, board });
      return this.issuer;
    },
    now: () => Date.now(),
  });

  /** follow() then start(), as the gateway does once its listeners are up. */
  run(config: GatewayConfig): this {
    this.manager.follow(config);
    this.manager.start();
    return this;
  }

  cert(host: string): CertificateJson {
    const found = this.manager.list().find((c) => c.host === host);
    assert.ok(found, `list() has ${host}`);
    return found;
  }

  state(host: string): CertificateJson['state'] | undefined {
    return this.manager.list().find((c) => c.host === host)?.state;
  }

  listed(): string[] {
    return this.manager.list().map((c) => c.host);
  }
}

interface Workspace {
  dir: string;
  storage: string;
  config(text: string): GatewayConfig;
}

/** A folder the config lives in, with the app's entry file; `[tls] storage` is `<dir>/certs`. */
function workspace(): Workspace {
  const dir = mkdtempSync(path.join(root, 'ws-'));
  writeFileSync(path.join(dir, 'app.js'), '');
  return {
    dir,
    storage: path.join(dir, 'certs'),
    config: (text) => parseConfig(text, path.join(dir, 'nano.toml'), { env: {} }),
  };
}

const TLS = '[admin]\nlisten = false\n\n[tls]\nstorage = "certs"\n';

function app(name: string, hosts: string[], extra = ''): string {
  return `\n[apps.${name}]\nhosts = ${JSON.stringify(hosts)}\nentry = "app.js"\n${extra}\n`;
}

function fileTls(base: string): string {
  return `tls = { cert = "${base}.crt", key = "${base}.key" }`;
}

function mode(file: string): number {
  return statSync(file).mode & 0o777;
}

function isOpError(kind: string, message?: RegExp) {
  return (err: unknown) => {
    assert.ok(err instanceof GatewayOpError, `expected a GatewayOpError, got ${String(err)}`);
    assert.equal(err.kind, kind);
    if (message) assert.match(err.message, message);
    return true;
  };
}

describe('renewal and retry times (renewal.ts)', () => {
  test('renewAt: when a third of the lifetime is left', () => {
    assert.equal(renewAt(T0, T0 + 90 * DAY), T0 + 60 * DAY, "Let's Encrypt: 30 days of 90");
    assert.equal(renewAt(T0, T0 + 6 * DAY), T0 + 4 * DAY, 'a short-lived certificate in time too');
    assert.equal(renewAt(T0 - HOUR, T0 + 2 * HOUR), T0 + HOUR);
    assert.equal(renewAt(0, 10), 7, 'whole milliseconds, never after notAfter - lifetime/3');
    for (const lifetime of [3, 1000, 7 * DAY + 1, 397 * DAY]) {
      const at = renewAt(T0, T0 + lifetime);
      assert.ok(at > T0 && at < T0 + lifetime, `inside the lifetime ${lifetime}`);
    }
  });

  test('retryDelay: 1 min doubling, at most 6 h', () => {
    assert.equal(RETRY_MIN_MS, MINUTE);
    assert.equal(RETRY_MAX_MS, 6 * HOUR);
    const expected: [number, number][] = [
      [1, MINUTE],
      [2, 2 * MINUTE],
      [3, 4 * MINUTE],
      [4, 8 * MINUTE],
      [9, 256 * MINUTE],
      [10, 6 * HOUR],
      [11, 6 * HOUR],
      [60, 6 * HOUR],
      [10_000, 6 * HOUR],
    ];
    for (const [failures, delay] of expected) assert.equal(retryDelay(failures), delay, `after ${failures} failures`);
    for (let n = 2; n < 100; n++) assert.ok(retryDelay(n) >= retryDelay(n - 1), 'never shorter');
  });
});

describe('storage (storage.ts)', () => {
  test('directoryFolder: one folder per directory, safe as a file name', () => {
    assert.equal(directoryFolder(LETS_ENCRYPT), LE_FOLDER);
    assert.equal(directoryFolder(STAGING), 'acme-staging-v02.api.letsencrypt.org-directory');
    assert.equal(directoryFolder('https://localhost:14000/dir'), 'localhost-14000-dir');
    assert.equal(directoryFolder('https://ACME.Example.COM/Directory/'), 'acme.example.com-directory');
    assert.notEqual(directoryFolder('https://ca.test/a/directory'), directoryFolder('https://ca.test/b/directory'));
    for (const url of [LETS_ENCRYPT, 'https://ca.test:8443/acme/dir?x=1', 'not a url/../x', '']) {
      const folder = directoryFolder(url);
      assert.match(folder, /^[a-z0-9.-]+$/, url);
      assert.ok(!folder.includes('/') && folder !== '..', url);
    }
    assert.equal(directoryFolder(''), 'acme');
    // A host of dots would name the storage folder's parent.
    assert.equal(directoryFolder('https://../'), 'acme-..');
  });

  test('CertificateStorage: files 0600 in 0700 folders under storage/<directory folder>/', () => {
    const dir = mkdtempSync(path.join(root, 'storage-'));
    const storage = new CertificateStorage(dir, LETS_ENCRYPT);
    assert.equal(storage.dir, path.join(dir, LE_FOLDER));
    assert.equal(storage.read('a.test'), null);
    assert.equal(storage.readAccountKey(), null);
    storage.writeAccountKey('ACCOUNT');
    storage.write('a.test', { certPem: 'CERT', keyPem: 'KEY' });
    assert.equal(storage.readAccountKey(), 'ACCOUNT');
    assert.deepEqual(storage.read('a.test'), { certPem: 'CERT', keyPem: 'KEY' });
    const folder = path.join(dir, LE_FOLDER);
    for (const file of ['account.key', 'a.test/cert.pem', 'a.test/key.pem']) {
      assert.equal(mode(path.join(folder, file)), 0o600, file);
    }
    assert.equal(mode(folder), 0o700);
    assert.equal(mode(path.join(folder, 'a.test')), 0o700);
    storage.write('a.test', { certPem: 'CERT2', keyPem: 'KEY2' });
    assert.deepEqual(storage.read('a.test'), { certPem: 'CERT2', keyPem: 'KEY2' }, 'replaced in place');
    // Another directory's certificates never mix with these.
    assert.equal(new CertificateStorage(dir, STAGING).read('a.test'), null);
  });
});

describe('CertificateManager: ordering and storage', () => {
  test('start() orders a certificate for an ACME host with nothing stored, then publishes it', async () => {
    const ws = workspace();
    const h = new Harness();
    h.manager.follow(ws.config(TLS + app('web', ['a.test'])));
    assert.equal(h.issuer.calls.length, 0, 'nothing is ordered before start()');
    assert.equal(h.plane.sets.length, 0, 'nothing is published before start()');

    h.manager.start();
    assert.deepEqual(h.issuer.hosts(), ['a.test']);
    assert.equal(h.issuer.last().at, T0);
    assert.equal(h.state('a.test'), 'pending');
    assert.deepEqual(h.plane.last.certificates, []);
    assert.equal(h.plane.last.defaultName, null);
    assert.deepEqual(h.manager.orders, { ok: 0, failed: 0 });

    const pair = leaf(['a.test'], T0 - MINUTE, T0 + 90 * DAY);
    h.issuer.last().resolve(pair);
    await until(() => h.state('a.test') === 'valid', 'a.test valid');
    assert.deepEqual(h.plane.last.certificates, [{ names: ['a.test'], certPem: pair.certPem, keyPem: pair.keyPem }]);
    assert.equal(h.plane.last.defaultName, 'a.test');
    assert.deepEqual(h.manager.orders, { ok: 1, failed: 0 });
    assert.deepEqual(h.cert('a.test'), {
      host: 'a.test',
      app: 'web',
      source: 'acme',
      state: 'valid',
      not_before: iso(T0 - MINUTE),
      not_after: iso(T0 + 90 * DAY),
      // A lifetime of 90 days and a minute: a third is 30 days and 20 s.
      renew_at: iso(T0 + 60 * DAY - 20 * SECOND),
      issuer: CA_NAME,
      last_error: null,
    });
    const versions = h.plane.sets.map((s) => s.version);
    assert.deepEqual(
      versions,
      [...versions].sort((a, b) => a - b),
      'versions increase',
    );
    assert.equal(new Set(versions).size, versions.length);
    assert.equal(h.issuer.calls.length, 1, 'one order');
  });

  test('a restart with a valid stored certificate orders nothing and publishes it at once', async () => {
    const ws = workspace();
    const text = TLS + app('web', ['a.test']);
    const first = new Harness();
    // As AcmeIssuer does: the account key goes into the storage it is given.
    first.issuer.onIssue = () => first.factory[0]?.storage.writeAccountKey('ACCOUNT KEY');
    first.run(ws.config(text));
    const pair = leaf(['a.test'], T0 - MINUTE, T0 + 90 * DAY);
    first.issuer.last().resolve(pair);
    await until(() => first.state('a.test') === 'valid', 'first certificate');
    first.manager.stop();

    const folder = path.join(ws.storage, LE_FOLDER);
    assert.equal(first.factory.length, 1);
    assert.equal(first.factory[0]!.storage.dir, folder);
    assert.equal(first.factory[0]!.tls.acmeDirectory, LETS_ENCRYPT);
    assert.equal(readFileSync(path.join(folder, 'account.key'), 'utf8'), 'ACCOUNT KEY');
    assert.equal(readFileSync(path.join(folder, 'a.test', 'cert.pem'), 'utf8'), pair.certPem);
    assert.equal(readFileSync(path.join(folder, 'a.test', 'key.pem'), 'utf8'), pair.keyPem);
    for (const file of ['account.key', 'a.test/cert.pem', 'a.test/key.pem']) {
      assert.equal(mode(path.join(folder, file)), 0o600, `${file} is 0600`);
    }
    assert.equal(mode(path.join(folder, 'a.test')), 0o700);

    advance(HOUR);
    const second = new Harness().run(ws.config(text));
    assert.equal(second.issuer.calls.length, 0, 'a restart orders nothing');
    assert.equal(second.plane.sets.length, 1, 'published at once');
    assert.deepEqual(second.plane.last.certificates, [
      { names: ['a.test'], certPem: pair.certPem, keyPem: pair.keyPem },
    ]);
    assert.equal(second.state('a.test'), 'valid');
    assert.equal(second.cert('a.test').renew_at, iso(T0 + 60 * DAY - 20 * SECOND));

    // The stored certificate's renewal is armed too.
    tickTo(T0 + 60 * DAY - 21 * SECOND);
    assert.equal(second.issuer.calls.length, 0);
    tickTo(T0 + 60 * DAY - 20 * SECOND);
    assert.deepEqual(second.issuer.hosts(), ['a.test']);
    assert.equal(second.state('a.test'), 'renewing');
  });

  test('a stored certificate past renew_at but valid is published at once and renewed', async () => {
    const ws = workspace();
    const old = leaf(['a.test'], T0 - 70 * DAY, T0 + 20 * DAY);
    new CertificateStorage(ws.storage, LETS_ENCRYPT).write('a.test', old);
    const h = new Harness().run(ws.config(TLS + app('web', ['a.test'])));
    assert.equal(h.plane.served('a.test'), old.certPem, 'the old one serves meanwhile');
    assert.deepEqual(h.issuer.hosts(), ['a.test']);
    assert.equal(h.state('a.test'), 'renewing');
    const fresh = ninetyDays('a.test');
    h.issuer.last().resolve(fresh);
    await until(() => h.plane.served('a.test') === fresh.certPem, 'the new one published');
    assert.equal(h.state('a.test'), 'valid');
    assert.equal(h.issuer.calls.length, 1);
  });

  test('a stored certificate that expired, covers another name, or is not PEM is not served: an order starts', () => {
    const ws = workspace();
    const storage = new CertificateStorage(ws.storage, LETS_ENCRYPT);
    storage.write('a.test', leaf(['a.test'], T0 - 90 * DAY, T0 - DAY));
    storage.write('b.test', leaf(['other.test'], T0 - DAY, T0 + 89 * DAY));
    storage.write('c.test', { certPem: 'not a certificate', keyPem: 'nor a key' });
    const h = new Harness().run(ws.config(TLS + app('web', ['a.test', 'b.test', 'c.test'])));
    assert.deepEqual(h.plane.last.certificates, []);
    assert.deepEqual(h.issuer.hosts(), ['a.test', 'b.test', 'c.test']);
    assert.deepEqual(
      h.manager.list().map((c) => c.state),
      ['pending', 'pending', 'pending'],
    );
  });

  test("a stored key that is not the stored certificate's (a write that failed half-way) is not served after a restart", async () => {
    const ws = workspace();
    const text = TLS + app('web', ['a.test']);
    const first = new Harness().run(ws.config(text));
    const old = ninetyDays('a.test');
    first.issuer.last().resolve(old);
    await until(() => first.state('a.test') === 'valid', 'first certificate');

    // The renewal's cert.pem cannot be written: its temporary file's name is taken by a folder.
    const folder = path.join(ws.storage, LE_FOLDER, 'a.test');
    mkdirSync(path.join(folder, `cert.pem.${process.pid}.tmp`));
    first.issuer.auto = ninetyDays;
    // Whether the order then counts as failed or the new pair serves unstored, the files on disk are the same.
    await first.manager.renew('a.test').catch(() => undefined);
    assert.equal(first.issuer.calls.length, 2, 'the renewal was ordered');
    assert.equal(readFileSync(path.join(folder, 'cert.pem'), 'utf8'), old.certPem, 'cert.pem was not replaced');
    assert.notEqual(readFileSync(path.join(folder, 'key.pem'), 'utf8'), old.keyPem, 'key.pem was');
    first.manager.stop();

    const second = new Harness().run(ws.config(text));
    for (const c of second.plane.last.certificates) {
      const matches = new X509Certificate(c.certPem).checkPrivateKey(createPrivateKey(c.keyPem));
      assert.ok(matches, `the published pair for ${c.names.join(', ')} must match`);
    }
    assert.equal(second.issuer.calls.length, 1, 'an order starts for a.test');
  });

  test("HTTP-01 challenges the issuer sets go to the data plane's plain listener, and are removed", async () => {
    const ws = workspace();
    const h = new Harness();
    h.issuer.onIssue = () => h.factory[0]?.board.set('tok-1', 'tok-1.thumbprint');
    h.run(ws.config(TLS + app('web', ['a.test'])));
    assert.deepEqual(h.plane.challenges, [{ 'tok-1': 'tok-1.thumbprint' }]);
    const board = h.factory[0]!.board;
    board.set('tok-2', 'tok-2.thumbprint');
    assert.deepEqual(h.plane.challenges.at(-1), { 'tok-1': 'tok-1.thumbprint', 'tok-2': 'tok-2.thumbprint' });
    board.remove('tok-1');
    assert.deepEqual(h.plane.challenges.at(-1), { 'tok-2': 'tok-2.thumbprint' });
    board.remove('tok-1');
    assert.equal(h.plane.challenges.length, 3, 'removing an unknown token publishes nothing');
    board.remove('tok-2');
    assert.deepEqual(h.plane.challenges.at(-1), {});
  });
});

describe('CertificateManager: renewal timer', () => {
  test('renews at renew_at = notAfter - lifetime/3, not before; renewing during the order, valid after', async () => {
    const ws = workspace();
    const h = new Harness().run(ws.config(TLS + app('web', ['a.test'])));
    const notBefore = T0 - HOUR;
    const notAfter = T0 + 2 * HOUR;
    const first = leaf(['a.test'], notBefore, notAfter);
    h.issuer.last().resolve(first);
    await until(() => h.state('a.test') === 'valid', 'first certificate');
    const due = notAfter - (notAfter - notBefore) / 3;
    assert.equal(due, T0 + HOUR);
    assert.equal(h.cert('a.test').renew_at, iso(due));

    tickTo(due - 1);
    await settle();
    assert.equal(h.issuer.calls.length, 1, 'no renewal before renew_at');
    assert.equal(h.state('a.test'), 'valid');
    tickTo(due);
    assert.equal(h.issuer.calls.length, 2, 'renewed at renew_at');
    const renewal = h.issuer.last();
    assert.equal(renewal.host, 'a.test');
    assert.ok(renewal.at >= due && renewal.at - due <= 10 * SECOND, 'within 10 s of renew_at');
    assert.equal(h.state('a.test'), 'renewing');
    assert.equal(h.plane.served('a.test'), first.certPem, 'the old certificate serves during the order');

    const second = leaf(['a.test'], due - MINUTE, due + 3 * HOUR);
    renewal.resolve(second);
    await until(() => h.state('a.test') === 'valid', 'renewed');
    assert.equal(h.plane.served('a.test'), second.certPem);
    assert.equal(h.plane.last.certificates.length, 1, 'the old certificate is replaced, not added');
    assert.deepEqual(h.manager.orders, { ok: 2, failed: 0 });
    const secondDue = due + 3 * HOUR - Math.floor((3 * HOUR + MINUTE) / 3);
    assert.equal(h.cert('a.test').renew_at, iso(secondDue));
    assert.equal(h.cert('a.test').last_error, null);
    const stored = new CertificateStorage(ws.storage, LETS_ENCRYPT).read('a.test');
    assert.equal(stored?.certPem, second.certPem, 'the new certificate is stored');

    // And the next renewal is armed from the new certificate.
    tickTo(secondDue - 1);
    assert.equal(h.issuer.calls.length, 2);
    tickTo(secondDue);
    assert.equal(h.issuer.calls.length, 3);
  });

  test('a 90-day certificate is renewed at day 60, beyond one timer (Node caps timers at ~24.8 days)', async () => {
    const ws = workspace();
    const h = new Harness().run(ws.config(TLS + app('web', ['a.test'])));
    h.issuer.last().resolve(leaf(['a.test'], T0, T0 + 90 * DAY));
    await until(() => h.state('a.test') === 'valid', 'certificate');
    for (const day of [20, 30, 50, 59]) {
      tickTo(T0 + day * DAY);
      assert.equal(h.issuer.calls.length, 1, `no renewal on day ${day}`);
    }
    tickTo(T0 + 60 * DAY - 1);
    assert.equal(h.issuer.calls.length, 1);
    tickTo(T0 + 60 * DAY);
    assert.equal(h.issuer.calls.length, 2, 'renewed on day 60');
    assert.equal(h.issuer.last().at, T0 + 60 * DAY);
  });
});

describe('CertificateManager: failures', () => {
  test('fixing the [tls] settings retries a failed host at once, not after its backoff', async () => {
    const ws = workspace();
    const h = new Harness();
    h.issuer.auto = () => new Error('ACME directory: connection refused');
    h.run(ws.config(TLS + app('web', ['a.test'])));
    await until(() => h.manager.orders.failed === 1, 'first failure');
    assert.equal(h.issuer.calls.length, 1);
    h.issuer.auto = ninetyDays;
    h.manager.follow(ws.config(`${TLS}acme_directory = "${STAGING}"\n${app('web', ['a.test'])}`));
    assert.equal(h.issuer.calls.length, 2, 'ordered again at once under the new settings');
    await until(() => h.state('a.test') === 'valid', 'a.test valid');
  });

  test('an order made under the previous directory is neither stored in the new folder nor served', async () => {
    const ws = workspace();
    const h = new Harness().run(ws.config(TLS + app('web', ['a.test'])));
    const old = h.issuer.last();
    h.manager.follow(ws.config(`${TLS}acme_directory = "${STAGING}"\n${app('web', ['a.test'])}`));
    old.resolve(ninetyDays('a.test'));
    await settle();
    assert.equal(new CertificateStorage(ws.storage, STAGING).read('a.test'), null, 'not in the new folder');
    assert.deepEqual(h.plane.last.certificates, [], 'not served');
    await until(() => h.issuer.calls.length === 2, 'ordered from the new directory');
    h.issuer.last().resolve(ninetyDays('a.test'));
    await until(() => h.state('a.test') === 'valid', 'a.test valid');
    assert.notEqual(new CertificateStorage(ws.storage, STAGING).read('a.test'), null);
  });

  test('a failed order: failed with last_error, retried at +1, +2, +4 min … at most 6 h, not before', async () => {
    const ws = workspace();
    const h = new Harness();
    const message = `ACME directory ${LETS_ENCRYPT}: connection refused (is the ACME server running?)`;
    h.issuer.auto = () => new Error(message);
    h.run(ws.config(TLS + app('web', ['a.test'])));
    await until(() => h.manager.orders.failed === 1, 'first failure');
    assert.equal(h.state('a.test'), 'failed');
    assert.equal(h.cert('a.test').last_error, message);
    assert.equal(h.cert('a.test').not_after, null);
    assert.deepEqual(h.plane.last.certificates, []);

    const minutes = [1, 2, 4, 8, 16, 32, 64, 128, 256, 360, 360, 360];
    for (const [i, m] of minutes.entries()) {
      const delay = m * MINUTE;
      assert.equal(retryDelay(i + 1), delay);
      const due = h.issuer.last().at + delay;
      tickTo(due - 1);
      await settle();
      assert.equal(h.issuer.calls.length, i + 1, `retry ${i + 1} not before +${m} min`);
      tickTo(due);
      assert.equal(h.issuer.calls.length, i + 2, `retry ${i + 1} at +${m} min`);
      assert.equal(h.issuer.last().at, due);
      await until(() => h.manager.orders.failed === i + 2, `failure ${i + 2}`);
      assert.equal(h.state('a.test'), 'failed');
    }
    assert.deepEqual(h.manager.orders, { ok: 0, failed: minutes.length + 1 });

    // A success resets the backoff: the next failure retries after a minute again.
    h.issuer.auto = ninetyDays;
    tickTo(h.issuer.last().at + 6 * HOUR);
    await until(() => h.state('a.test') === 'valid', 'obtained at last');
    assert.equal(h.cert('a.test').last_error, null);
    h.issuer.auto = () => new Error(message);
    await assert.rejects(h.manager.renew('a.test'), isOpError('upstream_error'));
    const failedAt = h.issuer.last().at;
    tickTo(failedAt + MINUTE - 1);
    assert.equal(h.issuer.calls.length, minutes.length + 3);
    tickTo(failedAt + MINUTE);
    assert.equal(h.issuer.calls.length, minutes.length + 4, 'backoff starts again at 1 min');
  });

  test('a failed renewal keeps the valid certificate serving (state valid, last_error set) until it expires', async () => {
    const ws = workspace();
    const h = new Harness().run(ws.config(TLS + app('web', ['a.test'])));
    const notAfter = T0 + 2 * HOUR;
    const old = leaf(['a.test'], T0 - HOUR, notAfter);
    h.issuer.last().resolve(old);
    await until(() => h.state('a.test') === 'valid', 'certificate');
    const message = 'ACME order for a.test: rateLimited';
    h.issuer.auto = () => new Error(message);

    // Renewal at T0+1h, then retries 1, 2, 4, 8, 16 min after each failure: T0 + 61, 63, 67, 75, 91 min.
    const attempts = [60, 61, 63, 67, 75, 91];
    for (const [i, m] of attempts.entries()) {
      tickTo(T0 + m * MINUTE - 1);
      assert.equal(h.issuer.calls.length, i + 1, `nothing before T0+${m} min`);
      tickTo(T0 + m * MINUTE);
      assert.equal(h.issuer.calls.length, i + 2, `attempt at T0+${m} min`);
      await until(() => h.manager.orders.failed === i + 1, `failure ${i + 1}`);
      assert.equal(h.state('a.test'), 'valid', 'still valid while it serves');
      assert.equal(h.cert('a.test').last_error, message);
      assert.equal(h.plane.served('a.test'), old.certPem, 'the old certificate keeps serving');
    }
    // The next retry (+32 min, T0+123 min) is after the expiry (T0+120 min).
    tickTo(notAfter - 1);
    assert.equal(h.plane.served('a.test'), old.certPem);
    const published = h.plane.sets.length;
    tickTo(notAfter);
    assert.equal(h.plane.sets.length, published + 1, 'the expiry is published');
    assert.equal(h.plane.served('a.test'), undefined, 'an expired certificate is not served');
    assert.equal(h.plane.last.defaultName, null);
    assert.equal(h.state('a.test'), 'failed');
    assert.ok(h.cert('a.test').last_error, 'last_error stays set');
    assert.equal(h.issuer.calls.length, attempts.length + 1, 'the expiry orders nothing by itself');

    tickTo(T0 + 123 * MINUTE - 1);
    assert.equal(h.issuer.calls.length, attempts.length + 1);
    tickTo(T0 + 123 * MINUTE);
    assert.equal(h.issuer.calls.length, attempts.length + 2, 'the retry goes on');
    await until(() => h.manager.orders.failed === attempts.length + 1, 'failure after expiry');
    assert.equal(h.state('a.test'), 'failed');
  });
});

describe('CertificateManager: renew()', () => {
  async function obtain(h: Harness, host: string): Promise<KeyPair> {
    const pair = ninetyDays(host);
    const call = h.issuer.calls.find((c) => c.host === host);
    assert.ok(call, `an order for ${host}`);
    call.resolve(pair);
    await until(() => h.plane.served(host) === pair.certPem, `${host} published`);
    return pair;
  }

  /** With f.crt/f.key in the folder, for an app with certificate files. */
  function workspaceWithFiles(): Workspace {
    const ws = workspace();
    leaf(['f.test'], T0 - DAY, T0 + 30 * DAY, ws.dir, 'f');
    return ws;
  }

  test('resolves once the new certificate is published', async () => {
    const ws = workspace();
    const h = new Harness().run(ws.config(TLS + app('web', ['a.test'])));
    const old = await obtain(h, 'a.test');
    advance(DAY);
    const renewing = h.manager.renew('A.Test');
    assert.equal(h.issuer.calls.length, 2, 'ordered at once');
    assert.equal(h.state('a.test'), 'renewing');
    assert.equal(h.plane.served('a.test'), old.certPem);
    const fresh = ninetyDays('a.test');
    let publishedWhenResolved: string | undefined;
    const done = renewing.then((json) => {
      publishedWhenResolved = h.plane.served('a.test');
      return json;
    });
    h.issuer.last().resolve(fresh);
    const json = await done;
    assert.equal(publishedWhenResolved, fresh.certPem, 'published before renew() resolves');
    assert.equal(json.host, 'a.test');
    assert.equal(json.state, 'valid');
    assert.equal(json.not_before, iso(T0 + DAY - MINUTE));
    assert.equal(json.last_error, null);
    assert.equal(h.manager.orders.ok, 2);
  });

  test('an unknown host is not_found; a file certificate is conflict; an issuer failure is upstream_error', async () => {
    const ws = workspaceWithFiles();
    const h = new Harness().run(
      ws.config(
        TLS +
          app('web', ['a.test']) +
          app('plain', ['plain.test'], 'tls = false') +
          app('files', ['f.test'], fileTls('f')),
      ),
    );
    const old = await obtain(h, 'a.test');
    await assert.rejects(h.manager.renew('nope.test'), isOpError('not_found', /nope\.test/));
    await assert.rejects(h.manager.renew('plain.test'), isOpError('not_found'), 'tls = false has no certificate');
    await assert.rejects(h.manager.renew('f.test'), isOpError('conflict', /f\.test/));
    assert.equal(h.issuer.calls.length, 1, 'none of these orders anything');

    const message = 'ACME order for a.test at https://acme-v02.api.letsencrypt.org/directory: rejectedIdentifier';
    h.issuer.auto = () => new Error(message);
    await assert.rejects(h.manager.renew('a.test'), isOpError('upstream_error', /rejectedIdentifier/));
    assert.equal(h.manager.orders.failed, 1);
    assert.equal(h.state('a.test'), 'valid', 'the old certificate still serves');
    assert.equal(h.cert('a.test').last_error, message);
    assert.equal(h.plane.served('a.test'), old.certPem);
  });

  test('two renew() calls at once make one order; a renew() during a background order joins it', async () => {
    const ws = workspace();
    const h = new Harness().run(ws.config(TLS + app('web', ['a.test'])));
    const joining = h.manager.renew('a.test');
    assert.equal(h.issuer.calls.length, 1, 'joins the order start() began');
    const first = ninetyDays('a.test');
    h.issuer.last().resolve(first);
    assert.equal((await joining).state, 'valid');

    const one = h.manager.renew('a.test');
    const two = h.manager.renew('a.test');
    assert.equal(h.issuer.calls.length, 2, 'one order for both');
    const fresh = leaf(['a.test'], T0, T0 + 30 * DAY);
    h.issuer.last().resolve(fresh);
    const [a, b] = await Promise.all([one, two]);
    assert.deepEqual(a, b);
    assert.equal(a.not_after, iso(T0 + 30 * DAY));
    assert.equal(h.plane.served('a.test'), fresh.certPem);
    assert.deepEqual(h.manager.orders, { ok: 2, failed: 0 });
  });
});

describe('CertificateManager: follow()', () => {
  test('a config that adds a host orders that one only', async () => {
    const ws = workspace();
    const h = new Harness().run(ws.config(TLS + app('web', ['a.test'])));
    h.issuer.last().resolve(ninetyDays('a.test'));
    await until(() => h.state('a.test') === 'valid', 'a.test');
    h.manager.follow(ws.config(TLS + app('web', ['a.test']) + app('blog', ['c.test'])));
    assert.deepEqual(h.issuer.hosts(), ['a.test', 'c.test']);
    assert.equal(h.cert('c.test').app, 'blog');
    assert.equal(h.state('c.test'), 'pending');
    assert.deepEqual(h.plane.names(), [['a.test']], 'a.test keeps serving');
    const c = ninetyDays('c.test');
    h.issuer.last().resolve(c);
    await until(() => h.plane.served('c.test') === c.certPem, 'c.test');
    assert.deepEqual(h.plane.names(), [['a.test'], ['c.test']]);
    assert.equal(h.issuer.calls.length, 2);
  });

  test('a config that removes a host stops its renewals and drops it from publish and list()', async () => {
    const ws = workspace();
    const h = new Harness().run(ws.config(TLS + app('web', ['a.test', 'b.test'])));
    for (const call of h.issuer.calls) call.resolve(leaf([call.host], T0 - HOUR, T0 + 2 * HOUR));
    await until(() => h.plane.last.certificates.length === 2, 'both published');

    h.manager.follow(ws.config(TLS + app('web', ['a.test'])));
    assert.deepEqual(h.plane.names(), [['a.test']]);
    assert.deepEqual(h.listed(), ['a.test']);
    h.issuer.auto = ninetyDays;
    tickTo(T0 + HOUR);
    await settle();
    assert.equal(h.issuer.count('a.test'), 2, 'a.test is renewed');
    assert.equal(h.issuer.count('b.test'), 1, 'b.test is not');
    tickTo(T0 + 3 * DAY);
    await settle();
    assert.equal(h.issuer.count('b.test'), 1, 'b.test never again');
    assert.ok(!h.plane.sets.at(-1)!.certificates.some((c) => c.names.includes('b.test')));
    assert.deepEqual(h.listed(), ['a.test']);
    // Its files stay.
    assert.notEqual(new CertificateStorage(ws.storage, LETS_ENCRYPT).read('b.test'), null);
  });

  test('a host removed while its order runs is not published when the order ends', async () => {
    const ws = workspace();
    const h = new Harness().run(ws.config(TLS + app('web', ['a.test']) + app('blog', ['b.test'])));
    h.manager.follow(ws.config(TLS + app('web', ['a.test'])));
    const published = h.plane.sets.length;
    h.issuer.calls.find((c) => c.host === 'b.test')!.resolve(ninetyDays('b.test'));
    await settle();
    assert.equal(h.plane.sets.length, published, 'nothing published for it');
    assert.deepEqual(h.listed(), ['a.test']);
    tickTo(T0 + 100 * DAY);
    assert.equal(h.issuer.count('b.test'), 1);
  });

  test('a removed host added back is served from storage without an order', async () => {
    const ws = workspace();
    const both = TLS + app('web', ['a.test', 'b.test']);
    const h = new Harness().run(ws.config(both));
    const pairs = new Map<string, KeyPair>();
    for (const call of h.issuer.calls) {
      const pair = ninetyDays(call.host);
      pairs.set(call.host, pair);
      call.resolve(pair);
    }
    await until(() => h.plane.last.certificates.length === 2, 'both published');
    h.manager.follow(ws.config(TLS + app('web', ['a.test'])));
    advance(DAY);
    h.manager.follow(ws.config(both));
    assert.equal(h.issuer.calls.length, 2, 'no new order');
    assert.equal(h.plane.served('b.test'), pairs.get('b.test')!.certPem);
    assert.equal(h.state('b.test'), 'valid');
  });

  test('a config without [tls] stops everything; a new acme_directory takes a new issuer and storage folder', async () => {
    const ws = workspace();
    const h = new Harness().run(ws.config(TLS + app('web', ['a.test'])));
    h.issuer.last().resolve(leaf(['a.test'], T0 - HOUR, T0 + 2 * HOUR));
    await until(() => h.state('a.test') === 'valid', 'a.test');

    const staging = `${TLS}acme_directory = "${STAGING}"\n`;
    h.manager.follow(ws.config(staging + app('web', ['a.test']) + app('blog', ['d.test'])));
    assert.equal(h.factory.length, 2, 'a new issuer for the new directory');
    assert.equal(h.factory[1]!.tls.acmeDirectory, STAGING);
    assert.equal(h.factory[1]!.storage.dir, path.join(ws.storage, directoryFolder(STAGING)));
    // New settings apply at once: a.test is ordered again from the new directory while its certificate serves.
    assert.deepEqual(h.issuer.hosts(), ['a.test', 'a.test', 'd.test']);
    assert.equal(h.state('a.test'), 'renewing');
    assert.ok(h.plane.served('a.test'), 'the old certificate serves until the new one comes');
    h.issuer.calls.find((c) => c.host === 'd.test')!.resolve(ninetyDays('d.test'));
    await until(() => h.state('d.test') === 'valid', 'd.test');
    assert.notEqual(new CertificateStorage(ws.storage, STAGING).read('d.test'), null, 'stored under staging');
    assert.equal(new CertificateStorage(ws.storage, LETS_ENCRYPT).read('d.test'), null);

    h.manager.follow(ws.config(`[admin]\nlisten = false\n${app('web', ['a.test'])}`));
    assert.deepEqual(h.plane.last.certificates, []);
    assert.deepEqual(h.manager.list(), []);
    tickTo(T0 + 10 * DAY);
    assert.equal(h.issuer.calls.length, 3, 'no more orders');
  });

  test('a host that moves to another app keeps its certificate; one that gets files stops its ACME order', async () => {
    const ws = workspace();
    leaf(['b.test'], T0 - DAY, T0 + 30 * DAY, ws.dir, 'b');
    const h = new Harness().run(ws.config(TLS + app('web', ['a.test', 'b.test'])));
    const a = ninetyDays('a.test');
    h.issuer.calls.find((c) => c.host === 'a.test')!.resolve(a);
    await until(() => h.state('a.test') === 'valid', 'a.test');
    const bOrder = h.issuer.calls.find((c) => c.host === 'b.test')!;

    h.manager.follow(
      ws.config(TLS + app('web', ['w.test']) + app('blog', ['a.test']) + app('files', ['b.test'], fileTls('b'))),
    );
    assert.equal(h.cert('a.test').app, 'blog');
    assert.equal(h.cert('a.test').state, 'valid');
    assert.equal(h.plane.served('a.test'), a.certPem);
    assert.equal(h.cert('b.test').source, 'file');
    assert.equal(h.cert('b.test').state, 'valid');
    assert.deepEqual(h.issuer.hosts().sort(), ['a.test', 'b.test', 'w.test'], 'only the new ACME host orders');

    // The ACME order b.test had under way ends: the file certificate stays what is served.
    bOrder.resolve(ninetyDays('b.test'));
    await settle();
    assert.equal(h.cert('b.test').source, 'file');
    assert.equal(h.plane.last.certificates.filter((c) => c.names.includes('b.test')).length, 1);
    assert.equal(h.plane.served('b.test'), readFileSync(path.join(ws.dir, 'b.crt'), 'utf8'));
    await assert.rejects(h.manager.renew('b.test'), isOpError('conflict'));
  });

  test('list() is in config order after a reload adds hosts before the existing ones', () => {
    const ws = workspace();
    const h = new Harness().run(ws.config(TLS + app('web', ['a.test'])));
    h.manager.follow(ws.config(TLS + app('api', ['z.test']) + app('web', ['y.test', 'a.test'])));
    assert.deepEqual(h.listed(), ['z.test', 'y.test', 'a.test']);
  });

  test('stop() ends every timer: nothing is ordered afterwards', async () => {
    const ws = workspace();
    const h = new Harness().run(ws.config(TLS + app('web', ['a.test'])));
    h.issuer.last().resolve(leaf(['a.test'], T0 - HOUR, T0 + 2 * HOUR));
    await until(() => h.state('a.test') === 'valid', 'a.test');
    h.manager.stop();
    tickTo(T0 + 10 * DAY);
    assert.equal(h.issuer.calls.length, 1);
  });
});

describe('CertificateManager: file certificates and the default name', () => {
  function filesWorkspace() {
    const ws = workspace();
    const files = leaf(['files.test', '*.files.test'], T0 - DAY, T0 + 30 * DAY, ws.dir, 'files');
    const other = leaf(['other.test'], T0 - DAY, T0 + 2 * HOUR, ws.dir, 'other');
    return { ws, files, other };
  }

  const APPS =
    app('web', ['a.test']) +
    app('files', ['*.files.test', 'files.test'], fileTls('files')) +
    app('more', ['more.files.test'], fileTls('files')) +
    app('other', ['other.test'], fileTls('other'));

  test('published once per file with their own names, after the ACME certificates, in config order', async () => {
    const { ws, files, other } = filesWorkspace();
    const h = new Harness().run(ws.config(TLS + APPS));
    assert.deepEqual(h.issuer.hosts(), ['a.test'], 'file hosts order nothing');
    assert.deepEqual(h.plane.last.certificates, [
      { names: ['files.test', '*.files.test'], certPem: files.certPem, keyPem: files.keyPem },
      { names: ['other.test'], certPem: other.certPem, keyPem: other.keyPem },
    ]);
    assert.equal(h.plane.last.defaultName, null, 'the default app (web) has no certificate yet');
    const a = ninetyDays('a.test');
    h.issuer.last().resolve(a);
    await until(() => h.plane.served('a.test') === a.certPem, 'a.test');
    assert.deepEqual(h.plane.names(), [['a.test'], ['files.test', '*.files.test'], ['other.test']]);
    assert.equal(h.plane.last.defaultName, 'a.test');

    const listed = h.manager.list().filter((c) => c.source === 'file');
    assert.deepEqual(
      listed.map((c) => [c.host, c.app, c.state, c.renew_at, c.not_after]),
      [
        ['*.files.test', 'files', 'valid', null, iso(T0 + 30 * DAY)],
        ['files.test', 'files', 'valid', null, iso(T0 + 30 * DAY)],
        ['more.files.test', 'more', 'valid', null, iso(T0 + 30 * DAY)],
        ['other.test', 'other', 'valid', null, iso(T0 + 2 * HOUR)],
      ],
    );
  });

  test('a file certificate that expires stops being served, orders nothing; a reload with new files serves them', async () => {
    const { ws, other } = filesWorkspace();
    const h = new Harness().run(ws.config(TLS + APPS));
    h.issuer.last().resolve(ninetyDays('a.test'));
    await until(() => h.state('a.test') === 'valid', 'a.test');
    assert.equal(h.plane.served('other.test'), other.certPem);
    tickTo(T0 + 2 * HOUR);
    assert.equal(h.plane.served('other.test'), undefined);
    assert.equal(h.state('other.test'), 'failed');
    assert.match(h.cert('other.test').last_error ?? '', /expired/);
    assert.equal(h.issuer.calls.length, 1);

    const renewed = leaf(['other.test'], Date.now() - MINUTE, Date.now() + 30 * DAY, ws.dir, 'other');
    h.manager.follow(ws.config(TLS + APPS));
    assert.equal(h.plane.served('other.test'), renewed.certPem);
    assert.equal(h.state('other.test'), 'valid');
    assert.equal(h.cert('other.test').last_error, null);
    assert.equal(h.issuer.calls.length, 1);
  });

  test('a reload with replaced files serves the new certificate in place of the old one at once', async () => {
    const { ws, files } = filesWorkspace();
    const h = new Harness().run(ws.config(TLS + APPS));
    assert.equal(h.plane.last.certificates.find((c) => c.names.includes('files.test'))?.certPem, files.certPem);
    advance(DAY);
    const replaced = leaf(['files.test', '*.files.test'], Date.now() - MINUTE, Date.now() + 60 * DAY, ws.dir, 'files');
    h.manager.follow(ws.config(TLS + APPS));
    const served = h.plane.last.certificates.filter((c) => c.names.includes('files.test'));
    assert.deepEqual(
      served.map((c) => [c.certPem, c.keyPem]),
      [[replaced.certPem, replaced.keyPem]],
      'the new pair only',
    );
    assert.equal(h.cert('more.files.test').not_after, iso(T0 + DAY + 60 * DAY));
    assert.equal(h.issuer.count('files.test'), 0);
  });

  test("defaultName: the default app's first host that has a certificate; null when it has none", async () => {
    const { ws, files } = filesWorkspace();
    // The default app's first host is the wildcard: the default name is one it covers.
    const h = new Harness().run(ws.config(`[gateway]\ndefault_app = "files"\n${TLS}${APPS}`));
    const name = h.plane.last.defaultName;
    assert.ok(name !== null && coversHost(['files.test', '*.files.test'], name), `default name ${name}`);
    assert.ok(!name.startsWith('*'), 'a name SNI can carry');
    assert.equal(h.plane.last.certificates.find((c) => coversHost(c.names, name))?.certPem, files.certPem);

    const plain = new Harness().run(
      ws.config(`[gateway]\ndefault_app = "plain"\n${TLS}${APPS}${app('plain', ['plain.test'], 'tls = false')}`),
    );
    assert.equal(plain.plane.last.certificates.length, 2);
    assert.equal(plain.plane.last.defaultName, null, 'a default app without certificates');

    const none = new Harness().run(ws.config(`[gateway]\ndefault_app = false\n${TLS}${APPS}`));
    assert.equal(none.plane.last.defaultName, null, 'no default app');

    // The first host *that has one*: b.test obtained first, then a.test.
    const two = new Harness().run(ws.config(TLS + app('web', ['a.test', 'b.test'])));
    const b = two.issuer.calls.find((c) => c.host === 'b.test')!;
    b.resolve(ninetyDays('b.test'));
    await until(() => two.plane.served('b.test') !== undefined, 'b.test');
    assert.equal(two.plane.last.defaultName, 'b.test');
    two.issuer.calls.find((c) => c.host === 'a.test')!.resolve(ninetyDays('a.test'));
    await until(() => two.plane.served('a.test') !== undefined, 'a.test');
    assert.equal(two.plane.last.defaultName, 'a.test');
  });
});
