/**
 * Runs Debian's pebble (an ACME test CA, 2.4.x) on loopback for HTTPS/ACME tests.
 *
 * Pebble serves ACME over HTTPS with a certificate we make (signed by `caFile`),
 * resolves every name through a DNS responder that answers 127.0.0.1, and
 * validates HTTP-01 on `httpPort` of 127.0.0.1. It makes a new issuing root on
 * every launch; `issuerRootPem` is that root, fetched from the management port.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { accessSync, constants, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import https from 'node:https';
import os from 'node:os';
import path from 'node:path';
import type { TestContext } from 'node:test';
import { freePort, waitFor } from '../helpers.js';
import { type DnsResponder, startDnsResponder } from './dns.js';
import { makeCa, makeLeaf } from './pki.js';

export const PEBBLE_MISSING = 'pebble is not installed: apt-get install pebble';

/** The pebble binary: `$PEBBLE_BIN` when set (only that), else /usr/bin/pebble, else the first `pebble` on PATH. */
export function pebbleBinary(): string | undefined {
  const dirs = (process.env.PATH ?? '').split(path.delimiter).filter(Boolean);
  const candidates = process.env.PEBBLE_BIN
    ? [process.env.PEBBLE_BIN]
    : ['/usr/bin/pebble', ...dirs.map((dir) => path.join(dir, 'pebble'))];
  for (const file of candidates) {
    try {
      accessSync(file, constants.X_OK);
      return file;
    } catch {}
  }
  return undefined;
}

export function pebbleAvailable(): boolean {
  return pebbleBinary() !== undefined;
}

function inCi(): boolean {
  const ci = process.env.CI;
  return ci !== undefined && ci !== '' && ci !== 'false' && ci !== '0';
}

/**
 * For `describe(name, { skip: pebbleSkip() }, ...)`: the skip message when
 * pebble is missing, undefined when it is there. Throws under CI instead.
 */
export function pebbleSkip(): string | undefined {
  if (pebbleAvailable()) return undefined;
  if (inCi()) throw new Error(PEBBLE_MISSING);
  return PEBBLE_MISSING;
}

/**
 * At the top of a test: `if (!requirePebble(t)) return;`. Without pebble the
 * test is skipped, or fails when `CI` is set.
 */
export function requirePebble(t: TestContext): boolean {
  const skip = pebbleSkip();
  if (skip === undefined) return true;
  t.skip(skip);
  return false;
}

export interface PebbleOptions {
  /** Port pebble validates HTTP-01 on (on 127.0.0.1, via the DNS responder): the gateway's plain port. */
  httpPort: number;
  /** Port pebble validates TLS-ALPN-01 on (default: a free port, i.e. nothing answers). */
  tlsPort?: number;
  /** Lifetime of issued certificates in seconds (pebble's default: 5 years). */
  certificateValidityPeriod?: number;
  /** A DNS responder's port; without it pebble gets its own `startDnsResponder()`. */
  dnsPort?: number;
  /** Where the config, certificates and keys go (default: a temp dir removed by `stop()`). */
  dir?: string;
  /** Extra environment for pebble, e.g. `{ PEBBLE_CHAIN_LENGTH: '2' }`. */
  env?: Record<string, string>;
  /** How long to wait for pebble to come up (default 15 s). */
  startTimeoutMs?: number;
}

export interface Pebble {
  /** `https://127.0.0.1:PORT/dir`. */
  readonly directoryUrl: string;
  /** `https://127.0.0.1:MGMT` (roots, intermediates, cert status). */
  readonly managementUrl: string;
  /** The CA that signed pebble's own HTTPS certificate (for `acme_ca_file`). */
  readonly caFile: string;
  readonly caPem: string;
  /** The root that signs issued certificates: what TLS clients must trust. Changes on `restart()`. */
  readonly issuerRootPem: string;
  /** `issuerRootPem` as a file in `dir`. */
  readonly issuerRootFile: string;
  readonly dir: string;
  /** The DNS responder pebble started itself (undefined when `dnsPort` was given). */
  readonly dns: DnsResponder | undefined;
  /** pebble's stdout and stderr so far, across restarts. */
  readonly logs: string;
  /** Orders created so far, across restarts (pebble logs "Added order ... to the db"). */
  orderCount(): number;
  /** Certificates issued so far, across restarts (pebble logs "Issued certificate serial ... for order ..."). */
  issuedCount(): number;
  /** Stops pebble (and its own DNS responder and temp dir). Safe to call twice. */
  stop(): Promise<void>;
  /** Stops and starts pebble on the same ports: all ACME state is gone and the issuing root is new. */
  restart(): Promise<void>;
  /** Stops the pebble process only (its ports refuse connections); `restart()` brings it back. */
  halt(): Promise<void>;
}

/* Every pebble still running (with its watchdog), killed when the test process exits, and temp dirs to remove. */
const running = new Map<ChildProcess, ChildProcess | undefined>();
const tempDirs = new Set<string>();
let exitHookInstalled = false;

function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.on('exit', () => {
    for (const [child, guard] of running) {
      guard?.stdin?.write('stop\n');
      child.kill('SIGKILL');
    }
    for (const dir of tempDirs) rmSync(dir, { recursive: true, force: true });
  });
}

/**
 * A shell that kills `pid` when our end of its stdin closes without "stop":
 * covers a test process killed by a signal, where no 'exit' handler runs.
 */
function watchdog(pid: number): ChildProcess {
  const guard = spawn('sh', ['-c', 'read -r line; [ "$line" = stop ] || kill -9 "$0" 2>/dev/null', String(pid)], {
    stdio: ['pipe', 'ignore', 'ignore'],
  });
  guard.on('error', () => {});
  guard.stdin?.on('error', () => {});
  guard.unref();
  (guard.stdin as unknown as { unref?: () => void }).unref?.();
  return guard;
}

function httpsGet(url: string, ca: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = https.get(url, { ca, agent: false, timeout: 2_000 }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => {
        body += chunk;
      });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error(`timeout: GET ${url}`)));
    req.on('error', reject);
  });
}

function countLines(text: string, pattern: RegExp): number {
  return text.split('\n').filter((line) => pattern.test(line)).length;
}

class PebbleServer implements Pebble {
  directoryUrl = '';
  managementUrl = '';
  caFile = '';
  caPem = '';
  issuerRootPem = '';
  issuerRootFile = '';
  dir = '';
  dns: DnsResponder | undefined;
  private output = '';
  private child: ChildProcess | undefined;
  private guard: ChildProcess | undefined;
  private exited: Promise<void> = Promise.resolve();
  private ownsDir = false;
  private stopped = false;
  private configFile = '';
  private dnsPort = 0;
  private listenPort = 0;
  private managementPort = 0;
  private tlsPort = 0;
  private certFile = '';
  private keyFile = '';

  constructor(
    private readonly binary: string,
    private readonly options: PebbleOptions,
  ) {}

  get logs(): string {
    return this.output;
  }

  orderCount(): number {
    return countLines(this.output, /Added order "?[^"\s]+"? to the db/);
  }

  issuedCount(): number {
    return countLines(this.output, /Issued certificate serial \S+ for order/);
  }

  async start(): Promise<void> {
    const { options } = this;
    this.ownsDir = options.dir === undefined;
    this.dir = options.dir ?? mkdtempSync(path.join(os.tmpdir(), 'nano-pebble-'));
    installExitHook();
    if (this.ownsDir) tempDirs.add(this.dir);
    try {
      if (options.dnsPort === undefined) this.dns = await startDnsResponder();
      this.dnsPort = options.dnsPort ?? this.dns!.port;
      const ca = makeCa(this.dir, 'Pebble HTTPS Test CA');
      const server = makeLeaf(ca, this.dir, { names: ['localhost', '127.0.0.1'], file: 'pebble-server' });
      this.caFile = ca.certFile;
      this.caPem = ca.certPem;
      this.certFile = server.certFile;
      this.keyFile = server.keyFile;
      this.tlsPort = options.tlsPort ?? (await freePort());
      this.configFile = path.join(this.dir, 'pebble-config.json');
      this.issuerRootFile = path.join(this.dir, 'pebble-issuer-root.pem');
      // Ports come free from the OS and are taken again by pebble a moment later:
      // if another process got one in between, try again with new ones.
      for (let attempt = 1; ; attempt++) {
        this.listenPort = await freePort();
        this.managementPort = await freePort();
        try {
          await this.launch();
          return;
        } catch (error) {
          if (attempt >= 3 || !/address already in use/.test(this.output)) throw error;
        }
      }
    } catch (error) {
      await this.stop();
      throw error;
    }
  }

  private writeConfig(): void {
    const pebble: Record<string, unknown> = {
      listenAddress: `127.0.0.1:${this.listenPort}`,
      managementListenAddress: `127.0.0.1:${this.managementPort}`,
      certificate: this.certFile,
      privateKey: this.keyFile,
      httpPort: this.options.httpPort,
      tlsPort: this.tlsPort,
      ocspResponderURL: '',
      externalAccountBindingRequired: false,
    };
    if (this.options.certificateValidityPeriod !== undefined) {
      pebble.certificateValidityPeriod = this.options.certificateValidityPeriod;
    }
    writeFileSync(this.configFile, `${JSON.stringify({ pebble }, null, 2)}\n`);
  }

  private async launch(): Promise<void> {
    this.writeConfig();
    const env: NodeJS.ProcessEnv = { ...process.env };
    // No proxies and no always-valid VA from the caller's environment.
    for (const name of ['HTTP_PROXY', 'HTTPS_PROXY', 'http_proxy', 'https_proxy', 'PEBBLE_VA_ALWAYS_VALID']) {
      delete env[name];
    }
    Object.assign(env, {
      PEBBLE_VA_NOSLEEP: '1', // validate at once, not after 0-15 s
      PEBBLE_WFE_NONCEREJECT: '0', // never reject a good nonce (default: 5 %)
      PEBBLE_AUTHZREUSE: '0', // every order gets fresh authorizations (default: reuse 50 %)
      PEBBLE_CHAIN_LENGTH: '1', // leaf + one intermediate
      PEBBLE_ALTERNATE_ROOTS: '0',
      ...this.options.env,
    });
    const child = spawn(this.binary, ['-config', this.configFile, '-dnsserver', `127.0.0.1:${this.dnsPort}`], {
      cwd: this.dir,
      env,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    this.child = child;
    installExitHook();
    running.set(child, undefined);
    let exitInfo: string | undefined;
    this.exited = new Promise<void>((resolve) => {
      child.once('exit', (code, signal) => {
        exitInfo = `code ${code} signal ${signal}`;
        running.delete(child);
        resolve();
      });
      child.once('error', (error) => {
        exitInfo = String(error);
        running.delete(child);
        resolve();
      });
    });
    for (const stream of [child.stdout, child.stderr]) {
      stream!.setEncoding('utf8');
      stream!.on('data', (chunk: string) => {
        this.output += chunk;
      });
      // A pebble nobody stopped must not keep the test process alive; the exit hook kills it.
      (stream as unknown as { unref?: () => void }).unref?.();
    }
    child.unref();
    if (child.pid !== undefined && running.has(child)) {
      this.guard = watchdog(child.pid);
      running.set(child, this.guard);
    }

    this.directoryUrl = `https://127.0.0.1:${this.listenPort}/dir`;
    this.managementUrl = `https://127.0.0.1:${this.managementPort}`;
    const failed = () => {
      if (exitInfo === undefined) return;
      throw new Error(`pebble exited (${exitInfo}) before it was up:\n${this.output}`);
    };
    const ok = (url: string) => async () => {
      failed();
      const reply = await httpsGet(url, this.caPem).catch(() => undefined);
      return reply?.status === 200 ? reply.body : undefined;
    };
    try {
      const timeout = this.options.startTimeoutMs ?? 15_000;
      await waitFor(ok(this.directoryUrl), `pebble's directory at ${this.directoryUrl}`, timeout);
      this.issuerRootPem = await waitFor(ok(`${this.managementUrl}/roots/0`), "pebble's issuing root", timeout);
    } catch (error) {
      await this.kill();
      if (exitInfo !== undefined) throw error; // the message has the logs already
      throw new Error(`${(error as Error).message}; pebble's output:\n${this.output}`);
    }
    writeFileSync(this.issuerRootFile, this.issuerRootPem);
  }

  /** Stops the pebble process only; SIGKILL when SIGTERM takes more than 5 s. */
  private async kill(): Promise<void> {
    const { child, guard } = this;
    this.child = undefined;
    this.guard = undefined;
    if (guard?.stdin?.writable) guard.stdin.end('stop\n');
    if (!child) return;
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 5_000);
      await this.exited;
      clearTimeout(timer);
    }
    running.delete(child);
  }

  async halt(): Promise<void> {
    await this.kill();
  }

  async restart(): Promise<void> {
    if (this.stopped) throw new Error('pebble was stopped');
    await this.kill();
    await this.launch();
  }

  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    await this.kill();
    await this.dns?.close();
    if (this.ownsDir) {
      rmSync(this.dir, { recursive: true, force: true });
      tempDirs.delete(this.dir);
    }
  }
}

/** Starts pebble and resolves once its directory and issuing root are served. */
export async function startPebble(options: PebbleOptions): Promise<Pebble> {
  const binary = pebbleBinary();
  if (!binary) throw new Error(PEBBLE_MISSING);
  const server = new PebbleServer(binary, options);
  await server.start();
  return server;
}
