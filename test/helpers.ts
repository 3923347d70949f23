/**
 * Test harness: runs the real CLI (`dist/cli/main.js`) as a child process
 * on loopback ports chosen by the OS, and talks to it over real sockets.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const ROOT = fileURLToPath(new URL('..', import.meta.url));
export const CLI = path.join(ROOT, 'dist', 'cli', 'main.js');
export const FIXTURE_APP = path.join(ROOT, 'test', 'fixtures', 'app.mjs');

export interface LogLine {
  level: number;
  msg?: string;
  [key: string]: unknown;
}

/** A temporary directory removed by `cleanup()`. */
export function tempDir(prefix = 'nano-test-'): string {
  return mkdtempSync(path.join(os.tmpdir(), prefix));
}

export function writeFiles(dir: string, files: Record<string, string>): void {
  for (const [name, text] of Object.entries(files)) {
    const file = path.join(dir, name);
    mkdirSync(path.dirname(file), { recursive: true });
    writeFileSync(file, text);
  }
}

/**
 * A TOML table for one app running the fixture, with extra raw TOML lines.
 * `health_path` and `ready_timeout_ms` get test defaults unless `extra` sets them.
 */
export function fixtureApp(name: string, hosts: string[], extra = ''): string {
  const defaults = [
    /^health_path\s*=/m.test(extra) ? '' : 'health_path = "/health"',
    /^ready_timeout_ms\s*=/m.test(extra) ? '' : 'ready_timeout_ms = 8000',
  ].filter(Boolean);
  return `[apps.${name}]
hosts = ${JSON.stringify(hosts)}
entry = ${JSON.stringify(FIXTURE_APP)}
${defaults.join('\n')}
${extra}
`;
}

/** A gateway section that listens on an OS-chosen port and keeps the admin API off the shared 8081. */
export function gatewaySection(extra = ''): string {
  return `[gateway]
listen = "127.0.0.1:0"
${extra}

[admin]
listen = false
`;
}

/** Like gatewaySection, but with the admin API on an OS-chosen loopback port; `admin` adds lines to [admin]. */
export function adminGatewaySection(extra = '', admin = ''): string {
  return `[gateway]
listen = "127.0.0.1:0"
${extra}

[admin]
listen = "127.0.0.1:0"
${admin}
`;
}

export async function waitFor<T>(
  check: () => T | undefined | false | Promise<T | undefined | false>,
  what: string,
  timeoutMs = 10_000,
  intervalMs = 25,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value !== undefined && value !== false) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}

export interface StartOptions {
  /** nano.toml text. */
  config: string;
  /** Extra files in the config's directory. */
  files?: Record<string, string>;
  args?: string[];
  env?: Record<string, string>;
  /** Wait until these apps log "instance ready" this many times each (default: every app once). */
  readyApps?: Record<string, number>;
}

/** A running gateway process. */
export class GatewayProcess {
  readonly logs: LogLine[] = [];
  stderr = '';
  port = 0;
  exit: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  private exited: { code: number | null; signal: NodeJS.Signals | null } | null = null;
  private partial = '';

  private constructor(
    readonly proc: ChildProcess,
    readonly dir: string,
    readonly configFile: string,
  ) {
    proc.stdout?.setEncoding('utf8');
    proc.stdout?.on('data', (chunk: string) => {
      this.partial += chunk;
      for (let nl = this.partial.indexOf('\n'); nl !== -1; nl = this.partial.indexOf('\n')) {
        const line = this.partial.slice(0, nl);
        this.partial = this.partial.slice(nl + 1);
        try {
          this.logs.push(JSON.parse(line) as LogLine);
        } catch {
          this.logs.push({ level: 0, msg: line, raw: true });
        }
      }
    });
    proc.stderr?.setEncoding('utf8');
    proc.stderr?.on('data', (chunk: string) => (this.stderr += chunk));
    this.exit = new Promise((resolve) =>
      proc.once('exit', (code, signal) => {
        this.exited = { code, signal };
        resolve(this.exited);
      }),
    );
  }

  static async start(options: StartOptions): Promise<GatewayProcess> {
    const dir = tempDir();
    writeFiles(dir, { 'nano.toml': options.config, ...options.files });
    return GatewayProcess.startIn(dir, options);
  }

  /**
   * Starts a gateway on the nano.toml already in `dir` (e.g. one left by a
   * gateway that has stopped). `cleanup()` removes `dir`.
   */
  static async startIn(
    dir: string,
    options: Omit<StartOptions, 'config' | 'files'> & { config?: string } = {},
  ): Promise<GatewayProcess> {
    const configFile = path.join(dir, 'nano.toml');
    const config = options.config ?? readFileSync(configFile, 'utf8');
    const proc = spawn(process.execPath, [CLI, 'start', '-c', configFile, '--json', ...(options.args ?? [])], {
      cwd: dir,
      env: { ...process.env, ...options.env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const gw = new GatewayProcess(proc, dir, configFile);
    try {
      const listening = await gw.waitForLog((l) => l.msg?.startsWith('listening on') === true, 10_000);
      gw.port = Number(new URL(String(listening.address)).port);
      const ready = options.readyApps ?? Object.fromEntries(appNames(config).map((n) => [n, 1]));
      for (const [app, count] of Object.entries(ready)) {
        await waitFor(() => gw.readyLogs(app).length >= count || undefined, `${app} ready x${count}`, 15_000);
      }
    } catch (err) {
      await gw.kill();
      throw new Error(
        `${(err as Error).message}\nstderr: ${gw.stderr}\nlogs:\n${gw.logs.map((l) => JSON.stringify(l)).join('\n')}`,
      );
    }
    return gw;
  }

  /** The admin API's port, from the "admin API listening on" log line (needs `[admin] listen` set). */
  async adminPort(timeoutMs = 10_000): Promise<number> {
    const line = await this.waitForLog((l) => l.msg?.startsWith('admin API listening on') === true, timeoutMs);
    return Number(new URL(String(line.admin)).port);
  }

  /**
   * The HTTPS listener's port (needs a `[tls]` table), from the line
   * `listening on https://HOST:PORT (HTTP/2 and HTTP/1.1)` and its `address` field.
   */
  async httpsPort(timeoutMs = 10_000): Promise<number> {
    const line = await this.waitForLog((l) => l.msg?.startsWith('listening on https://') === true, timeoutMs);
    return Number(new URL(String(line.address)).port);
  }

  get running(): boolean {
    return this.exited === null;
  }

  get pid(): number {
    return this.proc.pid ?? 0;
  }

  readyLogs(app: string): LogLine[] {
    return this.logs.filter((l) => l.msg === 'instance ready' && l.app === app);
  }

  /** Pids of the app's children that became ready, in order. */
  readyPids(app: string): number[] {
    return this.readyLogs(app).map((l) => Number(l.pid));
  }

  waitForLog(match: (line: LogLine) => boolean, timeoutMs = 10_000, from = 0): Promise<LogLine> {
    return waitFor(
      () => {
        if (this.exited && !this.logs.slice(from).some(match)) {
          throw new Error(`gateway exited (${JSON.stringify(this.exited)}) stderr: ${this.stderr}`);
        }
        return this.logs.slice(from).find(match);
      },
      'a matching log line',
      timeoutMs,
    );
  }

  request(options: RequestOptions): Promise<Reply> {
    return request(this.port, options);
  }

  async stop(
    signal: NodeJS.Signals = 'SIGTERM',
    timeoutMs = 15_000,
  ): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
    if (this.running) this.proc.kill(signal);
    const result = await Promise.race([this.exit, new Promise<null>((r) => setTimeout(() => r(null), timeoutMs))]);
    if (result === null) {
      await this.kill();
      throw new Error(`gateway did not exit within ${timeoutMs} ms after ${signal}`);
    }
    return result;
  }

  /** Hard stop for cleanup: SIGKILL the gateway (its children exit through the IPC watch). */
  async kill(): Promise<void> {
    if (this.running) {
      this.proc.kill('SIGKILL');
      await this.exit;
    }
  }

  async cleanup(): Promise<void> {
    await this.kill();
    rmSync(this.dir, { recursive: true, force: true });
  }

  readConfig(): string {
    return readFileSync(this.configFile, 'utf8');
  }

  /** Rewrites nano.toml, in place or the way many editors save (temporary file, then rename). */
  writeConfig(text: string, how: 'in-place' | 'rename' = 'rename'): void {
    if (how === 'in-place') {
      writeFileSync(this.configFile, text);
      return;
    }
    const tmp = `${this.configFile}.${process.pid}.tmp`;
    writeFileSync(tmp, text);
    renameSync(tmp, this.configFile);
  }

  /** Reloads that ended: finished (applied) or rejected (invalid config). */
  reloadsEnded(): LogLine[] {
    return this.logs.filter(
      (l) => String(l.msg).startsWith('reload finished') || String(l.msg).startsWith('reload rejected'),
    );
  }

  /** Waits until `count` reloads have ended in total; returns the last one. */
  async waitForReloads(count: number, timeoutMs = 20_000): Promise<LogLine> {
    await waitFor(() => this.reloadsEnded().length >= count || undefined, `${count} reloads to end`, timeoutMs);
    return this.reloadsEnded()[count - 1] as LogLine;
  }

  /** Open file descriptors of the gateway process. */
  openFds(): number {
    return readdirSync(`/proc/${this.pid}/fd`).length;
  }
}

function appNames(config: string): string[] {
  return [...config.matchAll(/^\[apps\.([a-z0-9_-]+)\]/gm)].map((m) => m[1] as string);
}

export interface RequestOptions {
  host?: string;
  path?: string;
  method?: string;
  headers?: Record<string, string | string[]>;
  body?: string | Buffer;
  agent?: http.Agent | false;
  timeoutMs?: number;
}

export interface Reply {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: string;
  raw: Buffer;
}

export function request(port: number, options: RequestOptions = {}): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const headers: Record<string, string | string[]> = { ...options.headers };
    if (options.host !== undefined) headers.host = options.host;
    const req = http.request(
      {
        host: '127.0.0.1',
        port,
        path: options.path ?? '/',
        method: options.method ?? 'GET',
        headers,
        agent: options.agent ?? false,
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          const raw = Buffer.concat(chunks);
          resolve({ status: res.statusCode ?? 0, headers: res.headers, body: raw.toString('utf8'), raw });
        });
        res.on('error', reject);
      },
    );
    req.setTimeout(options.timeoutMs ?? 15_000, () => req.destroy(new Error('client timeout')));
    req.on('error', reject);
    req.end(options.body);
  });
}

/** Sends raw bytes and returns everything the server sends until it closes (or `timeoutMs`). */
export function rawRequest(port: number, text: string | Buffer, timeoutMs = 5_000): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, '127.0.0.1', () => socket.write(text));
    let data = '';
    socket.setEncoding('utf8');
    socket.on('data', (d: string) => (data += d));
    socket.on('close', () => {
      clearTimeout(timer);
      resolve(data);
    });
    socket.on('error', (err) => (data ? resolve(data) : reject(err)));
    const timer = setTimeout(() => {
      socket.destroy();
      resolve(data);
    }, timeoutMs);
  });
}

/** Status code of a raw HTTP response text. */
export function statusOf(raw: string): number {
  const m = /^HTTP\/1\.[01] (\d{3})/.exec(raw);
  return m ? Number(m[1]) : 0;
}

/** True while a process exists and is not a zombie (a zombie has exited; only its parent has not reaped it). */
export function processAlive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const state = stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
    return state !== 'Z' && state !== 'X';
  } catch {
    return false;
  }
}

/** Direct children of a process, from /proc. */
export function childPidsOf(pid: number): number[] {
  const out: number[] = [];
  let entries: string[] = [];
  try {
    entries = readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean);
  } catch {
    return out;
  }
  for (const e of entries) {
    const child = Number(e);
    if (processAlive(child)) out.push(child);
  }
  return out;
}

export interface RunResult {
  code: number | null;
  stdout: string;
  stderr: string;
  /** The process was still running after `timeoutMs` and was killed. */
  timedOut: boolean;
}

/** Runs a Node script to completion, killing it (timedOut) if it outlives `timeoutMs`. */
export function runNode(
  script: string,
  args: string[],
  options: { cwd?: string; env?: Record<string, string>; timeoutMs?: number } = {},
): Promise<RunResult> {
  return new Promise((resolve) => {
    const proc = spawn(process.execPath, [script, ...args], {
      cwd: options.cwd ?? ROOT,
      env: { ...process.env, ...options.env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    let timedOut = false;
    proc.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    proc.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    const timer = setTimeout(() => {
      timedOut = true;
      proc.kill('SIGKILL');
    }, options.timeoutMs ?? 60_000);
    proc.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr, timedOut });
    });
  });
}

/** Runs the CLI to completion (for check/init/--help). */
export function runCli(
  args: string[],
  options: { cwd?: string; env?: Record<string, string>; timeoutMs?: number } = {},
): Promise<RunResult> {
  return runNode(CLI, args, options);
}

/** A loopback port that the OS just handed out and that is free again. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as net.AddressInfo;
      server.close(() => resolve(port));
    });
  });
}

/** Whether something accepts TCP connections on 127.0.0.1:port. */
export function canConnect(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect(port, '127.0.0.1');
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

export interface AdminReply extends Reply {
  /** The body parsed as JSON (undefined when it is not JSON). */
  json: any;
}

/** One admin API call on 127.0.0.1:port; a `body` that is not a string or Buffer is sent as JSON. */
export async function adminCall(
  port: number,
  method: string,
  urlPath: string,
  options: { body?: unknown; token?: string; headers?: Record<string, string>; timeoutMs?: number } = {},
): Promise<AdminReply> {
  const headers: Record<string, string> = { ...options.headers };
  if (options.token !== undefined) headers.authorization = `Bearer ${options.token}`;
  let body: string | Buffer | undefined;
  if (typeof options.body === 'string' || Buffer.isBuffer(options.body)) body = options.body;
  else if (options.body !== undefined) {
    body = JSON.stringify(options.body);
    headers['content-type'] = 'application/json';
  }
  // Explicit, so that a body is framed whatever the method (Node sends GET/DELETE bodies unframed).
  if (body !== undefined) headers['content-length'] = String(Buffer.byteLength(body));
  const res = await request(port, {
    method,
    path: urlPath,
    headers,
    ...(body !== undefined ? { body } : {}),
    timeoutMs: options.timeoutMs ?? 30_000,
  });
  let json: unknown;
  try {
    json = JSON.parse(res.body);
  } catch {
    json = undefined;
  }
  return { ...res, json };
}

/** The fixture's `GET /version` answer: `VERSION pid`. */
export function versionOf(body: string): { version: string; pid: number } {
  const [version = '', pid = '0'] = body.trim().split(' ');
  return { version, pid: Number(pid) };
}

export interface LoadResult {
  total: number;
  errors: string[];
  non2xx: string[];
  versions: Map<string, Set<string>>;
}

/**
 * Keep-alive load from `clients` concurrent clients until `stop()`; bounded by the caller, loopback only.
 * Every fourth request is a POST /hash with a body (never retried by the gateway); the others GET /version.
 */
export async function loadUntil(
  port: number,
  hosts: string[],
  clients: number,
  stop: () => boolean,
): Promise<LoadResult> {
  const agent = new http.Agent({ keepAlive: true, maxSockets: clients });
  const result: LoadResult = { total: 0, errors: [], non2xx: [], versions: new Map(hosts.map((h) => [h, new Set()])) };
  const worker = async (i: number): Promise<void> => {
    const host = hosts[i % hosts.length] as string;
    for (let n = 0; !stop(); n++) {
      const post = n % 4 === 3;
      result.total++;
      try {
        const res = await request(port, {
          host,
          agent,
          method: post ? 'POST' : 'GET',
          path: post ? '/hash' : '/version',
          ...(post ? { body: `payload ${i} ${n}` } : {}),
        });
        if (res.status !== 200) result.non2xx.push(`${res.status} ${res.body.trim()}`);
        else if (!post) result.versions.get(host)?.add(versionOf(res.body).version);
      } catch (err) {
        result.errors.push(`${host} ${post ? 'POST' : 'GET'}: ${(err as Error).message}`);
      }
    }
  };
  try {
    await Promise.all(Array.from({ length: clients }, (_, i) => worker(i)));
  } finally {
    agent.destroy();
  }
  return result;
}
