import { pino, type Logger, type LevelWithSilent } from 'pino';
import pretty from 'pino-pretty';

export type { Logger };

export const LOG_LEVELS: readonly LevelWithSilent[] = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'];

export interface LogOptions {
  level?: LevelWithSilent;
  /** Human-readable lines instead of JSON. */
  pretty?: boolean;
  /** Where lines go; defaults to stdout. */
  fd?: number;
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
const BATCH_BYTES = 4096;
/** ... or after this long, whichever comes first. */
const FLUSH_INTERVAL_MS = 250;

/**
 * JSON lines are appended to a buffer and written in 4 KiB batches, so that
 * the access log costs the request path a buffer append, not a write(2).
 * Measured (README, Performance): sonic-boom's asynchronous mode does one
 * thread-pool write per event-loop turn, which cost ~3x the throughput of a
 * gateway sharing a core with its apps; batched synchronous writes cost as
 * much as no writes at all. `pid` and `hostname` are left out of the base:
 * child output lines carry the child's own `pid`, and one process per host
 * makes the hostname noise.
 */
export function createLogger(options: LogOptions = {}): GatewayLogger {
  const level = options.level ?? 'info';
  const fd = options.fd ?? 1;
  if (options.pretty) {
    const stream = pretty({
      destination: fd,
      colorize: fd === 1 ? Boolean(process.stdout.isTTY) : Boolean(process.stderr.isTTY),
      translateTime: 'SYS:HH:MM:ss.l',
      ignore: 'hostname',
      singleLine: true,
      sync: true,
    });
    const logger = pino({ level, base: undefined }, stream);
    return { logger, bulk: logger, flush: () => {} };
  }
  const destination = pino.destination({ fd, sync: true, minLength: BATCH_BYTES });
  const flush = (): void => {
    try {
      destination.flushSync();
    } catch {
      // Already closed, or nothing can be written: there is nobody left to tell.
    }
  };
  const bulk = pino({ level, base: undefined }, destination);
  const logger = pino(
    { level, base: undefined },
    {
      write(line: string): void {
        destination.write(line);
        flush();
      },
    },
  );
  // Batched lines wait at most this long when traffic is light.
  setInterval(flush, FLUSH_INTERVAL_MS).unref();
  return { logger, bulk, flush };
}
