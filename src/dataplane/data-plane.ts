import type { RouteTableData } from '../routing/table.js';
import type { TrafficSnapshot } from './stats.js';

/** The gateway settings the data plane works by, as plain data (README, `[gateway]`). */
export interface DataPlaneSettings {
  upstreamTimeoutMs: number;
  queueTimeoutMs: number;
  /** Addresses and CIDRs whose X-Forwarded-* headers are kept. */
  trustedProxies: readonly string[];
  /** One log line per request. */
  accessLog: boolean;
}

/**
 * The only view of the proxy the control plane has. Everything that
 * crosses it is plain data (it survives `structuredClone`), so the same
 * interface can be served by proxy workers over IPC. The control plane
 * owns every sequence: it publishes a table, then drains what the table
 * dropped, then stops those children.
 */
export interface DataPlane {
  /** Swaps in a new route table in one step; requests waiting for an app look again. */
  publish(table: RouteTableData): void;
  configure(settings: DataPlaneSettings): void;
  /**
   * Resolves once no request is in flight to any of these upstreams (or
   * after `timeoutMs`), having closed their pooled connections. They must
   * already be out of the published table.
   */
  drain(upstreamIds: readonly string[], timeoutMs: number): Promise<void>;
  /** Upstreams that are gone for good (a crashed child): their pools are freed. */
  forget(upstreamIds: readonly string[]): void;
  /** Every app's traffic counters so far. */
  stats(): TrafficSnapshot;
}
