import type { AppConfig, GatewayConfig } from '../config/schema.js';
import { hostOwners } from '../routing/owners.js';
import { describeChanges, type ReloadSummary } from '../wire.js';

/**
 * The config that will actually run after a reload in which some apps failed
 * to start: a failed change keeps the app's running version, a failed add is
 * left out, and an app whose new hosts collide with a host still served by a
 * kept old version is held back too (README, Reloading). Returns the apps in the new
 * file's order and the reasons for everything held back.
 */
export function effectiveApps(
  running: readonly AppConfig[],
  next: readonly AppConfig[],
  startFailures: ReadonlyMap<string, string>,
): { apps: AppConfig[]; failed: Map<string, string> } {
  const failed = new Map(startFailures);
  const old = new Map(running.map((app) => [app.name, app]));
  const resolve = (): AppConfig[] =>
    next.flatMap((app) => {
      if (!failed.has(app.name)) return [app];
      const kept = old.get(app.name);
      return kept ? [kept] : [];
    });
  let apps = resolve();
  // The new file has no duplicate hosts and neither had the running config,
  // so every clash pairs a kept old version with a new claimant. Holding the
  // claimant back can only move it to its old hosts, so this ends.
  for (;;) {
    const clash = findClash(apps, (name) => failed.has(name));
    if (!clash) return { apps, failed };
    failed.set(
      clash.claimant,
      `host "${clash.host}" is still served by app "${clash.holder}", whose new version did not start`,
    );
    apps = resolve();
  }
}

function findClash(
  apps: readonly AppConfig[],
  isKeptOld: (name: string) => boolean,
): { host: string; claimant: string; holder: string } | null {
  let clash: { host: string; claimant: string; holder: string } | null = null;
  hostOwners(apps, (host, first, second) => {
    if (clash) return;
    const [holder, claimant] = isKeptOld(first) ? [first, second] : [second, first];
    clash = { host, claimant, holder };
  });
  return clash;
}

/** The default app after a reload: what the file asks for, if that app runs. */
export function effectiveDefault(
  next: GatewayConfig,
  apps: readonly AppConfig[],
  previous: string | null,
): string | null {
  const names = new Set(apps.map((a) => a.name));
  const setting = next.defaultAppSetting;
  if (setting === false) return null;
  if (typeof setting === 'string' && names.has(setting)) return setting;
  if (typeof setting === 'string' && previous !== null && names.has(previous)) return previous;
  return apps[0]?.name ?? null;
}

export function summaryLine(summary: ReloadSummary): string {
  return `reload finished: ${describeChanges(summary, { failed: true })}`;
}
