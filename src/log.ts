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
  logger: Logger;
  /** Writes out buffered lines; call before the process exits. */
  flush(): void;
}

/**
 * JSON lines go through an asynchronous destination so that the access log
 * costs the request path a buffer append, not a write(2). `pid` and
 * `hostname` are left out of the base: child output lines carry the child's
 * own `pid`, and one process per host makes the hostname noise.
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
    return { logger: pino({ level, base: undefined }, stream), flush: () => {} };
  }
  const destination = pino.destination({ fd, sync: false });
  const logger = pino({ level, base: undefined }, destination);
  return {
    logger,
    flush: () => {
      try {
        destination.flushSync();
      } catch {
        // Not ready yet or already closed: nothing buffered that can still be written.
      }
    },
  };
}
