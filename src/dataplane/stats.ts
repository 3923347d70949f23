/**
 * Per-app traffic counters, kept by the data plane for the gateway's life
 * (keyed by app name, so they survive reloads and restarts). The request
 * path updates them with plain increments; the control plane reads a copy
 * (`snapshot`) that is plain data, as a worker process would send it.
 */

/** Upper bounds (seconds) of the request duration histogram buckets. */
export const DURATION_BUCKETS: readonly number[] = [
  0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10,
];

/** One app's counters as plain data. */
export interface AppTraffic {
  requests: number;
  /** Responses by status class: index 1 → 1xx … 5 → 5xx. */
  statusClasses: number[];
  /** Requests per duration bucket (not cumulative); the last slot is above the largest bound. */
  durationCounts: number[];
  durationSumSeconds: number;
  /** The gateway's own answers for this app: 502, 503, 504. */
  upstreamErrors: { 502: number; 503: number; 504: number };
  /** Requests (and open WebSockets) of this app not finished yet. */
  active: number;
  /** When one of its requests last began or finished (ms since the epoch); 0: never (README, Scale to zero). */
  lastActiveAt: number;
}

/** An app with no traffic yet. */
export function emptyTraffic(): AppTraffic {
  return {
    requests: 0,
    statusClasses: [0, 0, 0, 0, 0, 0],
    durationCounts: new Array<number>(DURATION_BUCKETS.length + 1).fill(0),
    durationSumSeconds: 0,
    upstreamErrors: { 502: 0, 503: 0, 504: 0 },
    active: 0,
    lastActiveAt: 0,
  };
}

/** Every app's counters, by app name. */
export type TrafficSnapshot = Record<string, AppTraffic>;

export class AppStats implements AppTraffic {
  requests = 0;
  readonly statusClasses = [0, 0, 0, 0, 0, 0];
  readonly durationCounts: number[] = new Array<number>(DURATION_BUCKETS.length + 1).fill(0);
  durationSumSeconds = 0;
  readonly upstreamErrors = { 502: 0, 503: 0, 504: 0 };
  active = 0;
  /** performance.now() of the last begin or finish: the request path has it at hand, so it costs nothing. */
  lastActive = 0;

  get lastActiveAt(): number {
    return this.lastActive === 0 ? 0 : Math.round(performance.timeOrigin + this.lastActive);
  }

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

  snapshot(): TrafficSnapshot {
    const out: TrafficSnapshot = {};
    for (const [app, s] of this.byApp) {
      out[app] = {
        requests: s.requests,
        statusClasses: [...s.statusClasses],
        durationCounts: [...s.durationCounts],
        durationSumSeconds: s.durationSumSeconds,
        upstreamErrors: { ...s.upstreamErrors },
        active: s.active,
        lastActiveAt: s.lastActiveAt,
      };
    }
    return out;
  }
}

/**
 * Counters of several proxy workers as one gateway's (README, Workers):
 * every count added, the latest activity kept. `active: false` leaves out
 * the in-flight counts (a worker that is gone has none).
 */
export function sumTraffic(snapshots: readonly TrafficSnapshot[], options: { active?: boolean } = {}): TrafficSnapshot {
  const withActive = options.active ?? true;
  const out: TrafficSnapshot = {};
  for (const snapshot of snapshots) {
    for (const [name, t] of Object.entries(snapshot)) {
      let sum = out[name];
      if (sum === undefined) {
        sum = emptyTraffic();
        out[name] = sum;
      }
      sum.requests += t.requests;
      for (let i = 0; i < sum.statusClasses.length; i++)
        sum.statusClasses[i] = (sum.statusClasses[i] as number) + (t.statusClasses[i] ?? 0);
      for (let i = 0; i < sum.durationCounts.length; i++)
        sum.durationCounts[i] = (sum.durationCounts[i] as number) + (t.durationCounts[i] ?? 0);
      sum.durationSumSeconds += t.durationSumSeconds;
      sum.upstreamErrors[502] += t.upstreamErrors[502];
      sum.upstreamErrors[503] += t.upstreamErrors[503];
      sum.upstreamErrors[504] += t.upstreamErrors[504];
      if (withActive) sum.active += t.active;
      sum.lastActiveAt = Math.max(sum.lastActiveAt, t.lastActiveAt);
    }
  }
  return out;
}
