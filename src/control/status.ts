import path from 'node:path';
import type { AppConfig } from '../config/schema.js';
import type { TrafficSnapshot } from '../dataplane/stats.js';
import type { AppJson } from '../wire.js';
import type { AppSet } from './app-set.js';

/**
 * The apps as the admin API shows them (README, Admin API: the App
 * object): built on demand from the app set, the supervisors and the data
 * plane's counters, never stored.
 */
export class StatusProjection {
  constructor(
    private readonly apps: AppSet,
    private readonly traffic: () => TrafficSnapshot,
  ) {}

  /** Every app in the file's order: running ones, and those whose start failed. */
  all(): AppJson[] {
    const traffic = this.traffic();
    const out: AppJson[] = [];
    for (const name of this.apps.order) {
      const app = this.project(name, traffic);
      if (app) out.push(app);
    }
    return out;
  }

  app(name: string): AppJson | null {
    return this.project(name, this.traffic());
  }

  private project(name: string, traffic: TrafficSnapshot): AppJson | null {
    const config = this.apps.runningConfig(name);
    if (config) {
      const supervisor = this.apps.supervisor(name);
      const instances = (supervisor?.instances() ?? []).map((i) => ({
        pid: i.pid,
        port: i.port,
        state: i.state,
        started_at: i.startedAt ? new Date(i.startedAt).toISOString() : null,
        restarts: i.restarts,
        rss_bytes: i.rssBytes,
      }));
      const hold = this.apps.hold(name);
      // An operator's pause or maintenance is what the app's requests get, whatever its children do.
      const state = hold ? (hold.mode === 'hold' ? 'paused' : 'maintenance') : (supervisor?.state() ?? 'starting');
      return this.json(
        config,
        name === this.apps.current.defaultApp,
        state,
        instances,
        traffic,
        supervisor?.lastError ?? null,
      );
    }
    const failed = this.apps.failure(name);
    return failed ? this.json(failed.config, false, 'failed', [], traffic, failed.error) : null;
  }

  /** In the README's key order. */
  private json(
    app: AppConfig,
    isDefault: boolean,
    state: AppJson['state'],
    instances: AppJson['instances'],
    traffic: TrafficSnapshot,
    lastError: string | null,
  ): AppJson {
    const relative = path.relative(path.dirname(this.apps.current.file), app.entry);
    return {
      name: app.name,
      hosts: app.hosts,
      entry: relative.startsWith('..') || path.isAbsolute(relative) ? app.entry : relative,
      default: isDefault,
      state,
      instances,
      requests_total: traffic[app.name]?.requests ?? 0,
      last_error: lastError,
      tls: app.tls === false ? false : app.tls === 'acme' ? 'acme' : 'file',
    };
  }
}
