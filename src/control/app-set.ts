import type { AppConfig, FileCertificate, GatewayConfig } from '../config/schema.js';
import type { RouteTableData, UpstreamAddress } from '../routing/table.js';
import type { SupervisedApp } from './supervised.js';

/** An app paused or in maintenance (README, Pause and maintenance): runtime only, kept across reloads. */
export type AppHold = { mode: 'hold' } | { mode: 'maintenance'; message: string };

/** An app in the file that is not running: its start failed (README, Reloading). */
export interface FailedApp {
  config: AppConfig;
  error: string;
}

/**
 * The one owner of the set of apps. It keeps, consistent with each other:
 * - the running config: its `apps` are the running apps, in file order;
 * - each running app's supervisor and the upstreams it serves on;
 * - the apps in the file that failed to start (not routed, listed as `failed`);
 * - the file order of both;
 * - every supervisor that still has children (running, being added, draining).
 * The rule: every name in the file order is running or failed, never both;
 * a running app has a supervisor; a supervisor is live until it has stopped.
 * Everything that changes the set goes through the methods below, one
 * operation at a time (the operation queue).
 */
export class AppSet {
  private config: GatewayConfig;
  private readonly supervisors = new Map<string, SupervisedApp>();
  private readonly failed = new Map<string, FailedApp>();
  private readonly routes = new Map<string, UpstreamAddress[]>();
  private fileOrder: string[];
  private readonly live = new Set<SupervisedApp>();
  private readonly holds = new Map<string, AppHold>();
  private tableVersion = 0;

  constructor(config: GatewayConfig) {
    this.config = config;
    this.fileOrder = config.apps.map((a) => a.name);
  }

  /** The running config: its gateway and admin settings, the running apps and the default. */
  get current(): GatewayConfig {
    return this.config;
  }

  /** App names in the file's order: running and failed. */
  get order(): readonly string[] {
    return this.fileOrder;
  }

  supervisor(name: string): SupervisedApp | undefined {
    return this.supervisors.get(name);
  }

  runningConfig(name: string): AppConfig | undefined {
    return this.config.apps.find((a) => a.name === name);
  }

  failure(name: string): FailedApp | undefined {
    return this.failed.get(name);
  }

  /** Running or failed: a name the file has. */
  has(name: string): boolean {
    return this.runningConfig(name) !== undefined || this.failed.has(name);
  }

  /** Pause or maintenance for a running app; null: serve again (README, Pause and maintenance). */
  setHold(name: string, hold: AppHold | null): void {
    if (hold === null) this.holds.delete(name);
    else if (this.supervisors.has(name)) this.holds.set(name, hold);
  }

  hold(name: string): AppHold | undefined {
    return this.holds.get(name);
  }

  /** Supervisors that still have children, for shutdown. */
  liveSupervisors(): SupervisedApp[] {
    return [...this.live];
  }

  /** A supervisor whose children are starting (not routed yet) is live too. */
  track(supervisor: SupervisedApp): void {
    this.live.add(supervisor);
  }

  /** Its children have stopped, or it never started any. */
  untrack(supervisor: SupervisedApp): void {
    this.live.delete(supervisor);
  }

  /** Start-up: each app of the running config gets its supervisor. */
  attach(name: string, supervisor: SupervisedApp): void {
    this.supervisors.set(name, supervisor);
    this.live.add(supervisor);
  }

  /**
   * A running app's serving upstreams changed (a child became ready or
   * crashed, a generation was promoted). Events of a supervisor that no
   * longer runs its app (removed, draining) change nothing.
   */
  setRoutes(supervisor: SupervisedApp, upstreams: UpstreamAddress[]): void {
    if (this.supervisors.get(supervisor.name) === supervisor) this.routes.set(supervisor.name, upstreams);
  }

  /** An app added at run time (admin API), now ready: it runs, at the end of the file, with its certificate files. */
  admit(app: AppConfig, supervisor: SupervisedApp, certificate: FileCertificate | null = null): void {
    this.supervisors.set(app.name, supervisor);
    this.live.add(supervisor);
    this.routes.set(app.name, supervisor.servingUpstreams());
    const fileCertificates = this.config.fileCertificates.filter((c) => c.app !== app.name);
    if (certificate) fileCertificates.push(certificate);
    this.config = { ...this.config, apps: [...this.config.apps, app], fileCertificates };
    this.fileOrder.push(app.name);
  }

  /** Takes an app out of the set (admin API); returns its supervisor, still live, for the caller to drain. */
  remove(name: string, defaultApp: string | null): SupervisedApp | undefined {
    const supervisor = this.supervisors.get(name);
    this.supervisors.delete(name);
    this.routes.delete(name);
    this.holds.delete(name);
    this.failed.delete(name);
    this.fileOrder = this.fileOrder.filter((n) => n !== name);
    this.config = {
      ...this.config,
      apps: this.config.apps.filter((a) => a.name !== name),
      defaultApp,
      fileCertificates: this.config.fileCertificates.filter((c) => c.app !== name),
    };
    return supervisor;
  }

  /** A failed app's latest try failed too. */
  markFailed(app: AppConfig, error: string): void {
    if (!this.supervisors.has(app.name)) this.failed.set(app.name, { config: app, error });
  }

  /** A failed app started after all (restart): it runs now, in its place in the file. */
  recover(app: AppConfig, supervisor: SupervisedApp): void {
    this.failed.delete(app.name);
    this.supervisors.set(app.name, supervisor);
    this.live.add(supervisor);
    this.routes.set(app.name, supervisor.servingUpstreams());
    const order = new Map(this.fileOrder.map((n, i) => [n, i]));
    const apps = [...this.config.apps, app].sort((a, b) => (order.get(a.name) ?? 0) - (order.get(b.name) ?? 0));
    this.config = { ...this.config, apps };
  }

  /**
   * A reload's swap, in one step: the new running config (`next` with the
   * apps that run and the default that holds), the supervisors whose new
   * generation was promoted (new apps among them), the removed apps
   * (returned for the caller to drain) and the failed ones.
   */
  swap(
    next: GatewayConfig,
    running: { apps: AppConfig[]; defaultApp: string | null },
    promoted: ReadonlyMap<string, SupervisedApp>,
    failed: ReadonlyMap<string, string>,
  ): SupervisedApp[] {
    const removed: SupervisedApp[] = [];
    const names = new Set(running.apps.map((a) => a.name));
    for (const [name, supervisor] of this.supervisors) {
      if (names.has(name)) continue;
      removed.push(supervisor);
      this.supervisors.delete(name);
      this.routes.delete(name);
      this.holds.delete(name);
    }
    for (const [name, supervisor] of promoted) {
      this.supervisors.set(name, supervisor);
      this.live.add(supervisor);
      this.routes.set(name, supervisor.servingUpstreams());
    }
    this.config = { ...next, apps: running.apps, defaultApp: running.defaultApp };
    this.fileOrder = next.apps.map((a) => a.name);
    this.failed.clear();
    for (const app of next.apps) {
      if (!names.has(app.name))
        this.failed.set(app.name, { config: app, error: failed.get(app.name) ?? 'not started' });
    }
    return removed;
  }

  /** The route table as plain data: every running app with its serving upstreams. */
  routeTable(): RouteTableData {
    return {
      version: ++this.tableVersion,
      defaultApp: this.config.defaultApp,
      apps: this.config.apps.map((app) => {
        const hold = this.holds.get(app.name);
        return {
          name: app.name,
          hosts: app.hosts,
          upstreams: this.routes.get(app.name) ?? [],
          tls: app.tls !== false,
          mode: hold?.mode ?? 'serve',
          ...(hold?.mode === 'maintenance' ? { maintenanceMessage: hold.message } : {}),
          idle: this.supervisors.get(app.name)?.isIdle ?? false,
        };
      }),
    };
  }
}
