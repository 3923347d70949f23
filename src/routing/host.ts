/**
 * Host names as the router compares them: lower case, no port, no brackets
 * around an IPv6 literal, no trailing dot (README, Routing and proxying).
 */

const COLON = 58;
const DOT = 46;
const OPEN_BRACKET = 91;
const UPPER_A = 65;
const UPPER_Z = 90;

/**
 * Normalises a Host header value. Runs once per request on a cache miss, so
 * the common case (already lower case, no port, no trailing dot) returns the
 * input without allocating.
 */
export function normalizeHost(raw: string): string {
  const len = raw.length;
  if (len === 0) return raw;
  if (raw.charCodeAt(0) === OPEN_BRACKET) {
    const close = raw.indexOf(']');
    const inner = close === -1 ? raw.slice(1) : raw.slice(1, close);
    return inner.toLowerCase();
  }
  let clean = true;
  for (let i = 0; i < len; i++) {
    const c = raw.charCodeAt(i);
    if (c === COLON || (c >= UPPER_A && c <= UPPER_Z)) {
      clean = false;
      break;
    }
  }
  if (clean && raw.charCodeAt(len - 1) !== DOT) return raw;
  const colon = raw.indexOf(':');
  let host = colon === -1 ? raw : raw.slice(0, colon);
  if (host.charCodeAt(host.length - 1) === DOT) host = host.slice(0, -1);
  return host.toLowerCase();
}

const LABEL = '[a-z0-9_]([a-z0-9_-]*[a-z0-9_])?';
const HOSTNAME_PATTERN = new RegExp(`^${LABEL}(\\.${LABEL})*$`);
const IPV6_PATTERN = /^[0-9a-f:.]+$/;

export type ConfigHostResult = { ok: true; host: string } | { ok: false; reason: string };

/**
 * Validates and normalises a host as written in `hosts = [...]`. Wildcards
 * keep their `*.` prefix; IPv6 literals lose their brackets so they compare
 * equal to what `normalizeHost` makes of `[::1]:8080`.
 */
export function normalizeConfigHost(input: string): ConfigHostResult {
  let host = input.trim().toLowerCase();
  if (host.endsWith('.')) host = host.slice(0, -1);
  if (host === '') return { ok: false, reason: 'a host must not be empty' };
  if (host.startsWith('[') && host.endsWith(']')) host = host.slice(1, -1);
  if (host.includes(':')) {
    if (IPV6_PATTERN.test(host)) return { ok: true, host };
    return { ok: false, reason: `"${input}" must not include a port or scheme` };
  }
  if (host.startsWith('*.')) {
    const rest = host.slice(2);
    if (HOSTNAME_PATTERN.test(rest)) return { ok: true, host };
    return { ok: false, reason: `"${input}" is not a valid wildcard host ("*." followed by a domain)` };
  }
  if (HOSTNAME_PATTERN.test(host)) return { ok: true, host };
  return { ok: false, reason: `"${input}" is not a valid host name` };
}

/** A name to stand for an app's hosts (its first, without a wildcard's `*.`): a Host header value, not a pattern. */
export function hostNameOf(hosts: readonly string[]): string {
  const first = hosts[0] ?? '';
  if (first.startsWith('*.')) return first.slice(2);
  // IPv6 literals are kept without brackets (see normalizeConfigHost); a Host header needs them.
  return first.includes(':') ? `[${first}]` : first;
}
