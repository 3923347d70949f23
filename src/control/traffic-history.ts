import { DURATION_BUCKETS, type TrafficSnapshot } from '../dataplane/stats.js';
import type { AppTrafficHistory } from '../wire.js';

/** Seconds of history the status page charts. */
export const HISTORY_SECONDS = 60;

interface Sample {
  requests: number;
  errors: number;
  durations: readonly number[];
}

/**
 * Per-second traffic for the status page (README, Status page): every
 * second the data plane's counters are sampled and kept in a 60-slot ring
 * per app, so the chart costs the request path nothing (the counters exist
 * for the metrics anyway) and memory stays at 60 samples per app.
 */
export class TrafficHistory {
  private readonly rings = new Map<string, Sample[]>();
  private timer: NodeJS.Timeout | null = null;

  constructor(private readonly traffic: () => TrafficSnapshot) {}

  start(): void {
    this.sample();
    this.timer = setInterval(() => this.sample(), 1000);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }

  sample(): void {
    const snapshot = this.traffic();
    for (const [app, t] of Object.entries(snapshot)) {
      let ring = this.rings.get(app);
      if (!ring) {
        ring = [];
        this.rings.set(app, ring);
      }
      ring.push({ requests: t.requests, errors: t.statusClasses[5] ?? 0, durations: [...t.durationCounts] });
      // One more than the window: 60 differences need 61 samples.
      if (ring.length > HISTORY_SECONDS + 1) ring.shift();
    }
    for (const app of this.rings.keys()) if (!(app in snapshot)) this.rings.delete(app);
  }

  history(): Record<string, AppTrafficHistory> {
    const out: Record<string, AppTrafficHistory> = {};
    for (const [app, ring] of this.rings) {
      const requests = new Array<number>(HISTORY_SECONDS).fill(0);
      const errors = new Array<number>(HISTORY_SECONDS).fill(0);
      const offset = HISTORY_SECONDS - (ring.length - 1);
      for (let i = 1; i < ring.length; i++) {
        const now = ring[i] as Sample;
        const before = ring[i - 1] as Sample;
        requests[offset + i - 1] = now.requests - before.requests;
        errors[offset + i - 1] = now.errors - before.errors;
      }
      const first = ring[0] as Sample;
      const last = ring[ring.length - 1] as Sample;
      const counts = last.durations.map((n, i) => n - (first.durations[i] ?? 0));
      out[app] = { requests, errors, p50_ms: quantile(counts, 0.5), p99_ms: quantile(counts, 0.99) };
    }
    return out;
  }
}

/** The upper bound (ms) of the bucket the quantile falls in; the last bucket has none, so its lower bound. */
function quantile(counts: readonly number[], q: number): number | null {
  const total = counts.reduce((a, b) => a + b, 0);
  if (total === 0) return null;
  const rank = q * total;
  let seen = 0;
  for (let i = 0; i < counts.length; i++) {
    seen += counts[i] ?? 0;
    if (seen >= rank) {
      const bound = DURATION_BUCKETS[i] ?? DURATION_BUCKETS[DURATION_BUCKETS.length - 1] ?? 10;
      return bound * 1000;
    }
  }
  return null;
}
