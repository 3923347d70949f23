import type { Logger } from '../log.js';
import { hostNameOf } from '../routing/host.js';
import { type AppRouteMode, RouteTable, type RouteTableData } from '../routing/table.js';
import type { AppStats, StatsRegistry } from './stats.js';
import type { Upstream, UpstreamRegistry } from './upstream.js';

/** An app as one route table sees it: its ready upstreams and a balancing cursor. */
export class AppTarget {
  private cursor = 0;
  /** Paused or in maintenance: no request is sent to a child (one check on the request path). */
  readonly blocked: boolean;
  /** In maintenance: the message its 503 carries; null otherwise. */
  readonly maintenance: string | null;
  /** Its children are stopped; `wakeSent` once this table has asked the control plane to start it. */
  readonly idle: boolean;
  wakeSent = false;

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
    /** Its plain-HTTP requests may be redirected to HTTPS (README, HTTPS: redirect). */
    readonly tls: boolean,
    mode: AppRouteMode = 'serve',
    maintenanceMessage = '',
    idle = false,
  ) {
    this.blocked = mode !== 'serve';
    this.maintenance = mode === 'maintenance' ? maintenanceMessage : null;
    this.idle = idle;
  }

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

/** Turns a route table's plain data into the request path's targets: upstream objects, counters, access loggers. */
export class TargetCompiler {
  /** Per-app children of the access logger, so the app name is serialised once, not per request. */
  private readonly appAccessLoggers = new Map<string, Logger>();

  constructor(
    private readonly accessLogger: Logger,
    private readonly stats: StatsRegistry,
    private readonly upstreams: UpstreamRegistry,
  ) {}

  compile(data: RouteTableData, accessLog: boolean): RouteTable<AppTarget> {
    return new RouteTable(
      data,
      (app) =>
        new AppTarget(
          app.name,
          app.upstreams.map((u) => this.upstreams.resolve(u)),
          this.stats.for(app.name),
          accessLog ? this.accessFor(app.name) : null,
          hostNameOf(app.hosts),
          app.tls,
          app.mode,
          app.maintenanceMessage,
          app.idle,
        ),
    );
  }

  private accessFor(app: string): Logger {
    let logger = this.appAccessLoggers.get(app);
    if (!logger) {
      logger = this.accessLogger.child({ app });
      this.appAccessLoggers.set(app, logger);
    }
    return logger;
  }
}
