import { describeValue as describe } from '../addresses.js';
import type { ConfigIssue } from './errors.js';
import { type KeyLocations, lineOf } from './locate.js';

export type Table = Record<string, unknown>;

/** Node's timers cap: a longer delay would fire after 1 ms. Every *_ms key stays within it. */
export const MAX_TIMER_MS = 2_147_483_647;

export function isTable(value: unknown): value is Table {
  return typeof value === 'object' && value !== null && !Array.isArray(value) && !(value instanceof Date);
}

/** Collects issues while walking the parsed document, each with its key's line. */
export class Validator {
  readonly issues: ConfigIssue[] = [];
  constructor(
    readonly file: string,
    readonly locations: KeyLocations,
  ) {}

  fail(keyPath: readonly string[], message: string): void {
    this.issues.push({ file: this.file, line: lineOf(this.locations, keyPath), key: keyPath.join('.'), message });
  }

  unknownKeys(table: Table, allowed: Set<string>, at: readonly string[]): void {
    for (const key of Object.keys(table)) {
      if (!allowed.has(key)) {
        const known = [...allowed].join(', ');
        this.fail([...at, key], `unknown key (expected one of: ${known})`);
      }
    }
  }

  wholeNumber(
    table: Table,
    key: string,
    at: readonly string[],
    fallback: number,
    min: number,
    max = MAX_TIMER_MS,
  ): number {
    const value = table[key];
    if (value === undefined) return fallback;
    if (typeof value !== 'number' || !Number.isInteger(value)) {
      this.fail([...at, key], `expected a whole number, got ${describe(value)}`);
      return fallback;
    }
    if (value < min || value > max) {
      const range = `from ${min} to ${max}`;
      this.fail([...at, key], `must be ${range}, got ${value}`);
      return fallback;
    }
    return value;
  }

  stringArray(table: Table, key: string, at: readonly string[]): string[] | undefined {
    const value = table[key];
    if (value === undefined) return undefined;
    if (!Array.isArray(value) || !value.every((v) => typeof v === 'string')) {
      this.fail([...at, key], 'expected an array of strings');
      return undefined;
    }
    return value as string[];
  }

  string(table: Table, key: string, at: readonly string[]): string | undefined {
    const value = table[key];
    if (value === undefined) return undefined;
    if (typeof value !== 'string') {
      this.fail([...at, key], `expected a string, got ${describe(value)}`);
      return undefined;
    }
    return value;
  }
}
