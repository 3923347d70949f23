/**
 * Which app owns each host: the one map behind the config's duplicate-host
 * check, the reload plan's held-back hosts and the admin API's host
 * conflicts (README, Validation and Reloading).
 */
export interface HostsOf {
  name: string;
  hosts: readonly string[];
}

/**
 * Host → app, first claim wins; every later claim of a taken host is
 * reported to `onClash` (host, the owner, the later claimant).
 */
export function hostOwners(
  apps: readonly HostsOf[],
  onClash?: (host: string, owner: string, claimant: string) => void,
): Map<string, string> {
  const owners = new Map<string, string>();
  for (const app of apps) {
    for (const host of app.hosts) {
      const owner = owners.get(host);
      if (owner === undefined) owners.set(host, app.name);
      else onClash?.(host, owner, app.name);
    }
  }
  return owners;
}
