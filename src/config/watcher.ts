import path from 'node:path';
import chokidar, { type FSWatcher } from 'chokidar';
import type { Logger } from '../log.js';

export interface ConfigWatcherOptions {
  file: string;
  logger: Logger;
  /**
   * Called once per settled change (a burst of writes is one change);
   * `configChanged` is false when only another watched file (a certificate)
   * changed, so that the reload applies although the config text is the same.
   */
  onChange: (configChanged: boolean) => void;
  /** Quiet time after the last event before `onChange`; default 100 ms. */
  debounceMs?: number;
}

/**
 * Watches the config file, and the certificate files it names (README,
 * HTTPS: a certificate renewed by another tool is picked up). Editors save
 * in several steps (truncate and write, or write a temporary file and
 * rename it over the original), so an event only means "something
 * happened": the watcher waits until the files have stopped changing, then
 * signals once, and the reload reads them as they are at that moment.
 */
export class ConfigWatcher {
  private readonly watcher: FSWatcher;
  private timer: NodeJS.Timeout | null = null;
  private readonly debounceMs: number;
  private readonly file: string;
  private extra = new Set<string>();
  private extraDirs = new Set<string>();
  /** Watches the certificate files' folders (see watchAlso); made when the config first names a file. */
  private dirWatcher: FSWatcher | null = null;
  private configChanged = false;

  constructor(private readonly options: ConfigWatcherOptions) {
    this.debounceMs = options.debounceMs ?? 100;
    this.file = path.resolve(options.file);
    this.watcher = chokidar.watch(this.file, {
      ignoreInitial: true,
      // A rename over the file (atomic save) is a change, not an unlink and an add.
      atomic: true,
      // Report a change only once the file's size has been stable for a while.
      awaitWriteFinish: { stabilityThreshold: 60, pollInterval: 15 },
    });
    this.watcher.on('all', (event, changed) => this.onEvent(event, changed));
    this.watcher.on('error', (err) => options.logger.warn({ err: (err as Error).message }, 'config watcher error'));
  }

  /** Resolves once the watcher is watching (events before that are missed). */
  ready(): Promise<void> {
    return new Promise((resolve) => this.watcher.once('ready', () => resolve()));
  }

  /**
   * The other files to watch now (the certificate files of the running
   * config), replacing the last list. Their folders are watched, not the
   * files: certbot renews by pointing the `live/` symlinks at new files,
   * which changes nothing in the files a watch on the link would follow.
   */
  watchAlso(files: readonly string[]): void {
    const next = new Set(files.map((f) => path.resolve(f)).filter((f) => f !== this.file));
    const dirs = new Set([...next].map((f) => path.dirname(f)));
    const gone = [...this.extraDirs].filter((d) => !dirs.has(d));
    const added = [...dirs].filter((d) => !this.extraDirs.has(d));
    this.extra = next;
    this.extraDirs = dirs;
    if (added.length > 0 && this.dirWatcher === null) {
      this.dirWatcher = chokidar.watch(added, {
        ignoreInitial: true,
        depth: 0,
        followSymlinks: false,
        awaitWriteFinish: { stabilityThreshold: 60, pollInterval: 15 },
      });
      this.dirWatcher.on('all', (event, changed) => {
        if (this.extra.has(path.resolve(changed))) this.onEvent(event, changed);
      });
      this.dirWatcher.on('error', (err) =>
        this.options.logger.warn({ err: (err as Error).message }, 'certificate watcher error'),
      );
    } else if (added.length > 0) this.dirWatcher?.add(added);
    if (gone.length > 0) this.dirWatcher?.unwatch(gone);
  }

  private onEvent(event: string, changed: string): void {
    const isConfig = path.resolve(changed) === this.file;
    if (event === 'unlink') {
      const what = isConfig ? 'config file' : 'certificate file';
      this.options.logger.warn({ file: changed }, `${what} removed: keeping the running config`);
      return;
    }
    if (event !== 'change' && event !== 'add') return;
    if (isConfig) this.configChanged = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = setTimeout(() => {
      this.timer = null;
      const configChanged = this.configChanged;
      this.configChanged = false;
      this.options.onChange(configChanged);
    }, this.debounceMs);
  }

  async close(): Promise<void> {
    if (this.timer) clearTimeout(this.timer);
    await Promise.all([this.watcher.close(), this.dirWatcher?.close()]);
  }
}
