/**
 * `nano-gateway logs [APP] [-n N] [-f] [--json]` (README, Logs): the log
 * ring of a running gateway through `GET /admin/logs`, read as a stream
 * (a followed log never ends, and a large one is never held whole).
 */
import http from 'node:http';
import https from 'node:https';
import { type AdminTarget, CliError, resolveAdminTarget } from './admin-client.js';
import type { CliArgs } from './args.js';

/** `-n` when not given (the API's default too). */
export const DEFAULT_LINES = 100;

/** One line of `GET /admin/logs`. */
export interface LogLineJson {
  time: string;
  app: string | null;
  pid: number | null;
  stream: 'stdout' | 'stderr' | 'gateway';
  msg: string;
}

/** Colours an app name can get (SGR codes): never red, which marks stderr. */
const PALETTE = [36, 32, 33, 34, 35, 96, 92, 93, 94, 95] as const;
const RED = 31;
const GREY = 90;
const BOLD = 1;

function sgr(code: number, text: string): string {
  return `\x1b[${code}m${text}\x1b[0m`;
}

/** The same colour for the same app name, in every run (FNV-1a of the name). */
export function appColour(name: string): number {
  let hash = 0x811c9dc5;
  for (let i = 0; i < name.length; i++) hash = Math.imul(hash ^ name.charCodeAt(i), 0x01000193) >>> 0;
  return PALETTE[hash % PALETTE.length] as number;
}

/**
 * Colour on a terminal only. NO_COLOR (non-empty, no-color.org) turns it
 * off whatever else is set; FORCE_COLOR (not `0`/`false`) turns it on when
 * stdout is not a terminal.
 */
export function colourWanted(isTTY: boolean | undefined, env: NodeJS.ProcessEnv = process.env): boolean {
  if (env.NO_COLOR) return false;
  const force = env.FORCE_COLOR;
  if (force !== undefined) return force !== '0' && force !== 'false';
  return isTTY === true;
}

/** Local wall-clock time, HH:MM:SS.mmm (as the gateway's `--pretty` logs); the ISO text if unparsable. */
export function formatTime(iso: string): string {
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return iso;
  const two = (n: number): string => String(n).padStart(2, '0');
  return `${two(d.getHours())}:${two(d.getMinutes())}:${two(d.getSeconds())}.${String(d.getMilliseconds()).padStart(3, '0')}`;
}

// biome-ignore lint/suspicious/noControlCharactersInRegex: an SGR sequence starts with ESC
const SGR_SEQUENCE = /^\x1b\[[0-9;]*m$/;
/** Escape sequences (CSI, others) and control characters but tab. */
// biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are what it finds
const CONTROL = /\x1b\[[0-9;?]*[ -/]*[@-~]|\x1b[@-Z\\-_]|[\x00-\x08\x0a-\x1f\x7f]/g;

/**
 * A child's text as it may reach the operator's terminal: colours kept
 * when colour is on, every other escape sequence and control character
 * taken out (a child must not move the cursor or set the window title).
 */
function terminalSafe(text: string, keepColours: boolean): string {
  return text.replace(CONTROL, (m) => (keepColours && SGR_SEQUENCE.test(m) ? m : ''));
}

/**
 * `TIME APP[PID] out|err|gw MESSAGE`: `gateway` in place of `APP[PID]` for
 * gateway-wide lines, `APP` for a gateway line about an app without a pid.
 * Without colour, colour codes a child wrote itself are taken out too.
 */
export function formatEntry(entry: LogLineJson, colour: boolean): string {
  const time = formatTime(entry.time);
  const label = entry.app === null ? 'gateway' : entry.pid === null ? entry.app : `${entry.app}[${entry.pid}]`;
  const marker = entry.stream === 'stdout' ? 'out' : entry.stream === 'stderr' ? 'err' : 'gw';
  if (!colour) return `${time} ${label} ${marker} ${terminalSafe(entry.msg, false)}`;
  const labelColour = entry.app === null ? BOLD : appColour(entry.app);
  const markerColour = entry.stream === 'stderr' ? RED : GREY;
  return `${sgr(GREY, time)} ${sgr(labelColour, label)} ${sgr(markerColour, marker)} ${terminalSafe(entry.msg, true)}`;
}

/** One NDJSON line as printed; a line that is not a log object is printed as it came. */
function renderLine(line: string, colour: boolean): string {
  let entry: LogLineJson;
  try {
    entry = JSON.parse(line) as LogLineJson;
  } catch {
    return line;
  }
  if (!entry || typeof entry !== 'object' || typeof entry.msg !== 'string') return line;
  return formatEntry(entry, colour);
}

export interface StreamOptions {
  follow: boolean;
  /** Print the NDJSON lines as they come. */
  json: boolean;
  colour: boolean;
  out: NodeJS.WritableStream;
}

/** Largest error body read from a non-200 answer. */
const MAX_ERROR_BODY = 64 * 1024;

function errorText(target: AdminTarget, status: number, body: string): string {
  if (status === 401) return `the admin API at ${target.url} refused the token (pass --token or set NANO_ADMIN_TOKEN)`;
  try {
    const message = (JSON.parse(body) as { error?: { message?: unknown } })?.error?.message;
    if (typeof message === 'string') return message;
  } catch {
    // Not the admin API's error JSON.
  }
  return `unexpected answer ${status} from ${target.url}: ${body.slice(0, 200).trim()}`;
}

/**
 * Streams `path` (a `GET /admin/logs` URL) to `out` line by line. Resolves
 * 0 when a plain read has ended or on Ctrl-C while following; rejects with
 * a CliError when the gateway cannot be reached, refuses, or goes away
 * (a followed log that ends, or any response cut short).
 */
export function streamLogs(target: AdminTarget, path: string, options: StreamOptions): Promise<number> {
  return new Promise((resolve, reject) => {
    const url = new URL(`${target.url}${path}`);
    const headers: Record<string, string> = { accept: 'application/x-ndjson' };
    if (target.token) headers.authorization = `Bearer ${target.token}`;
    const client = url.protocol === 'https:' ? https : http;
    const req = client.request(url, { method: 'GET', headers, agent: false });
    const wentAway = (): CliError => new CliError(`the gateway went away (${target.url})`);
    let settled = false;
    const finish = (outcome: number | CliError): void => {
      if (settled) return;
      settled = true;
      process.off('SIGINT', onSigint);
      options.out.off('error', onOutError);
      req.destroy();
      if (typeof outcome === 'number') resolve(outcome);
      else reject(outcome);
    };
    // Ctrl-C ends a followed log: that is how it is meant to stop.
    const onSigint = (): void => finish(0);
    // The reader of stdout is gone (`logs -f | head`): nothing left to print to.
    const onOutError = (err: NodeJS.ErrnoException): void =>
      finish(err.code === 'EPIPE' ? 0 : new CliError(`cannot write the log: ${err.message}`));
    if (options.follow) process.on('SIGINT', onSigint);
    options.out.on('error', onOutError);

    let responded = false;
    req.on('socket', (socket) => {
      // A followed log can be quiet for hours: keep-alive probes notice a peer that vanished.
      if (options.follow) socket.setKeepAlive(true, 10_000);
    });
    req.on('error', (err: NodeJS.ErrnoException) => {
      if (responded) return finish(wentAway());
      const reason =
        err.code === 'ECONNREFUSED' ? 'connection refused (is the gateway running?)' : (err.message ?? String(err));
      finish(new CliError(`cannot reach the admin API at ${target.url}: ${reason}`));
    });
    req.on('response', (res) => {
      responded = true;
      res.setEncoding('utf8');
      res.on('error', () => {
        // A cut response: 'close' below tells what it means.
      });
      if (res.statusCode !== 200) {
        let body = '';
        res.on('data', (chunk: string) => {
          if (body.length < MAX_ERROR_BODY) body += chunk;
        });
        res.on('end', () => finish(new CliError(errorText(target, res.statusCode ?? 0, body))));
        res.on('close', () => finish(wentAway()));
        return;
      }
      let partial = '';
      const print = (line: string): boolean => {
        if (line === '') return true;
        return options.out.write(`${options.json ? line : renderLine(line, options.colour)}\n`);
      };
      res.on('data', (chunk: string) => {
        partial += chunk;
        let ok = true;
        for (let nl = partial.indexOf('\n'); nl !== -1; nl = partial.indexOf('\n')) {
          ok = print(partial.slice(0, nl)) && ok;
          partial = partial.slice(nl + 1);
        }
        // A slow reader of stdout slows the stream down, not memory up.
        if (!ok) {
          res.pause();
          options.out.once('drain', () => res.resume());
        }
      });
      res.on('end', () => {
        print(partial);
        partial = '';
        // A followed log ends only when the gateway closes it: it is stopping, or gone.
        finish(options.follow ? wentAway() : 0);
      });
      res.on('close', () => {
        if (!res.complete) finish(wentAway());
      });
    });
    req.end();
  });
}

/** `nano-gateway logs [APP] [-n N] [-f] [--json]`. */
export function runLogs(args: CliArgs): Promise<number> {
  const target = resolveAdminTarget({
    config: args.config,
    ...(args.admin !== undefined ? { admin: args.admin } : {}),
    ...(args.token !== undefined ? { token: args.token } : {}),
  });
  const query = new URLSearchParams();
  const app = args.positionals[0];
  if (app !== undefined) query.set('app', app);
  query.set('lines', String(args.lines ?? DEFAULT_LINES));
  if (args.follow) query.set('follow', '1');
  return streamLogs(target, `/admin/logs?${query}`, {
    follow: args.follow === true,
    json: args.json === true,
    colour: colourWanted(process.stdout.isTTY),
    out: process.stdout,
  });
}
