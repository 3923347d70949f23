import { readFileSync } from 'node:fs';
import toml from 'toml';
import { formatListen, parseListen } from '../addresses.js';
import { DEFAULTS } from '../config/schema.js';

/** A failure the CLI reports as one line and exit status 1. */
export class CliError extends Error {
  override readonly name = 'CliError';
}

export interface AdminTarget {
  /** Base URL, without a trailing slash. */
  url: string;
  token: string | null;
}

/**
 * Where the admin API is and how to authenticate: `--admin`/`--token` win,
 * then NANO_ADMIN_TOKEN, then the config file's `[admin]` (README, Command line). The
 * file is read leniently: only `[admin]` matters here, so a config with a
 * broken app still lets `status` run.
 */
export function resolveAdminTarget(
  options: { admin?: string; token?: string; config: string },
  env = process.env,
): AdminTarget {
  let fileAdmin: { listen?: unknown; token?: unknown } = {};
  let fileProblem: string | null = null;
  try {
    const doc = toml.parse(readFileSync(options.config, 'utf8')) as { admin?: { listen?: unknown; token?: unknown } };
    fileAdmin = doc.admin ?? {};
  } catch (err) {
    fileProblem =
      (err as NodeJS.ErrnoException).code === 'ENOENT' ? null : `${options.config}: ${(err as Error).message}`;
  }
  const token =
    options.token ??
    (env.NANO_ADMIN_TOKEN || undefined) ??
    (typeof fileAdmin.token === 'string' ? fileAdmin.token : null);
  if (options.admin !== undefined) {
    const url = /^https?:\/\//.test(options.admin) ? options.admin : `http://${options.admin}`;
    return { url: url.replace(/\/+$/, ''), token };
  }
  if (fileProblem) throw new CliError(`cannot read the admin address from ${fileProblem}; pass --admin URL`);
  if (fileAdmin.listen === false)
    throw new CliError(`the admin API is disabled in ${options.config} ([admin] listen = false); pass --admin URL`);
  const listen = parseListen(fileAdmin.listen ?? DEFAULTS.adminListen, '127.0.0.1');
  if (typeof listen === 'string') throw new CliError(`${options.config}: admin.listen: ${listen}`);
  // A wildcard listen address is reached on loopback.
  const host = listen.host === '0.0.0.0' ? '127.0.0.1' : listen.host === '::' ? '::1' : listen.host;
  return { url: `http://${formatListen({ host, port: listen.port })}`, token };
}

export interface AdminReply {
  status: number;
  body: unknown;
}

/** One admin API call; a gateway that does not answer is a CliError naming the address. */
export async function adminRequest(
  target: AdminTarget,
  method: string,
  path: string,
  json?: unknown,
): Promise<AdminReply> {
  const headers: Record<string, string> = { accept: 'application/json' };
  if (target.token) headers.authorization = `Bearer ${target.token}`;
  if (json !== undefined) headers['content-type'] = 'application/json';
  let res: Response;
  try {
    res = await fetch(`${target.url}${path}`, {
      method,
      headers,
      ...(json !== undefined ? { body: JSON.stringify(json) } : {}),
    });
  } catch (err) {
    const cause = (err as { cause?: { code?: string; message?: string } }).cause;
    const reason =
      cause?.code === 'ECONNREFUSED'
        ? 'connection refused (is the gateway running?)'
        : (cause?.message ?? (err as Error).message);
    throw new CliError(`cannot reach the admin API at ${target.url}: ${reason}`);
  }
  const text = await res.text();
  let body: unknown = text;
  try {
    body = JSON.parse(text);
  } catch {
    // Not JSON (metrics, or something else listening there): keep the text.
  }
  if (res.status === 401)
    throw new CliError(`the admin API at ${target.url} refused the token (pass --token or set NANO_ADMIN_TOKEN)`);
  return { status: res.status, body };
}

/** The message of an admin error body, or a description of an unexpected answer. */
export function errorMessage(reply: AdminReply): string {
  const error = (reply.body as { error?: { message?: string } })?.error;
  return (
    error?.message ??
    `unexpected answer ${reply.status}: ${
      typeof reply.body === 'string' ? reply.body.slice(0, 200) : JSON.stringify(reply.body)
    }`
  );
}
