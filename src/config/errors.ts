/** One thing wrong with a config file, located as precisely as the parser allows. */
export interface ConfigIssue {
  /** The config file as the user named it (relative paths stay relative). */
  file: string;
  line?: number | undefined;
  /** Dotted key path, e.g. `apps.blog.hosts`. */
  key?: string | undefined;
  message: string;
}

export function formatConfigIssue(issue: ConfigIssue): string {
  const where = issue.line === undefined ? issue.file : `${issue.file}:${issue.line}`;
  return issue.key ? `${where}: ${issue.key}: ${issue.message}` : `${where}: ${issue.message}`;
}

/**
 * An invalid config. `message` is the first issue in file order, in the
 * README's `file:line: key: message` form; `issues` holds all of them.
 */
export class ConfigError extends Error {
  override readonly name = 'ConfigError';
  readonly issues: readonly ConfigIssue[];

  constructor(issues: readonly ConfigIssue[]) {
    const sorted = [...issues].sort((a, b) => (a.line ?? 0) - (b.line ?? 0));
    const first = sorted[0];
    super(first ? formatConfigIssue(first) : 'invalid config');
    this.issues = sorted;
  }
}
