import { createRequire } from 'node:module';
import { type LevelWithSilent, type Logger, pino } from 'pino';
import type pinoPretty from 'pino-pretty';

const require = createRequire(import.meta.url);

export type { Logger };

export const LOG_LEVELS: readonly LevelWithSilent[] = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'];

export interface LogOptions {
  level?: LevelWithSilent;
  /** Human-readable lines instead of JSON. */
  pretty?: boolean;
  /** Where lines go; defaults to stdout. */
  fd?: number;
  /**
   * A second destination: every line written, as the same JSON text, also
   * goes here (the in-memory log ring, README: Logs). Called synchronously;
   * it must be cheap and never throw.
   */
  tap?: (line: string) => void;
}

export interface GatewayLogger {
  /** The gateway's own events: written out at once (with any batched lines before them). */
  logger: Logger;
  /** High-volume lines (access log, children's output): batched. Same stream, same order. */
  bulk: Logger;
  /** Writes out buffered lines; call before the process exits. */
  flush(): void;
  /**
   * Whole JSON lines another process logged (a proxy worker, README:
   * Workers), written as the bulk logger writes its own, ring included.
   */
  writeLines(text: string): void;
}

/** Lines are written in batches of this many bytes ... */
const BATCH_BYTES = 32 * 1024;
/** sonic-boom's largest single write; must exceed the batch size. */
const MAX_WRITE_BYTES = 64 * 1024;
/** ... or after this long, whichever comes first. */
const FLUSH_INTERVAL_MS = 250;
/** If stdout stops taking lines, at most this much waits in memory; later lines are dropped. */
const MAX_BUFFERED_BYTES = 16 * 1024 * 1024;

/**
 * JSON lines are appended to a buffer and written asynchronously in 32 KiB
 * batches, so that the access log costs the request path a buffer append.
 * Measured (README, Performance): writing each line on its own costs a
 * thread-pool round trip per event-loop turn, several times more than the
 * batches. The writes never block the event loop: a slow or stuck reader of
 * stdout (a full pipe) delays lines, then drops them past 16 MiB, but never
 * stalls requests; a reader that is gone loses the lines, not the gateway.
 * `pid` and `hostname` are left out of the base: children's output lines
 * carry the child's own `pid`, and one process per host makes the hostname
 * noise.
 */
export function createLogger(options: LogOptions = {}): GatewayLogger {
  const level = options.level ?? 'info';
  // The tap must never take a log write, or the gateway, down with it.
  const given = options.tap;
  const guarded = given
    ? (line: string): void => {
        try {
          given(line);
        } catch {
          // A line the ring cannot take is still on stdout.
        }
      }
    : undefined;
  options = { ...options, ...(guarded ? { tap: guarded } : {}) };
  const fd = options.fd ?? 1;
  if (options.pretty) {
    // Loaded only for a terminal: ~10 MB that JSON output never needs.
    const pretty = require('pino-pretty') as typeof pinoPretty;
    const stream = pretty({
      destination: fd,
      colorize: fd === 1 ? Boolean(process.stdout.isTTY) : Boolean(process.stderr.isTTY),
      translateTime: 'SYS:HH:MM:ss.l',
      ignore: 'hostname',
      singleLine: true,
      sync: true,
    });
    const tap = options.tap;
    const out = tap
      ? {
          write(line: string): void {
            stream.write(line);
            tap(line);
          },
        }
      : stream;
    const logger = pino({ level, base: undefined }, out);
    return { logger, bulk: logger, flush: () => {}, writeLines: (text) => eachLine(text, (line) => out.write(line)) };
  }
  const destination = pino.destination({
    fd,
    sync: false,
    minLength: BATCH_BYTES,
    maxWrite: MAX_WRITE_BYTES,
    maxLength: MAX_BUFFERED_BYTES,
    periodicFlush: FLUSH_INTERVAL_MS,
  });
  destination.on('error', () => {
    // stdout is gone (EPIPE) or broken: there is nobody left to tell.
  });
  let flushOnDrain = false;
  /** Writes the batch now; if a write is in flight, right after it. */
  const flushSoon = (): void => {
    destination.flush();
    if (!flushOnDrain) {
      flushOnDrain = true;
      destination.once('drain', () => {
        flushOnDrain = false;
        destination.flush();
      });
    }
  };
  const tap = options.tap;
  const bulk = pino(
    { level, base: undefined },
    tap
      ? {
          write(line: string): void {
            destination.write(line);
            tap(line);
          },
        }
      : destination,
  );
  const logger = pino(
    { level, base: undefined },
    {
      write(line: string): void {
        destination.write(line);
        flushSoon();
        tap?.(line);
      },
    },
  );
  return {
    logger,
    bulk,
    writeLines: (text) => {
      destination.write(text);
      if (tap) eachLine(text, tap);
    },
    flush: () => {
      try {
        destination.flushSync();
      } catch {
        // Not open yet, or already closed: nothing that can still be written.
      }
    },
  };
}

/** Calls `write` with each newline-ended line of `text`, newline included. */
function eachLine(text: string, write: (line: string) => void): void {
  let start = 0;
  for (let end = text.indexOf('\n'); end !== -1; end = text.indexOf('\n', start)) {
    write(text.slice(start, end + 1));
    start = end + 1;
  }
}

/** A forwarding logger keeps at most this many bytes sent but not yet taken by the other process; later lines are dropped. */
const MAX_FORWARDING_BYTES = 16 * 1024 * 1024;
/** Batched lines go out after this long at most. */
const FORWARD_INTERVAL_MS = 100;

export interface ForwardingLogOptions {
  level: LevelWithSilent;
  /** Fields on every line (a worker's number). */
  base?: Record<string, unknown>;
  /** Sends whole lines to the process that writes them; `sent` once the message is out. */
  send(text: string, sent: () => void): void;
}

/**
 * The logger of a proxy worker (README, Workers): its lines go to the
 * primary, which writes them with its own (one stdout, one ring, lines
 * never cut in two by another process's write). Bulk lines (the access
 * log) go in batches of 32 KiB or every 100 ms, so a request costs a string
 * append; the worker's own events go at once.
 */
export function createForwardingLogger(options: ForwardingLogOptions): GatewayLogger {
  let buffer = '';
  let pendingBytes = 0;
  let timer: NodeJS.Timeout | null = null;
  const send = (): void => {
    if (timer) {
      clearTimeout(timer);
      timer = null;
    }
    if (buffer === '') return;
    const text = buffer;
    buffer = '';
    // A primary that stops taking messages must not grow this process without bound.
    if (pendingBytes > MAX_FORWARDING_BYTES) return;
    pendingBytes += text.length;
    options.send(text, () => {
      pendingBytes -= text.length;
    });
  };
  const bulkStream = {
    write(line: string): void {
      buffer += line;
      if (buffer.length >= BATCH_BYTES) send();
      else timer ??= setTimeout(send, FORWARD_INTERVAL_MS);
    },
  };
  const eventStream = {
    write(line: string): void {
      buffer += line;
      send();
    },
  };
  const base = options.base ?? undefined;
  return {
    logger: pino({ level: options.level, base }, eventStream),
    bulk: pino({ level: options.level, base }, bulkStream),
    flush: send,
    writeLines: (text) => {
      buffer += text;
      send();
    },
  };
}
