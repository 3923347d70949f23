import type { LogRing } from '../logs/ring.js';
import type {
  AppJson,
  AppTrafficHistory,
  CertificateJson,
  ReloadOutcome,
  ReloadRecordJson,
  WorkerJson,
} from '../wire.js';

/**
 * What the admin API needs from the running gateway (README, Admin API).
 * The composition root provides it from the control plane; the admin server
 * knows nothing else of the gateway.
 */
export interface AdminApi {
  /** The last reload's config error, until a valid reload. */
  configError(): string | null;
  /** The bearer token every request must carry, or null. */
  token(): string | null;
  apps(): AppJson[];
  app(name: string): AppJson | null;
  addApp(name: unknown, keys: Record<string, unknown>): Promise<AppJson>;
  removeApp(name: string): Promise<AppJson>;
  restartApp(name: string): Promise<AppJson>;
  /** README, Pause and maintenance: runtime only. */
  pauseApp(name: string): Promise<AppJson>;
  resumeApp(name: string): Promise<AppJson>;
  /** `message` as the request body gave it (validated by the control plane). */
  maintainApp(name: string, message: unknown): Promise<AppJson>;
  reload(): Promise<ReloadOutcome>;
  certificates(): CertificateJson[];
  /** The last 50 reloads, newest first. */
  reloads(): ReloadRecordJson[];
  /** The in-memory log. */
  logs: LogRing;
  /** Each app's last minute, per second (the status page's chart). */
  traffic(): Record<string, AppTrafficHistory>;
  /** Orders a new certificate for an ACME host now; resolves once new handshakes get it. */
  renewCertificate(host: string): Promise<CertificateJson>;
  /** The proxy workers (README, Workers); [] when the gateway proxies in one process. */
  workers(): WorkerJson[];
}
