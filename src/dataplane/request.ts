import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import type { ClientProtocol } from './forwarded.js';
import type { AppStats } from './stats.js';
import type { AppTarget } from './target.js';
import type { Upstream } from './upstream.js';

/**
 * One client request on its way through the gateway. A single object per
 * request carries everything the handlers need, so the hot path attaches no
 * per-request closures.
 */
export class ProxyRequest {
  /** The upstream the request is in flight to (counted in its inFlight), if any. */
  upstream: Upstream | null = null;
  /** An upstream that failed this request; a retry prefers another one. */
  avoid: Upstream | null = null;
  /** Connections refused so far: nothing reached a child, so these cost no resend. */
  refusals = 0;
  /** Times the request was sent again after it may have reached a child. */
  resends = 0;
  /** Response headers from a child have arrived: no retry, no gateway answer. */
  responseStarted = false;
  /** The client side has closed (finished or aborted). */
  closed = false;
  queueTimer: NodeJS.Timeout | null = null;
  /** When it first joined a queue: its queue_timeout_ms runs from here, however often it is queued again. */
  queuedAt = 0;
  /**
   * When it arrived, on the machine's monotonic clock (ns), which every
   * process shares: workers send held requests on in one arrival order
   * across processes (README, Workers). Set when a pause first holds it.
   */
  heldAt: bigint | null = null;
  /** Called when the child's answer starts: set only for held requests sent on in order (README, Workers). */
  onAnswer: (() => void) | null = null;
  /** Engine-owned per-attempt state (the outgoing request, timers). */
  engineState: unknown = null;
  /** The client's address as the child should see it in X-Forwarded-For. */
  client = '';
  /** The client is a trusted proxy: its X-Forwarded-* headers are kept. */
  trusted = false;
  /** An engine that rewrites `req.headers` in place has done so (retries must not do it twice). */
  headersPrepared = false;
  /** For upgrades (no ServerResponse): the status the client got, for the access log; 0 while unknown. */
  upgradeStatus = 0;
  /** How the client reached the gateway, for X-Forwarded-Proto. */
  proto: ClientProtocol = 'http';
  /** Came over TLS (the HTTPS listener). */
  secure = false;
  /** An HTTP/2 stream: no connection-specific response headers, no status text (README, HTTPS). */
  h2 = false;
  /** Response headers the gateway adds (Strict-Transport-Security), as raw pairs; a shared array, not a copy. */
  extraHeaders: readonly string[] | null = null;
  /** The app counted as busy with it from its start to its end, even if a new table moves it elsewhere. */
  activeStats: AppStats | null = null;

  constructor(
    readonly req: IncomingMessage,
    /** For WebSocket upgrades there is no ServerResponse, only the socket. */
    readonly res: ServerResponse | null,
    public target: AppTarget,
    readonly host: string | undefined,
    readonly startedAt: number,
    readonly socket: Duplex | null = null,
    readonly head: Buffer | null = null,
  ) {}

  /** The app's name as a Host value, for a request that came without one. */
  get hostName(): string {
    return this.target.hostName;
  }

  get isUpgrade(): boolean {
    return this.res === null;
  }
}

interface Http2Like {
  stream: { endAfterHeaders: boolean };
}

/**
 * An HTTP/2 stream (Node's compatibility request), not an HTTP/1 request
 * line that merely says `HTTP/2.0` (which gets 505).
 */
export function isHttp2(req: IncomingMessage): boolean {
  return req.httpVersionMajor === 2 && (req as unknown as Partial<Http2Like>).stream !== undefined;
}

export const IDEMPOTENT_METHODS = new Set(['GET', 'HEAD', 'OPTIONS']);

/**
 * True when the request announces no body, so nothing of it can be lost by
 * a retry. An HTTP/2 request says so by ending its stream with its headers
 * (it needs no Content-Length).
 */
export function hasNoBody(req: IncomingMessage): boolean {
  if (req.httpVersionMajor === 2)
    return (req as unknown as { stream: { endAfterHeaders: boolean } }).stream.endAfterHeaders;
  const te = req.headers['transfer-encoding'];
  if (te !== undefined) return false;
  const cl = req.headers['content-length'];
  return cl === undefined || cl === '0';
}

/** An absolute-form request target (`http://host/path`, sent to proxies) as origin form: path and query. */
export function originForm(target: string): string {
  try {
    const url = new URL(target);
    return `${url.pathname}${url.search}`;
  } catch {
    return target;
  }
}

/** The request's path and query, whatever form its target took. */
export function requestPath(req: IncomingMessage): string {
  const url = req.url ?? '/';
  return url.charCodeAt(0) === 47 ? url : originForm(url);
}
