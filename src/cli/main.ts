#!/usr/bin/env node
import { readFileSync } from 'node:fs';
import { CliError } from './admin-client.js';
import { type CliArgs, HELP, parseCli, UsageError } from './args.js';
import { runCheck } from './check.js';
import { runCertificates, runHold, runReload, runRestart, runStatus } from './control.js';
import { runInit } from './init.js';
import { runLogs } from './logs.js';
import { runStart } from './start.js';
import { runStartup } from './startup.js';

function version(): string {
  const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string };
  return pkg.version;
}

async function main(argv: string[]): Promise<number> {
  let args: CliArgs;
  try {
    args = parseCli(argv);
  } catch (err) {
    if (err instanceof UsageError) {
      process.stderr.write(`nano-gateway: ${err.message} (see nano-gateway --help)\n`);
      return 2;
    }
    throw err;
  }
  if (args.command !== 'start' && args.command !== 'logs') {
    // A table piped into `head` closes the pipe early: stop quietly, as ls or git do, not with an EPIPE
    // stack. `start` keeps serving when its stdout goes (log.ts), and `logs -f` ends itself (logs.ts).
    process.stdout.on('error', (err: NodeJS.ErrnoException) => {
      if (err.code !== 'EPIPE') throw err;
      process.exit(process.exitCode ?? 0);
    });
  }
  if (args.help) {
    process.stdout.write(HELP);
    return 0;
  }
  if (args.version) {
    process.stdout.write(`${version()}\n`);
    return 0;
  }
  switch (args.command) {
    case 'check':
      return runCheck(args);
    case 'init':
      return runInit(args);
    case 'start':
      return runStart(args);
    case 'status':
      return runStatus(args);
    case 'reload':
      return runReload(args);
    case 'restart':
      return runRestart(args);
    case 'certs':
      return runCertificates(args);
    case 'startup':
      return runStartup(args);
    case 'logs':
      return runLogs(args);
    case 'pause':
    case 'resume':
    case 'maintenance':
      return runHold(args);
  }
}

main(process.argv.slice(2)).then(
  (code) => {
    // `start` keeps running and exits from its signal handlers.
    if (code >= 0) process.exitCode = code;
  },
  (err: unknown) => {
    // CliError is an expected failure (gateway not running, app not found); anything else is a bug, same exit status.
    const message = err instanceof CliError || err instanceof Error ? err.message : String(err);
    process.stderr.write(`nano-gateway: ${message.split('\n')[0]}\n`);
    process.exitCode = 1;
  },
);
