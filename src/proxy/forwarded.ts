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
  hostName: string,
): void {
  if (headers.host === undefined) headers.host = hostName;
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

/**
 * The request headers a child receives, as a flat raw array (name, value,
 * …) built from the client's raw headers in one pass: hop-by-hop headers
 * (and the headers `Connection` names) are left out, as are
 * `Transfer-Encoding` (the client library frames the body itself) and
 * `Expect` (the gateway has answered it); X-Forwarded-* are set as in
 * `setForwardedHeaders`. A request without Host (HTTP/1.0) gets
 * `hostName`, the app's own name, rather than the child's address, which
 * the HTTP client would put there and the app would leak in its URLs.
 */
export function upstreamRequestHeaders(
  raw: readonly string[],
  headers: IncomingHttpHeaders,
  client: string,
  host: string | undefined,
  trusted: boolean,
  hostName: string,
): string[] {
  const out: string[] = host === undefined ? ['host', hostName] : [];
  let connectionTokens: string | undefined;
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i] as string;
    // Only these lengths can be a header this function drops: most names need no lower-casing.
    const len = name.length;
    if (len === 2 || len === 6 || len === 7 || len === 10 || len === 15 || len === 16 || len === 17) {
      const lower = name.toLowerCase();
      if (DROPPED_REQUEST_HEADERS.has(lower)) {
        if (lower === 'connection') connectionTokens = raw[i + 1];
        continue;
      }
    }
    out.push(name, raw[i + 1] as string);
  }
  if (connectionTokens !== undefined && !isStandardConnectionToken(connectionTokens.trim())) {
    const named = new Set(connectionTokens.split(',').map((t) => t.trim().toLowerCase()));
    named.delete('host');
    for (let i = out.length - 2; i >= 0; i -= 2) if (named.has((out[i] as string).toLowerCase())) out.splice(i, 2);
  }
  const incomingFor = headers['x-forwarded-for'];
  out.push('x-forwarded-for', trusted && incomingFor ? `${incomingFor}, ${client}` : client);
  const incomingHost = headers['x-forwarded-host'];
  if (trusted && incomingHost !== undefined) out.push('x-forwarded-host', incomingHost as string);
  else if (host !== undefined) out.push('x-forwarded-host', host);
  const incomingProto = headers['x-forwarded-proto'];
  out.push('x-forwarded-proto', trusted && incomingProto !== undefined ? (incomingProto as string) : 'http');
  return out;
}

const DROPPED_REQUEST_HEADERS = new Set([
  'connection',
  'keep-alive',
  'proxy-connection',
  'te',
  'transfer-encoding',
  'trailer',
  'upgrade',
  'expect',
  'x-forwarded-for',
  'x-forwarded-host',
  'x-forwarded-proto',
]);
