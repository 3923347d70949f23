/**
 * Per-app counters for the admin API and metrics. Keyed by app name and
 * kept for the gateway's life, so they survive reloads and restarts. The
 * proxy updates them per request with plain increments.
 */

/** Upper bounds (seconds) of the request duration histogram buckets. */
export const DURATION_BUCKETS: readonly number[] = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10];

export class AppStats {
  requests = 0;
  /** Responses by status class: index 1 → 1xx … 5 → 5xx. */
  readonly statusClasses = [0, 0, 0, 0, 0, 0];
  /** Requests per duration bucket (not cumulative); the last slot is above the largest bound. */
  readonly durationCounts: number[] = new Array<number>(DURATION_BUCKETS.length + 1).fill(0);
  durationSumSeconds = 0;
  /** The gateway's own answers for this app: 502, 503, 504. */
  readonly upstreamErrors = { 502: 0, 503: 0, 504: 0 };
  restarts = 0;

  observe(status: number, seconds: number): void {
    this.requests++;
    const cls = (status / 100) | 0;
    if (cls >= 1 && cls <= 5) this.statusClasses[cls] = (this.statusClasses[cls] as number) + 1;
    let i = 0;
    while (i < DURATION_BUCKETS.length && seconds > (DURATION_BUCKETS[i] as number)) i++;
    this.durationCounts[i] = (this.durationCounts[i] as number) + 1;
    this.durationSumSeconds += seconds;
  }
}

export class StatsRegistry {
  private readonly byApp = new Map<string, AppStats>();

  for(app: string): AppStats {
    let stats = this.byApp.get(app);
    if (!stats) {
      stats = new AppStats();
      this.byApp.set(app, stats);
    }
    return stats;
  }

  entries(): IterableIterator<[string, AppStats]> {
    return this.byApp.entries();
  }
}
