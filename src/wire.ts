/**
 * The admin API's JSON shapes (README, Admin API), shared by the server
 * that writes them and the command line that reads them: one App, one
 * instance, one reload summary.
 */

export interface InstanceJson {
  pid: number | null;
  port: number;
  state: string;
  /** ISO-8601, or null before the child started. */
  started_at: string | null;
  restarts: number;
  rss_bytes: number;
}

/** §12 adds `idle` (scale to zero), `paused` and `maintenance` (README, App lifecycle). */
/** One proxy worker in `GET /admin/workers` (README, Workers). */
export interface WorkerJson {
  /** Its slot, 1 to `workers`; a replacement keeps the number. */
  id: number;
  pid: number;
  state: 'starting' | 'ready' | 'stopping';
  /** ISO-8601. */
  started_at: string;
  /** Requests it proxied (up to 1 s old). */
  requests: number;
  rss_bytes: number;
  /** Times the worker in this slot was replaced after it died. */
  restarts: number;
}

export type AppStateJson = 'starting' | 'ready' | 'restarting' | 'failed' | 'idle' | 'paused' | 'maintenance';

export interface AppJson {
  name: string;
  hosts: string[];
  /** As the config names it: relative to the config file's directory when inside it. */
  entry: string;
  default: boolean;
  state: AppStateJson;
  instances: InstanceJson[];
  requests_total: number;
  last_error: string | null;
  /** Where its HTTPS certificate comes from; false: plain HTTP only (README, HTTPS). */
  tls: 'acme' | 'file' | false;
}

/** One host's certificate (`GET /admin/certificates`, README, HTTPS). */
export interface CertificateJson {
  host: string;
  app: string;
  source: 'acme' | 'file';
  state: 'valid' | 'pending' | 'renewing' | 'failed';
  /** ISO-8601, or null while it has none. */
  not_before: string | null;
  not_after: string | null;
  /** When the gateway renews it; null for file certificates. */
  renew_at: string | null;
  issuer: string | null;
  last_error: string | null;
}

/** What a reload did, app by app (`POST /admin/reload`). */
export interface ReloadSummary {
  added: string[];
  removed: string[];
  changed: string[];
  unchanged: string[];
  failed: Array<{ name: string; error: string }>;
}

export type ReloadOutcome = { ok: true; summary: ReloadSummary } | { ok: false; error: string };

/** "added a; changed b; removed c", or "nothing changed"; with `failed`, the failed apps too. */
export function describeChanges(summary: ReloadSummary, options: { failed: boolean }): string {
  const parts = [
    summary.added.length ? `added ${summary.added.join(', ')}` : '',
    summary.changed.length ? `changed ${summary.changed.join(', ')}` : '',
    summary.removed.length ? `removed ${summary.removed.join(', ')}` : '',
    options.failed && summary.failed.length ? `failed ${summary.failed.map((f) => f.name).join(', ')}` : '',
  ].filter(Boolean);
  return parts.length ? parts.join('; ') : 'nothing changed';
}

/** One reload as `GET /admin/reloads` lists it (README, Admin API). */
export interface ReloadRecordJson {
  /** When it started, ISO-8601. */
  at: string;
  trigger: 'file' | 'signal' | 'admin' | 'add' | 'remove' | 'restart' | 'watch';
  result: 'ok' | 'partial' | 'invalid';
  added: string[];
  removed: string[];
  changed: string[];
  unchanged: string[];
  failed: Array<{ name: string; error: string }>;
  /** The config error of an invalid one. */
  error: string | null;
  /** How long until its routing table was in place (old children may still drain). */
  ms: number;
}

/** One app's last minute, as `GET /admin/traffic` sends it. */
export interface AppTrafficHistory {
  /** Requests answered in each of the last 60 seconds, oldest first. */
  requests: number[];
  /** Of those, 5xx answers. */
  errors: number[];
  /** Over the last minute, from the duration histogram (a bucket's upper bound); null without requests. */
  p50_ms: number | null;
  p99_ms: number | null;
}
