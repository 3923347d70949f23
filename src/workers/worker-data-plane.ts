import cluster, { type Worker } from 'node:cluster';
import type { AddressInfo } from 'node:net';
import { fileURLToPath } from 'node:url';
import type { LevelWithSilent } from 'pino';
import type { ListenAddress } from '../addresses.js';
import type { CertificateSetData, DataPlaneSettings, ServingDataPlane, WorkerInfo } from '../dataplane/data-plane.js';
import { sumTraffic, type TrafficSnapshot } from '../dataplane/stats.js';
import type { Logger } from '../log.js';
import { RssProbe } from '../proc.js';
import type { RouteTableData } from '../routing/table.js';
import { RestartBackoff } from '../supervisor/backoff.js';
import type { BoundAddress, DataPlaneState, PrimaryMessage, WorkerListen, WorkerMessage } from './protocol.js';

/** Workers send their counters this often: `/admin/metrics` is at most this (plus a scrape) behind (README, Workers). */
export const WORKER_STATS_INTERVAL_MS = 1000;
/** A worker that has not acknowledged a change by then is stuck: the control plane goes on without it, and says so. */
const ACK_TIMEOUT_MS = 10_000;
/** A resume waits at most this long in all for held requests to go on one by one (README, Workers). */
const ORDERED_RELEASE_BUDGET_MS = 2000;
/** What a stopping worker gets on top of the drain before it is killed. */
const CLOSE_MARGIN_MS = 5000;

export interface WorkerDataPlaneOptions {
  count: number;
  logger: Logger;
  logLevel: LevelWithSilent;
  /** Where the workers' log lines go: the primary's stdout and ring (README, Logs). */
  writeLines(text: string): void;
  settings: DataPlaneSettings;
  keepAliveTimeoutMs?: number;
}

/** One worker process in its slot. */
class ProxyWorker {
  state: WorkerInfo['state'] = 'starting';
  /** The last `seq` it serves by; until its `init` none can be behind: it will get the latest whole. */
  acked = Number.MAX_SAFE_INTEGER;
  traffic: TrafficSnapshot = {};
  readonly startedAt = Date.now();
  readonly rss: RssProbe;
  readonly pending = new Map<number, (message: WorkerMessage | null) => void>();
  /** Settles once it listens (its `ready`), or with the reason it did not. */
  ready: Promise<WorkerMessage & { t: 'ready' }>;
  resolveReady!: (message: WorkerMessage & { t: 'ready' }) => void;
  rejectReady!: (err: Error) => void;

  constructor(
    readonly slot: number,
    readonly process: Worker,
  ) {
    this.rss = new RssProbe(process.process.pid ?? 0);
    this.ready = new Promise((resolve, reject) => {
      this.resolveReady = resolve;
      this.rejectReady = reject;
    });
    this.ready.catch(() => {});
  }

  get pid(): number {
    return this.process.process.pid ?? 0;
  }

  send(message: PrimaryMessage): boolean {
    if (!this.process.isConnected()) return false;
    this.process.send(message);
    return true;
  }
}

/** Apps a pause held in `before` that `after` serves: their held requests go on (README, Pause and maintenance). */
function resumedApps(before: RouteTableData, after: RouteTableData): Set<string> {
  const held = new Set(before.apps.filter((app) => app.mode === 'hold').map((app) => app.name));
  const resumed = new Set<string>();
  if (held.size === 0) return resumed;
  for (const app of after.apps) if (held.has(app.name) && (app.mode ?? 'serve') === 'serve') resumed.add(app.name);
  return resumed;
}

/** The error a failed listen in a worker becomes: what `net` would have thrown in this process. */
function listenError(message: string, code: string | null): Error {
  const err = new Error(message) as NodeJS.ErrnoException;
  if (code !== null) err.code = code;
  return err;
}

function addressInfo(bound: BoundAddress): AddressInfo {
  return { address: bound.address, port: bound.port, family: bound.family };
}

/**
 * The data plane as `workers = N` proxy processes (README, Workers), behind
 * the same interface as the one in this process. The primary keeps the
 * latest state and hands it whole to every worker it starts; every change
 * goes to every worker in order, and `settled` and `drain` wait for every
 * worker's answer, so no old child is drained while a worker may still
 * route to it. A worker that dies is replaced in its slot (after a backoff
 * when they keep dying); its counters so far are kept in the sums.
 */
export class WorkerDataPlane implements ServingDataPlane {
  private readonly log: Logger;
  private readonly state: DataPlaneState;
  private seq = 0;
  private nextId = 0;
  private listenAt: WorkerListen | null = null;
  private readonly slots: Array<ProxyWorker | null>;
  private readonly backoffs: RestartBackoff[];
  private readonly restarts: number[];
  /** Counters of workers that are gone, so the sums never go back. */
  private retired: TrafficSnapshot = {};
  private waiters: Array<{ seq: number; resolve: () => void }> = [];
  private wake: ((app: string) => void) | null = null;
  private closing = false;
  private engine = 'undici';
  /** Changes held back while held requests go on in arrival order (a resume), sent once they have. */
  private deferred: PrimaryMessage[] | null = null;

  constructor(private readonly options: WorkerDataPlaneOptions) {
    this.log = options.logger;
    this.state = {
      table: { version: 0, apps: [], defaultApp: null },
      settings: options.settings,
      certificates: { version: 0, certificates: [], defaultName: null },
      challenges: {},
    };
    this.slots = new Array<ProxyWorker | null>(options.count).fill(null);
    this.backoffs = this.slots.map(() => new RestartBackoff());
    this.restarts = this.slots.map(() => 0);
    // The worker's entry beside this module: `.ts` under tsx (tests), `.js` when built.
    const self = fileURLToPath(import.meta.url);
    cluster.setupPrimary({
      exec: self.replace(/worker-data-plane\.(ts|js)$/, 'worker-main.$1'),
      args: [],
      // Structured clone: log batches and tables cross without a JSON round trip.
      serialization: 'advanced',
    });
  }

  get engineName(): string {
    return this.engine;
  }

  async listen(address: ListenAddress): Promise<AddressInfo> {
    this.listenAt = { http: address, https: null };
    const started = this.slots.map((_, slot) => this.fork(slot));
    try {
      const ready = await Promise.all(started.map((w) => w.ready));
      const first = ready[0] as WorkerMessage & { t: 'ready' };
      this.engine = first.engine;
      this.log.info(
        { workers: ready.length, pids: started.map((w) => w.pid) },
        `${ready.length} proxy workers listening`,
      );
      return addressInfo(first.http);
    } catch (err) {
      this.kill();
      throw err;
    }
  }

  async listenTls(address: ListenAddress): Promise<AddressInfo> {
    if (this.listenAt) this.listenAt.https = address;
    const answers = await Promise.all(
      this.live().map((w) => this.request(w, (id) => ({ t: 'listen-tls', id, address }))),
    );
    let first: AddressInfo | null = null;
    for (const answer of answers) {
      if (answer === null || answer.t !== 'listen-tls-done') continue;
      if (answer.bound === null) throw listenError(answer.message ?? 'listen failed', answer.code);
      first ??= addressInfo(answer.bound);
    }
    if (first === null) throw new Error('no proxy worker is running to listen for HTTPS');
    return first;
  }

  publish(table: RouteTableData): void {
    const resumed = resumedApps(this.state.table, table);
    this.state.table = table;
    // Each worker holds its own share of a paused app's requests: sent on by each at once they
    // would reach the app interleaved. In arrival order across workers first, then the table.
    if (resumed.size > 0 && this.live().length > 1 && this.deferred === null)
      this.deferWhile(this.sendHeldInOrder(resumed));
    this.broadcast((seq) => ({ t: 'table', seq, table }));
  }

  configure(settings: DataPlaneSettings): void {
    this.state.settings = settings;
    this.broadcast((seq) => ({ t: 'settings', seq, settings }));
  }

  publishCertificates(certificates: CertificateSetData): void {
    this.state.certificates = certificates;
    this.broadcast((seq) => ({ t: 'certificates', seq, certificates }));
  }

  publishChallenges(challenges: Readonly<Record<string, string>>): void {
    this.state.challenges = challenges;
    this.broadcast((seq) => ({ t: 'challenges', seq, challenges }));
  }

  onWake(listener: (app: string) => void): void {
    this.wake = listener;
  }

  settled(): Promise<void> {
    const seq = this.seq;
    if (this.allAcked(seq)) return Promise.resolve();
    return new Promise<void>((resolve) => {
      const timer = setTimeout(() => {
        const behind = this.live().filter((w) => w.acked < seq);
        this.log.warn(
          { workers: behind.map((w) => w.slot + 1), pids: behind.map((w) => w.pid) },
          `proxy worker${behind.length === 1 ? '' : 's'} ${behind.map((w) => w.slot + 1).join(', ')} did not take the new table within ${ACK_TIMEOUT_MS} ms: going on without`,
        );
        resolve();
      }, ACK_TIMEOUT_MS);
      timer.unref();
      this.waiters.push({
        seq,
        resolve: () => {
          clearTimeout(timer);
          resolve();
        },
      });
    });
  }

  async drain(upstreamIds: readonly string[], timeoutMs: number): Promise<void> {
    if (upstreamIds.length === 0) return;
    // Every worker routes by the table without these upstreams before any is drained (README, Workers).
    await this.settled();
    await Promise.all(
      this.live().map((w) => this.request(w, (id) => ({ t: 'drain', id, upstreams: upstreamIds, timeoutMs }))),
    );
  }

  forget(upstreamIds: readonly string[]): void {
    this.sendAll({ t: 'forget', upstreams: upstreamIds });
  }

  stats(): TrafficSnapshot {
    return sumTraffic([this.retired, ...this.live().map((w) => w.traffic)]);
  }

  workers(): WorkerInfo[] {
    return this.live().map((w) => ({
      id: w.slot + 1,
      pid: w.pid,
      state: w.state,
      startedAt: w.startedAt,
      requests: Object.values(w.traffic).reduce((sum, app) => sum + app.requests, 0),
      rssBytes: w.rss.read(),
      restarts: this.restarts[w.slot] ?? 0,
    }));
  }

  async close(timeoutMs: number): Promise<void> {
    this.closing = true;
    await Promise.all(
      this.live().map(
        (w) =>
          new Promise<void>((resolve) => {
            w.state = 'stopping';
            const kill = setTimeout(() => w.process.process.kill('SIGKILL'), timeoutMs + CLOSE_MARGIN_MS);
            w.process.once('exit', () => {
              clearTimeout(kill);
              resolve();
            });
            if (!w.send({ t: 'close', timeoutMs })) w.process.process.kill('SIGKILL');
          }),
      ),
    );
  }

  kill(): void {
    this.closing = true;
    for (const w of this.live()) w.process.process.kill('SIGKILL');
  }

  private live(): ProxyWorker[] {
    return this.slots.filter((w): w is ProxyWorker => w !== null);
  }

  private allAcked(seq: number): boolean {
    return this.live().every((w) => w.acked >= seq);
  }

  private broadcast(message: (seq: number) => PrimaryMessage): void {
    this.sendAll(message(++this.seq));
  }

  /** To every worker, in order after what is held back. */
  private sendAll(message: PrimaryMessage): void {
    if (this.deferred !== null) this.deferred.push(message);
    else for (const w of this.live()) w.send(message);
  }

  /** Holds back every change until `task` ends, then sends them in order: `settled` waits for them. */
  private deferWhile(task: Promise<void>): void {
    this.deferred = [];
    void task
      .catch((err: unknown) =>
        this.log.warn({ err: (err as Error).message }, 'held requests not sent in arrival order'),
      )
      .finally(() => {
        const queued = this.deferred ?? [];
        this.deferred = null;
        for (const message of queued) for (const w of this.live()) w.send(message);
      });
  }

  /**
   * Resume with workers (README, Workers): every worker says which requests
   * it holds for the apps and when each came (the shared monotonic clock);
   * they are sent on in that order, a run of one worker's in one message.
   * Requests that come meanwhile are still held, and go after these.
   */
  private async sendHeldInOrder(apps: ReadonlySet<string>): Promise<void> {
    const workers = this.live();
    const answers = await Promise.all(
      workers.map((w) => this.request(w, (id) => ({ t: 'held', id, apps: [...apps] }))),
    );
    const held: Array<{ w: ProxyWorker; key: number; at: bigint }> = [];
    answers.forEach((answer, i) => {
      if (answer?.t !== 'held-list') return;
      for (const h of answer.held) held.push({ w: workers[i] as ProxyWorker, key: h.key, at: h.at });
    });
    held.sort((a, b) => (a.at < b.at ? -1 : a.at > b.at ? 1 : 0));
    // Waiting for each answer's start is bounded: past this, the rest go without waiting.
    const deadline = Date.now() + ORDERED_RELEASE_BUDGET_MS;
    // Consecutive requests of one worker go in one message.
    const runs: Array<{ w: ProxyWorker; keys: number[] }> = [];
    for (const { w, key } of held) {
      const last = runs.at(-1);
      if (last?.w === w) last.keys.push(key);
      else runs.push({ w, keys: [key] });
    }
    for (const { w, keys } of runs) {
      const budgetMs = Math.max(0, deadline - Date.now());
      await this.request(w, (id) => ({ t: 'send-held', id, keys, budgetMs }));
    }
  }

  /** Sends a message that gets one answer (by `id`); null when the worker died first. */
  private request(w: ProxyWorker, message: (id: number) => PrimaryMessage): Promise<WorkerMessage | null> {
    const id = ++this.nextId;
    return new Promise((resolve) => {
      w.pending.set(id, resolve);
      if (!w.send(message(id))) {
        w.pending.delete(id);
        resolve(null);
      }
    });
  }

  private settle(): void {
    if (this.waiters.length === 0) return;
    const waiting = this.waiters;
    this.waiters = [];
    for (const waiter of waiting) {
      if (this.allAcked(waiter.seq)) waiter.resolve();
      else this.waiters.push(waiter);
    }
  }

  private fork(slot: number): ProxyWorker {
    const w = new ProxyWorker(slot, cluster.fork());
    this.slots[slot] = w;
    // A worker gone before its channel opened would otherwise raise an unhandled 'error'.
    w.process.on('error', (err) => this.log.warn({ worker: slot + 1, err: err.message }, 'proxy worker IPC error'));
    w.process.on('message', (message: WorkerMessage) => this.onMessage(w, message));
    w.process.once('exit', (code, signal) => this.onExit(w, code, signal));
    return w;
  }

  /** The whole state, to a worker that listens for messages: it serves by it before it accepts. */
  private init(w: ProxyWorker): void {
    // It listens only once it serves by this, so nothing routes by an older state.
    w.acked = this.seq;
    w.send({
      t: 'init',
      seq: this.seq,
      worker: w.slot + 1,
      logLevel: this.options.logLevel,
      state: this.state,
      listen: this.listenAt as WorkerListen,
      statsIntervalMs: WORKER_STATS_INTERVAL_MS,
      keepAliveTimeoutMs: this.options.keepAliveTimeoutMs ?? null,
    });
  }

  private onMessage(w: ProxyWorker, message: WorkerMessage): void {
    switch (message.t) {
      case 'hello':
        // A replacement that comes up while the gateway stops: it never served, so it goes at once.
        if (this.closing) w.send({ t: 'close', timeoutMs: 0 });
        else this.init(w);
        return;
      case 'log':
        this.options.writeLines(message.text);
        return;
      case 'stats':
        w.traffic = message.traffic;
        return;
      case 'ack':
        if (message.seq > w.acked) w.acked = message.seq;
        this.settle();
        return;
      case 'wake':
        this.wake?.(message.app);
        return;
      case 'ready':
        w.state = 'ready';
        w.resolveReady(message);
        return;
      case 'listen-failed':
        w.rejectReady(listenError(message.message, message.code));
        return;
      case 'closed':
        w.traffic = message.traffic;
        return;
      case 'listen-tls-done':
      case 'drained':
      case 'held-list':
      case 'sent-held': {
        const answer = w.pending.get(message.id);
        w.pending.delete(message.id);
        answer?.(message);
        return;
      }
    }
  }

  private onExit(w: ProxyWorker, code: number | null, signal: string | null): void {
    w.rss.close();
    if (this.slots[w.slot] === w) this.slots[w.slot] = null;
    // Its counters stay in the sums; its open requests are gone with it.
    this.retired = sumTraffic([this.retired, w.traffic], { active: false });
    for (const answer of w.pending.values()) answer(null);
    w.pending.clear();
    w.rejectReady(new Error(`proxy worker exited (${signal ?? `code ${code}`}) before it listened`));
    this.settle();
    if (this.closing) return;
    const uptimeMs = Date.now() - w.startedAt;
    const delay = this.backoffs[w.slot]?.next(uptimeMs) ?? 0;
    this.restarts[w.slot] = (this.restarts[w.slot] ?? 0) + 1;
    this.log.warn(
      { worker: w.slot + 1, pid: w.pid, code, signal, restart_in_ms: delay },
      `proxy worker ${w.slot + 1} (pid ${w.pid}) exited (${signal ?? `code ${code}`}): replacing it`,
    );
    setTimeout(() => {
      if (this.closing || this.slots[w.slot] !== null) return;
      const next = this.fork(w.slot);
      next.ready.then(
        () =>
          this.log.info({ worker: w.slot + 1, pid: next.pid }, `proxy worker ${w.slot + 1} replaced (pid ${next.pid})`),
        (err: unknown) => {
          // Stopped by a shutdown before it listened: nothing went wrong.
          if (this.closing) return;
          this.log.error(
            { worker: w.slot + 1, err: (err as Error).message },
            `proxy worker ${w.slot + 1} did not start`,
          );
        },
      );
    }, delay).unref();
  }
}
