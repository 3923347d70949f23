/** Samples in a row over `max_rss_mb` before a child is replaced (README, Memory watchdog). */
export const SAMPLES_OVER_LIMIT = 3;

/**
 * The memory watchdog's policy for one app (README, Memory watchdog), kept
 * apart from the processes so that it can be tested with numbers: a child
 * over the limit for 3 samples in a row is replaced; one replacement at a
 * time; after a failed one the next waits for the crash backoff.
 */
export class MemoryWatchdogPolicy {
  /** Consecutive samples over the limit, by child id (only children over it are kept). */
  private readonly over = new Map<string, number>();
  private replacing: string | null = null;
  private notBefore = 0;

  constructor(private readonly samplesOverLimit = SAMPLES_OVER_LIMIT) {}

  /**
   * One round of samples of the serving children (id → RSS bytes; 0 when it
   * could not be read). Returns the child to replace now (the largest of
   * those due), or null.
   */
  sample(samples: ReadonlyMap<string, number>, limitBytes: number, now: number): string | null {
    for (const id of this.over.keys()) if (!samples.has(id)) this.over.delete(id);
    let due: string | null = null;
    let largest = 0;
    for (const [id, rss] of samples) {
      if (rss <= limitBytes) {
        this.over.delete(id);
        continue;
      }
      const count = (this.over.get(id) ?? 0) + 1;
      this.over.set(id, count);
      if (count >= this.samplesOverLimit && rss > largest) {
        due = id;
        largest = rss;
      }
    }
    if (due === null || this.replacing !== null || now < this.notBefore) return null;
    // Its count is kept until the replacement succeeds: after a failure the next try comes as soon
    // as the backoff allows, not 3 samples later.
    this.replacing = due;
    return due;
  }

  /** The replacement ended; after a failed one the next may start `retryAfterMs` from now. */
  finished(ok: boolean, now: number, retryAfterMs: number): void {
    if (ok && this.replacing !== null) this.over.delete(this.replacing);
    this.replacing = null;
    this.notBefore = ok ? 0 : now + retryAfterMs;
  }

  get busy(): boolean {
    return this.replacing !== null;
  }
}
