/**
 * The messages between the primary and its proxy workers (README, Workers).
 * Everything is plain data (structured clone, Node's `advanced` IPC
 * serialization): the data plane's inputs go down, its reports come back.
 * The channel keeps order, so a drain sent after a table is handled after
 * it; `seq` acknowledgements let the primary know when every worker uses
 * what it last sent.
 */
import type { LevelWithSilent } from 'pino';
import type { ListenAddress } from '../addresses.js';
import type { CertificateSetData, DataPlaneSettings } from '../dataplane/data-plane.js';
import type { TrafficSnapshot } from '../dataplane/stats.js';
import type { RouteTableData } from '../routing/table.js';

/** Everything a worker serves by; a new worker gets it whole before it listens. */
export interface DataPlaneState {
  table: RouteTableData;
  settings: DataPlaneSettings;
  certificates: CertificateSetData;
  challenges: Readonly<Record<string, string>>;
}

/** Where a worker listens: the HTTPS address once `[tls]` listens. */
export interface WorkerListen {
  http: ListenAddress;
  https: ListenAddress | null;
}

export type PrimaryMessage =
  | {
      t: 'init';
      seq: number;
      worker: number;
      logLevel: LevelWithSilent;
      state: DataPlaneState;
      listen: WorkerListen;
      /** How often the worker sends its traffic counters (README: sums up to date within 2 s). */
      statsIntervalMs: number;
      keepAliveTimeoutMs: number | null;
    }
  | { t: 'table'; seq: number; table: RouteTableData }
  | { t: 'settings'; seq: number; settings: DataPlaneSettings }
  | { t: 'certificates'; seq: number; certificates: CertificateSetData }
  | { t: 'challenges'; seq: number; challenges: Readonly<Record<string, string>> }
  | { t: 'listen-tls'; id: number; address: ListenAddress }
  | { t: 'drain'; id: number; upstreams: readonly string[]; timeoutMs: number }
  | { t: 'forget'; upstreams: readonly string[] }
  /** Which requests a pause holds for these apps, about to be resumed (README, Workers: pause and resume). */
  | { t: 'held'; id: number; apps: readonly string[] }
  /** Send these held requests on, in this order (keys from the worker's last `held-list`). */
  | { t: 'send-held'; id: number; keys: readonly number[]; budgetMs: number }
  | { t: 'close'; timeoutMs: number };

/** A bound address, as plain data. */
export interface BoundAddress {
  address: string;
  port: number;
  family: string;
}

export type WorkerMessage =
  /** Listening for messages: cluster's own `online` comes before an ES module's code runs, and what is sent before this is lost. */
  | { t: 'hello' }
  /** Listening on what `init` named, serving the state of `seq`. */
  | { t: 'ready'; seq: number; engine: string; http: BoundAddress; https: BoundAddress | null }
  /** `init` could not listen: the worker exits after this. */
  | { t: 'listen-failed'; which: 'http' | 'https'; message: string; code: string | null }
  | { t: 'ack'; seq: number }
  | { t: 'listen-tls-done'; id: number; bound: BoundAddress | null; message: string | null; code: string | null }
  | { t: 'drained'; id: number }
  /** The held requests, oldest first: a key for `send-held` and when each arrived (monotonic ns). */
  | { t: 'held-list'; id: number; held: ReadonlyArray<{ key: number; at: bigint }> }
  | { t: 'sent-held'; id: number }
  | { t: 'stats'; traffic: TrafficSnapshot }
  | { t: 'wake'; app: string }
  /** Log lines to write (whole JSON lines). */
  | { t: 'log'; text: string }
  /** Closed: every in-flight request finished or was cut; the worker exits after this. */
  | { t: 'closed'; traffic: TrafficSnapshot };
