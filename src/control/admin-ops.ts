import { ConfigError } from '../config/errors.js';
import { locateKeys } from '../config/locate.js';
import { appendAppTable, ConfigEditError, removeAppTable, writeFileAtomic } from '../config/persist.js';
import { APP_NAME_PATTERN, type AppConfig, type FileCertificate, type GatewayConfig } from '../config/schema.js';
import { GatewayOpError } from '../errors.js';
import type { Logger } from '../log.js';
import { normalizeConfigHost } from '../routing/host.js';
import { hostOwners } from '../routing/owners.js';
import type { AppJson } from '../wire.js';
import type { AppSet } from './app-set.js';
import type { ConfigSource } from './config-source.js';
import type { Drainer } from './drainer.js';
import type { OperationQueue } from './operation-queue.js';
import { effectiveDefault } from './plan.js';
import type { Reloader } from './reloader.js';
import type { StatusProjection } from './status.js';
import type { GenerationHandle, SupervisedApp } from './supervised.js';

export interface AdminOperationsOptions {
  apps: AppSet;
  source: ConfigSource;
  ops: OperationQueue;
  reloader: Reloader;
  drainer: Drainer;
  status: StatusProjection;
  newSupervisor(app: AppConfig): SupervisedApp;
  /** Publishes the app set's route table. */
  publish(): void;
  logger: Logger;
}

/**
 * The admin API's changes (README, Admin API): add, remove and restart an
 * app, on the same operation queue as reloads. Adds and removes are written
 * into the config file, so they survive a restart; an edit is made on the
 * text the gateway runs, after applying whatever the file gained meanwhile.
 */
export class AdminOperations {
  private readonly log: Logger;

  constructor(private readonly options: AdminOperationsOptions) {
    this.log = options.logger;
  }

  /**
   * Adds an app: validates it as the file would, starts it, and only once
   * its children are ready writes it into the file and routes to it. A
   * start that fails writes nothing.
   */
  addApp(name: unknown, keys: Record<string, unknown>): Promise<AppJson> {
    const { apps, source, ops } = this.options;
    return ops.run(async () => {
      let text = await this.syncWithFile();
      if (typeof name !== 'string' || !APP_NAME_PATTERN.test(name)) {
        throw new GatewayOpError(
          'invalid',
          'name: expected 1-63 characters of a-z, 0-9, "_" and "-", starting with a letter or digit',
        );
      }
      let { newText, app, certificate } = this.withAddedApp(text, name, keys);
      const { supervisor, gen } = await this.startNewApp(app);
      try {
        // The file may have been edited while the app started: apply that first and add the
        // app to the newest text, or give up if the edit now conflicts with it.
        const fresh = await this.syncWithFile();
        if (fresh !== text) {
          text = fresh;
          ({ newText, app, certificate } = this.withAddedApp(text, name, keys));
        }
        await writeFileAtomic(source.file, newText);
      } catch (err) {
        await supervisor.discard(gen);
        apps.untrack(supervisor);
        if (err instanceof GatewayOpError) throw err;
        throw new GatewayOpError('io_error', `could not write ${source.displayFile}: ${(err as Error).message}`);
      }
      source.markSeen(newText);
      supervisor.promote(gen);
      apps.admit(app, supervisor, certificate);
      this.options.publish();
      this.log.info({ app: name, hosts: app.hosts }, `app added: ${app.hosts.join(', ')} -> ${name}`);
      return this.options.status.app(name) as AppJson;
    });
  }

  /** Takes an app out of the file and the route table, then drains and stops it; resolves once stopped. */
  async removeApp(name: string): Promise<AppJson> {
    const { apps, source, ops } = this.options;
    const { status, drained } = await ops.run(async () => {
      const text = await this.syncWithFile();
      if (!apps.has(name)) throw new GatewayOpError('not_found', `no app named "${name}"`);
      if (apps.order.length <= 1)
        throw new GatewayOpError('conflict', `"${name}" is the last app; a config needs at least one`);
      if (apps.current.defaultAppSetting === name) {
        throw new GatewayOpError('conflict', `"${name}" is named by [gateway] default_app; change that first`);
      }
      let newText: string;
      let next: GatewayConfig;
      try {
        newText = removeAppTable(text, name);
        next = source.parse(newText);
      } catch (err) {
        if (err instanceof ConfigEditError || err instanceof ConfigError)
          throw new GatewayOpError('conflict', err.message);
        throw err;
      }
      const status = this.options.status.app(name) as AppJson;
      try {
        await writeFileAtomic(source.file, newText);
      } catch (err) {
        throw new GatewayOpError('io_error', `could not write ${source.displayFile}: ${(err as Error).message}`);
      }
      source.markSeen(newText);
      const remaining = apps.current.apps.filter((a) => a.name !== name);
      const supervisor = apps.remove(name, effectiveDefault(next, remaining, apps.current.defaultApp));
      this.options.publish();
      this.log.info({ app: name }, `app removed: ${name}`);
      const drained = supervisor
        ? this.options.drainer.retireApp(supervisor).then(() => apps.untrack(supervisor))
        : Promise.resolve();
      return { status, drained };
    });
    await drained;
    return status;
  }

  /**
   * Rolling restart: a new generation with the same config, swapped in once
   * ready; the old one drains. Resolves after the swap.
   */
  restartApp(name: string): Promise<AppJson> {
    const { apps, ops } = this.options;
    return ops.run(async () => {
      const failed = apps.failure(name);
      if (failed) return this.startFailedApp(failed.config);
      const supervisor = apps.supervisor(name);
      if (!supervisor) throw new GatewayOpError('not_found', `no app named "${name}"`);
      // Idle, nothing runs to be replaced: its next start uses the files as they are then (README, Scale to zero).
      if (supervisor.isIdle) return this.options.status.app(name) as AppJson;
      let gen: GenerationHandle;
      try {
        gen = await supervisor.prepare(supervisor.config);
      } catch (err) {
        throw new GatewayOpError(
          'not_ready',
          `app "${name}" was not restarted, its new children did not become ready: ${(err as Error).message}`,
        );
      }
      const old = supervisor.promote(gen);
      apps.setRoutes(supervisor, supervisor.servingUpstreams());
      this.options.publish();
      this.log.info({ app: name }, `app restarted: ${name}`);
      if (old) void this.options.drainer.retire(supervisor, old);
      return this.options.status.app(name) as AppJson;
    });
  }

  /**
   * Pause (README, Pause and maintenance): the app's new requests wait in its
   * queue, in arrival order, up to queue_timeout_ms; those in flight finish.
   * Runtime only, and immediate: it changes no child, so it does not wait
   * behind a reload on the operation queue.
   */
  pause(name: string): AppJson {
    this.options.apps.setHold(this.runningName(name), { mode: 'hold' });
    this.options.publish();
    this.log.info({ app: name }, `app paused: ${name} (requests wait until resume)`);
    return this.options.status.app(name) as AppJson;
  }

  /** Maintenance: the app's requests get 503, `Retry-After: 30` and the message, until resume. */
  maintenance(name: string, message: unknown): AppJson {
    if (message !== undefined && (typeof message !== 'string' || message.trim() === '' || message.length > 2000))
      throw new GatewayOpError('invalid', 'message: expected a non-empty string of at most 2000 characters');
    const text = message ?? `${name} is down for maintenance`;
    this.options.apps.setHold(this.runningName(name), { mode: 'maintenance', message: text });
    this.options.publish();
    this.log.info({ app: name, message: text }, `app in maintenance: ${name}`);
    return this.options.status.app(name) as AppJson;
  }

  /** Ends a pause (the held requests go on, in arrival order) or maintenance; for a serving app it changes nothing. */
  resume(name: string): AppJson {
    const { apps } = this.options;
    const held = apps.hold(this.runningName(name));
    apps.setHold(name, null);
    this.options.publish();
    if (held) this.log.info({ app: name }, `app resumed: ${name}`);
    return this.options.status.app(name) as AppJson;
  }

  /** The name of a running app; 404 for an unknown one, 409 for one whose start failed (it has no route). */
  private runningName(name: string): string {
    const { apps } = this.options;
    if (apps.supervisor(name)) return name;
    if (apps.failure(name))
      throw new GatewayOpError('conflict', `app "${name}" is not running (its start failed): restart it first`);
    throw new GatewayOpError('not_found', `no app named "${name}"`);
  }

  /** `restart` of an app whose start failed: try again, and route to it if it comes up. */
  private async startFailedApp(app: AppConfig): Promise<AppJson> {
    const { apps } = this.options;
    const owners = hostOwners(apps.current.apps);
    const clash = app.hosts.find((h) => owners.has(h));
    if (clash) {
      throw new GatewayOpError(
        'conflict',
        `host "${clash}" is served by app "${owners.get(clash)}"; the file must change first`,
      );
    }
    let started: { supervisor: SupervisedApp; gen: GenerationHandle };
    try {
      started = await this.startNewApp(app);
    } catch (err) {
      apps.markFailed(app, (err as Error).message);
      throw err;
    }
    const { supervisor, gen } = started;
    supervisor.promote(gen);
    apps.recover(app, supervisor);
    this.options.publish();
    this.log.info({ app: app.name }, `app started: ${app.name}`);
    return this.options.status.app(app.name) as AppJson;
  }

  /** A supervisor for an app that is not running yet, with its first generation ready; `not_ready` otherwise. */
  private async startNewApp(app: AppConfig): Promise<{ supervisor: SupervisedApp; gen: GenerationHandle }> {
    const supervisor = this.options.newSupervisor(app);
    this.options.apps.track(supervisor);
    try {
      return { supervisor, gen: await supervisor.prepare(app) };
    } catch (err) {
      this.options.apps.untrack(supervisor);
      throw new GatewayOpError('not_ready', `app "${app.name}" did not become ready: ${(err as Error).message}`);
    }
  }

  /** The config text with an app appended, validated as the file would be; errors say which key is wrong. */
  private withAddedApp(
    text: string,
    name: string,
    keys: Record<string, unknown>,
  ): { newText: string; app: AppConfig; certificate: FileCertificate | null } {
    const { apps, source } = this.options;
    // Running, failed, or in the text in any form (its own table or dotted keys).
    if (apps.has(name) || locateKeys(text).lines.has(`apps.${name}`)) {
      throw new GatewayOpError('conflict', `an app named "${name}" already exists`);
    }
    this.assertHostsFree(name, keys.hosts);
    try {
      const newText = appendAppTable(text, name, keys);
      const next = source.parse(newText);
      const app = next.apps.find((a) => a.name === name) as AppConfig;
      return { newText, app, certificate: next.fileCertificates.find((c) => c.app === name) ?? null };
    } catch (err) {
      if (err instanceof ConfigEditError)
        throw new GatewayOpError('invalid', `${err.key ?? `apps.${name}`}: ${err.message}`);
      if (err instanceof ConfigError) throw configErrorAsOpError(err, name);
      throw err;
    }
  }

  private assertHostsFree(name: string, hosts: unknown): void {
    if (!Array.isArray(hosts)) return; // validation reports the type
    const owners = hostOwners(this.options.apps.current.apps);
    for (const host of hosts) {
      if (typeof host !== 'string') continue;
      const normal = normalizeConfigHost(host);
      const taken = normal.ok ? owners.get(normal.host) : undefined;
      if (taken !== undefined)
        throw new GatewayOpError('conflict', `apps.${name}.hosts: host "${host}" is already used by app "${taken}"`);
    }
  }

  /**
   * Before an admin edit: the file must be valid, and edits on disk that
   * have not been applied yet are applied first, so that the admin's own
   * write (which the watcher then skips) cannot hide them. Returns the text
   * the gateway now runs, which the edit is then made on.
   */
  private async syncWithFile(): Promise<string> {
    const { source, reloader } = this.options;
    for (let round = 0; ; round++) {
      let text: string;
      try {
        text = source.read();
      } catch (err) {
        if (err instanceof ConfigError) throw new GatewayOpError('config_error', err.message);
        throw err;
      }
      if (source.isSeen(text)) {
        if (reloader.lastError !== null)
          throw new GatewayOpError('config_error', `the config file has an error, fix it first: ${reloader.lastError}`);
        return text;
      }
      if (round >= 3) throw new GatewayOpError('config_error', `${source.displayFile} keeps changing; try again`);
      const run = await reloader.reloadNow(false);
      void run.drained;
      if (!run.outcome.ok)
        throw new GatewayOpError('config_error', `the config file has an error, fix it first: ${run.outcome.error}`);
    }
  }
}

/** A config error caused by an app sent to the admin API: its key and message, without the file position. */
function configErrorAsOpError(err: ConfigError, app: string): GatewayOpError {
  const own = err.issues.filter((i) => i.key === `apps.${app}` || i.key?.startsWith(`apps.${app}.`));
  const issue = own[0] ?? err.issues[0];
  const message = issue ? `${issue.key ? `${issue.key}: ` : ''}${issue.message}` : err.message;
  const kind = /is already used by app/.test(message) ? 'conflict' : 'invalid';
  return new GatewayOpError(kind, message);
}
