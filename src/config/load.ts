import { readFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import path from 'node:path';
import toml from 'toml';
import {
  describeValue as describe,
  isLoopbackHost,
  type ListenAddress,
  parseListen,
  parseTrustedProxy,
} from '../addresses.js';
import { hostOwners } from '../routing/owners.js';
import { validateApp } from './app-table.js';
import { ConfigError } from './errors.js';
import { locateKeys } from './locate.js';
import {
  type AdminSettings,
  type AppConfig,
  DEFAULTS,
  type FileCertificate,
  type GatewayConfig,
  type GatewaySettings,
} from './schema.js';
import { validateTls } from './tls.js';
import { isTable, type Table, Validator } from './validator.js';

export interface LoadOptions {
  /** Environment for NANO_ADMIN_TOKEN; defaults to process.env. */
  env?: NodeJS.ProcessEnv;
  /** How to name the file in messages; defaults to the path as given. */
  displayFile?: string;
}

/** The most proxy workers a config may ask for. */
const MAX_WORKERS = 256;

const TOP_KEYS = new Set(['gateway', 'admin', 'tls', 'apps']);
const GATEWAY_KEYS = new Set([
  'listen',
  'default_app',
  'drain_timeout_ms',
  'upstream_timeout_ms',
  'queue_timeout_ms',
  'trusted_proxies',
  'access_log',
  'log_lines',
  'workers',
]);
const ADMIN_KEYS = new Set(['listen', 'token']);
function validateGateway(
  v: Validator,
  raw: unknown,
): { settings: GatewaySettings; defaultApp: string | false | undefined } {
  const at = ['gateway'];
  const table: Table = isTable(raw) ? raw : {};
  if (raw !== undefined && !isTable(raw)) v.fail(at, `expected a table, got ${describe(raw)}`);
  v.unknownKeys(table, GATEWAY_KEYS, at);

  let listen = parseListen(DEFAULTS.listen) as ListenAddress;
  if (table.listen !== undefined) {
    const parsed = parseListen(table.listen);
    if (typeof parsed === 'string') v.fail([...at, 'listen'], parsed);
    else listen = parsed;
  }

  let defaultApp: string | false | undefined;
  const rawDefault = table.default_app;
  if (rawDefault === false || rawDefault === undefined) defaultApp = rawDefault;
  else if (typeof rawDefault === 'string') defaultApp = rawDefault;
  else v.fail([...at, 'default_app'], `expected an app name or false, got ${describe(rawDefault)}`);

  const trustedProxies = v.stringArray(table, 'trusted_proxies', at) ?? [];
  for (const entry of trustedProxies) {
    const parsed = parseTrustedProxy(entry);
    if (typeof parsed === 'string') v.fail([...at, 'trusted_proxies'], parsed);
  }

  let accessLog = true;
  if (table.access_log !== undefined) {
    if (typeof table.access_log === 'boolean') accessLog = table.access_log;
    else v.fail([...at, 'access_log'], `expected true or false, got ${describe(table.access_log)}`);
  }

  let workers: number = DEFAULTS.workers;
  if (table.workers === 'auto') workers = availableParallelism();
  else if (table.workers !== undefined && typeof table.workers !== 'number')
    v.fail([...at, 'workers'], `expected a number or "auto", got ${describe(table.workers)}`);
  // Bounded: each worker is a Node process of its own (~50 MB).
  else workers = v.wholeNumber(table, 'workers', at, DEFAULTS.workers, 1, MAX_WORKERS);

  return {
    settings: {
      listen,
      accessLog,
      workers,
      drainTimeoutMs: v.wholeNumber(table, 'drain_timeout_ms', at, DEFAULTS.drainTimeoutMs, 0),
      upstreamTimeoutMs: v.wholeNumber(table, 'upstream_timeout_ms', at, DEFAULTS.upstreamTimeoutMs, 1),
      queueTimeoutMs: v.wholeNumber(table, 'queue_timeout_ms', at, DEFAULTS.queueTimeoutMs, 0),
      // Bounded: a kept line costs ~100 bytes besides its text, times every app.
      logLines: v.wholeNumber(table, 'log_lines', at, DEFAULTS.logLines, 0, 10_000),
      trustedProxies,
    },
    defaultApp,
  };
}

function validateAdmin(v: Validator, raw: unknown, env: NodeJS.ProcessEnv): AdminSettings {
  const at = ['admin'];
  const table: Table = isTable(raw) ? raw : {};
  if (raw !== undefined && !isTable(raw)) v.fail(at, `expected a table, got ${describe(raw)}`);
  v.unknownKeys(table, ADMIN_KEYS, at);

  let listen: ListenAddress | null = parseListen(DEFAULTS.adminListen) as ListenAddress;
  if (table.listen === false) listen = null;
  else if (table.listen !== undefined) {
    const parsed = parseListen(table.listen, '127.0.0.1');
    if (typeof parsed === 'string') v.fail([...at, 'listen'], parsed);
    else listen = parsed;
  }

  const fileToken = v.string(table, 'token', at);
  if (fileToken === '') v.fail([...at, 'token'], 'must not be empty');
  const envToken = env.NANO_ADMIN_TOKEN;
  const token = envToken ? envToken : fileToken ? fileToken : null;

  if (listen && !isLoopbackHost(listen.host) && token === null) {
    v.fail(
      [...at, 'listen'],
      `admin API on non-loopback address ${listen.host} requires a token ([admin] token or NANO_ADMIN_TOKEN)`,
    );
  }
  return { listen, token };
}

/** Reports a host claimed by two apps, on the later app's `hosts` line. */
function checkHostClashes(v: Validator, apps: readonly AppConfig[]): void {
  hostOwners(apps, (host, owner, claimant) =>
    v.fail(['apps', claimant, 'hosts'], `host "${host}" is already used by app "${owner}"`),
  );
}

/** Parses and validates config text. `file` is the absolute path (it anchors relative paths). */
export function parseConfig(text: string, file: string, options: LoadOptions = {}): GatewayConfig {
  const displayFile = options.displayFile ?? file;
  let doc: unknown;
  try {
    doc = toml.parse(text);
  } catch (err) {
    // toml reports most syntax errors in `location.start`, redefinitions in `line`.
    const e = err as { line?: number; location?: { start?: { line?: number } }; message?: string };
    const line = e.line ?? e.location?.start?.line;
    throw new ConfigError([{ file: displayFile, line, message: `syntax error: ${e.message ?? String(err)}` }]);
  }
  const locations = locateKeys(text);
  const v = new Validator(displayFile, locations);
  const root = doc as Table;
  v.unknownKeys(root, TOP_KEYS, []);

  const { settings, defaultApp: defaultAppSetting } = validateGateway(v, root.gateway);
  const admin = validateAdmin(v, root.admin, options.env ?? process.env);

  const baseDir = path.dirname(file);
  const tls = validateTls(v, root.tls, baseDir);
  const fileCertificates: FileCertificate[] = [];
  const apps: AppConfig[] = [];
  const rawApps = root.apps;
  if (rawApps === undefined) v.fail(['apps'], 'at least one app is required, e.g. [apps.web]');
  else if (!isTable(rawApps)) v.fail(['apps'], `expected a table of apps, got ${describe(rawApps)}`);
  else {
    // Object key order puts integer-like names first; the file's order is what counts.
    const names = Object.keys(rawApps).sort(
      (a, b) => (locations.lines.get(`apps.${a}`) ?? 0) - (locations.lines.get(`apps.${b}`) ?? 0),
    );
    if (names.length === 0) v.fail(['apps'], 'at least one app is required, e.g. [apps.web]');
    for (const name of names) {
      const app = validateApp(v, name, rawApps[name], baseDir, { table: tls !== null, files: fileCertificates });
      if (app) apps.push(app);
    }
    checkHostClashes(v, apps);
  }

  let defaultApp: string | null = null;
  if (typeof defaultAppSetting === 'string') {
    if (isTable(rawApps) && !Object.hasOwn(rawApps, defaultAppSetting)) {
      v.fail(['gateway', 'default_app'], `no app named "${defaultAppSetting}" in [apps]`);
    }
    defaultApp = defaultAppSetting;
  } else if (defaultAppSetting === undefined) {
    defaultApp = apps[0]?.name ?? null;
  }

  if (v.issues.length > 0) throw new ConfigError(v.issues);
  return { file, displayFile, gateway: settings, admin, apps, defaultApp, defaultAppSetting, tls, fileCertificates };
}

/** How a path given on the command line is shown in messages: relative to cwd when inside it. */
export function displayPathFor(file: string): string {
  const abs = path.resolve(file);
  const rel = path.relative(process.cwd(), abs);
  return rel && !rel.startsWith('..') && !path.isAbsolute(rel) ? rel : abs;
}

/** The config file's text; a file that cannot be read is a ConfigError naming it (start-up, reloads, admin edits). */
export function readConfigText(file: string, displayFile: string): string {
  try {
    return readFileSync(file, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    const message = code === 'ENOENT' ? 'config file not found' : `cannot read config file: ${(err as Error).message}`;
    throw new ConfigError([{ file: displayFile, message }]);
  }
}

/** Reads and validates a config file; every failure is a ConfigError naming the file. */
export function loadConfig(file: string, options: LoadOptions = {}): { config: GatewayConfig; text: string } {
  const abs = path.resolve(file);
  const displayFile = options.displayFile ?? displayPathFor(file);
  const text = readConfigText(abs, displayFile);
  return { config: parseConfig(text, abs, { ...options, displayFile }), text };
}
