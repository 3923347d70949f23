import { formatListen } from '../addresses.js';
import type { GatewayConfig } from '../config/schema.js';
import type { CliArgs } from './args.js';
import { loadConfigOrReport } from './config-file.js';
import { formatTable } from './table.js';

/** `nano-gateway check`: validate, print apps and hosts, exit 0 or 1. */
export function runCheck(args: CliArgs): number {
  const loaded = loadConfigOrReport(args.config);
  if (loaded === null) return 1;
  const config = loaded.config;
  const rows = config.apps.map((app) => [
    app.name + (app.name === config.defaultApp ? ' (default)' : ''),
    app.hosts.join(', '),
    String(app.instances),
    app.healthPath ?? '-',
    tlsLabel(config, app.name),
  ]);
  process.stdout.write(`${config.displayFile}: ok, ${config.apps.length} app${config.apps.length === 1 ? '' : 's'}\n`);
  process.stdout.write(`listen ${formatListen(config.gateway.listen)}`);
  if (config.tls) process.stdout.write(`, https ${formatListen(config.tls.listen)}`);
  process.stdout.write(config.admin.listen ? `, admin ${formatListen(config.admin.listen)}\n` : ', admin off\n');
  process.stdout.write(formatTable(['APP', 'HOSTS', 'INSTANCES', 'HEALTH', 'TLS'], rows));
  if (config.tls && config.apps.some((a) => a.tls === 'acme'))
    process.stdout.write(`certificates: ACME ${config.tls.acmeDirectory}, stored in ${config.tls.storage}\n`);
  if (config.defaultApp === null) process.stdout.write('unmatched hosts get 404\n');
  return 0;
}

/** Where an app's certificate comes from, as `check` prints it: acme, the file's expiry, or off. */
function tlsLabel(config: GatewayConfig, name: string): string {
  const app = config.apps.find((a) => a.name === name);
  if (!config.tls || !app || app.tls === false) return 'off';
  if (app.tls === 'acme') return 'acme';
  const file = config.fileCertificates.find((c) => c.app === name);
  return file ? `file, expires ${file.facts.notAfter.slice(0, 10)}` : 'file';
}
