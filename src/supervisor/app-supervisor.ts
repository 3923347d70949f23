import type { AppConfig } from '../config/schema.js';
import type { Logger } from '../log.js';
import type { UpstreamAddress } from '../routing/table.js';
import { AppChild, type ChildExit, describeExit } from './child.js';
import { type AppState, Generation, type InstanceInfo, type InstanceSlot } from './generation.js';
import { MemoryWatchdogPolicy } from './memory-watchdog.js';
import type { PortAllocator } from './ports.js';
import { AppStartError, waitUntilReady } from './readiness.js';

export { AppStartError, type AppState, Generation, type InstanceInfo };

/**
 * What a supervisor tells its owner, the control plane. It knows nothing
 * of the proxy: the control plane turns these into route tables and data
 * plane calls.
 */
export interface SupervisorContext {
  logger: Logger;
  /** Where children's stdout/stderr lines go (high volume, batched). */
  outputLogger: Logger;
  ports: PortAllocator;
  /** The serving generation's ready children changed: `upstreams` may take requests now. */
  onServingChange(app: AppSupervisor, upstreams: UpstreamAddress[]): void;
  /** A child that took requests exited on its own: it is gone for good. */
  onChildGone(app: AppSupervisor, upstreamId: string): void;
  /** A crashed or failed child is about to be started again (for the restarts counter). */
  onRestart(app: string): void;
  /**
   * A child replaced for its memory is out of the published table: resolves
   * once the data plane has no request in flight to it (README, Memory watchdog).
   */
  drainChild(app: AppSupervisor, upstreamId: string): Promise<void>;
  /** A child was replaced by the memory watchdog (for nano_memory_replacements_total). */
  onMemoryReplacement(app: string): void;
}

/** How often each serving child's RSS is sampled (README, Memory watchdog). */
export const MEMORY_SAMPLE_MS = 1000;

let childSequence = 0;

/**
 * Supervises one app: starts its children, watches readiness, restarts
 * crashes with backoff, and (for reloads) starts a new generation beside the
 * serving one, promotes it, and drains the old.
 */
export class AppSupervisor {
  readonly name: string;
  /** The serving generation's config. */
  config: AppConfig;
  current: Generation | null = null;
  lastError: string | null = null;
  private generationCount = 0;
  /** Every generation that may still have children: serving, being prepared, or draining. */
  private readonly generations = new Set<Generation>();
  private stopped = false;
  /** Stopped by idle_timeout_ms (README, Scale to zero): no generation serves until the next start. */
  private idle = false;
  private readonly memory = new MemoryWatchdogPolicy();
  private memoryTimer: NodeJS.Timeout | null = null;
  private readonly log: Logger;

  constructor(
    config: AppConfig,
    private readonly ctx: SupervisorContext,
  ) {
    this.name = config.name;
    this.config = config;
    this.log = ctx.logger.child({ app: config.name });
  }

  /**
   * Start-up: the first generation serves at once. Each child joins the
   * route table as soon as it is ready; until one is, requests queue.
   */
  start(): void {
    const gen = this.newGeneration(this.config);
    gen.serving = true;
    this.current = gen;
    for (const slot of gen.slots) void this.runSlot(gen, slot);
    this.syncMemoryTimer();
  }

  /**
   * Starts a complete new generation beside the serving one. Resolves when
   * every child is ready; otherwise stops the ones it started and rejects
   * with an AppStartError. The caller promotes it.
   */
  async prepare(config: AppConfig): Promise<Generation> {
    const gen = this.newGeneration(config);
    const results = await Promise.allSettled(gen.slots.map((slot) => this.startChild(gen, slot)));
    const failure = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
    // A child may have become ready and then died while its siblings were still starting.
    const died = !failure && !gen.allAlive();
    if (failure || died || this.stopped) {
      gen.retired = true;
      await Promise.all(gen.liveChildren().map((child) => child.stop()));
      this.generations.delete(gen);
      const reason = failure
        ? (failure.reason as Error).message
        : died
          ? 'a new instance exited after it was ready, before the others were'
          : 'the gateway is stopping';
      const error = new AppStartError(this.name, reason);
      this.lastError = reason;
      throw error;
    }
    return gen;
  }

  /**
   * Makes a prepared generation the serving one and returns the previous,
   * which the caller retires (beginDrain, drain, stopGeneration) once the
   * new route table is out. Synchronous, so a reload can promote many apps
   * and publish once.
   */
  promote(gen: Generation): Generation | null {
    const old = this.current;
    gen.serving = true;
    this.current = gen;
    this.config = gen.config;
    this.lastError = null;
    this.idle = false;
    this.syncMemoryTimer();
    // A child that died between its readiness and this swap was not restarted
    // (its generation was not serving yet): it is now.
    for (const slot of gen.slots) {
      if (!slot.child?.alive) {
        slot.crashed = true;
        this.scheduleRestart(gen, slot, slot.child?.exitInfo?.uptimeMs ?? 0);
      }
    }
    if (old) {
      old.serving = false;
      old.retired = true;
      for (const slot of old.slots) this.cancelRestart(slot);
    }
    return old;
  }

  /**
   * Throws away a prepared generation that will not be promoted (a reload
   * held it back), stopping its children.
   */
  async discard(gen: Generation): Promise<void> {
    gen.retired = true;
    await Promise.all(gen.liveChildren().map((child) => child.stop()));
    this.generations.delete(gen);
  }

  /**
   * The first half of retiring an old generation: its ready children take
   * no new requests from now on (they must be out of the published table)
   * and are marked draining, so that their exit is not taken for a crash.
   * Returns their upstream ids for the data plane to drain.
   */
  beginDrain(gen: Generation): string[] {
    gen.serving = false;
    gen.retired = true;
    gen.draining = true;
    const ids: string[] = [];
    for (const slot of gen.slots) {
      this.cancelRestart(slot);
      const child = slot.child;
      if (child?.alive && child.state === 'ready') {
        child.state = 'draining';
        ids.push(child.id);
      }
    }
    return ids;
  }

  /** The second half: stops the generation's children (SIGTERM, then SIGKILL after kill_timeout_ms). */
  async stopGeneration(gen: Generation): Promise<void> {
    gen.serving = false;
    gen.retired = true;
    await Promise.all(
      gen.slots.map(async (slot) => {
        this.cancelRestart(slot);
        const child = slot.child;
        if (!child?.alive) return;
        const exit = await child.stop();
        if (gen.draining)
          this.log.info({ pid: child.pid, generation: gen.id, exit: describeExit(exit) }, 'old instance stopped');
      }),
    );
    this.generations.delete(gen);
  }

  /**
   * Scale to zero (README): the serving generation stops serving and is
   * returned for the caller to retire (beginDrain, drain, stopGeneration)
   * once a table without it is out. The app is idle until a generation is
   * promoted again.
   */
  sleep(): Generation | null {
    const old = this.current;
    this.current = null;
    this.idle = true;
    this.syncMemoryTimer();
    if (old) {
      old.serving = false;
      old.retired = true;
      for (const slot of old.slots) this.cancelRestart(slot);
    }
    return old;
  }

  /** An idle app's new config (a reload changed it): its next start uses it, and it stays idle. */
  adopt(config: AppConfig): void {
    this.config = config;
  }

  get isIdle(): boolean {
    return this.idle;
  }

  /** Every generation that still has children, the serving one first. */
  liveGenerations(): Generation[] {
    const current = this.current;
    return [...this.generations].sort((a, b) => (a === current ? -1 : b === current ? 1 : 0));
  }

  /** Stops every child of every generation now; nothing of this app starts again. */
  async stop(): Promise<void> {
    this.stopped = true;
    this.syncMemoryTimer();
    await Promise.all([...this.generations].map((gen) => this.stopGeneration(gen)));
  }

  /** SIGKILL for every child at once: the last resort when the gateway itself is going down hard. */
  killAll(): void {
    for (const gen of this.generations) for (const child of gen.liveChildren()) child.kill();
  }

  /** Upstreams of the serving generation that may take requests. */
  servingUpstreams(): UpstreamAddress[] {
    const gen = this.current;
    return gen?.serving ? gen.readyUpstreams() : [];
  }

  /** The app's state (README, Admin API: `state`). */
  state(): AppState {
    if (this.current === null && this.idle) return 'idle';
    return this.current?.state() ?? 'starting';
  }

  instances(): InstanceInfo[] {
    return this.current?.instances() ?? [];
  }

  private newGeneration(config: AppConfig): Generation {
    const gen = new Generation(++this.generationCount, config);
    this.generations.add(gen);
    return gen;
  }

  /** Starts one child and waits until it is ready; a failed start is killed and rethrown. */
  private async startChild(gen: Generation, slot: InstanceSlot, beside = false): Promise<AppChild> {
    const port = await this.ctx.ports.allocate();
    const child = new AppChild({ id: `${this.name}#${++childSequence}`, app: gen.config, port }, this.ctx.outputLogger);
    // A replacement starts beside the slot's child and takes the slot only once ready.
    if (!beside) slot.child = child;
    const exitedEarly = new AbortController();
    void child.exited.then((exit) => {
      this.ctx.ports.release(port);
      exitedEarly.abort(`${describeExit(exit)} before it was ready`);
      this.onChildExit(gen, slot, child, exit);
    });
    this.log.debug({ pid: child.pid, port, generation: gen.id, instance: slot.index }, 'instance starting');
    try {
      await waitUntilReady({
        port,
        healthPath: gen.config.healthPath,
        timeoutMs: gen.config.readyTimeoutMs,
        signal: exitedEarly.signal,
      });
    } catch (err) {
      if (child.alive && child.state === 'starting') {
        // Named by pid: the operator (and the reload tests) can tell which child was tried and stopped.
        this.log.warn(
          { pid: child.pid, generation: gen.id, instance: slot.index, err: (err as Error).message },
          'instance not ready: stopping it',
        );
        child.state = 'failed';
        void child.stop();
      }
      throw err;
    }
    if (!child.alive || child.state !== 'starting') {
      throw new AppStartError(this.name, child.alive ? 'stopped before it was ready' : 'exited before it was ready');
    }
    if (gen.retired || this.stopped) {
      void child.stop();
      throw new AppStartError(this.name, 'stopped before it was ready');
    }
    child.state = 'ready';
    this.log.info(
      { pid: child.pid, port, generation: gen.id, instance: slot.index, ms: Date.now() - child.startedAt },
      'instance ready',
    );
    return child;
  }

  /** Runs a serving generation's slot: start, and on failure leave the restart to the exit handler. */
  private async runSlot(gen: Generation, slot: InstanceSlot): Promise<void> {
    slot.restartTimer = null;
    if (this.stopped || gen.retired) return;
    try {
      await this.startChild(gen, slot);
      slot.lastStartFailed = false;
      slot.crashed = false;
      if (gen.serving) this.ctx.onServingChange(this, this.servingUpstreams());
    } catch (err) {
      if (this.stopped || gen.retired) return;
      slot.lastStartFailed = true;
      this.lastError = `instance ${slot.index}: ${(err as Error).message}`;
      this.log.error({ instance: slot.index, err: (err as Error).message }, 'instance failed to start');
      if (!slot.child || slot.child.exitInfo) {
        // Nothing left to exit (spawn failed or the exit was already handled): schedule here.
        this.scheduleRestart(gen, slot, 0);
      }
    }
  }

  private onChildExit(gen: Generation, slot: InstanceSlot, child: AppChild, exit: ChildExit): void {
    const expected = exit.stateAtExit === 'stopping' || exit.stateAtExit === 'draining';
    if (expected || this.stopped || gen.retired) return;
    if (exit.stateAtExit === 'ready') {
      slot.crashed = true;
      this.lastError = `instance ${slot.index} ${describeExit(exit)} after ${(exit.uptimeMs / 1000).toFixed(1)} s`;
      this.log.warn(
        { pid: child.pid, instance: slot.index, code: exit.code, signal: exit.signal },
        'instance exited unexpectedly',
      );
      // Out of the route table first, then its pool goes.
      if (gen.serving) this.ctx.onServingChange(this, this.servingUpstreams());
      this.ctx.onChildGone(this, child.id);
    }
    // A generation being prepared does not restart: its start has failed.
    if (!gen.serving || slot.child !== child) return;
    this.scheduleRestart(gen, slot, exit.uptimeMs);
  }

  private scheduleRestart(gen: Generation, slot: InstanceSlot, uptimeMs: number): void {
    if (slot.restartTimer || this.stopped || gen.retired) return;
    const delay = slot.backoff.next(uptimeMs);
    slot.restarts++;
    this.ctx.onRestart(this.name);
    this.log.info({ instance: slot.index, delay_ms: delay, restarts: slot.restarts }, 'restarting instance');
    slot.restartTimer = setTimeout(() => void this.runSlot(gen, slot), delay);
  }

  /** Samples run while the serving config has max_rss_mb and the app runs (README, Memory watchdog). */
  private syncMemoryTimer(): void {
    const wanted = !this.stopped && !this.idle && this.config.maxRssMb !== null;
    if (wanted && this.memoryTimer === null) {
      this.memoryTimer = setInterval(() => this.sampleMemory(), MEMORY_SAMPLE_MS);
      this.memoryTimer.unref();
    } else if (!wanted && this.memoryTimer !== null) {
      clearInterval(this.memoryTimer);
      this.memoryTimer = null;
    }
  }

  /** One RSS sample of each ready child of the serving generation; one over the limit long enough is replaced. */
  private sampleMemory(): void {
    const gen = this.current;
    const limitMb = gen?.config.maxRssMb ?? null;
    if (!gen?.serving || limitMb === null) return;
    const samples = new Map<string, number>();
    const slots = new Map<string, InstanceSlot>();
    for (const slot of gen.slots) {
      const child = slot.child;
      if (child?.state !== 'ready') continue;
      samples.set(child.id, child.rssBytes());
      slots.set(child.id, slot);
    }
    const due = this.memory.sample(samples, limitMb * 1024 * 1024, Date.now());
    if (due === null) return;
    const slot = slots.get(due) as InstanceSlot;
    void this.replaceForMemory(gen, slot, slot.child as AppChild, samples.get(due) ?? 0);
  }

  /**
   * The memory watchdog's replacement (README, Memory watchdog): a new child
   * for the slot starts beside the old one; once it is ready it takes the
   * slot and the table, and the old one drains, then stops. A new child that
   * fails leaves the old one serving; the next try waits for the crash backoff.
   */
  private async replaceForMemory(gen: Generation, slot: InstanceSlot, old: AppChild, rss: number): Promise<void> {
    const limitMb = gen.config.maxRssMb;
    const rssMb = Math.round(rss / (1024 * 1024));
    this.log.warn(
      { pid: old.pid, instance: slot.index, rss_mb: rssMb, max_rss_mb: limitMb },
      `instance ${slot.index} over max_rss_mb (${rssMb} MB > ${limitMb} MB): replacing it`,
    );
    const started = Date.now();
    let fresh: AppChild;
    try {
      fresh = await this.startChild(gen, slot, true);
    } catch (err) {
      const reason = (err as Error).message;
      const retryMs = slot.backoff.next(Date.now() - started);
      this.memory.finished(false, Date.now(), retryMs);
      if (this.stopped || gen.retired) return;
      this.lastError = `instance ${slot.index}: memory replacement failed, the old instance keeps serving: ${reason}`;
      this.log.error({ instance: slot.index, err: reason, retry_ms: retryMs }, 'memory replacement failed');
      return;
    }
    // While it started, the slot may have moved on: a reload retired the generation, or the old
    // child crashed and its restart is already running. A restart still waiting is taken over.
    if (gen.retired || this.stopped || (slot.child !== old && slot.child?.alive)) {
      this.memory.finished(true, Date.now(), 0);
      void fresh.stop();
      return;
    }
    this.cancelRestart(slot);
    slot.child = fresh;
    slot.crashed = false;
    slot.lastStartFailed = false;
    slot.restarts++;
    this.ctx.onRestart(this.name);
    this.ctx.onMemoryReplacement(this.name);
    const draining = old.alive;
    if (draining) old.state = 'draining';
    this.ctx.onServingChange(this, this.servingUpstreams());
    this.log.info(
      { old_pid: old.pid, pid: fresh.pid, instance: slot.index, ms: Date.now() - started },
      `instance ${slot.index} replaced for its memory: pid ${old.pid} -> ${fresh.pid}`,
    );
    this.memory.finished(true, Date.now(), 0);
    if (!draining) return;
    await this.ctx.drainChild(this, old.id);
    const exit = await old.stop();
    this.log.info({ pid: old.pid, instance: slot.index, exit: describeExit(exit) }, 'old instance stopped');
  }

  private cancelRestart(slot: InstanceSlot): void {
    if (slot.restartTimer) {
      clearTimeout(slot.restartTimer);
      slot.restartTimer = null;
    }
  }
}
