import { randomBytes } from 'node:crypto';
import { open, rename, stat, unlink } from 'node:fs/promises';
import path from 'node:path';
import { APP_KEY_ORDER } from './app-table.js';
import { locateKeys } from './locate.js';

/**
 * Edits nano.toml as text, so that everything the edit is not about
 * (comments, order, formatting of other apps) stays byte for byte
 * (README, Admin API: changes are written into nano.toml).
 */

/** The config file cannot be edited in the way asked. */
export class ConfigEditError extends Error {
  override readonly name = 'ConfigEditError';
  constructor(
    message: string,
    readonly key?: string,
  ) {
    super(message);
  }
}

const BARE_KEY = /^[A-Za-z0-9_-]+$/;

function tomlKey(key: string): string {
  return BARE_KEY.test(key) ? key : tomlString(key);
}

/** A TOML basic string. JSON's escapes are valid TOML; DEL must be escaped too. */
function tomlString(value: string): string {
  return JSON.stringify(value).replace(/\x7f/g, '\\u007f');
}

function tomlValue(value: unknown, key: string): string {
  if (typeof value === 'string') return tomlString(value);
  if (typeof value === 'boolean') return String(value);
  if (typeof value === 'number' && Number.isFinite(value)) return String(value);
  if (Array.isArray(value)) return `[${value.map((v) => tomlValue(v, key)).join(', ')}]`;
  if (value && typeof value === 'object') {
    const entries = Object.entries(value as Record<string, unknown>);
    if (entries.length === 0) return '{}';
    return `{ ${entries.map(([k, v]) => `${tomlKey(k)} = ${tomlValue(v, `${key}.${k}`)}`).join(', ')} }`;
  }
  throw new ConfigEditError(`unsupported value ${JSON.stringify(value)}`, key);
}

/** One `[apps.NAME]` table with the given keys, in the README's order (unknown keys last, for validation to reject). */
export function appTableToml(name: string, keys: Record<string, unknown>): string {
  const known = APP_KEY_ORDER.filter((k) => k in keys);
  const unknown = Object.keys(keys).filter((k) => !APP_KEY_ORDER.includes(k));
  const lines = [`[apps.${tomlKey(name)}]`];
  for (const key of [...known, ...unknown]) {
    if (keys[key] === undefined) continue;
    lines.push(`${tomlKey(key)} = ${tomlValue(keys[key], `apps.${name}.${key}`)}`);
  }
  return `${lines.join('\n')}\n`;
}

/** The file with a new app table appended after a blank line; nothing else changes. */
export function appendAppTable(text: string, name: string, keys: Record<string, unknown>): string {
  const separator = text === '' ? '' : text.endsWith('\n\n') ? '' : text.endsWith('\n') ? '\n' : '\n\n';
  return `${text}${separator}${appTableToml(name, keys)}`;
}

/**
 * The file without the app's `[apps.NAME]` table and its sub-tables
 * (`[apps.NAME.env]`): from the header to the table's last key. Comments
 * above the header and after the last key stay, as does every other line.
 */
export function removeAppTable(text: string, name: string): string {
  const locations = locateKeys(text);
  const own = `apps.${name}`;
  const tables = locations.tables.filter((t) => t.path === own || t.path.startsWith(`${own}.`));
  if (!tables.some((t) => t.path === own)) {
    const written = locations.lines.get(own);
    throw new ConfigEditError(
      written === undefined
        ? `app "${name}" is not in the file`
        : `app "${name}" is not written as its own [apps.${name}] table (line ${written}); edit the file by hand`,
      own,
    );
  }
  const lines = text.split('\n');
  // Remove from the bottom up so that earlier line numbers stay valid.
  const ranges = tables.map((t) => [t.headerLine, t.lastContentLine] as const).sort((a, b) => b[0] - a[0]);
  for (const [first, last] of ranges) {
    let start = first - 1;
    const end = last; // exclusive, 0-based
    // Do not leave two blank lines where the table was.
    const blankBefore = start > 0 && lines[start - 1]?.trim() === '';
    const blankAfter = end < lines.length && lines[end]?.trim() === '';
    if (blankBefore && (blankAfter || end >= lines.length - 1)) start--;
    lines.splice(start, end - start);
  }
  return lines.join('\n');
}

/**
 * Replaces a file's content atomically: a temporary file in the same
 * directory, flushed to disk, then renamed over the original. A reader (or
 * a crash) sees the old content or the new, never half of it.
 */
export async function writeFileAtomic(file: string, text: string): Promise<void> {
  const dir = path.dirname(file);
  const tmp = path.join(dir, `.${path.basename(file)}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`);
  const mode = await stat(file).then(
    (st) => st.mode & 0o777,
    () => 0o644,
  );
  const handle = await open(tmp, 'wx', mode);
  try {
    await handle.writeFile(text, 'utf8');
    await handle.sync();
  } catch (err) {
    await handle.close();
    await unlink(tmp).catch(() => {});
    throw err;
  }
  await handle.close();
  try {
    await rename(tmp, file);
  } catch (err) {
    await unlink(tmp).catch(() => {});
    throw err;
  }
}
