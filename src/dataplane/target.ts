import type { Logger } from '../log.js';
import type { AppStats } from './stats.js';
import type { Upstream } from './upstream.js';

/** An app as one route table sees it: its ready upstreams and a balancing cursor. */
export class AppTarget {
  private cursor = 0;

  constructor(
    readonly name: string,
    readonly upstreams: readonly Upstream[],
    readonly stats: AppStats,
    /** This app's access logger (its name bound once), or null with the access log off. */
    readonly access: Logger | null,
    /**
     * The Host a child sees for a request that came without one (HTTP/1.0,
     * which only the default app receives): the app's first host name, as
     * nginx's `$host` gives the matched server's name (README, Routing).
     */
    readonly hostName: string,
  ) {}

  /**
   * The upstream with the fewest requests in flight, scanning from a
   * rotating start so that ties are spread round-robin. `avoid` is skipped
   * when another upstream exists (a retry should move elsewhere).
   */
  pick(avoid: Upstream | null = null): Upstream | undefined {
    const list = this.upstreams;
    const n = list.length;
    if (n === 1) {
      const only = list[0];
      return only === avoid ? undefined : only;
    }
    if (n === 0) return undefined;
    const start = this.cursor++ % n;
    let best: Upstream | undefined;
    for (let i = 0; i < n; i++) {
      const candidate = list[(start + i) % n];
      if (candidate === undefined || candidate === avoid) continue;
      if (best === undefined || candidate.inFlight < best.inFlight) best = candidate;
    }
    return best;
  }
}
