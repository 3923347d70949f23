import path from 'node:path';
import chokidar, { type FSWatcher } from 'chokidar';
import type { Logger } from '../log.js';

export interface ConfigWatcherOptions {
  file: string;
  logger: Logger;
  /** Called once per settled change (a burst of writes is one change). */
  onChange: () => void;
  /** Quiet time after the last event before `onChange`; default 100 ms. */
  debounceMs?: number;
}

/**
 * Watches the config file. Editors save in several steps (truncate and
 * write, or write a temporary file and rename it over the original), so an
 * event only means "something happened": the watcher waits until the file
 * has stopped changing, then signals once, and the reload reads the file
 * as it is at that moment.
 */
export class ConfigWatcher {
  private readonly watcher: FSWatcher;
  private timer: NodeJS.Timeout | null = null;
  private readonly debounceMs: number;

  constructor(private readonly options: ConfigWatcherOptions) {
    this.debounceMs = options.debounceMs ?? 100;
    const file = path.resolve(options.file);
    this.watcher = chokidar.watch(file, {
      ignoreInitial: true,
      // A rename over the file (atomic save) is a change, not an unlink and an add.
      atomic: true,
      // Report a change only once the file's size has been stable for a while.
      awaitWriteFinish: { stabilityThreshold: 60, pollInterval: 15 },
    });
    this.watcher.on('all', (event) => this.onEvent(event));
    this.watcher.on('error', (err) => options.logger.warn({ err: (err as Error).message }, 'config watcher error'));
  }

  /** Resolves once the watcher is watching (events before that are missed). */
  ready(): Promise<void> {
    return new Promise((resolve) => this.watcher.once('ready', () => resolve()));
  }

  private onEvent(event: string): void {
    if (event === 'unlink') {
      this.options.logger.warn({ file: this.options.file }, 'config file removed: keeping the running config');
      return;
    }
    if (event !== 'change' && event !== 'add') return;
    if (this.timer) clearTimeout(this.timer);
    this.timer = setTimeout(() => {
      this.timer = null;
      this.options.onChange();
    }, this.debounceMs);
  }

  async close(): Promise<void> {
    if (this.timer) clearTimeout(this.timer);
    await this.watcher.close();
  }
}
