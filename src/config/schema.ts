/** The validated, typed config: what every other module works from. */
import type { ListenAddress } from '../addresses.js';

export interface GatewaySettings {
  listen: ListenAddress;
  drainTimeoutMs: number;
  upstreamTimeoutMs: number;
  queueTimeoutMs: number;
  /** Addresses and CIDRs whose X-Forwarded-* headers are kept. */
  trustedProxies: string[];
  /** One log line per request. */
  accessLog: boolean;
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
} as const;

export const APP_NAME_PATTERN = /^[a-z0-9][a-z0-9_-]{0,62}$/;
