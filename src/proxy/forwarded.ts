import type { IncomingHttpHeaders } from 'node:http';
import { BlockList } from 'node:net';
import { parseTrustedProxy } from '../config/load.js';

const V4_MAPPED_PREFIX = '::ffff:';

/** The client's address as a user expects to read it: IPv4-mapped IPv6 shown as IPv4. */
export function clientAddress(remote: string | undefined): string {
  if (remote === undefined) return '';
  return remote.startsWith(V4_MAPPED_PREFIX) && remote.includes('.') ? remote.slice(V4_MAPPED_PREFIX.length) : remote;
}

/** Balancers in front of the gateway whose X-Forwarded-* headers are believed (SPEC §4). */
export class TrustedProxies {
  private readonly list = new BlockList();
  private readonly empty: boolean;

  constructor(entries: readonly string[]) {
    this.empty = entries.length === 0;
    for (const entry of entries) {
      const parsed = parseTrustedProxy(entry);
      if (typeof parsed !== 'string') this.list.addSubnet(parsed.address, parsed.prefix, parsed.family);
    }
  }

  trusts(address: string): boolean {
    if (this.empty || address === '') return false;
    return this.list.check(address, address.includes(':') ? 'ipv6' : 'ipv4');
  }
}

/**
 * Sets X-Forwarded-For/-Host/-Proto on the request headers the child will
 * see. Client-sent values are replaced, unless the client is a trusted
 * proxy: then its X-Forwarded-For is extended and its -Host/-Proto kept.
 */
export function setForwardedHeaders(
  headers: IncomingHttpHeaders,
  client: string,
  host: string | undefined,
  trusted: boolean,
): void {
  const incomingFor = headers['x-forwarded-for'];
  headers['x-forwarded-for'] = trusted && incomingFor ? `${incomingFor}, ${client}` : client;
  if (!trusted || headers['x-forwarded-host'] === undefined) {
    if (host !== undefined) headers['x-forwarded-host'] = host;
    else if (headers['x-forwarded-host'] !== undefined) delete headers['x-forwarded-host'];
  }
  if (!trusted || headers['x-forwarded-proto'] === undefined) headers['x-forwarded-proto'] = 'http';
}

/**
 * Removes hop-by-hop request headers (RFC 9110 §7.6.1) so that the client's
 * `Connection: close` does not close the pooled connection to the child.
 * Transfer-Encoding stays: it tells the client library how to frame the body.
 */
export function stripHopByHopRequestHeaders(headers: IncomingHttpHeaders): void {
  const connection = headers.connection;
  if (connection !== undefined) {
    if (connection.includes(',') || !isStandardConnectionToken(connection)) {
      for (const token of connection.split(',')) {
        const name = token.trim().toLowerCase();
        if (name !== '' && name !== 'transfer-encoding' && name !== 'host') delete headers[name];
      }
    }
    delete headers.connection;
  }
  if (headers['keep-alive'] !== undefined) delete headers['keep-alive'];
  if (headers['proxy-connection'] !== undefined) delete headers['proxy-connection'];
  if (headers.te !== undefined) delete headers.te;
  if (headers.upgrade !== undefined) delete headers.upgrade;
}

function isStandardConnectionToken(value: string): boolean {
  const v = value.toLowerCase();
  return v === 'keep-alive' || v === 'close';
}
