import { parseConfig, readConfigText } from '../config/load.js';
import type { GatewayConfig } from '../config/schema.js';

/**
 * The config file as the control plane reads it, and the text it has
 * already acted on (read at start-up, applied by a reload, written by an
 * admin edit): a change event for a file that still says that is ignored.
 */
export class ConfigSource {
  private seen: string | null;

  constructor(
    readonly file: string,
    readonly displayFile: string,
    seenText: string | null = null,
  ) {
    this.seen = seenText;
  }

  /** The file's text now; a ConfigError naming the file when it cannot be read. */
  read(): string {
    return readConfigText(this.file, this.displayFile);
  }

  /** Validates text as this file's content; a ConfigError on any problem. */
  parse(text: string): GatewayConfig {
    return parseConfig(text, this.file, { displayFile: this.displayFile });
  }

  isSeen(text: string): boolean {
    return text === this.seen;
  }

  markSeen(text: string): void {
    this.seen = text;
  }
}
