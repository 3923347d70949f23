/**
 * Addresses as plain values: listen addresses, loopback hosts, trusted
 * proxy entries. Shared by the config validation, the command line and the
 * data plane, so that none of them imports another's code to read one.
 */
import { isIP } from 'node:net';

export interface ListenAddress {
  host: string;
  port: number;
}

export function formatListen(addr: ListenAddress): string {
  return addr.host.includes(':') ? `[${addr.host}]:${addr.port}` : `${addr.host}:${addr.port}`;
}

/** A value as a message names it: `the string "x"`, `an array`, `number 3`. */
export function describeValue(value: unknown): string {
  if (Array.isArray(value)) return 'an array';
  if (value instanceof Date) return 'a date';
  if (typeof value === 'object' && value !== null) return 'a table';
  if (typeof value === 'string') return `the string ${JSON.stringify(value)}`;
  return `${typeof value} ${String(value)}`;
}

/** Parses "host:port", ":port", "[v6]:port" or a bare port number; a string is what is wrong. */
export function parseListen(value: unknown, defaultHost = '0.0.0.0'): ListenAddress | string {
  if (typeof value === 'number') {
    return Number.isInteger(value) && value >= 0 && value <= 65535
      ? { host: defaultHost, port: value }
      : `port must be a whole number from 0 to 65535, got ${value}`;
  }
  if (typeof value !== 'string') return `expected "host:port", ":port" or a port number, got ${describeValue(value)}`;
  const text = value.trim();
  let host: string;
  let portText: string;
  const v6 = /^\[([^\]]+)\]:(\d+)$/.exec(text);
  if (v6) {
    host = v6[1] ?? '';
    portText = v6[2] ?? '';
    if (isIP(host) !== 6) return `${JSON.stringify(host)} in brackets is not an IPv6 address`;
  } else if (/^\d+$/.test(text)) {
    host = defaultHost;
    portText = text;
  } else {
    const colon = text.lastIndexOf(':');
    if (colon === -1) return `expected "host:port", ":port" or a port number, got ${JSON.stringify(value)}`;
    host = text.slice(0, colon) || defaultHost;
    portText = text.slice(colon + 1);
    if (host.includes(':')) return `an IPv6 address needs brackets, e.g. "[::1]:8080", got ${JSON.stringify(value)}`;
  }
  const port = Number(portText);
  if (!/^\d+$/.test(portText) || port > 65535) {
    return `port must be a whole number from 0 to 65535, got ${JSON.stringify(portText)}`;
  }
  if (host.includes(':') && isIP(host) !== 6) return `${JSON.stringify(host)} is not an IPv6 address`;
  return { host, port };
}

export function isLoopbackHost(host: string): boolean {
  const h = host.toLowerCase();
  return h === 'localhost' || h === '::1' || /^127\.\d+\.\d+\.\d+$/.test(h) || h === '::ffff:127.0.0.1';
}

export interface TrustedProxy {
  address: string;
  prefix: number;
  family: 'ipv4' | 'ipv6';
}

/** One trusted_proxies entry: an IP address or a CIDR block; a string is what is wrong. */
export function parseTrustedProxy(entry: string): TrustedProxy | string {
  const [address = '', prefixText] = entry.trim().split('/');
  const version = isIP(address);
  if (version === 0) return `${JSON.stringify(entry)} is not an IP address or CIDR block`;
  const max = version === 4 ? 32 : 128;
  let prefix = max;
  if (prefixText !== undefined) {
    prefix = Number(prefixText);
    if (!/^\d+$/.test(prefixText) || prefix > max) return `${JSON.stringify(entry)} has an invalid prefix length`;
  }
  return { address, prefix, family: version === 4 ? 'ipv4' : 'ipv6' };
}
