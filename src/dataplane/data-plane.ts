import type { AddressInfo } from 'node:net';
import type { ListenAddress } from '../addresses.js';
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
  /** Plain HTTP for a host with a certificate gets 308 to https (README, HTTPS: redirect). */
  redirectHttp: boolean;
  /** > 0: `Strict-Transport-Security: max-age=N` on HTTPS answers. */
  hstsMaxAge: number;
}

/** One certificate the HTTPS listener may serve, as plain data. */
export interface CertificateData {
  /** The names SNI may pick it by (lower case; `*.` names cover one label). */
  names: readonly string[];
  certPem: string;
  keyPem: string;
}

/** Every certificate in use, as plain data: what proxy workers would get as a message (README, HTTPS). */
export interface CertificateSetData {
  version: number;
  /** In precedence order: an exact host's own certificate before file certificates that cover it. */
  certificates: readonly CertificateData[];
  /** The name whose certificate answers handshakes without SNI, or for a name without one; null: they fail. */
  defaultName: string | null;
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
  /** Swaps in the certificates for new TLS handshakes; connections already open keep theirs. */
  publishCertificates(set: CertificateSetData): void;
  /** The pending HTTP-01 challenges, token → key authorization, answered on the plain listener. */
  publishChallenges(challenges: Readonly<Record<string, string>>): void;
  /**
   * Resolves once no request is in flight to any of these upstreams (or
   * after `timeoutMs`), having closed their pooled connections. They must
   * already be out of the published table.
   */
  drain(upstreamIds: readonly string[], timeoutMs: number): Promise<void>;
  /** Upstreams that are gone for good (a crashed child): their pools are freed. */
  forget(upstreamIds: readonly string[]): void;
  /**
   * Who is told, with the app's name, when a request waits for an app the
   * table marks idle (README, Scale to zero): once per app per published table.
   */
  onWake(listener: (app: string) => void): void;
  /**
   * Resolves once every proxy process serves by what was last published
   * (table, settings, certificates, challenges): at once in this process,
   * after every worker's acknowledgement with workers (README, Workers). An
   * answer to a caller that changed routing waits for it, so the next
   * request routes by the change whichever worker takes it.
   */
  settled(): Promise<void>;
  /** Every app's traffic counters so far (with workers: summed, up to 1 s old). */
  stats(): TrafficSnapshot;
}

/** One proxy worker process, as `GET /admin/workers` shows it (README, Workers). */
export interface WorkerInfo {
  /** Its slot, 1 to `workers`: a replacement takes the number of the worker it replaces. */
  id: number;
  pid: number;
  state: 'starting' | 'ready' | 'stopping';
  /** ms since the epoch. */
  startedAt: number;
  /** Requests it proxied, up to 1 s old. */
  requests: number;
  rssBytes: number;
  /** Times this slot's worker was replaced after it died. */
  restarts: number;
}

/** The data plane as the composition root starts and stops it: in this process, or in proxy workers. */
export interface ServingDataPlane extends DataPlane {
  readonly engineName: string;
  listen(address: ListenAddress): Promise<AddressInfo>;
  /** The HTTPS listener beside the plain one (README, HTTPS). */
  listenTls(address: ListenAddress): Promise<AddressInfo>;
  /** Graceful stop: refuse new connections, let in-flight requests finish (up to `timeoutMs`), cut the rest. */
  close(timeoutMs: number): Promise<void>;
  /** A start that failed, or a second signal: whatever processes it runs go at once. */
  kill(): void;
  /** The proxy workers; [] when this process serves. */
  workers(): WorkerInfo[];
}
