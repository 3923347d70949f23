import { readFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { diffApps } from './config/diff.js';
import { ConfigError } from './config/errors.js';
import { parseConfig } from './config/load.js';
import { formatListen, type GatewayConfig, type ListenAddress } from './config/schema.js';
import type { Logger } from './log.js';
import type { EngineFactory } from './proxy/engine.js';
import { ProxyServer } from './proxy/server.js';
import { effectiveApps, effectiveDefault, summaryLine, type ReloadOutcome, type ReloadSummary } from './reload.js';
import type { RouteTableData } from './routing/table.js';
import { SerialRunner } from './serial.js';
import { AppSupervisor, type Generation, type SupervisorContext } from './supervisor/app-supervisor.js';
import { PortAllocator } from './supervisor/ports.js';
import { ConfigWatcher } from './watcher.js';

export type { ReloadOutcome, ReloadSummary };

export type ReloadTrigger = 'file' | 'signal' | 'admin';

export interface GatewayOptions {
  config: GatewayConfig;
  logger: Logger;
  /** `--listen` on the command line wins over `[gateway] listen`. */
  listen?: ListenAddress;
  engine?: EngineFactory;
  accessLog?: boolean;
  /** Reload when the config file changes (default true). */
  watch?: boolean;
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
 */
export class Gateway {
  private config: GatewayConfig;
  private readonly log: Logger;
  private readonly proxy: ProxyServer;
  private readonly ports = new PortAllocator();
  /** The serving apps by name. */
  private readonly supervisors = new Map<string, AppSupervisor>();
  /** Every supervisor with children: serving, being added by a reload, or draining after removal. */
  private readonly allSupervisors = new Set<AppSupervisor>();
  private readonly supervisorContext: SupervisorContext;
  private readonly listenAddress: ListenAddress;
  private readonly reloads = new SerialRunner<ReloadRun>(() => this.reloadNow());
  private readonly watchFile: boolean;
  private watcher: ConfigWatcher | null = null;
  /** Config text the gateway has already acted on; the watcher skips a file that still says this. */
  private seenText: string | null = null;
  /** Set by SIGHUP and the admin API: the next reload runs even if the file looks unchanged. */
  private explicitReload = false;
  private tableVersion = 0;
  private stopping: Promise<void> | null = null;
  /** The last reload's config error, until a valid reload (SPEC §8 `config_error`). */
  lastReloadError: string | null = null;
  address: AddressInfo | null = null;

  constructor(options: GatewayOptions) {
    this.config = options.config;
    this.log = options.logger;
    this.listenAddress = options.listen ?? options.config.gateway.listen;
    this.watchFile = options.watch ?? true;
    this.proxy = new ProxyServer({
      logger: options.logger,
      settings: options.config.gateway,
      ...(options.engine ? { engine: options.engine } : {}),
      accessLog: options.accessLog ?? true,
    });
    this.supervisorContext = {
      logger: options.logger,
      ports: this.ports,
      onServingChange: () => this.publish(),
      drainUpstream: (id, timeoutMs) => this.proxy.drainUpstream(id, timeoutMs),
      drainTimeoutMs: () => this.config.gateway.drainTimeoutMs,
    };
  }

  /** Listens at once (requests for apps not ready yet queue), then starts every app. */
  async start(): Promise<AddressInfo> {
    try {
      this.seenText = readFileSync(this.config.file, 'utf8');
    } catch {
      // Started from a config that is not on disk (tests); the watcher then applies any file that appears.
    }
    this.publish();
    this.address = await this.proxy.listen(this.listenAddress);
    const where = formatListen({ host: this.address.address, port: this.address.port });
    this.log.info({ address: `http://${where}`, engine: this.proxy.engineName }, `listening on http://${where}`);
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

  /**
   * Applies the config file as it is now (SPEC §6). Reloads never interleave:
   * one requested while another runs is applied after it, on the newest file.
   * Resolves once the old children it replaced are drained and stopped.
   */
  async reload(trigger: ReloadTrigger): Promise<ReloadOutcome> {
    if (trigger !== 'file') this.explicitReload = true;
    if (this.stopping) return { ok: false, error: 'the gateway is shutting down' };
    const run = await this.reloads.run();
    await run.drained;
    return run.outcome;
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

  get currentConfig(): GatewayConfig {
    return this.config;
  }

  appSupervisors(): AppSupervisor[] {
    return this.config.apps.map((app) => this.supervisors.get(app.name)).filter((s): s is AppSupervisor => s !== undefined);
  }

  /** Children alive across every app and generation (for leak checks). */
  liveChildCount(): number {
    let n = 0;
    for (const supervisor of this.allSupervisors) n += supervisor.liveChildCount();
    return n;
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
      await this.proxy.close(this.config.gateway.drainTimeoutMs);
      await Promise.all([...this.allSupervisors].map((s) => s.stop({ drain: false })));
      this.log.info('all apps stopped');
    })();
    return this.stopping;
  }

  /** For a gateway that must go down now: SIGKILL every child. */
  killChildren(): void {
    for (const supervisor of this.allSupervisors) supervisor.killAll();
  }

  private newSupervisor(app: GatewayConfig['apps'][number]): AppSupervisor {
    const supervisor = new AppSupervisor(app, this.supervisorContext);
    this.allSupervisors.add(supervisor);
    return supervisor;
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

  private async reloadNow(): Promise<ReloadRun> {
    const explicit = this.explicitReload;
    this.explicitReload = false;
    const done = Promise.resolve();
    if (this.stopping) return { outcome: { ok: false, error: 'the gateway is shutting down' }, drained: done };

    let text: string;
    let next: GatewayConfig;
    try {
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
      this.log.error({ err: err.message }, 'reload rejected: invalid config, the running apps keep serving');
      return { outcome: { ok: false, error: err.message }, drained: done };
    }
    this.lastReloadError = null;
    const started = Date.now();
    const { summary, drained } = await this.apply(next);
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
    const running = this.config;
    const diff = diffApps(running.apps, next.apps);

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
      return { summary: unchangedSummary(running), drained: Promise.resolve() };
    }

    // 2. Decide what runs: failed apps keep their old version (or stay out).
    const { apps, failed } = effectiveApps(running.apps, next.apps, startFailures);
    const defaultApp = effectiveDefault(next, apps, running.defaultApp);
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
    this.proxy.configure(next.gateway);
    this.publish();
    this.log.info({ table: this.tableVersion }, 'routing table swapped');
    this.warnAboutRestartOnlyKeys(running, next);

    // 4. Drain what was replaced; the caller waits for it, later reloads need not.
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
