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
    return { logger, bulk: logger, flush: () => {} };
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
    flush: () => {
      try {
        destination.flushSync();
      } catch {
        // Not open yet, or already closed: nothing that can still be written.
      }
    },
  };
}
