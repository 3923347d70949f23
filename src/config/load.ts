import { readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import toml from 'toml';
import {
  describeValue as describe,
  isLoopbackHost,
  type ListenAddress,
  parseListen,
  parseTrustedProxy,
} from '../addresses.js';
import { normalizeConfigHost } from '../routing/host.js';
import { hostOwners } from '../routing/owners.js';
import { ConfigError, type ConfigIssue } from './errors.js';
import { type KeyLocations, lineOf, locateKeys } from './locate.js';
import {
  type AdminSettings,
  APP_NAME_PATTERN,
  type AppConfig,
  DEFAULTS,
  type GatewayConfig,
  type GatewaySettings,
} from './schema.js';

export interface LoadOptions {
  /** Environment for NANO_ADMIN_TOKEN; defaults to process.env. */
  env?: NodeJS.ProcessEnv;
  /** How to name the file in messages; defaults to the path as given. */
  displayFile?: string;
}

type Table = Record<string, unknown>;

/** Node's timers cap: a longer delay would fire after 1 ms. Every *_ms key stays within it. */
const MAX_TIMER_MS = 2_147_483_647;

const TOP_KEYS = new Set(['gateway', 'admin', 'apps']);
const GATEWAY_KEYS = new Set([
  'listen',
  'default_app',
  'drain_timeout_ms',
  'upstream_timeout_ms',
  'queue_timeout_ms',
  'trusted_proxies',
  'access_log',
]);
const ADMIN_KEYS = new Set(['listen', 'token']);
/** The keys of an app table, in the order the contract lists them. */
export const APP_KEY_ORDER: readonly string[] = [
  'hosts',
  'entry',
  'cwd',
  'args',
  'node_args',
  'env',
  'max_memory_mb',
  'health_path',
  'ready_timeout_ms',
  'kill_timeout_ms',
  'instances',
];
export const APP_KEYS = new Set(APP_KEY_ORDER);

function isTable(value: unknown): value is Table {
  return typeof value === 'object' && value !== null && !Array.isArray(value) && !(value instanceof Date);
}

/** Collects issues while walking the parsed document, each with its key's line. */
class Validator {
  readonly issues: ConfigIssue[] = [];
  constructor(
    readonly file: string,
    readonly locations: KeyLocations,
  ) {}

  fail(keyPath: readonly string[], message: string): void {
    this.issues.push({ file: this.file, line: lineOf(this.locations, keyPath), key: keyPath.join('.'), message });
  }

  unknownKeys(table: Table, allowed: Set<string>, at: readonly string[]): void {
    for (const key of Object.keys(table)) {
      if (!allowed.has(key)) {
        const known = [...allowed].join(', ');
        this.fail([...at, key], `unknown key (expected one of: ${known})`);
      }
    }
  }

  wholeNumber(
    table: Table,
    key: string,
    at: readonly string[],
    fallback: number,
    min: number,
    max = MAX_TIMER_MS,
  ): number {
    const value = table[key];
    if (value === undefined) return fallback;
    if (typeof value !== 'number' || !Number.isInteger(value)) {
      this.fail([...at, key], `expected a whole number, got ${describe(value)}`);
      return fallback;
    }
    if (value < min || value > max) {
      const range = `from ${min} to ${max}`;
      this.fail([...at, key], `must be ${range}, got ${value}`);
      return fallback;
    }
    return value;
  }

  stringArray(table: Table, key: string, at: readonly string[]): string[] | undefined {
    const value = table[key];
    if (value === undefined) return undefined;
    if (!Array.isArray(value) || !value.every((v) => typeof v === 'string')) {
      this.fail([...at, key], 'expected an array of strings');
      return undefined;
    }
    return value as string[];
  }

  string(table: Table, key: string, at: readonly string[]): string | undefined {
    const value = table[key];
    if (value === undefined) return undefined;
    if (typeof value !== 'string') {
      this.fail([...at, key], `expected a string, got ${describe(value)}`);
      return undefined;
    }
    return value;
  }
}

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

  return {
    settings: {
      listen,
      accessLog,
      drainTimeoutMs: v.wholeNumber(table, 'drain_timeout_ms', at, DEFAULTS.drainTimeoutMs, 0),
      upstreamTimeoutMs: v.wholeNumber(table, 'upstream_timeout_ms', at, DEFAULTS.upstreamTimeoutMs, 1),
      queueTimeoutMs: v.wholeNumber(table, 'queue_timeout_ms', at, DEFAULTS.queueTimeoutMs, 0),
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

/**
 * Validates one `[apps.NAME]` table, recording issues on `v`. Returns the
 * best-effort result even when invalid, so that checks across apps (host
 * clashes) still run.
 */
function validateApp(v: Validator, name: string, raw: unknown, baseDir: string): AppConfig | undefined {
  const at = ['apps', name];
  if (!APP_NAME_PATTERN.test(name)) {
    v.fail(at, 'invalid app name: use 1-63 characters of a-z, 0-9, "_" and "-", starting with a letter or digit');
  }
  if (!isTable(raw)) {
    v.fail(at, `expected a table, got ${describe(raw)}`);
    return undefined;
  }
  v.unknownKeys(raw, APP_KEYS, at);

  const hosts: string[] = [];
  if (raw.hosts === undefined) v.fail([...at, 'hosts'], 'required: at least one host');
  else {
    const list = v.stringArray(raw, 'hosts', at);
    if (list && list.length === 0) v.fail([...at, 'hosts'], 'expected at least one host');
    for (const h of list ?? []) {
      const res = normalizeConfigHost(h);
      if (!res.ok) v.fail([...at, 'hosts'], res.reason);
      else if (hosts.includes(res.host)) v.fail([...at, 'hosts'], `host "${res.host}" is listed twice`);
      else hosts.push(res.host);
    }
  }

  let entry = '';
  if (raw.entry === undefined) v.fail([...at, 'entry'], "required: the path of the app's main file");
  else {
    const text = v.string(raw, 'entry', at);
    if (text !== undefined) {
      entry = path.resolve(baseDir, text);
      const kind = statKind(entry);
      if (kind !== 'file')
        v.fail([...at, 'entry'], kind === 'missing' ? `file not found: ${entry}` : `not a file: ${entry}`);
    }
  }

  let cwd = entry ? path.dirname(entry) : baseDir;
  const cwdText = v.string(raw, 'cwd', at);
  if (cwdText !== undefined) {
    cwd = path.resolve(baseDir, cwdText);
    const kind = statKind(cwd);
    if (kind !== 'dir')
      v.fail([...at, 'cwd'], kind === 'missing' ? `directory not found: ${cwd}` : `not a directory: ${cwd}`);
  }

  const env: Record<string, string> = {};
  if (raw.env !== undefined) {
    if (!isTable(raw.env)) v.fail([...at, 'env'], `expected a table of strings, got ${describe(raw.env)}`);
    else {
      for (const [key, value] of Object.entries(raw.env)) {
        if (key === '' || key.includes('=') || key.includes('\0')) v.fail([...at, 'env', key], 'invalid variable name');
        else if (typeof value === 'string' || typeof value === 'number' || typeof value === 'boolean')
          env[key] = String(value);
        else v.fail([...at, 'env', key], `expected a string, got ${describe(value)}`);
      }
    }
  }

  let healthPath: string | null = null;
  const health = v.string(raw, 'health_path', at);
  if (health !== undefined) {
    if (!health.startsWith('/')) v.fail([...at, 'health_path'], `must start with "/", got ${JSON.stringify(health)}`);
    else healthPath = health;
  }

  const app: AppConfig = {
    name,
    hosts,
    entry,
    cwd,
    args: v.stringArray(raw, 'args', at) ?? [],
    nodeArgs: v.stringArray(raw, 'node_args', at) ?? [],
    env,
    maxMemoryMb: v.wholeNumber(raw, 'max_memory_mb', at, DEFAULTS.maxMemoryMb, 16, 1_048_576),
    healthPath,
    readyTimeoutMs: v.wholeNumber(raw, 'ready_timeout_ms', at, DEFAULTS.readyTimeoutMs, 1),
    killTimeoutMs: v.wholeNumber(raw, 'kill_timeout_ms', at, DEFAULTS.killTimeoutMs, 0),
    instances: v.wholeNumber(raw, 'instances', at, DEFAULTS.instances, 1, 256),
  };
  return app;
}

function statKind(p: string): 'file' | 'dir' | 'other' | 'missing' {
  try {
    const st = statSync(p);
    return st.isFile() ? 'file' : st.isDirectory() ? 'dir' : 'other';
  } catch {
    return 'missing';
  }
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
      const app = validateApp(v, name, rawApps[name], baseDir);
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
  return { file, displayFile, gateway: settings, admin, apps, defaultApp, defaultAppSetting };
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
