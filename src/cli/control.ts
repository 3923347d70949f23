import { type AppJson, describeChanges, type ReloadSummary, type WorkerJson } from '../wire.js';
import { type AdminTarget, adminRequest, CliError, errorMessage, resolveAdminTarget } from './admin-client.js';
import type { CliArgs } from './args.js';
import { runCerts } from './certs.js';
import { formatTable } from './table.js';

function target(args: CliArgs): AdminTarget {
  return resolveAdminTarget({
    config: args.config,
    ...(args.admin !== undefined ? { admin: args.admin } : {}),
    ...(args.token !== undefined ? { token: args.token } : {}),
  });
}

export function formatBytes(bytes: number): string {
  if (bytes <= 0) return '-';
  const mb = bytes / (1024 * 1024);
  return mb >= 100 ? `${mb.toFixed(0)} MB` : `${mb.toFixed(1)} MB`;
}

export function formatUptime(ms: number): string {
  if (ms < 0) return '-';
  const s = Math.floor(ms / 1000);
  if (s < 60) return `${s}s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m}m${String(s % 60).padStart(2, '0')}s`;
  const h = Math.floor(m / 60);
  if (h < 24) return `${h}h${String(m % 60).padStart(2, '0')}m`;
  return `${Math.floor(h / 24)}d${String(h % 24).padStart(2, '0')}h`;
}

/** `nano-gateway certs`: the certificates table. */
export function runCertificates(args: CliArgs): Promise<number> {
  return runCerts(target(args));
}

/** `nano-gateway status`: one line per app from GET /admin/apps. */
export async function runStatus(args: CliArgs): Promise<number> {
  const admin = target(args);
  const [apps, health, workers] = await Promise.all([
    adminRequest(admin, 'GET', '/admin/apps'),
    adminRequest(admin, 'GET', '/admin/health'),
    adminRequest(admin, 'GET', '/admin/workers'),
  ]);
  if (apps.status !== 200) throw new CliError(errorMessage(apps));
  const now = Date.now();
  const rows = (apps.body as { apps: AppJson[] }).apps.map((app) => {
    const ready = app.instances.filter((i) => i.state === 'ready');
    const oldest = Math.min(...ready.map((i) => (i.started_at ? Date.parse(i.started_at) : now)));
    return [
      app.name + (app.default ? ' *' : ''),
      app.hosts.join(','),
      app.state,
      `${ready.length}/${app.instances.length}`,
      app.instances.map((i) => i.pid ?? '-').join(',') || '-',
      formatBytes(app.instances.reduce((sum, i) => sum + i.rss_bytes, 0)),
      ready.length ? formatUptime(now - oldest) : '-',
      String(app.instances.reduce((sum, i) => sum + i.restarts, 0)),
      String(app.requests_total),
    ];
  });
  process.stdout.write(
    formatTable(['APP', 'HOSTS', 'STATE', 'READY', 'PIDS', 'MEMORY', 'UPTIME', 'RESTARTS', 'REQUESTS'], rows),
  );
  process.stdout.write('* default app\n');
  for (const app of (apps.body as { apps: AppJson[] }).apps) {
    if (app.last_error) process.stdout.write(`${app.name}: last error: ${app.last_error}\n`);
  }
  // A gateway older than workers answers 404 here: it proxies in one process (README, Workers).
  const proxyWorkers = workers.status === 200 ? (workers.body as { workers: WorkerJson[] }).workers : [];
  if (proxyWorkers.length > 0) {
    process.stdout.write('\n');
    process.stdout.write(
      formatTable(
        ['WORKER', 'PID', 'STATE', 'MEMORY', 'UPTIME', 'RESTARTS', 'REQUESTS'],
        proxyWorkers.map((w) => [
          String(w.id),
          String(w.pid),
          w.state,
          formatBytes(w.rss_bytes),
          formatUptime(now - Date.parse(w.started_at)),
          String(w.restarts),
          String(w.requests),
        ]),
      ),
    );
  }
  const configError = (health.body as { config_error?: string | null })?.config_error;
  if (configError) process.stdout.write(`config error (the running config is kept): ${configError}\n`);
  return 0;
}

/**
 * `nano-gateway reload`: POST /admin/reload and print what changed. Exit 1
 * if the config was rejected or an app failed.
 */
export async function runReload(args: CliArgs): Promise<number> {
  const reply = await adminRequest(target(args), 'POST', '/admin/reload');
  if (reply.status !== 200) throw new CliError(`reload rejected: ${errorMessage(reply)}`);
  const summary = reply.body as ReloadSummary;
  process.stdout.write(`reloaded: ${describeChanges(summary, { failed: false })}\n`);
  for (const f of summary.failed) process.stdout.write(`failed ${f.name}: ${f.error}\n`);
  if (summary.failed.length > 0) {
    process.stderr.write(
      `nano-gateway: ${summary.failed.length} app${summary.failed.length === 1 ? '' : 's'} ` +
        'kept their running version (see above)\n',
    );
    return 1;
  }
  return 0;
}

/** `nano-gateway restart APP`: rolling restart, waits until the new children serve. */
export async function runRestart(args: CliArgs): Promise<number> {
  const name = args.positionals[0] as string;
  const admin = target(args);
  const path = `/admin/apps/${encodeURIComponent(name)}`;
  const before = await adminRequest(admin, 'GET', path);
  if (before.status !== 200) throw new CliError(errorMessage(before));
  const reply = await adminRequest(admin, 'POST', `${path}/restart`);
  if (reply.status !== 200) throw new CliError(`restart of ${name} failed: ${errorMessage(reply)}`);
  const pids = (app: unknown): string => (app as AppJson).instances.map((i) => i.pid ?? '-').join(', ');
  process.stdout.write(`restarted ${name}: pids ${pids(before.body)} -> ${pids(reply.body)}\n`);
  return 0;
}

/**
 * `nano-gateway pause|resume|maintenance APP [--message TEXT]` (README,
 * Pause and maintenance): the admin API call, then the app's new state.
 */
export async function runHold(args: CliArgs): Promise<number> {
  const name = args.positionals[0] as string;
  const action = args.command as 'pause' | 'resume' | 'maintenance';
  const body = action === 'maintenance' && args.message !== undefined ? { message: args.message } : undefined;
  const reply = await adminRequest(target(args), 'POST', `/admin/apps/${encodeURIComponent(name)}/${action}`, body);
  if (reply.status !== 200) throw new CliError(`${action} ${name} failed: ${errorMessage(reply)}`);
  const app = reply.body as AppJson;
  const said: Record<typeof action, string> = {
    pause: `paused ${name}: new requests wait (up to queue_timeout_ms) until nano-gateway resume ${name}`,
    resume: `resumed ${name}: state ${app.state}`,
    maintenance: `${name} in maintenance: its requests get 503 until nano-gateway resume ${name}`,
  };
  process.stdout.write(`${said[action]}\n`);
  return 0;
}
