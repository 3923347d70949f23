import { readFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { AdminServer } from './admin/server.js';
import { diffApps } from './config/diff.js';
import { ConfigError } from './config/errors.js';
import { parseConfig } from './config/load.js';
import { locateKeys } from './config/locate.js';
import { appendAppTable, ConfigEditError, removeAppTable, writeFileAtomic } from './config/persist.js';
import { APP_NAME_PATTERN, formatListen, type AppConfig, type GatewayConfig, type ListenAddress } from './config/schema.js';
import { GatewayOpError, ListenError } from './errors.js';
import type { Logger } from './log.js';
import { OperationQueue } from './ops.js';
import { rssBytes } from './proc.js';
import type { EngineFactory } from './proxy/engine.js';
import { ProxyServer } from './proxy/server.js';
import { effectiveApps, effectiveDefault, summaryLine, type ReloadOutcome, type ReloadSummary } from './reload.js';
import { normalizeConfigHost } from './routing/host.js';
import type { RouteTableData } from './routing/table.js';
import { StatsRegistry } from './stats.js';
import { AppSupervisor, type AppState, type Generation, type SupervisorContext } from './supervisor/app-supervisor.js';
import { PortAllocator } from './supervisor/ports.js';
import { ConfigWatcher } from './watcher.js';

export type { ReloadOutcome, ReloadSummary };

export type ReloadTrigger = 'file' | 'signal' | 'admin';

export interface GatewayOptions {
  config: GatewayConfig;
  /** The text `config` was parsed from: what the watcher compares the file against. */
  configText?: string;
  logger: Logger;
  /** For high-volume lines (access log, children's output); defaults to `logger`. */
  bulkLogger?: Logger;
  /** `--listen` on the command line wins over `[gateway] listen`. */
  listen?: ListenAddress;
  engine?: EngineFactory;
  /** Reload when the config file changes (default true). */
  watch?: boolean;
}

export interface InstanceStatus {
  pid: number | null;
  port: number;
  state: string;
  /** ms since the epoch. */
  startedAt: number;
  restarts: number;
  rssBytes: number;
}

export interface AppStatus {
  name: string;
  hosts: string[];
  /** As the config names it: relative to the config file's directory when inside it. */
  entry: string;
  isDefault: boolean;
  state: AppState;
  instances: InstanceStatus[];
  requestsTotal: number;
  lastError: string | null;
}

/** One reload's result, and the drain of what it replaced (which may take drain_timeout_ms). */
interface ReloadRun {
  outcome: ReloadOutcome;
  drained: Promise<void>;
}

/**
 * The composition root. Data flows one way: config file → validated config
 * → diff against the running one → supervisors start and check children →
 * a route table is built from the ready children and published in one
 * assignment → the proxy reads the current table per request.
 *
 * Everything that changes what runs (file reloads, admin adds, removes and
 * restarts) goes through one operation queue, so none interleave.
 */
export class Gateway {
  private config: GatewayConfig;
  private readonly log: Logger;
  private readonly proxy: ProxyServer;
  private readonly ports = new PortAllocator();
  /** The serving apps by name. */
  private readonly supervisors = new Map<string, AppSupervisor>();
  /** Every supervisor with children: serving, being added, or draining after removal. */
  private readonly allSupervisors = new Set<AppSupervisor>();
  /**
   * Apps in the file that are not running because their start failed (an
   * add by reload whose children never became ready, or one held back by a
   * host clash). They are not routed; the admin API shows them as `failed`,
   * and the next reload or `restart` tries them again.
   */
  private readonly failedApps = new Map<string, { config: AppConfig; error: string }>();
  /** App names in the file's order (running and failed), for the admin API's listing. */
  private fileOrder: string[];
  private readonly supervisorContext: SupervisorContext;
  private readonly listenAddress: ListenAddress;
  private readonly ops = new OperationQueue();
  /** A reload waiting in the queue; later requests join it instead of queueing another. */
  private queuedReload: Promise<ReloadRun> | null = null;
  private readonly watchFile: boolean;
  private watcher: ConfigWatcher | null = null;
  private admin: AdminServer | null = null;
  /** Config text the gateway has already acted on (read or written); the watcher skips a file that still says this. */
  private seenText: string | null = null;
  /** Set by SIGHUP and the admin API: the next reload runs even if the file looks unchanged. */
  private explicitReload = false;
  private tableVersion = 0;
  private stopping: Promise<void> | null = null;
  readonly stats = new StatsRegistry();
  readonly reloadCounts = { ok: 0, partial: 0, invalid: 0 };
  /** The last reload's config error, until a valid reload (SPEC §8 `config_error`). */
  lastReloadError: string | null = null;
  address: AddressInfo | null = null;

  constructor(options: GatewayOptions) {
    this.config = options.config;
    this.seenText = options.configText ?? null;
    this.fileOrder = options.config.apps.map((a) => a.name);
    this.log = options.logger;
    this.listenAddress = options.listen ?? options.config.gateway.listen;
    this.watchFile = options.watch ?? true;
    this.proxy = new ProxyServer({
      logger: options.logger,
      accessLogger: (options.bulkLogger ?? options.logger).child({ kind: 'access' }),
      settings: options.config.gateway,
      stats: this.stats,
      ...(options.engine ? { engine: options.engine } : {}),
    });
    this.supervisorContext = {
      logger: options.logger,
      outputLogger: options.bulkLogger ?? options.logger,
      ports: this.ports,
      onServingChange: () => this.publish(),
      drainUpstream: (id, timeoutMs) => this.proxy.drainUpstream(id, timeoutMs),
      drainTimeoutMs: () => this.config.gateway.drainTimeoutMs,
      onRestart: (app) => void this.stats.for(app).restarts++,
      forgetUpstream: (id) => this.proxy.forgetUpstream(id),
    };
  }

  /** Listens at once (requests for apps not ready yet queue), then starts every app. */
  async start(): Promise<AddressInfo> {
    this.publish();
    try {
      this.address = await this.proxy.listen(this.listenAddress);
    } catch (err) {
      throw new ListenError(formatListen(this.listenAddress), err as Error);
    }
    const where = formatListen({ host: this.address.address, port: this.address.port });
    this.log.info({ address: `http://${where}`, engine: this.proxy.engineName }, `listening on http://${where}`);
    // Both listeners before any child: a start that cannot listen leaves nothing running.
    try {
      await this.startAdmin();
    } catch (err) {
      await this.proxy.close(0);
      throw new ListenError(formatListen(this.config.admin.listen as ListenAddress), err as Error);
    }
    this.logRoutes();
    for (const app of this.config.apps) {
      const supervisor = this.newSupervisor(app);
      this.supervisors.set(app.name, supervisor);
      supervisor.start();
    }
    if (this.watchFile) {
      this.watcher = new ConfigWatcher({
        file: this.config.file,
        logger: this.log,
        onChange: () => void this.reload('file'),
      });
      await this.watcher.ready();
    }
    return this.address;
  }

  get currentConfig(): GatewayConfig {
    return this.config;
  }

  // ---- operations --------------------------------------------------------

  /**
   * Applies the config file as it is now (SPEC §6). One requested while
   * another operation runs is applied after it, on the newest file.
   * Resolves once the old children it replaced are drained and stopped.
   */
  async reload(trigger: ReloadTrigger): Promise<ReloadOutcome> {
    if (trigger !== 'file') this.explicitReload = true;
    if (this.stopping) return { ok: false, error: 'the gateway is shutting down' };
    this.queuedReload ??= this.ops.run(() => {
      this.queuedReload = null;
      const explicit = this.explicitReload;
      this.explicitReload = false;
      return this.reloadNow(explicit);
    });
    const run = await this.queuedReload;
    await run.drained;
    return run.outcome;
  }

  /**
   * Adds an app (SPEC §8 `POST /admin/apps`): validates it like the file
   * would, starts it, and only once its children are ready writes it into
   * the config file and routes to it. A start that fails writes nothing.
   */
  addApp(name: unknown, keys: Record<string, unknown>): Promise<AppStatus> {
    return this.ops.run(async () => {
      let text = await this.syncWithFile();
      if (typeof name !== 'string' || !APP_NAME_PATTERN.test(name)) {
        throw new GatewayOpError('invalid', 'name: expected 1-63 characters of a-z, 0-9, "_" and "-", starting with a letter or digit');
      }
      let { newText, app } = this.withAddedApp(text, name, keys);
      const { supervisor, gen } = await this.startNewApp(app);
      try {
        // The file may have been edited while the app started: apply that
        // first and add the app to the newest text, or give up if the edit
        // now conflicts with it.
        const fresh = await this.syncWithFile();
        if (fresh !== text) {
          text = fresh;
          ({ newText, app } = this.withAddedApp(text, name, keys));
        }
        await writeFileAtomic(this.config.file, newText);
      } catch (err) {
        await supervisor.discard(gen);
        this.allSupervisors.delete(supervisor);
        if (err instanceof GatewayOpError) throw err;
        throw new GatewayOpError('io_error', `could not write ${this.config.displayFile}: ${(err as Error).message}`, name);
      }
      this.seenText = newText;
      supervisor.promote(gen);
      this.supervisors.set(name, supervisor);
      this.config = { ...this.config, apps: [...this.config.apps, app] };
      this.fileOrder.push(name);
      this.publish();
      this.log.info({ app: name, hosts: app.hosts }, `app added: ${app.hosts.join(', ')} -> ${name}`);
      return this.statusOf(app);
    });
  }

  /** The config text with an app appended, validated as the file would be; errors say which key is wrong. */
  private withAddedApp(text: string, name: string, keys: Record<string, unknown>): { newText: string; app: AppConfig } {
    if (this.config.apps.some((a) => a.name === name) || this.failedApps.has(name) || locateKeys(text).lines.has(`apps.${name}`)) {
      throw new GatewayOpError('conflict', `an app named "${name}" already exists`, name);
    }
    this.assertHostsFree(name, keys.hosts);
    try {
      const newText = appendAppTable(text, name, keys);
      const next = parseConfig(newText, this.config.file, { displayFile: this.config.displayFile });
      return { newText, app: next.apps.find((a) => a.name === name) as AppConfig };
    } catch (err) {
      if (err instanceof ConfigEditError) throw new GatewayOpError('invalid', `${err.key ?? `apps.${name}`}: ${err.message}`, name);
      if (err instanceof ConfigError) throw configErrorAsOpError(err, name);
      throw err;
    }
  }

  /**
   * Removes an app (SPEC §8 `DELETE /admin/apps/:name`): takes it out of the
   * config file and the route table, then drains and stops its children.
   * Resolves once they are stopped.
   */
  async removeApp(name: string): Promise<AppStatus> {
    const { status, drained } = await this.ops.run(async () => {
      const text = await this.syncWithFile();
      const app = this.config.apps.find((a) => a.name === name);
      const failed = this.failedApps.get(name);
      if (!app && !failed) throw new GatewayOpError('not_found', `no app named "${name}"`, name);
      if (this.fileOrder.length <= 1) throw new GatewayOpError('conflict', `"${name}" is the last app; a config needs at least one`, name);
      if (this.config.defaultAppSetting === name) {
        throw new GatewayOpError('conflict', `"${name}" is named by [gateway] default_app; change that first`, name);
      }
      let newText: string;
      let next: GatewayConfig;
      try {
        newText = removeAppTable(text, name);
        next = parseConfig(newText, this.config.file, { displayFile: this.config.displayFile });
      } catch (err) {
        if (err instanceof ConfigEditError || err instanceof ConfigError) throw new GatewayOpError('conflict', err.message, name);
        throw err;
      }
      const status = app ? this.statusOf(app) : this.failedStatus(name);
      try {
        await writeFileAtomic(this.config.file, newText);
      } catch (err) {
        throw new GatewayOpError('io_error', `could not write ${this.config.displayFile}: ${(err as Error).message}`, name);
      }
      this.seenText = newText;
      this.failedApps.delete(name);
      this.fileOrder = this.fileOrder.filter((n) => n !== name);
      const supervisor = this.supervisors.get(name);
      this.supervisors.delete(name);
      const apps = this.config.apps.filter((a) => a.name !== name);
      this.config = { ...this.config, apps, defaultApp: effectiveDefault(next, apps, this.config.defaultApp) };
      this.publish();
      this.log.info({ app: name }, `app removed: ${name}`);
      const drained = supervisor
        ? supervisor.stop({ drain: true }).then(() => void this.allSupervisors.delete(supervisor))
        : Promise.resolve();
      return { status, drained };
    });
    await drained;
    return status;
  }

  /**
   * Rolling restart (SPEC §8 `POST /admin/apps/:name/restart`): a new
   * generation with the same config, swapped in once ready; the old one
   * drains. Resolves after the swap.
   */
  restartApp(name: string): Promise<AppStatus> {
    return this.ops.run(async () => {
      const failed = this.failedApps.get(name);
      if (failed) return this.startFailedApp(name, failed.config);
      const supervisor = this.supervisors.get(name);
      if (!supervisor) throw new GatewayOpError('not_found', `no app named "${name}"`, name);
      let gen: Generation;
      try {
        gen = await supervisor.prepare(supervisor.config);
      } catch (err) {
        throw new GatewayOpError('not_ready', `app "${name}" was not restarted, its new children did not become ready: ${(err as Error).message}`, name);
      }
      const old = supervisor.promote(gen);
      this.publish();
      this.log.info({ app: name }, `app restarted: ${name}`);
      if (old) void supervisor.retire(old);
      return this.statusOf(supervisor.config);
    });
  }

  /** `restart` of an app whose add failed: try to start it again, and route to it if it comes up. */
  private async startFailedApp(name: string, app: AppConfig): Promise<AppStatus> {
    const owners = this.hostOwners();
    const clash = app.hosts.find((h) => owners.has(h));
    if (clash) {
      throw new GatewayOpError('conflict', `host "${clash}" is served by app "${owners.get(clash)}"; the file must change first`, name);
    }
    let started: { supervisor: AppSupervisor; gen: Generation };
    try {
      started = await this.startNewApp(app);
    } catch (err) {
      this.failedApps.set(name, { config: app, error: (err as Error).message });
      throw err;
    }
    const { supervisor, gen } = started;
    supervisor.promote(gen);
    this.failedApps.delete(name);
    this.supervisors.set(name, supervisor);
    this.config = { ...this.config, apps: [...this.config.apps, app] };
    this.publish();
    this.log.info({ app: name }, `app started: ${name}`);
    return this.statusOf(app);
  }

  // ---- state -------------------------------------------------------------

  /** Every app in the file's order, as the admin API shows it: running ones, and those whose start failed. */
  statuses(): AppStatus[] {
    const out: AppStatus[] = [];
    const seen = new Set<string>();
    for (const name of this.fileOrder) {
      const status = this.status(name);
      if (status) out.push(status);
      seen.add(name);
    }
    for (const app of this.config.apps) if (!seen.has(app.name)) out.push(this.statusOf(app));
    return out;
  }

  status(name: string): AppStatus | null {
    const app = this.config.apps.find((a) => a.name === name);
    if (app) return this.statusOf(app);
    return this.failedApps.has(name) ? this.failedStatus(name) : null;
  }

  /** Builds the route table from every app's ready children and swaps it in. */
  publish(): void {
    const data: RouteTableData = {
      version: ++this.tableVersion,
      defaultApp: this.config.defaultApp,
      apps: this.config.apps.map((app) => ({
        name: app.name,
        hosts: app.hosts,
        upstreams: this.supervisors.get(app.name)?.servingUpstreams() ?? [],
      })),
    };
    this.proxy.publish(data);
  }

  /**
   * SIGTERM/SIGINT: stop accepting, let in-flight requests finish (up to
   * drain_timeout_ms), then stop every child (SIGTERM, SIGKILL after
   * kill_timeout_ms).
   */
  stop(): Promise<void> {
    this.stopping ??= (async () => {
      this.log.info('shutting down: finishing in-flight requests');
      await this.watcher?.close();
      const adminClosed = this.admin?.close();
      await this.proxy.close(this.config.gateway.drainTimeoutMs);
      await Promise.all([...this.allSupervisors].map((s) => s.stop({ drain: false })));
      await adminClosed;
      this.log.info('all apps stopped');
    })();
    return this.stopping;
  }

  /** For a gateway that must go down now: SIGKILL every child. */
  killChildren(): void {
    for (const supervisor of this.allSupervisors) supervisor.killAll();
  }

  // ---- internals ---------------------------------------------------------

  private newSupervisor(app: AppConfig): AppSupervisor {
    const supervisor = new AppSupervisor(app, this.supervisorContext);
    this.allSupervisors.add(supervisor);
    return supervisor;
  }

  private statusOf(app: AppConfig): AppStatus {
    const supervisor = this.supervisors.get(app.name);
    const relative = path.relative(path.dirname(this.config.file), app.entry);
    return {
      name: app.name,
      hosts: app.hosts,
      entry: relative.startsWith('..') || path.isAbsolute(relative) ? app.entry : relative,
      isDefault: app.name === this.config.defaultApp,
      state: supervisor?.state() ?? 'starting',
      instances: (supervisor?.instances() ?? []).map((i) => ({
        pid: i.pid,
        port: i.port,
        state: i.state,
        startedAt: i.startedAt,
        restarts: i.restarts,
        rssBytes: i.pid !== null && i.state !== 'exited' ? rssBytes(i.pid) : 0,
      })),
      requestsTotal: this.stats.for(app.name).requests,
      lastError: supervisor?.lastError ?? null,
    };
  }

  /** A supervisor for an app that is not running yet, with its first generation ready; `not_ready` otherwise. */
  private async startNewApp(app: AppConfig): Promise<{ supervisor: AppSupervisor; gen: Generation }> {
    const supervisor = this.newSupervisor(app);
    try {
      return { supervisor, gen: await supervisor.prepare(app) };
    } catch (err) {
      this.allSupervisors.delete(supervisor);
      throw new GatewayOpError('not_ready', `app "${app.name}" did not become ready: ${(err as Error).message}`, app.name);
    }
  }

  private hostOwners(): Map<string, string> {
    const owners = new Map<string, string>();
    for (const app of this.config.apps) for (const host of app.hosts) owners.set(host, app.name);
    return owners;
  }

  private failedStatus(name: string): AppStatus {
    const failed = this.failedApps.get(name) as { config: AppConfig; error: string };
    return {
      ...this.statusOf(failed.config),
      isDefault: false,
      state: 'failed',
      instances: [],
      lastError: failed.error,
    };
  }

  private assertHostsFree(name: string, hosts: unknown): void {
    if (!Array.isArray(hosts)) return; // validation reports the type
    const owner = this.hostOwners();
    for (const host of hosts) {
      if (typeof host !== 'string') continue;
      const normal = normalizeConfigHost(host);
      const taken = normal.ok ? owner.get(normal.host) : undefined;
      if (taken !== undefined) throw new GatewayOpError('conflict', `apps.${name}.hosts: host "${host}" is already used by app "${taken}"`, name);
    }
  }

  /**
   * Before an admin edit: the file must be valid, and edits on disk that
   * have not been applied yet are applied first, so that the admin's own
   * write (which the watcher then skips) cannot hide them. Returns the text
   * the gateway now runs, which the edit is then made on.
   */
  private async syncWithFile(): Promise<string> {
    for (let round = 0; ; round++) {
      let text: string;
      try {
        text = readFileSync(this.config.file, 'utf8');
      } catch (err) {
        throw new GatewayOpError('config_error', `cannot read ${this.config.displayFile}: ${(err as Error).message}`);
      }
      if (text === this.seenText) {
        if (this.lastReloadError !== null) throw new GatewayOpError('config_error', `the config file has an error, fix it first: ${this.lastReloadError}`);
        return text;
      }
      if (round >= 3) throw new GatewayOpError('config_error', `${this.config.displayFile} keeps changing; try again`);
      const run = await this.reloadNow(false);
      void run.drained;
      if (!run.outcome.ok) throw new GatewayOpError('config_error', `the config file has an error, fix it first: ${run.outcome.error}`);
    }
  }

  private async startAdmin(): Promise<void> {
    const listen = this.config.admin.listen;
    if (listen) this.admin = await this.openAdmin(listen);
  }

  private async openAdmin(listen: ListenAddress): Promise<AdminServer> {
    const admin = new AdminServer({ gateway: this, logger: this.log });
    const address = await admin.listen(listen);
    const where = formatListen({ host: address.address, port: address.port });
    this.log.info({ admin: `http://${where}` }, `admin API listening on http://${where}`);
    return admin;
  }

  /**
   * A reload that moves `[admin] listen` moves the admin listener: the new
   * one first (if it cannot listen, the old one stays and a later reload
   * tries again), then the old one closes once its requests are answered.
   * The token applies at once either way.
   */
  private async rebindAdmin(previous: GatewayConfig): Promise<void> {
    const wanted = this.config.admin.listen;
    const was = this.admin ? (previous.admin.listen ? formatListen(previous.admin.listen) : null) : null;
    const now = wanted ? formatListen(wanted) : null;
    if (was === now) return;
    const old = this.admin;
    if (wanted) {
      try {
        this.admin = await this.openAdmin(wanted);
      } catch (err) {
        this.log.error({ err: (err as Error).message, admin: now }, 'admin API could not listen on its new address; keeping the old one');
        return;
      }
    } else {
      this.admin = null;
      this.log.info('admin API disabled');
    }
    void old?.close({ graceful: true });
  }

  private logRoutes(): void {
    for (const app of this.config.apps) {
      const isDefault = app.name === this.config.defaultApp;
      this.log.info(
        { app: app.name, hosts: app.hosts, default: isDefault },
        `${app.hosts.join(', ')} -> ${app.name}${isDefault ? ' (default)' : ''}`,
      );
    }
    if (this.config.defaultApp === null) this.log.info('unmatched hosts -> 404');
  }

  /** `explicit` (SIGHUP, admin): reload even if the file says what was last applied. */
  private async reloadNow(explicit: boolean): Promise<ReloadRun> {
    const done = Promise.resolve();
    if (this.stopping) return { outcome: { ok: false, error: 'the gateway is shutting down' }, drained: done };

    let next: GatewayConfig;
    try {
      let text: string;
      try {
        text = readFileSync(this.config.file, 'utf8');
      } catch (err) {
        const reason = (err as NodeJS.ErrnoException).code === 'ENOENT' ? 'config file not found' : (err as Error).message;
        throw new ConfigError([{ file: this.config.displayFile, message: reason }]);
      }
      if (!explicit && text === this.seenText) {
        this.log.debug('config file unchanged: nothing to reload');
        return { outcome: { ok: true, summary: unchangedSummary(this.config) }, drained: done };
      }
      this.seenText = text;
      next = parseConfig(text, this.config.file, { displayFile: this.config.displayFile });
    } catch (err) {
      if (!(err instanceof ConfigError)) throw err;
      this.lastReloadError = err.message;
      this.reloadCounts.invalid++;
      this.log.error({ err: err.message }, 'reload rejected: invalid config, the running apps keep serving');
      return { outcome: { ok: false, error: err.message }, drained: done };
    }
    this.lastReloadError = null;
    const started = Date.now();
    const { summary, drained } = await this.apply(next);
    if (summary.failed.length > 0) this.reloadCounts.partial++;
    else this.reloadCounts.ok++;
    return {
      outcome: { ok: true, summary },
      drained: drained.then(() => {
        this.log.info({ ...summary, ms: Date.now() - started }, summaryLine(summary));
      }),
    };
  }

  /**
   * Starts new generations for added and changed apps, swaps the route
   * table in one step once they are ready, then drains what they replaced.
   */
  private async apply(next: GatewayConfig): Promise<{ summary: ReloadSummary; drained: Promise<void> }> {
    const previous = this.config;
    const diff = diffApps(previous.apps, next.apps);

    // 1. Provision: every new generation fully started before anything changes.
    const startFailures = new Map<string, string>();
    const prepared = new Map<string, { supervisor: AppSupervisor; gen: Generation; isNew: boolean }>();
    await Promise.all(
      [...diff.added, ...diff.changed].map(async (app) => {
        const existing = this.supervisors.get(app.name);
        const supervisor = existing ?? this.newSupervisor(app);
        try {
          const gen = await supervisor.prepare(app);
          prepared.set(app.name, { supervisor, gen, isNew: !existing });
        } catch (err) {
          startFailures.set(app.name, (err as Error).message);
          if (!existing) this.allSupervisors.delete(supervisor);
        }
      }),
    );
    if (this.stopping) {
      await Promise.all([...prepared.values()].map((p) => p.supervisor.discard(p.gen)));
      return { summary: unchangedSummary(previous), drained: Promise.resolve() };
    }
    // A child can become ready and then die while other apps are still starting.
    for (const [name, { gen }] of prepared) {
      if (!gen.allAlive()) startFailures.set(name, 'a new instance exited after it was ready, before the swap');
    }

    // 2. Decide what runs: failed apps keep their old version (or stay out).
    const { apps, failed } = effectiveApps(previous.apps, next.apps, startFailures);
    const defaultApp = effectiveDefault(next, apps, previous.defaultApp);
    if (typeof next.defaultAppSetting === 'string' && defaultApp !== next.defaultAppSetting) {
      this.log.warn({ default_app: next.defaultAppSetting, using: defaultApp }, 'default_app is not running: keeping another default');
    }

    // 3. Swap, synchronously: promotions, the new config and one route table.
    const drains: Array<Promise<void>> = [];
    for (const [name, { supervisor, gen, isNew }] of prepared) {
      if (failed.has(name)) {
        drains.push(supervisor.discard(gen));
        if (isNew) this.allSupervisors.delete(supervisor);
        continue;
      }
      const old = supervisor.promote(gen);
      if (isNew) this.supervisors.set(name, supervisor);
      if (old) drains.push(supervisor.retire(old));
    }
    for (const [name, error] of failed) {
      const supervisor = this.supervisors.get(name);
      if (supervisor) supervisor.lastError = error;
      this.log.error({ app: name, err: error }, 'app not updated: its new version did not start');
    }
    const removed = diff.removed.map((app) => this.supervisors.get(app.name)).filter((s): s is AppSupervisor => !!s);
    for (const app of diff.removed) this.supervisors.delete(app.name);
    this.config = { ...next, apps, defaultApp };
    this.fileOrder = next.apps.map((a) => a.name);
    const runningNames = new Set(apps.map((a) => a.name));
    this.failedApps.clear();
    for (const app of next.apps) {
      if (!runningNames.has(app.name)) this.failedApps.set(app.name, { config: app, error: failed.get(app.name) ?? 'not started' });
    }
    this.proxy.configure(next.gateway);
    this.publish();
    this.log.info({ table: this.tableVersion }, 'routing table swapped');
    this.warnAboutRestartOnlyKeys(previous, next);
    await this.rebindAdmin(previous);

    // 4. Drain what was replaced; the caller waits for it, later operations need not.
    for (const supervisor of removed) {
      drains.push(supervisor.stop({ drain: true }).then(() => void this.allSupervisors.delete(supervisor)));
    }
    const summary: ReloadSummary = {
      added: diff.added.map((a) => a.name).filter((n) => !failed.has(n)),
      removed: diff.removed.map((a) => a.name),
      changed: diff.changed.map((a) => a.name).filter((n) => !failed.has(n)),
      unchanged: diff.unchanged.map((a) => a.name),
      failed: [...failed].map(([name, error]) => ({ name, error })),
    };
    return { summary, drained: Promise.all(drains).then(() => undefined) };
  }

  private warnAboutRestartOnlyKeys(running: GatewayConfig, next: GatewayConfig): void {
    const was = formatListen(running.gateway.listen);
    const now = formatListen(next.gateway.listen);
    if (was !== now) {
      this.log.warn({ was, now }, `[gateway] listen changed to ${now}: restart the gateway to listen there`);
    }
  }
}

function unchangedSummary(config: GatewayConfig): ReloadSummary {
  return { added: [], removed: [], changed: [], unchanged: config.apps.map((a) => a.name), failed: [] };
}

/** A config error caused by an app sent to the admin API: its key and message, without the file position. */
function configErrorAsOpError(err: ConfigError, app: string): GatewayOpError {
  const own = err.issues.filter((i) => i.key === `apps.${app}` || i.key?.startsWith(`apps.${app}.`));
  const issue = own[0] ?? err.issues[0];
  const message = issue ? `${issue.key ? `${issue.key}: ` : ''}${issue.message}` : err.message;
  const kind = /is already used by app/.test(message) ? 'conflict' : 'invalid';
  return new GatewayOpError(kind, message, app);
}
