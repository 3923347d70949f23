import type { TrafficSnapshot } from '../dataplane/stats.js';
import type { Logger } from '../log.js';
import { RestartBackoff } from '../supervisor/backoff.js';
import type { AppSet } from './app-set.js';
import type { Drainer } from './drainer.js';
import type { OperationQueue } from './operation-queue.js';

/** How often apps are checked for idleness (README, Scale to zero). */
export const IDLE_CHECK_MS = 1000;

export interface IdleControllerOptions {
  apps: AppSet;
  ops: OperationQueue;
  drainer: Drainer;
  /** The data plane's counters: `active` and `lastActiveAt` per app. */
  traffic(): TrafficSnapshot;
  /** Publishes the app set's route table. */
  publish(): void;
  logger: Logger;
  now?: () => number;
}

/**
 * Scale to zero (README, Scale to zero). An app with `idle_timeout_ms` that
 * has had no request in flight, and no open WebSocket, for that long has its
 * children stopped: the table marks it idle, so the next request waits in
 * its queue and asks (through the data plane's wake signal) for a start.
 * Sleeping and waking go through the operation queue, so neither
 * interleaves with a reload or an admin edit.
 */
export class IdleController {
  private timer: NodeJS.Timeout | null = null;
  /** When each app was last started or woken: a quiet app is idle from then, not from its last request. */
  private readonly awakeSince = new Map<string, number>();
  private readonly waking = new Set<string>();
  private readonly sleeping = new Set<string>();
  /** Per app: a wake that failed makes the next one wait, as a crash restart would. */
  private readonly backoff = new Map<string, RestartBackoff>();
  private readonly now: () => number;

  constructor(private readonly options: IdleControllerOptions) {
    this.now = options.now ?? Date.now;
  }

  start(): void {
    this.timer = setInterval(() => this.check(), IDLE_CHECK_MS);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }

  /** One pass over the running apps: those quiet for their idle_timeout_ms go to sleep. */
  check(): void {
    const { apps } = this.options;
    let traffic: TrafficSnapshot | null = null;
    const now = this.now();
    for (const app of apps.current.apps) {
      if (app.idleTimeoutMs <= 0 || this.sleeping.has(app.name)) continue;
      traffic ??= this.options.traffic();
      if (this.isQuiet(app.name, app.idleTimeoutMs, traffic, now)) void this.sleep(app.name);
    }
    for (const name of this.awakeSince.keys()) if (!apps.supervisor(name)) this.awakeSince.delete(name);
  }

  /**
   * Requests are waiting for an idle app: start it, once however many ask,
   * and publish a table with its children when they are ready.
   */
  wake(name: string): Promise<void> {
    const { apps, ops } = this.options;
    if (this.waking.has(name)) return Promise.resolve();
    this.waking.add(name);
    return ops
      .run(async () => {
        const supervisor = apps.supervisor(name);
        if (!supervisor?.isIdle) return;
        const started = this.now();
        const log = this.options.logger.child({ app: name });
        log.info(`app ${name} woken by a request: starting it`);
        try {
          const gen = await supervisor.prepare(supervisor.config);
          // The app may have been removed or replaced while its children started.
          if (apps.supervisor(name) !== supervisor || !supervisor.isIdle) {
            await supervisor.discard(gen);
            return;
          }
          supervisor.promote(gen);
          this.awakeSince.set(name, this.now());
          this.backoff.delete(name);
          apps.setRoutes(supervisor, supervisor.servingUpstreams());
          this.options.publish();
          log.info({ ms: this.now() - started }, `app ${name} is awake`);
        } catch (err) {
          const backoff = this.backoff.get(name) ?? new RestartBackoff();
          this.backoff.set(name, backoff);
          const delay = backoff.next(0);
          log.error({ err: (err as Error).message, retry_ms: delay }, `app ${name} did not start from idle`);
          // Waiting requests time out with 503; a table published later lets the next request ask again.
          setTimeout(() => this.options.publish(), delay).unref();
        }
      })
      .finally(() => this.waking.delete(name));
  }

  private isQuiet(name: string, timeoutMs: number, traffic: TrafficSnapshot, now: number): boolean {
    const { apps } = this.options;
    const supervisor = apps.supervisor(name);
    // Only a serving app sleeps: not one starting, restarting or failed, and not one an operator paused.
    if (!supervisor || supervisor.isIdle || supervisor.state() !== 'ready' || apps.hold(name)) return false;
    const t = traffic[name];
    if ((t?.active ?? 0) > 0) return false;
    let since = this.awakeSince.get(name);
    if (since === undefined) {
      since = now;
      this.awakeSince.set(name, since);
    }
    return now - Math.max(since, t?.lastActiveAt ?? 0) >= timeoutMs;
  }

  private sleep(name: string): Promise<void> {
    const { apps, ops, drainer } = this.options;
    this.sleeping.add(name);
    return ops
      .run(async () => {
        const app = apps.runningConfig(name);
        // Looked at again on the queue: a request, a reload or an edit may have come first.
        if (!app || !this.isQuiet(name, app.idleTimeoutMs, this.options.traffic(), this.now())) return;
        const supervisor = apps.supervisor(name);
        if (!supervisor) return;
        const gen = supervisor.sleep();
        apps.setRoutes(supervisor, []);
        this.options.publish();
        this.awakeSince.delete(name);
        this.options.logger.info(
          { app: name, idle_timeout_ms: app.idleTimeoutMs },
          `app ${name} idle for ${app.idleTimeoutMs} ms: stopping its children until the next request`,
        );
        // Requests that reached the old children before the swap finish; a wake need not wait for it.
        if (gen) void drainer.retire(supervisor, gen);
      })
      .finally(() => this.sleeping.delete(name));
  }
}
