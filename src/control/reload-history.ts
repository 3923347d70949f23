import type { ReloadRecordJson, ReloadSummary } from '../wire.js';

/** How many reloads `GET /admin/reloads` keeps (README, Admin API). */
export const RELOAD_HISTORY = 50;

/**
 * The last 50 reloads, newest first: every trigger (the file, SIGHUP, the
 * admin API, an app added, removed or restarted), also one that changed
 * nothing. Kept in memory, bounded.
 */
export class ReloadHistory {
  private readonly records: ReloadRecordJson[] = [];

  record(
    trigger: ReloadRecordJson['trigger'],
    startedAt: number,
    outcome: { summary: ReloadSummary } | { error: string },
  ): void {
    const summary = 'summary' in outcome ? outcome.summary : null;
    this.records.unshift({
      at: new Date(startedAt).toISOString(),
      trigger,
      result: summary === null ? 'invalid' : summary.failed.length > 0 ? 'partial' : 'ok',
      added: summary?.added ?? [],
      removed: summary?.removed ?? [],
      changed: summary?.changed ?? [],
      unchanged: summary?.unchanged ?? [],
      failed: summary?.failed ?? [],
      error: 'error' in outcome ? outcome.error : null,
      ms: Date.now() - startedAt,
    });
    if (this.records.length > RELOAD_HISTORY) this.records.length = RELOAD_HISTORY;
  }

  all(): ReloadRecordJson[] {
    return [...this.records];
  }
}
