import type { LevelWithSilent } from 'pino';
import { type ListenAddress, parseListen } from '../addresses.js';
import { ListenError } from '../errors.js';
import { Gateway } from '../gateway.js';
import { createLogger } from '../log.js';
import { LogRing } from '../logs/ring.js';
import type { CliArgs } from './args.js';
import { loadConfigOrReport } from './config-file.js';

/**
 * `nano-gateway [start]`: run in the foreground until SIGTERM/SIGINT.
 * Returns an exit status for failures before start-up; once running, the
 * process exits from its signal handlers.
 */
export async function runStart(args: CliArgs): Promise<number> {
  const loaded = loadConfigOrReport(args.config);
  if (loaded === null) return 1;
  const { config, text: configText } = loaded;
  const listen = args.listen === undefined ? undefined : (parseListen(args.listen) as ListenAddress);
  // The in-memory log gets every line stdout gets (README, Logs).
  const logRing = new LogRing(config.gateway.logLines);
  const { logger, bulk, flush, writeLines } = createLogger({
    level: (args.logLevel ?? 'info') as LevelWithSilent,
    pretty: args.pretty ?? Boolean(process.stdout.isTTY),
    tap: (line) => logRing.ingest(line),
  });
  const gateway = new Gateway({
    config,
    configText,
    logger,
    bulkLogger: bulk,
    logRing,
    writeLines,
    ...(listen ? { listen } : {}),
  });

  try {
    await gateway.start();
  } catch (err) {
    const message = err instanceof ListenError ? err.message : `cannot start: ${(err as Error).message}`;
    process.stderr.write(`nano-gateway: ${message}\n`);
    gateway.killChildren();
    flush();
    // Nothing may keep a half-started gateway alive.
    process.exit(1);
  }

  let signals = 0;
  const shutdown = (signal: NodeJS.Signals): void => {
    if (++signals > 1) {
      logger.warn({ signal }, 'second signal: stopping children now');
      gateway.killChildren();
      flush();
      process.exit(1);
    }
    logger.info({ signal }, 'received signal');
    gateway.stop().then(
      () => {
        flush();
        process.exit(0);
      },
      (err: unknown) => {
        logger.error({ err }, 'error while shutting down');
        flush();
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', shutdown);
  process.on('SIGINT', shutdown);
  process.on('SIGHUP', () => {
    logger.info({ signal: 'SIGHUP' }, 'reload requested');
    void gateway.reload('signal');
  });
  process.on('uncaughtException', (err) => {
    // A bug, not bad input: log it where the operator will look, then exit.
    // Children see their IPC channel close and stop themselves.
    logger.fatal({ err }, 'uncaught exception');
    flush();
    process.exit(1);
  });
  return -1;
}
