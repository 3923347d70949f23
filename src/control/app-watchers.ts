import path from 'node:path';
import chokidar, { type FSWatcher } from 'chokidar';
import picomatch from 'picomatch';
import type { AppConfig, GatewayConfig } from '../config/schema.js';
import type { Logger } from '../log.js';

/** Quiet time after the last change before the restart (README, Watch and restart). */
export const WATCH_SETTLE_MS = 300;

/** Folders `watch = true` never looks into (README, Watch and restart). */
const SKIPPED_DIRS = new Set(['node_modules', '.git']);

export interface AppWatchersOptions {
  logger: Logger;
  /** A burst of changes to the app's files has settled: restart it (as `restart APP` does). */
  onChange(app: string, file: string): void;
  settleMs?: number;
}

/** What a watcher is made from: a different key means a new watcher. */
function watchKey(app: AppConfig): string {
  return JSON.stringify([app.cwd, app.watch]);
}

/** One app's watcher over its cwd, with the filter that says which files count. */
class AppWatcher {
  readonly key: string;
  private readonly app: string;
  private readonly watcher: FSWatcher;
  private timer: NodeJS.Timeout | null = null;
  private lastFile = '';
  private readonly counts: (relative: string, absolute: string) => boolean;
  readonly ready: Promise<void>;

  constructor(
    app: AppConfig,
    /** The config file and certificate files: never a reason to restart with `watch = true`. */
    private readonly excluded: () => ReadonlySet<string>,
    private readonly options: AppWatchersOptions,
  ) {
    this.key = watchKey(app);
    this.app = app.name;
    const cwd = app.cwd;
    const globs = Array.isArray(app.watch) ? app.watch.map((g) => g.replaceAll('\\', '/')) : null;
    // A glob may name a skipped or dot folder in its fixed part (`.config/*.json`): then it is entered.
    const bases = globs?.map((g) => picomatch.scan(g).base) ?? [];
    const entered = (relative: string): boolean =>
      bases.some((base) => base === relative || base.startsWith(`${relative}/`) || relative.startsWith(`${base}/`));
    if (globs) {
      const match = picomatch(globs);
      this.counts = (relative) => match(relative);
    } else {
      this.counts = (relative, absolute) =>
        !relative.split('/').some((part) => part.startsWith('.') || SKIPPED_DIRS.has(part)) &&
        !this.excluded().has(absolute);
    }
    this.watcher = chokidar.watch(cwd, {
      ignoreInitial: true,
      // Folders that can hold no file that counts are not entered, so node_modules costs no inotify watches.
      ignored: (file: string) => {
        const relative = path.relative(cwd, file).split(path.sep).join('/');
        if (relative === '' || relative.startsWith('..')) return false;
        const name = relative.slice(relative.lastIndexOf('/') + 1);
        if (!SKIPPED_DIRS.has(name) && !name.startsWith('.')) return false;
        return !entered(relative);
      },
    });
    this.watcher.on('all', (event, file) => this.onEvent(event, file, cwd));
    this.watcher.on('error', (err) =>
      options.logger.warn({ app: app.name, err: (err as Error).message }, 'app file watcher error'),
    );
    this.ready = new Promise((resolve) => this.watcher.once('ready', () => resolve()));
  }

  private onEvent(event: string, file: string, cwd: string): void {
    if (event !== 'add' && event !== 'change' && event !== 'unlink') return;
    const relative = path.relative(cwd, file).split(path.sep).join('/');
    if (!this.counts(relative, path.resolve(file))) return;
    this.lastFile = relative;
    if (this.timer) clearTimeout(this.timer);
    this.timer = setTimeout(() => {
      this.timer = null;
      this.options.onChange(this.app, this.lastFile);
    }, this.options.settleMs ?? WATCH_SETTLE_MS);
  }

  close(): Promise<void> {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    return this.watcher.close();
  }
}

/**
 * Watch and restart (README): one chokidar watcher per running app with
 * `watch`, following the running config on every publish. An app removed,
 * or whose `watch` a reload turned off, has its watcher closed.
 */
export class AppWatchers {
  private readonly watchers = new Map<string, AppWatcher>();
  private excluded: ReadonlySet<string> = new Set();
  private closed = false;

  constructor(private readonly options: AppWatchersOptions) {}

  /**
   * Makes the watchers match the apps of the file (running ones, and those
   * whose start failed: a fix to their files starts them); cheap when
   * nothing changed, as it runs on every publish.
   */
  follow(config: GatewayConfig, apps: readonly AppConfig[]): void {
    if (this.closed) return;
    this.excluded = new Set([
      config.file,
      ...config.fileCertificates.flatMap((c) => [path.resolve(c.certFile), path.resolve(c.keyFile)]),
    ]);
    const wanted = new Map<string, AppConfig>();
    for (const app of apps) if (app.watch !== false) wanted.set(app.name, app);
    for (const [name, watcher] of this.watchers) {
      const app = wanted.get(name);
      if (app && watchKey(app) === watcher.key) continue;
      this.watchers.delete(name);
      void watcher.close();
    }
    for (const [name, app] of wanted) {
      if (this.watchers.has(name)) continue;
      this.watchers.set(name, new AppWatcher(app, () => this.excluded, this.options));
      this.options.logger.debug({ app: name, watch: app.watch }, `watching ${app.cwd} for changes`);
    }
  }

  /** Resolves once every watcher made so far watches (changes before that are missed). */
  async ready(): Promise<void> {
    await Promise.all([...this.watchers.values()].map((w) => w.ready));
  }

  async close(): Promise<void> {
    this.closed = true;
    const all = [...this.watchers.values()];
    this.watchers.clear();
    await Promise.all(all.map((w) => w.close()));
  }
}
