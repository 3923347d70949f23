import { ConfigError } from '../config/errors.js';
import { loadConfig } from '../config/load.js';
import type { GatewayConfig } from '../config/schema.js';

/**
 * The config file as a command reads it: valid, or null after its error
 * went to stderr in the `file:line: key: message` form (the command then
 * exits 1). Anything else is a bug and is thrown.
 */
export function loadConfigOrReport(file: string): { config: GatewayConfig; text: string } | null {
  try {
    return loadConfig(file);
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    process.stderr.write(`${err.message}\n`);
    return null;
  }
}
