import type { IncomingHttpHeaders } from 'node:http';
import { BlockList } from 'node:net';
import { parseTrustedProxy } from '../addresses.js';

const V4_MAPPED_PREFIX = '::ffff:';
const COLON = 58;

/** The client's address as a user expects to read it: IPv4-mapped IPv6 shown as IPv4. */
export function clientAddress(remote: string | undefined): string {
  if (remote === undefined) return '';
  return remote.startsWith(V4_MAPPED_PREFIX) && remote.includes('.') ? remote.slice(V4_MAPPED_PREFIX.length) : remote;
}

/** Balancers in front of the gateway whose X-Forwarded-* headers are believed (README, Routing and proxying). */
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
 * Headers about one connection, not the message (RFC 9110 §7.6.1), plus the
 * framing and upgrade headers that each side sets for itself: never passed
 * on, in either direction.
 */
export const HOP_BY_HOP_HEADERS: ReadonlySet<string> = new Set([
  'connection',
  'keep-alive',
  'proxy-connection',
  'te',
  'transfer-encoding',
  'trailer',
  'upgrade',
  // The HTTP/2 upgrade's settings (RFC 9113 §8.2.2), never meaningful past the first hop.
  'http2-settings',
]);

/**
 * Response headers that never reach the client: the hop-by-hop ones, which
 * are also the connection-specific ones an HTTP/2 response must not carry
 * (RFC 9113 §8.2.2; Node throws on them). `Trailer` stays: it announces the
 * trailers that pass through.
 */
const DROPPED_RESPONSE_HEADERS: ReadonlySet<string> = new Set([...HOP_BY_HOP_HEADERS].filter((n) => n !== 'trailer'));
const DROPPED_RESPONSE_LENGTHS: ReadonlySet<number> = new Set([...DROPPED_RESPONSE_HEADERS].map((n) => n.length));

/** A child's response header the gateway does not pass on. */
export function isDroppedResponseHeader(name: string): boolean {
  return DROPPED_RESPONSE_LENGTHS.has(name.length) && DROPPED_RESPONSE_HEADERS.has(name.toLowerCase());
}

/**
 * Headers Node's HTTP/2 layer takes once only: a second one throws
 * (ERR_HTTP2_HEADER_SINGLE_VALUE), where HTTP/1.1 passes both on.
 */
const HTTP2_SINGLE_VALUE_HEADERS: ReadonlySet<string> = new Set([
  'access-control-allow-credentials',
  'access-control-max-age',
  'access-control-request-method',
  'age',
  'authorization',
  'content-encoding',
  'content-language',
  'content-length',
  'content-location',
  'content-md5',
  'content-range',
  'content-type',
  'date',
  'dnt',
  'etag',
  'expires',
  'from',
  'host',
  'if-match',
  'if-modified-since',
  'if-none-match',
  'if-range',
  'if-unmodified-since',
  'last-modified',
  'location',
  'max-forwards',
  'proxy-authorization',
  'range',
  'referer',
  'retry-after',
  'tk',
  'upgrade-insecure-requests',
  'user-agent',
  'x-content-type-options',
]);

/**
 * Response headers (raw pairs) for an HTTP/2 client: of a once-only header
 * the child sent twice, the first (as browsers read it), so that the
 * response is not reset.
 */
export function http2ResponseHeaders(headers: string[]): string[] {
  let seen: Set<string> | null = null;
  for (let i = 0; i < headers.length; i += 2) {
    const name = (headers[i] as string).toLowerCase();
    if (!HTTP2_SINGLE_VALUE_HEADERS.has(name)) continue;
    seen ??= new Set();
    if (seen.has(name)) {
      headers.splice(i, 2);
      i -= 2;
    } else seen.add(name);
  }
  return headers;
}

/**
 * The gateway's own response headers (HSTS) after the child's, unless the
 * child sent that header itself: its value is the app's to choose.
 */
export function addGatewayHeaders(headers: string[], extra: readonly string[]): void {
  for (let i = 0; i < extra.length; i += 2) {
    const name = extra[i] as string;
    let present = false;
    for (let j = 0; j < headers.length && !present; j += 2) present = (headers[j] as string).toLowerCase() === name;
    if (!present) headers.push(name, extra[i + 1] as string);
  }
}

/** Trailers a client may receive: none of the connection-specific fields (HTTP/2 throws on them). */
export function clientTrailers(trailers: NodeJS.Dict<string | string[]>): Record<string, string | string[]> {
  const out: Record<string, string | string[]> = {};
  for (const [name, value] of Object.entries(trailers))
    if (value !== undefined && !isDroppedResponseHeader(name)) out[name] = value;
  return out;
}

/**
 * Request headers the gateway does not pass on: the hop-by-hop ones,
 * `Expect` (it answers that itself) and X-Forwarded-*, which it sets.
 */
const DROPPED_REQUEST_HEADERS: ReadonlySet<string> = new Set([
  ...HOP_BY_HOP_HEADERS,
  'expect',
  'x-forwarded-for',
  'x-forwarded-host',
  'x-forwarded-proto',
]);

/** Only names of these lengths can be dropped: most names need no lower-casing. */
const DROPPED_LENGTHS: ReadonlySet<number> = new Set([...DROPPED_REQUEST_HEADERS].map((name) => name.length));

/** The client's protocol, as X-Forwarded-Proto names it. */
export type ClientProtocol = 'http' | 'https';

/** What the forwarded headers of one request are made from (a ProxyRequest has it all). */
export interface ForwardingFacts {
  /** The client's address as the child should see it in X-Forwarded-For. */
  client: string;
  /** The Host the client sent, if any. */
  host: string | undefined;
  /** The client is a trusted proxy: its X-Forwarded-* are kept. */
  trusted: boolean;
  proto: ClientProtocol;
  /** The app's name as a Host value, for a request that came without one. */
  hostName: string;
  /** HTTP/2: the host came as `:authority`, and pseudo-headers are not passed on. */
  h2: boolean;
}

/*
 * The one forwarded-headers policy (README, Routing and proxying): the
 * client's X-Forwarded-* are replaced, unless the client is a trusted
 * proxy, whose X-Forwarded-For is extended and whose -Host/-Proto are kept.
 * Three functions rather than one object, so the request path allocates
 * nothing for it.
 */

export function forwardedFor(headers: IncomingHttpHeaders, client: string, trusted: boolean): string {
  const incoming = headers['x-forwarded-for'];
  return trusted && incoming ? `${incoming}, ${client}` : client;
}

/** Undefined when the client sent no Host and no trusted X-Forwarded-Host. */
export function forwardedHost(
  headers: IncomingHttpHeaders,
  host: string | undefined,
  trusted: boolean,
): string | undefined {
  const incoming = headers['x-forwarded-host'] as string | undefined;
  return trusted && incoming !== undefined ? incoming : host;
}

export function forwardedProto(headers: IncomingHttpHeaders, proto: ClientProtocol, trusted: boolean): string {
  const incoming = headers['x-forwarded-proto'] as string | undefined;
  return trusted && incoming !== undefined ? incoming : proto;
}

/** The headers a `Connection` value names, beyond keep-alive and close (which name no header). */
function connectionTokens(value: string | undefined): Set<string> | null {
  if (value === undefined) return null;
  const v = value.trim().toLowerCase();
  if (v === 'keep-alive' || v === 'close') return null;
  const named = new Set(v.split(',').map((t) => t.trim()));
  // Headers the gateway needs whatever the client says about them.
  named.delete('host');
  named.delete('transfer-encoding');
  named.delete('');
  return named.size > 0 ? named : null;
}

/**
 * X-Forwarded-* by the policy, and a missing Host as the app's name, on a
 * headers object (WebSocket upgrades keep their hop-by-hop headers).
 */
export function setForwardedHeaders(headers: IncomingHttpHeaders, facts: ForwardingFacts): void {
  const forHeader = forwardedFor(headers, facts.client, facts.trusted);
  const hostHeader = forwardedHost(headers, facts.host, facts.trusted);
  const protoHeader = forwardedProto(headers, facts.proto, facts.trusted);
  if (headers.host === undefined) headers.host = facts.hostName;
  headers['x-forwarded-for'] = forHeader;
  if (hostHeader !== undefined) headers['x-forwarded-host'] = hostHeader;
  else delete headers['x-forwarded-host'];
  headers['x-forwarded-proto'] = protoHeader;
}

/**
 * For an engine that rewrites the request headers object in place
 * (http-proxy-3): hop-by-hop headers and the ones `Connection` names go,
 * X-Forwarded-* are set by the policy, a missing Host becomes the app's
 * name. Transfer-Encoding stays: it tells that engine how to frame the body.
 */
export function rewriteRequestHeaders(headers: IncomingHttpHeaders, facts: ForwardingFacts): void {
  if (facts.h2) {
    for (const name of Object.keys(headers)) if (name.charCodeAt(0) === COLON) delete headers[name];
    if (facts.host !== undefined) headers.host = facts.host;
  }
  const named = connectionTokens(headers.connection as string | undefined);
  if (named) for (const name of named) delete headers[name];
  for (const name of HOP_BY_HOP_HEADERS)
    if (name !== 'transfer-encoding' && headers[name] !== undefined) delete headers[name];
  if (headers.expect !== undefined) delete headers.expect;
  setForwardedHeaders(headers, facts);
}

/**
 * The request headers a child receives, as a flat raw array (name, value,
 * …) built from the client's raw headers in one pass, for an engine that
 * takes raw headers (undici): what `rewriteRequestHeaders` keeps, and no
 * Transfer-Encoding (undici frames the body itself). A request without Host
 * (HTTP/1.0) gets `hostName`, the app's own name, rather than the child's
 * address, which the HTTP client would put there and the app would leak in
 * its URLs.
 */
export function upstreamRequestHeaders(
  raw: readonly string[],
  headers: IncomingHttpHeaders,
  facts: ForwardingFacts,
): string[] {
  // On HTTP/2 the host the request was routed by (`:authority`) is the Host the child sees, whatever a
  // `host` header says (RFC 9113 §8.3.1).
  const out: string[] = facts.host === undefined ? ['host', facts.hostName] : facts.h2 ? ['host', facts.host] : [];
  let connection: string | undefined;
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i] as string;
    // HTTP/2 pseudo-headers (`:method`, `:authority`, …) are not headers an HTTP/1.1 child can take.
    if (name.charCodeAt(0) === COLON || (facts.h2 && name.length === 4 && name.toLowerCase() === 'host')) continue;
    if (DROPPED_LENGTHS.has(name.length)) {
      const lower = name.toLowerCase();
      if (DROPPED_REQUEST_HEADERS.has(lower)) {
        if (lower === 'connection') connection = raw[i + 1];
        continue;
      }
    }
    out.push(name, raw[i + 1] as string);
  }
  const named = connectionTokens(connection);
  if (named)
    for (let i = out.length - 2; i >= 0; i -= 2) if (named.has((out[i] as string).toLowerCase())) out.splice(i, 2);
  out.push('x-forwarded-for', forwardedFor(headers, facts.client, facts.trusted));
  const hostHeader = forwardedHost(headers, facts.host, facts.trusted);
  if (hostHeader !== undefined) out.push('x-forwarded-host', hostHeader);
  out.push('x-forwarded-proto', forwardedProto(headers, facts.proto, facts.trusted));
  return out;
}
