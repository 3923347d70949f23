import { formatListen } from '../addresses.js';
import { diffApps } from '../config/diff.js';
import { ConfigError } from '../config/errors.js';
import type { AppConfig, GatewayConfig } from '../config/schema.js';
import type { DataPlane } from '../dataplane/data-plane.js';
import type { Logger } from '../log.js';
import type { ReloadOutcome, ReloadSummary } from '../wire.js';
import type { AppSet } from './app-set.js';
import type { ConfigSource } from './config-source.js';
import { dataPlaneSettings } from './data-plane-settings.js';
import type { Drainer } from './drainer.js';
import type { OperationQueue } from './operation-queue.js';
import { effectiveApps, effectiveDefault, summaryLine } from './plan.js';
import type { ReloadHistory } from './reload-history.js';
import type { GenerationHandle, SupervisedApp } from './supervised.js';

/** `certificate-file`: a certificate file changed; the config text may be the same, the reload applies anyway. */
export type ReloadTrigger = 'file' | 'certificate-file' | 'signal' | 'admin';

/** One reload's result, and the drain of what it replaced (which may take drain_timeout_ms). */
export interface ReloadRun {
  outcome: ReloadOutcome;
  drained: Promise<void>;
  /** The file says what was already applied: nothing was done. */
  skipped?: boolean;
}

export interface ReloaderOptions {
  apps: AppSet;
  dataPlane: DataPlane;
  source: ConfigSource;
  ops: OperationQueue;
  drainer: Drainer;
  /** A supervisor for an app that has none yet (not started, not tracked). */
  newSupervisor(app: AppConfig): SupervisedApp;
  /** Publishes the app set's route table; returns its version. */
  publish(): number;
  logger: Logger;
  /** After a swap: whatever else follows the config (the admin listener). */
  onApplied(previous: GatewayConfig): Promise<void>;
  /** Where each reload is recorded (README, Admin API: `GET /admin/reloads`). */
  history?: ReloadHistory;
}

/**
 * Applies the config file (README, Reloading): read → parse → diff →
 * provision (every new generation fully started) → plan (who keeps the old
 * version) → swap (one route table) → drain (the old children). Reloads run
 * on the operation queue, so none interleaves with another or with an
 * admin edit; ones asked for while one waits join it.
 */
export class Reloader {
  readonly counts = { ok: 0, partial: 0, invalid: 0 };
  /** The last reload's config error, until a valid reload (README, Admin API: `config_error`). */
  lastError: string | null = null;
  private queued: Promise<ReloadRun> | null = null;
  /** Set by SIGHUP and the admin API: the next reload runs even if the file looks unchanged. */
  private explicit = false;
  private stopping = false;
  private readonly log: Logger;

  constructor(private readonly options: ReloaderOptions) {
    this.log = options.logger;
  }

  /** No reload starts after this; one under way stops before its swap. */
  stop(): void {
    this.stopping = true;
  }

  /** Applies the file as it is now; resolves once the old children it replaced are drained and stopped. */
  async reload(trigger: ReloadTrigger): Promise<ReloadOutcome> {
    if (trigger !== 'file') this.explicit = true;
    if (this.stopping) return { ok: false, error: 'the gateway is shutting down' };
    this.queued ??= this.options.ops.run(async () => {
      this.queued = null;
      const explicit = this.explicit;
      this.explicit = false;
      const startedAt = Date.now();
      const run = await this.reloadNow(explicit);
      // Recorded at the swap (the page shows it at once, in order), with the trigger that asked first
      // (others joined it); a file event for text already applied was no reload.
      if (!run.skipped)
        this.options.history?.record(
          trigger === 'certificate-file' ? 'file' : trigger,
          startedAt,
          run.outcome.ok ? { summary: run.outcome.summary } : { error: run.outcome.error },
        );
      return run;
    });
    const run = await this.queued;
    await run.drained;
    return run.outcome;
  }

  /** A reload inside an operation already on the queue. `explicit`: even if the file says what was applied. */
  async reloadNow(explicit: boolean): Promise<ReloadRun> {
    const done = Promise.resolve();
    if (this.stopping) return { outcome: { ok: false, error: 'the gateway is shutting down' }, drained: done };
    const { source } = this.options;
    let next: GatewayConfig;
    try {
      const text = source.read();
      if (!explicit && source.isSeen(text)) {
        this.log.debug('config file unchanged: nothing to reload');
        return {
          outcome: { ok: true, summary: unchangedSummary(this.options.apps.current) },
          drained: done,
          skipped: true,
        };
      }
      source.markSeen(text);
      next = source.parse(text);
    } catch (err) {
      if (!(err instanceof ConfigError)) throw err;
      this.lastError = err.message;
      this.counts.invalid++;
      this.log.error({ err: err.message }, 'reload rejected: invalid config, the running apps keep serving');
      return { outcome: { ok: false, error: err.message }, drained: done };
    }
    this.lastError = null;
    const started = Date.now();
    const { summary, drained } = await this.apply(next);
    if (summary.failed.length > 0) this.counts.partial++;
    else this.counts.ok++;
    return {
      outcome: { ok: true, summary },
      drained: drained.then(() => this.log.info({ ...summary, ms: Date.now() - started }, summaryLine(summary))),
    };
  }

  private async apply(next: GatewayConfig): Promise<{ summary: ReloadSummary; drained: Promise<void> }> {
    const { apps, dataPlane, drainer } = this.options;
    const previous = apps.current;
    const diff = diffApps(previous.apps, next.apps);

    // 1. Provision: every new generation fully started before anything changes.
    const startFailures = new Map<string, string>();
    const prepared = new Map<string, { supervisor: SupervisedApp; gen: GenerationHandle; isNew: boolean }>();
    // An idle app stays idle with its new config (README, Scale to zero): nothing to start.
    const adopted: Array<[SupervisedApp, AppConfig]> = [];
    await Promise.all(
      [...diff.added, ...diff.changed].map(async (app) => {
        const existing = apps.supervisor(app.name);
        if (existing?.isIdle) {
          adopted.push([existing, app]);
          return;
        }
        const supervisor = existing ?? this.options.newSupervisor(app);
        if (!existing) apps.track(supervisor);
        try {
          prepared.set(app.name, { supervisor, gen: await supervisor.prepare(app), isNew: !existing });
        } catch (err) {
          startFailures.set(app.name, (err as Error).message);
          if (!existing) apps.untrack(supervisor);
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

    // 2. Plan: failed apps keep their old version (or stay out).
    const { apps: running, failed } = effectiveApps(previous.apps, next.apps, startFailures);
    const defaultApp = effectiveDefault(next, running, previous.defaultApp);
    if (typeof next.defaultAppSetting === 'string' && defaultApp !== next.defaultAppSetting) {
      this.log.warn(
        { default_app: next.defaultAppSetting, using: defaultApp },
        'default_app is not running: keeping another default',
      );
    }

    // 3. Swap, synchronously: promotions, the new app set and one route table.
    const drains: Array<Promise<void>> = [];
    const promoted = new Map<string, SupervisedApp>();
    const retired: Array<[SupervisedApp, GenerationHandle]> = [];
    for (const [name, { supervisor, gen, isNew }] of prepared) {
      if (failed.has(name)) {
        drains.push(supervisor.discard(gen).then(() => (isNew ? apps.untrack(supervisor) : undefined)));
        continue;
      }
      const old = supervisor.promote(gen);
      promoted.set(name, supervisor);
      if (old) retired.push([supervisor, old]);
    }
    for (const [name, error] of failed) {
      const supervisor = apps.supervisor(name);
      if (supervisor) supervisor.lastError = error;
      this.log.error({ app: name, err: error }, 'app not updated: its new version did not start');
    }
    for (const [supervisor, app] of adopted) supervisor.adopt(app);
    const removed = apps.swap(next, { apps: running, defaultApp }, promoted, failed);
    dataPlane.configure(dataPlaneSettings(next));
    const version = this.options.publish();
    this.log.info({ table: version }, 'routing table swapped');
    // 4. Drain what was replaced, at once: the generations a change replaced by the drain_timeout_ms
    // they ran under; the caller waits for the drains, later operations need not.
    for (const [supervisor, old] of retired)
      drains.push(drainer.retire(supervisor, old, previous.gateway.drainTimeoutMs));
    this.warnAboutRestartOnlyKeys(previous, next);
    await this.options.onApplied(previous);
    for (const supervisor of removed) drains.push(drainer.retireApp(supervisor).then(() => apps.untrack(supervisor)));
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
    if (was !== now)
      this.log.warn({ was, now }, `[gateway] listen changed to ${now}: restart the gateway to listen there`);
    if (running.gateway.workers !== next.gateway.workers) {
      const [was, now] = [running.gateway.workers, next.gateway.workers];
      this.log.warn(
        { was, now },
        `[gateway] workers changed from ${was} to ${now}: restart the gateway to run ${now} proxy process${now === 1 ? '' : 'es'}`,
      );
    }
    const tlsWas = running.tls ? formatListen(running.tls.listen) : null;
    const tlsNow = next.tls ? formatListen(next.tls.listen) : null;
    if (tlsWas !== tlsNow) {
      const change = tlsNow === null ? 'the [tls] table was removed' : `[tls] listen changed to ${tlsNow}`;
      this.log.warn({ was: tlsWas, now: tlsNow }, `${change}: restart the gateway for its HTTPS listener to follow`);
    }
  }
}

function unchangedSummary(config: GatewayConfig): ReloadSummary {
  return { added: [], removed: [], changed: [], unchanged: config.apps.map((a) => a.name), failed: [] };
}
