import type { DataPlane } from '../dataplane/data-plane.js';
import type { GenerationHandle, SupervisedApp } from './supervised.js';

/**
 * The end of every swap (README, Reloading, step 5): an old generation, out
 * of the published table, drains in the data plane (its in-flight requests
 * and WebSockets finish, up to drain_timeout_ms), then its children stop.
 */
export class Drainer {
  private readonly retiring = new Map<GenerationHandle, Promise<void>>();

  constructor(
    private readonly dataPlane: DataPlane,
    /** The current drain_timeout_ms (a reload can change it). */
    private readonly drainTimeoutMs: () => number,
  ) {}

  /** Retires one generation (by the current drain_timeout_ms unless given); asked twice, the same drain is returned. */
  retire(supervisor: SupervisedApp, gen: GenerationHandle, timeoutMs = this.drainTimeoutMs()): Promise<void> {
    const running = this.retiring.get(gen);
    if (running) return running;
    const done = (async () => {
      const ids = supervisor.beginDrain(gen);
      await this.dataPlane.drain(ids, timeoutMs);
      await supervisor.stopGeneration(gen);
    })().finally(() => this.retiring.delete(gen));
    this.retiring.set(gen, done);
    return done;
  }

  /**
   * A removed app: its serving generation and any still draining (a removal
   * right after a reload or restart) finish their drains; a generation
   * still starting stops at once. Then nothing of the app runs.
   */
  async retireApp(supervisor: SupervisedApp): Promise<void> {
    await Promise.all(
      supervisor
        .liveGenerations()
        .map((gen) =>
          gen === supervisor.current || this.retiring.has(gen)
            ? this.retire(supervisor, gen)
            : supervisor.stopGeneration(gen),
        ),
    );
    await supervisor.stop();
  }
}
