import type { AppConfig } from './schema.js';

/** How a new config differs from the running one, app by app (README, Reloading: diff). */
export interface AppDiff {
  added: AppConfig[];
  removed: AppConfig[];
  /** New versions of apps whose config differs in any key, `hosts` included. */
  changed: AppConfig[];
  unchanged: AppConfig[];
}

/** JSON with object keys sorted, so that `env = { A, B }` and `{ B, A }` compare equal. */
export function canonicalJson(value: unknown): string {
  return JSON.stringify(value, (_key, v: unknown) => {
    if (v && typeof v === 'object' && !Array.isArray(v)) {
      return Object.fromEntries(
        Object.entries(v as Record<string, unknown>).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)),
      );
    }
    return v;
  });
}

export function sameApp(a: AppConfig, b: AppConfig): boolean {
  return canonicalJson(a) === canonicalJson(b);
}

export function diffApps(running: readonly AppConfig[], next: readonly AppConfig[]): AppDiff {
  const before = new Map(running.map((app) => [app.name, app]));
  const after = new Set(next.map((app) => app.name));
  const diff: AppDiff = { added: [], removed: [], changed: [], unchanged: [] };
  for (const app of next) {
    const old = before.get(app.name);
    if (!old) diff.added.push(app);
    else if (sameApp(old, app)) diff.unchanged.push(app);
    else diff.changed.push(app);
  }
  for (const app of running) if (!after.has(app.name)) diff.removed.push(app);
  return diff;
}
