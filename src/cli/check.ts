import { formatListen } from '../addresses.js';
import { ConfigError } from '../config/errors.js';
import { loadConfig } from '../config/load.js';
import type { GatewayConfig } from '../config/schema.js';
import type { CliArgs } from './args.js';
import { formatTable } from './table.js';

/** `nano-gateway check`: validate, print apps and hosts, exit 0 or 1. */
export function runCheck(args: CliArgs): number {
  let config: GatewayConfig;
  try {
    config = loadConfig(args.config).config;
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`${err.message}\n`);
      return 1;
    }
    throw err;
  }
  const rows = config.apps.map((app) => [
    app.name + (app.name === config.defaultApp ? ' (default)' : ''),
    app.hosts.join(', '),
    String(app.instances),
    app.healthPath ?? '-',
  ]);
  process.stdout.write(`${config.displayFile}: ok, ${config.apps.length} app${config.apps.length === 1 ? '' : 's'}\n`);
  process.stdout.write(`listen ${formatListen(config.gateway.listen)}`);
  process.stdout.write(config.admin.listen ? `, admin ${formatListen(config.admin.listen)}\n` : ', admin off\n');
  process.stdout.write(formatTable(['APP', 'HOSTS', 'INSTANCES', 'HEALTH'], rows));
  if (config.defaultApp === null) process.stdout.write('unmatched hosts get 404\n');
  return 0;
}
