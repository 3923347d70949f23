import type { AddressInfo } from 'node:net';
import type { LevelWithSilent } from 'pino';
import { formatListen, type ListenAddress } from './addresses.js';
import type { AdminApi } from './admin/api.js';
import { AdminEndpoint } from './admin/endpoint.js';
import type { MetricsSource } from './admin/metrics.js';
import type { AppConfig, GatewayConfig } from './config/schema.js';
import { ConfigWatcher } from './config/watcher.js';
import { AdminOperations } from './control/admin-ops.js';
import { AppSet } from './control/app-set.js';
import { AppWatchers } from './control/app-watchers.js';
import { CertificateManager } from './control/certificates.js';
import { ConfigSource } from './control/config-source.js';
import { dataPlaneSettings } from './control/data-plane-settings.js';
import { Drainer } from './control/drainer.js';
import { IdleController } from './control/idle.js';
import { OperationQueue } from './control/operation-queue.js';
import { ReloadHistory } from './control/reload-history.js';
import { Reloader, type ReloadTrigger } from './control/reloader.js';
import { StatusProjection } from './control/status.js';
import type { SupervisedApp } from './control/supervised.js';
import { SupervisorFactory } from './control/supervisors.js';
import { TrafficHistory } from './control/traffic-history.js';
import type { ServingDataPlane, WorkerInfo } from './dataplane/data-plane.js';
import type { EngineFactory } from './dataplane/engine.js';
import { engineNamed, LocalDataPlane } from './dataplane/local-data-plane.js';
import { GatewayOpError, ListenError } from './errors.js';
import type { Logger } from './log.js';
import { LogRing } from './logs/ring.js';
import type { AppJson, ReloadOutcome, ReloadSummary, WorkerJson } from './wire.js';
import { WorkerDataPlane } from './workers/worker-data-plane.js';

export interface GatewayOptions {
  config: GatewayConfig;
  /** The text `config` was parsed from: what the watcher compares the file against. */
  configText?: string;
  logger: Logger;
  /** For high-volume lines (access log, children's output); defaults to `logger`. */
  bulkLogger?: Logger;
  /** `--listen` on the command line wins over `[gateway] listen`. */
  listen?: ListenAddress;
  /** Defaults to the one `NANO_GATEWAY_ENGINE` names (README, Performance: why undici). */
  engine?: EngineFactory;
  /** Reload when the config file changes (default true). */
  watch?: boolean;
  /** The in-memory log the logger feeds (README, Logs); the admin API reads it. */
  logRing?: LogRing;
  /** Where proxy workers' log lines are written (README, Workers); defaults to stdout. */
  writeLines?: (text: string) => void;
}

/**
 * The composition root (README, Development): it builds the data plane and
 * the control plane, wires them and starts and stops them. Data flows one
 * way: config file → config → diff → children started and checked (the
 * supervisors) → a route table published to the data plane → old children
 * drained.
 */
export class Gateway {
  private readonly log: Logger;
  private readonly dataPlane: ServingDataPlane;
  private readonly apps: AppSet;
  private readonly reloader: Reloader;
  private readonly admin: AdminEndpoint;
  private readonly newSupervisor: (app: AppConfig) => SupervisedApp;
  private readonly certificates: CertificateManager;
  private readonly logs: LogRing;
  private readonly traffic: TrafficHistory;
  private readonly idle: IdleController;
  private readonly appWatchers: AppWatchers;
  /** Listening, with its apps started: app file watchers follow the config from here on. */
  private started = false;
  private watcher: ConfigWatcher | null = null;
  private stopping: Promise<void> | null = null;

  constructor(private readonly options: GatewayOptions) {
    const { config, logger } = options;
    const bulk = options.bulkLogger ?? logger;
    this.log = logger;
    // `workers = 1` proxies in this process, with no IPC on the request path (README, Workers).
    this.dataPlane =
      config.gateway.workers > 1
        ? new WorkerDataPlane({
            count: config.gateway.workers,
            logger,
            logLevel: logger.level as LevelWithSilent,
            writeLines: options.writeLines ?? ((text) => process.stdout.write(text)),
            settings: dataPlaneSettings(config),
          })
        : new LocalDataPlane({
            logger,
            accessLogger: bulk.child({ kind: 'access' }),
            settings: dataPlaneSettings(config),
            engine: options.engine ?? engineNamed(process.env.NANO_GATEWAY_ENGINE),
          });
    const dataPlane = this.dataPlane;
    this.apps = new AppSet(config);
    const apps = this.apps;
    const certificates = new CertificateManager({ logger, dataPlane });
    this.traffic = new TrafficHistory(() => dataPlane.stats());
    this.logs = options.logRing ?? new LogRing(config.gateway.logLines);
    const logs = this.logs;
    this.certificates = certificates;
    // Every change of the app set publishes a table; the certificates follow the same running config.
    const publish = (): number => {
      const table = apps.routeTable();
      dataPlane.publish(table);
      certificates.follow(apps.current);
      logs.setLimit(apps.current.gateway.logLines);
      logs.retain(apps.order);
      this.watcher?.watchAlso(certificateFiles(apps.current));
      if (this.started) this.appWatchers.follow(apps.current, fileApps(apps));
      return table.version;
    };
    const supervisors = new SupervisorFactory({ logger, outputLogger: bulk, apps, dataPlane, publish });
    this.newSupervisor = (app) => supervisors.create(app);
    const source = new ConfigSource(config.file, config.displayFile, options.configText ?? null);
    const drainer = new Drainer(dataPlane, () => apps.current.gateway.drainTimeoutMs);
    const status = new StatusProjection(apps, () => dataPlane.stats());
    // Reloads and admin edits share the app set, the file and one operation queue.
    const shared = {
      apps,
      dataPlane,
      source,
      ops: new OperationQueue(),
      drainer,
      newSupervisor: this.newSupervisor,
      publish,
      logger,
    };
    const history = new ReloadHistory();
    const reloader = new Reloader({
      ...shared,
      history,
      onApplied: () => this.admin.rebind(apps.current.admin.listen),
    });
    this.reloader = reloader;
    const operations = new AdminOperations({ ...shared, reloader, status });
    this.idle = new IdleController({ ...shared, traffic: () => dataPlane.stats() });
    dataPlane.onWake((name) => void this.idle.wake(name));
    // A change to an app's files is its rolling restart, in the history as `watch` (README, Watch and restart).
    this.appWatchers = new AppWatchers({
      logger,
      onChange: (name, file) => {
        // Nothing runs to restart: its next start, at the next request, reads the files (README, Scale to zero).
        if (apps.supervisor(name)?.isIdle) {
          logger.info({ app: name, file }, `${file} changed: ${name} is idle, its next start uses it`);
          return;
        }
        logger.info({ app: name, file }, `${file} changed: restarting ${name}`);
        recorded(history, apps, 'watch', () => operations.restartApp(name), 'changed').catch((err: unknown) =>
          logger.error({ app: name, err: (err as Error).message }, `${name} was not restarted after a change`),
        );
      },
    });
    // An admin answer comes once every proxy worker routes by the change (README, Workers).
    const settled = async <T>(run: () => T | Promise<T>): Promise<T> => {
      const result = await run();
      await dataPlane.settled();
      return result;
    };
    const api: AdminApi = {
      configError: () => reloader.lastError,
      token: () => apps.current.admin.token,
      apps: () => status.all(),
      app: (name) => status.app(name),
      // Admin edits are reloads too, in the history (README, Admin API: `GET /admin/reloads`).
      addApp: (name, keys) =>
        settled(() => recorded(history, apps, 'add', () => operations.addApp(name, keys), 'added')),
      removeApp: (name) =>
        settled(() => recorded(history, apps, 'remove', () => operations.removeApp(name), 'removed')),
      restartApp: (name) =>
        settled(() => recorded(history, apps, 'restart', () => operations.restartApp(name), 'changed')),
      pauseApp: (name) => settled(() => operations.pause(name)),
      resumeApp: (name) => settled(() => operations.resume(name)),
      maintainApp: (name, message) => settled(() => operations.maintenance(name, message)),
      reloads: () => history.all(),
      logs: this.logs,
      traffic: () => this.traffic.history(),
      reload: () => settled(() => reloader.reload('admin')),
      certificates: () => certificates.list(),
      renewCertificate: (host) => settled(() => certificates.renew(host)),
      workers: () => workerJson(dataPlane.workers()),
    };
    const metrics: MetricsSource = {
      traffic: () => dataPlane.stats(),
      restarts: () => supervisors.restarts,
      memoryReplacements: () => supervisors.memoryReplacements,
      apps: () => status.all(),
      reloadCounts: () => reloader.counts,
      certificates: () => certificates.list(),
      acmeOrders: () => certificates.orders,
      logFollowers: () => logs.followerCount,
      workers: () => workerJson(dataPlane.workers()),
    };
    this.admin = new AdminEndpoint({ api, metrics, logger });
    publish();
  }

  /** Listens at once (requests for apps not ready yet wait), then starts every app. */
  async start(): Promise<AddressInfo> {
    const config = this.apps.current;
    const listen = this.options.listen ?? config.gateway.listen;
    let address: AddressInfo;
    try {
      address = await this.dataPlane.listen(listen);
    } catch (err) {
      throw new ListenError(formatListen(listen), err as Error);
    }
    const where = formatListen({ host: address.address, port: address.port });
    this.log.info({ address: `http://${where}`, engine: this.dataPlane.engineName }, `listening on http://${where}`);
    // Every listener before any child: a start that cannot listen leaves nothing running.
    if (config.tls) {
      try {
        const bound = await this.dataPlane.listenTls(config.tls.listen);
        const at = formatListen({ host: bound.address, port: bound.port });
        this.log.info({ address: `https://${at}` }, `listening on https://${at} (HTTP/2 and HTTP/1.1)`);
      } catch (err) {
        await this.dataPlane.close(0);
        throw new ListenError(formatListen(config.tls.listen), err as Error);
      }
    }
    try {
      await this.admin.open(config.admin.listen);
    } catch (err) {
      await this.dataPlane.close(0);
      throw new ListenError(formatListen(config.admin.listen as ListenAddress), err as Error);
    }
    this.logRoutes(config);
    this.certificates.start();
    this.traffic.start();
    for (const app of config.apps) {
      const supervisor = this.newSupervisor(app);
      this.apps.attach(app.name, supervisor);
      supervisor.start();
    }
    this.started = true;
    this.idle.start();
    this.appWatchers.follow(this.apps.current, fileApps(this.apps));
    await this.appWatchers.ready();
    if (this.options.watch ?? true) {
      this.watcher = new ConfigWatcher({
        file: config.file,
        logger: this.log,
        onChange: (configChanged) => void this.reload(configChanged ? 'file' : 'certificate-file'),
      });
      this.watcher.watchAlso(certificateFiles(config));
      await this.watcher.ready();
    }
    return address;
  }

  reload(trigger: ReloadTrigger): Promise<ReloadOutcome> {
    return this.reloader.reload(trigger);
  }

  /**
   * SIGTERM/SIGINT: stop accepting, let in-flight requests finish (up to
   * drain_timeout_ms), then stop every child (SIGTERM, SIGKILL after
   * kill_timeout_ms).
   */
  stop(): Promise<void> {
    this.stopping ??= (async () => {
      this.log.info('shutting down: finishing in-flight requests');
      this.reloader.stop();
      this.certificates.stop();
      this.traffic.stop();
      this.idle.stop();
      await Promise.all([this.watcher?.close(), this.appWatchers.close()]);
      const adminClosed = this.admin.close();
      await this.dataPlane.close(this.apps.current.gateway.drainTimeoutMs);
      await Promise.all(this.apps.liveSupervisors().map((s) => s.stop()));
      await adminClosed;
      this.log.info('all apps stopped');
    })();
    return this.stopping;
  }

  /** For a gateway that must go down now: SIGKILL every child. */
  killChildren(): void {
    this.dataPlane.kill();
    for (const supervisor of this.apps.liveSupervisors()) supervisor.killAll();
  }

  private logRoutes(config: GatewayConfig): void {
    for (const app of config.apps) {
      const isDefault = app.name === config.defaultApp;
      this.log.info(
        { app: app.name, hosts: app.hosts, default: isDefault },
        `${app.hosts.join(', ')} -> ${app.name}${isDefault ? ' (default)' : ''}`,
      );
    }
    if (config.defaultApp === null) this.log.info('unmatched hosts -> 404');
  }
}

/** Runs an admin edit and records it as a reload of its own kind, naming the app in `key`. */
async function recorded(
  history: ReloadHistory,
  apps: AppSet,
  trigger: 'add' | 'remove' | 'restart' | 'watch',
  run: () => Promise<AppJson>,
  key: 'added' | 'removed' | 'changed',
): Promise<AppJson> {
  const startedAt = Date.now();
  try {
    const app = await run();
    const summary: ReloadSummary = { added: [], removed: [], changed: [], unchanged: [], failed: [] };
    summary[key].push(app.name);
    summary.unchanged = apps.order.filter((n) => n !== app.name);
    history.record(trigger, startedAt, { summary });
    return app;
  } catch (err) {
    // A refused call (unknown app, bad request, a host taken) changed nothing and was no reload; new
    // children that did not become ready are a partial one.
    if (err instanceof GatewayOpError && err.kind === 'not_ready') {
      const name = apps.order.find((n) => (err as Error).message.includes(`"${n}"`)) ?? '';
      const summary: ReloadSummary = { added: [], removed: [], changed: [], unchanged: [], failed: [] };
      summary.failed.push({ name, error: err.message });
      summary.unchanged = apps.order.filter((n) => n !== name);
      history.record(trigger, startedAt, { summary });
    } else if (!(err instanceof GatewayOpError) || !['not_found', 'invalid', 'conflict'].includes(err.kind))
      history.record(trigger, startedAt, { error: (err as Error).message });
    throw err;
  }
}

/** Every app of the file, in its order: the running config, or the one whose start failed. */
function fileApps(apps: AppSet): AppConfig[] {
  return apps.order.flatMap((name) => {
    const app = apps.runningConfig(name) ?? apps.failure(name)?.config;
    return app ? [app] : [];
  });
}

/** The certificate files the running apps name: watched beside the config file (README, HTTPS). */
function certificateFiles(config: GatewayConfig): string[] {
  return config.fileCertificates.flatMap((c) => [c.certFile, c.keyFile]);
}

function workerJson(workers: readonly WorkerInfo[]): WorkerJson[] {
  return workers.map((w) => ({
    id: w.id,
    pid: w.pid,
    state: w.state,
    started_at: new Date(w.startedAt).toISOString(),
    requests: w.requests,
    rss_bytes: w.rssBytes,
    restarts: w.restarts,
  }));
}
