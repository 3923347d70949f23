import { statSync } from 'node:fs';
import path from 'node:path';
import { describeValue as describe } from '../addresses.js';
import { normalizeConfigHost } from '../routing/host.js';
import { APP_NAME_PATTERN, type AppConfig, type AppWatch, DEFAULTS, type FileCertificate } from './schema.js';
import { validateAppTls } from './tls.js';
import { isTable, type Validator } from './validator.js';

/** The keys of an app table, in the order the README's reference lists them. */
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
  'tls',
  'max_rss_mb',
  'watch',
  'idle_timeout_ms',
];
export const APP_KEYS = new Set(APP_KEY_ORDER);

/**
 * Validates one `[apps.NAME]` table, recording issues on `v`. Returns the
 * best-effort result even when invalid, so that checks across apps (host
 * clashes) still run.
 */
export function validateApp(
  v: Validator,
  name: string,
  raw: unknown,
  baseDir: string,
  tls: { table: boolean; files: FileCertificate[] } = { table: false, files: [] },
): AppConfig | undefined {
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

  const appTls = validateAppTls(v, name, raw, hosts, baseDir, tls.table);
  if (appTls.file) tls.files.push(appTls.file);

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
    tls: appTls.tls,
    maxRssMb: raw.max_rss_mb === undefined ? null : v.wholeNumber(raw, 'max_rss_mb', at, 0, 1, 1_048_576) || null,
    watch: validateWatch(v, raw, at),
    idleTimeoutMs: v.wholeNumber(raw, 'idle_timeout_ms', at, 0, 0),
  };
  return app;
}

/**
 * `watch` (README, Watch and restart): true, false, or globs relative to the
 * app's cwd. A glob may not leave the cwd: the watcher only looks inside it.
 */
function validateWatch(v: Validator, raw: Record<string, unknown>, at: readonly string[]): AppWatch {
  const value = raw.watch;
  if (value === undefined || value === false) return false;
  if (value === true) return true;
  const key = [...at, 'watch'];
  if (!Array.isArray(value) || value.length === 0 || !value.every((g) => typeof g === 'string' && g !== '')) {
    v.fail(key, `expected true, false or a non-empty array of globs, got ${describe(value)}`);
    return false;
  }
  for (const glob of value as string[]) {
    const normal = glob.replaceAll('\\', '/');
    if (path.isAbsolute(normal) || normal === '..' || normal.startsWith('../') || normal.includes('/../'))
      v.fail(key, `glob ${JSON.stringify(glob)} must be relative to the app's cwd and stay inside it`);
  }
  return [...(value as string[])];
}

function statKind(p: string): 'file' | 'dir' | 'other' | 'missing' {
  try {
    const st = statSync(p);
    return st.isFile() ? 'file' : st.isDirectory() ? 'dir' : 'other';
  } catch {
    return 'missing';
  }
}
