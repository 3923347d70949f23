import { parseArgs } from 'node:util';
import { parseListen } from '../addresses.js';
import { LOG_LEVELS } from '../log.js';

/** A mistake in how the command was called: exit status 2. */
export class UsageError extends Error {
  override readonly name = 'UsageError';
}

export const COMMANDS = [
  'start',
  'check',
  'init',
  'status',
  'reload',
  'restart',
  'certs',
  'startup',
  'logs',
  'pause',
  'resume',
  'maintenance',
] as const;

/** The commands that act on one app, named after them. */
const APP_COMMANDS: readonly Command[] = ['restart', 'pause', 'resume', 'maintenance'];
export type Command = (typeof COMMANDS)[number];

export interface CliArgs {
  command: Command;
  positionals: string[];
  config: string;
  listen?: string;
  logLevel?: string;
  pretty?: boolean;
  /** Admin API base URL for status/reload/restart. */
  admin?: string;
  token?: string;
  help: boolean;
  version: boolean;
  /** startup: `User=` of the unit. */
  user?: string;
  /** startup: the unit's name, without `.service`. */
  unitName?: string;
  /** startup: write the unit under `root` instead of printing it. */
  install?: boolean;
  root?: string;
  force?: boolean;
  /** logs: how many recent lines (`-n`, default 100). */
  lines?: number;
  /** logs: keep streaming new lines (`-f`). */
  follow?: boolean;
  /** `--json`: JSON log lines for start; the NDJSON as it comes for logs. */
  json?: boolean;
  /** maintenance: the text its 503 answers carry. */
  message?: string;
}

/** A systemd unit name as `startup --name` takes it (`.service` is added). */
const UNIT_NAME = /^[A-Za-z0-9:_.@-]+$/;
/** A user name or numeric id for `User=`. */
const UNIT_USER = /^[A-Za-z0-9_][A-Za-z0-9_.-]*\$?$/;

const OPTIONS = {
  config: { type: 'string', short: 'c' },
  listen: { type: 'string' },
  'log-level': { type: 'string' },
  pretty: { type: 'boolean' },
  json: { type: 'boolean' },
  admin: { type: 'string' },
  token: { type: 'string' },
  user: { type: 'string' },
  name: { type: 'string' },
  install: { type: 'boolean' },
  root: { type: 'string' },
  force: { type: 'boolean' },
  lines: { type: 'string', short: 'n' },
  follow: { type: 'boolean', short: 'f' },
  message: { type: 'string', short: 'm' },
  help: { type: 'boolean', short: 'h' },
  version: { type: 'boolean', short: 'v' },
} as const;

function parseOptions(argv: string[]) {
  try {
    return parseArgs({ args: argv, allowPositionals: true, strict: true, options: OPTIONS });
  } catch (err) {
    throw new UsageError((err as Error).message.split('\n')[0] ?? 'invalid arguments');
  }
}

export function parseCli(argv: string[]): CliArgs {
  const { values, positionals } = parseOptions(argv);
  const first = positionals[0];
  let command: Command = 'start';
  let rest = positionals;
  if (first !== undefined) {
    if (!(COMMANDS as readonly string[]).includes(first)) throw new UsageError(`unknown command "${first}"`);
    command = first as Command;
    rest = positionals.slice(1);
  }
  if (values.pretty && values.json) throw new UsageError('--pretty and --json exclude each other');
  const logLevel = values['log-level'];
  if (logLevel !== undefined && !(LOG_LEVELS as readonly string[]).includes(logLevel)) {
    throw new UsageError(`--log-level must be one of ${LOG_LEVELS.join(', ')}`);
  }
  if (values.listen !== undefined) {
    const listen = parseListen(values.listen);
    if (typeof listen === 'string') throw new UsageError(`--listen: ${listen}`);
  }
  if (APP_COMMANDS.includes(command) && rest.length === 0 && !values.help)
    throw new UsageError(`${command} needs the name of an app: nano-gateway ${command} APP`);
  if (values.message !== undefined && command !== 'maintenance')
    throw new UsageError('--message goes with the maintenance command');
  if (command !== 'startup') {
    const misplaced = (['user', 'name', 'install', 'root', 'force'] as const).find((k) => values[k] !== undefined);
    if (misplaced) throw new UsageError(`--${misplaced} goes with the startup command`);
  }
  const unitName = values.name?.endsWith('.service') ? values.name.slice(0, -'.service'.length) : values.name;
  if (unitName !== undefined && (!UNIT_NAME.test(unitName) || unitName.length > 200))
    throw new UsageError(`--name: not a systemd unit name: ${JSON.stringify(values.name)} (letters, digits, :_.@-)`);
  if (values.user !== undefined && !UNIT_USER.test(values.user))
    throw new UsageError(`--user: not a user name: ${JSON.stringify(values.user)}`);
  if (!values.install && (values.root !== undefined || values.force))
    throw new UsageError(`--${values.root !== undefined ? 'root' : 'force'} goes with --install`);
  if (command !== 'logs') {
    const misplaced = (['lines', 'follow'] as const).find((k) => values[k] !== undefined);
    if (misplaced) throw new UsageError(`--${misplaced} goes with the logs command`);
  }
  const lines = values.lines === undefined ? undefined : Number(values.lines);
  if (values.lines !== undefined && (!/^\d+$/.test(values.lines) || !Number.isSafeInteger(lines)))
    throw new UsageError(`--lines: expected a whole number, got ${JSON.stringify(values.lines)}`);
  const maxPositionals = command === 'init' || command === 'logs' || APP_COMMANDS.includes(command) ? 1 : 0;
  if (rest.length > maxPositionals) throw new UsageError(`unexpected argument "${rest[maxPositionals]}"`);
  return {
    command,
    positionals: rest,
    config: values.config ?? 'nano.toml',
    ...(values.listen !== undefined ? { listen: values.listen } : {}),
    ...(values['log-level'] !== undefined ? { logLevel: values['log-level'] } : {}),
    ...(values.pretty ? { pretty: true } : values.json ? { pretty: false } : {}),
    ...(values.admin !== undefined ? { admin: values.admin } : {}),
    ...(values.token !== undefined ? { token: values.token } : {}),
    ...(values.user !== undefined ? { user: values.user } : {}),
    ...(unitName !== undefined ? { unitName } : {}),
    ...(values.install ? { install: true } : {}),
    ...(values.root !== undefined ? { root: values.root } : {}),
    ...(values.force ? { force: true } : {}),
    ...(lines !== undefined ? { lines } : {}),
    ...(values.follow ? { follow: true } : {}),
    ...(values.json ? { json: true } : {}),
    ...(values.message !== undefined ? { message: values.message } : {}),
    help: values.help ?? false,
    version: values.version ?? false,
  };
}

export const HELP = `nano-gateway: one port, many Node.js apps, routed by Host.

Usage:
  nano-gateway [start] [-c FILE] [--listen ADDR] [--log-level L] [--pretty|--json]
                            run the gateway in the foreground (default: ./nano.toml)
  nano-gateway check [-c FILE]
                            validate the config; print apps and hosts
  nano-gateway init [DIR]   write a starter nano.toml and apps/hello/server.js
  nano-gateway status [-c FILE] [--admin URL] [--token T]
                            table of apps from the admin API
  nano-gateway reload [-c FILE] [--admin URL] [--token T]
                            reload the config file now and print what changed
  nano-gateway restart APP [-c FILE] [--admin URL] [--token T]
                            rolling restart of one app (no request dropped)
  nano-gateway certs [-c FILE] [--admin URL] [--token T]
                            table of HTTPS certificates: source, state, expiry, renewal
  nano-gateway startup [-c FILE] [--user USER] [--name NAME] [--install [--root ROOT] [--force]]
                            print a systemd unit that runs this config; --install writes it
  nano-gateway logs [APP] [-n N] [-f] [--json] [-c FILE] [--admin URL] [--token T]
                            an app's recent log lines (default: every app and the gateway);
                            -f keeps following until Ctrl-C
  nano-gateway pause APP    hold APP's new requests (they wait up to queue_timeout_ms)
  nano-gateway resume APP   send held requests on in order; end a pause or maintenance
  nano-gateway maintenance APP [--message TEXT]
                            answer APP's requests with 503 and TEXT until resume

Options:
  -c, --config FILE   config file (default: nano.toml)
  --listen ADDR       listen address, overrides [gateway] listen ("host:port", ":port", port)
  --log-level L       fatal, error, warn, info (default), debug, trace, silent
  --pretty            human-readable logs (default when stdout is a terminal)
  --json              JSON log lines (default otherwise); logs: the NDJSON lines as they come
  -n, --lines N       logs: how many recent lines (default 100)
  -f, --follow        logs: stream new lines as they are logged, until Ctrl-C
  -m, --message TEXT  maintenance: the message (default: "APP is down for maintenance")
  -h, --help          this text
  --admin URL         admin API address (default: the config's [admin] listen)
  --token T           admin API token (default: NANO_ADMIN_TOKEN, then [admin] token)
  -v, --version       the version
  --user USER         startup: run the service as this user (User=; default root)
  --name NAME         startup: the unit's name (default: nano-gateway)
  --install           startup: write ROOT/etc/systemd/system/NAME.service, not stdout
  --root ROOT         startup: where --install writes (default: /)
  --force             startup: replace an existing unit file

Exit status: 0 success, 1 failure, 2 usage error.
`;
