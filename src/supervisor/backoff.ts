/**
 * Restart delays for a crashing child (README, How apps are run: crashes): 100 ms doubling to 30 s,
 * back to the start once a child has stayed up for 60 s.
 */
export class RestartBackoff {
  private nextDelayMs: number;

  constructor(
    private readonly initialMs = 100,
    private readonly maxMs = 30_000,
    private readonly resetAfterMs = 60_000,
  ) {
    this.nextDelayMs = initialMs;
  }

  /** The delay before the next restart of a child that ran for `uptimeMs`. */
  next(uptimeMs: number): number {
    if (uptimeMs >= this.resetAfterMs) this.nextDelayMs = this.initialMs;
    const delay = this.nextDelayMs;
    this.nextDelayMs = Math.min(this.nextDelayMs * 2, this.maxMs);
    return delay;
  }
}
