import { normalizeHost } from './host.js';

/**
 * The route table as plain data: what a later multi-process mode would send
 * to proxy workers as a message.
 */
export interface UpstreamAddress {
  /** Unique per child process for the gateway's lifetime. */
  id: string;
  host: string;
  port: number;
}

export interface AppRouteData {
  name: string;
  hosts: readonly string[];
  /** The app's ready children that may take new requests. */
  upstreams: readonly UpstreamAddress[];
  /** Served over HTTPS when it has a certificate; false: plain HTTP only, never redirected (README, HTTPS). */
  tls: boolean;
  /**
   * How its requests are treated (README, Pause and maintenance); absent: served.
   * `hold`: they wait in its queue (paused); `maintenance`: 503 with `maintenanceMessage`.
   */
  mode?: AppRouteMode;
  maintenanceMessage?: string;
  /** Its children are stopped (README, Scale to zero): the first request that waits wakes it. */
  idle?: boolean;
}

export type AppRouteMode = 'serve' | 'hold' | 'maintenance';

export interface RouteTableData {
  version: number;
  apps: readonly AppRouteData[];
  /** App for unmatched hosts and HTTP/1.0 requests without Host; null → 404. */
  defaultApp: string | null;
}

/** Bounded so that a flood of random Host headers cannot grow memory. */
const LOOKUP_CACHE_LIMIT = 1024;

/**
 * An immutable, compiled route table. `T` is whatever the proxy attaches to
 * an app (its upstream objects and counters); the table only decides which
 * app a Host header belongs to.
 */
export class RouteTable<T> {
  readonly data: RouteTableData;
  readonly defaultTarget: T | undefined;
  private readonly exact = new Map<string, T>();
  /** `.example.com` → target, for `*.example.com`. */
  private readonly wildcard = new Map<string, T>();
  private readonly byName = new Map<string, T>();
  /** Raw Host header → target (null: unmatched). Per table, so a swap invalidates it. */
  private readonly cache = new Map<string, T | null>();

  constructor(data: RouteTableData, attach: (app: AppRouteData) => T) {
    this.data = data;
    for (const app of data.apps) {
      const target = attach(app);
      this.byName.set(app.name, target);
      for (const host of app.hosts) {
        if (host.startsWith('*.')) this.wildcard.set(host.slice(1), target);
        else this.exact.set(host, target);
      }
    }
    this.defaultTarget = data.defaultApp === null ? undefined : this.byName.get(data.defaultApp);
  }

  /** The app for a Host header value; the default app when unmatched or absent; undefined → 404. */
  lookup(rawHost: string | undefined): T | undefined {
    if (rawHost === undefined || rawHost === '') return this.defaultTarget;
    const cached = this.cache.get(rawHost);
    if (cached !== undefined) return cached ?? this.defaultTarget;
    const found = this.match(normalizeHost(rawHost));
    if (this.cache.size >= LOOKUP_CACHE_LIMIT) this.cache.clear();
    this.cache.set(rawHost, found ?? null);
    return found ?? this.defaultTarget;
  }

  /** Exact match first, then wildcards from the longest suffix to the shortest. */
  match(host: string): T | undefined {
    const exact = this.exact.get(host);
    if (exact !== undefined) return exact;
    if (this.wildcard.size === 0) return undefined;
    // `*.example.com` must not match `example.com` itself, so start at the first dot.
    for (let dot = host.indexOf('.'); dot !== -1; dot = host.indexOf('.', dot + 1)) {
      const target = this.wildcard.get(host.slice(dot));
      if (target !== undefined) return target;
    }
    return undefined;
  }

  get(name: string): T | undefined {
    return this.byName.get(name);
  }
}
