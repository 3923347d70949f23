import { createInterface } from 'node:readline';
import type { Readable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { execa, type ResultPromise } from 'execa';
import type { AppConfig } from '../config/schema.js';
import type { Logger } from '../log.js';
import { RssProbe } from '../proc.js';

const PARENT_WATCH_PRELOAD = fileURLToPath(new URL('./parent-watch.cjs', import.meta.url));

/**
 * starting → ready → draining → stopping → exited; `failed` marks a start
 * that never became ready (it is being killed, not drained).
 */
export type ChildState = 'starting' | 'ready' | 'draining' | 'stopping' | 'failed' | 'exited';

export interface ChildExit {
  /** What the gateway thought the child was doing when it exited: tells a crash from a stop. */
  stateAtExit: ChildState;
  code: number | null;
  signal: string | null;
  /** How long the process ran, in ms. */
  uptimeMs: number;
}

export interface ChildSpec {
  /** Unique for the gateway's lifetime; also the upstream id in the route table. */
  id: string;
  app: AppConfig;
  port: number;
}

/** The argv after `node`: memory cap, our preload, the app's node flags, entry, args (README, How apps are run). */
export function childArgv(app: AppConfig): string[] {
  return [
    `--max-old-space-size=${app.maxMemoryMb}`,
    '--require',
    PARENT_WATCH_PRELOAD,
    ...app.nodeArgs,
    app.entry,
    ...app.args,
  ];
}

/** The gateway's environment, then the app's, then what the gateway decides (README, How apps are run). */
export function childEnv(app: AppConfig, port: number, base: NodeJS.ProcessEnv = process.env): Record<string, string> {
  const env: Record<string, string> = {};
  for (const [key, value] of Object.entries(base)) if (value !== undefined) env[key] = value;
  Object.assign(env, app.env);
  env.PORT = String(port);
  env.HOST = '127.0.0.1';
  env.NANO_APP = app.name;
  return env;
}

/**
 * One child process of an app: a direct child of the gateway (no wrapper),
 * with its output turned into log lines and an IPC channel whose closing
 * tells it the gateway is gone.
 */
export class AppChild {
  readonly id: string;
  readonly port: number;
  readonly pid: number | undefined;
  readonly startedAt = Date.now();
  state: ChildState = 'starting';
  /** Settles once, when the process has exited (or failed to spawn). */
  readonly exited: Promise<ChildExit>;
  exitInfo: ChildExit | null = null;
  private readonly process: ResultPromise;
  private readonly rssProbe: RssProbe | null;

  constructor(spec: ChildSpec, logger: Logger) {
    this.id = spec.id;
    this.port = spec.port;
    this.process = execa(process.execPath, childArgv(spec.app), {
      cwd: spec.app.cwd,
      env: childEnv(spec.app, spec.port),
      extendEnv: false,
      stdin: 'ignore',
      buffer: false,
      reject: false,
      ipc: true,
      // Own process group: a Ctrl-C in the gateway's terminal reaches the
      // gateway only, which then drains and stops children in order.
      detached: true,
      forceKillAfterDelay: spec.app.killTimeoutMs > 0 ? spec.app.killTimeoutMs : 1,
    });
    this.pid = this.process.pid;
    this.rssProbe = this.pid === undefined ? null : new RssProbe(this.pid);
    const bindings = { app: spec.app.name, pid: this.pid };
    if (this.process.stdout) forwardLines(this.process.stdout, logger, { ...bindings, stream: 'stdout' }, 'info');
    if (this.process.stderr) forwardLines(this.process.stderr, logger, { ...bindings, stream: 'stderr' }, 'warn');
    this.exited = this.process.then(
      (result) => this.recordExit(result.exitCode ?? null, result.signal ?? null),
      () => this.recordExit(null, null),
    );
  }

  private recordExit(code: number | null, signal: string | null): ChildExit {
    this.exitInfo = { stateAtExit: this.state, code, signal, uptimeMs: Date.now() - this.startedAt };
    this.state = 'exited';
    this.rssProbe?.close();
    return this.exitInfo;
  }

  /** Resident memory in bytes now; 0 once it has exited or where /proc cannot tell. */
  rssBytes(): number {
    return this.exitInfo === null && this.rssProbe !== null ? this.rssProbe.read() : 0;
  }

  get alive(): boolean {
    return this.exitInfo === null;
  }

  /** SIGTERM, then SIGKILL after the app's kill_timeout_ms; resolves once it has exited. */
  stop(): Promise<ChildExit> {
    if (this.state !== 'exited' && this.state !== 'failed') this.state = 'stopping';
    if (this.alive) this.process.kill('SIGTERM');
    return this.exited;
  }

  /** Immediate SIGKILL, for a child that must not linger (e.g. the gateway is exiting). */
  kill(): void {
    if (this.alive) this.process.kill('SIGKILL');
  }
}

function forwardLines(
  stream: Readable,
  logger: Logger,
  bindings: { app: string; pid: number | undefined; stream: string },
  level: 'info' | 'warn',
): void {
  const lines = createInterface({ input: stream, crlfDelay: Infinity });
  lines.on('line', (line) => logger[level](bindings, line));
  // A child's stream can error when it is killed mid-write; its exit is reported elsewhere.
  stream.on('error', () => {});
}

export function describeExit(exit: ChildExit): string {
  if (exit.signal) return `killed by ${exit.signal}`;
  if (exit.code === null) return 'could not be started';
  return `exited with code ${exit.code}`;
}
