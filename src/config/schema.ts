/** The validated, typed config: what every other module works from. */
import type { ListenAddress } from '../addresses.js';
import type { CertificateFacts } from '../tls/x509.js';

export interface GatewaySettings {
  listen: ListenAddress;
  drainTimeoutMs: number;
  upstreamTimeoutMs: number;
  queueTimeoutMs: number;
  /** Addresses and CIDRs whose X-Forwarded-* headers are kept. */
  trustedProxies: string[];
  /** One log line per request. */
  accessLog: boolean;
  /** Lines kept in memory per app, and gateway-wide (README, Logs: the ring). */
  logLines: number;
  /**
   * Proxy processes (README, Workers): 1 serves in this process; more run
   * that many workers beside a primary that proxies nothing. `"auto"` is
   * resolved to the machine's available cores here.
   */
  workers: number;
}

export interface AdminSettings {
  /** null when `[admin] listen = false`. */
  listen: ListenAddress | null;
  /** From NANO_ADMIN_TOKEN, else the file; null when neither sets one. */
  token: string | null;
}

export interface AppConfig {
  name: string;
  /** Normalised: lower case, no trailing dot; wildcards keep their `*.` prefix. */
  hosts: string[];
  /** Absolute path. */
  entry: string;
  /** Absolute path. */
  cwd: string;
  args: string[];
  nodeArgs: string[];
  env: Record<string, string>;
  maxMemoryMb: number;
  healthPath: string | null;
  readyTimeoutMs: number;
  killTimeoutMs: number;
  instances: number;
  /** Where its HTTPS certificates come from (README, HTTPS); false without a `[tls]` table. */
  tls: AppTls;
  /** Memory watchdog: replace a child whose RSS stays above this (README, Memory watchdog); null: off. */
  maxRssMb: number | null;
  /** Rolling restart when its files change (README, Watch and restart). */
  watch: AppWatch;
  /** > 0: stop its children after this long without a request (README, Scale to zero); 0: never. */
  idleTimeoutMs: number;
}

/** `watch`: off, every file under cwd (minus node_modules/, .git/, dot-files), or these globs relative to cwd. */
export type AppWatch = boolean | string[];

/** `tls` of an app: ACME, PEM files (absolute paths), or plain HTTP only. */
export type AppTls = 'acme' | false | { cert: string; key: string };

/** The `[tls]` table (README, HTTPS). */
export interface TlsSettings {
  listen: ListenAddress;
  acmeDirectory: string;
  acmeEmail: string | null;
  /** PEM text of `acme_ca_file`: trusted for the ACME directory's own HTTPS. */
  acmeCa: string | null;
  /** Absolute path of the folder for the account key, keys and certificates. */
  storage: string;
  redirectHttp: boolean;
  hstsMaxAge: number;
}

/** A certificate an app's `tls = { cert, key }` names, read and checked at load time: plain data. */
export interface FileCertificate {
  app: string;
  /** The app's hosts it serves (every one is covered). */
  hosts: string[];
  certFile: string;
  keyFile: string;
  certPem: string;
  keyPem: string;
  facts: CertificateFacts;
}

export interface GatewayConfig {
  /** Absolute path of the config file. */
  file: string;
  /** The file as the user named it, for messages. */
  displayFile: string;
  gateway: GatewaySettings;
  admin: AdminSettings;
  /** In file order. */
  apps: AppConfig[];
  /** The app for unmatched hosts, or null when unmatched hosts get 404. */
  defaultApp: string | null;
  /** What the file says about `default_app`: a name, false, or absent (the first app). */
  defaultAppSetting: string | false | undefined;
  /** null: no `[tls]` table, plain HTTP only. */
  tls: TlsSettings | null;
  /** Every app's certificate files, read and checked (README, HTTPS: certificates from files). */
  fileCertificates: FileCertificate[];
}

export const DEFAULTS = {
  listen: '0.0.0.0:8080',
  adminListen: '127.0.0.1:8081',
  drainTimeoutMs: 30_000,
  upstreamTimeoutMs: 60_000,
  queueTimeoutMs: 10_000,
  maxMemoryMb: 256,
  readyTimeoutMs: 10_000,
  killTimeoutMs: 5_000,
  instances: 1,
  logLines: 1000,
  workers: 1,
  tlsListen: '0.0.0.0:443',
  acmeDirectory: 'https://acme-v02.api.letsencrypt.org/directory',
  storage: '.nano-gateway/certs',
} as const;

export const APP_NAME_PATTERN = /^[a-z0-9][a-z0-9_-]{0,62}$/;
