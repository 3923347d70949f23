import type { IncomingMessage, ServerResponse } from 'node:http';
import { createRequire } from 'node:module';
import type { Dispatcher, Pool as UndiciPool } from 'undici';
import { Deadlines, type Expirable } from './deadlines.js';
import { classifyUpstreamError, type EngineHooks, type ProxyEngine, type UpstreamFailureKind } from './engine.js';
import {
  addGatewayHeaders,
  http2ResponseHeaders,
  isDroppedResponseHeader,
  upstreamRequestHeaders,
} from './forwarded.js';
import { HttpProxyEngine } from './http-proxy-engine.js';
import { hasNoBody, originForm, type ProxyRequest } from './request.js';
import { TrailerForward } from './trailer-forward.js';
import type { Upstream } from './upstream.js';

const require = createRequire(import.meta.url);

/**
 * Only undici's Pool: the package entry also loads fetch, WebSocket and the
 * cache machinery, about 10 MB of resident memory the gateway never uses.
 * undici has no export map, so the file is reachable; should a release move
 * it, the package entry still works.
 */
function loadPool(): typeof UndiciPool {
  try {
    return require('undici/lib/dispatcher/pool.js') as typeof UndiciPool;
  } catch {
    return (require('undici') as { Pool: typeof UndiciPool }).Pool;
  }
}

const Pool = loadPool();
type Pool = UndiciPool;

/**
 * Pool settings for one child. A child's `Keep-Alive: timeout=N` is honoured
 * with a half-second margin: undici drops the idle connection before the
 * child would (its idle timer is a precise native one, and Node's server
 * waits a second longer than it announces). A larger margin would leave
 * nothing of a one-second hint: undici then closes every connection after
 * its response, and the soak measured a connection per request (p50 4.9 ms,
 * p99 490 ms, 10,000 sockets in TIME_WAIT) against an app announcing
 * `timeout=1`. Without a hint idle connections live 4 s, like Node's own
 * server's.
 */
const POOL_OPTIONS: UndiciPool.Options = {
  keepAliveTimeout: 4_000,
  keepAliveMaxTimeout: 600_000,
  keepAliveTimeoutThreshold: 500,
  // Responses may stream for as long as they like once their headers are in.
  bodyTimeout: 0,
};

/**
 * One attempt of one request, as an undici dispatch handler (the raw,
 * callback API: no promises, raw header buffers both ways).
 */
class ForwardAttempt implements Dispatcher.DispatchHandler, Expirable {
  private abortUpstream: ((reason?: Error) => void) | null = null;
  private resume: (() => void) | null = null;
  private started = false;
  /** upstream_timeout_ms ran out before the response headers came. */
  private timedOut = false;
  /** The failure was reported to the hooks; what undici says afterwards is ignored. */
  private reported = false;
  done = false;
  deadlineAt = 0;
  deadlinePrev: Expirable | null = null;
  deadlineNext: Expirable | null = null;
  deadlineList: Expirable['deadlineList'] = null;

  constructor(
    private readonly request: ProxyRequest,
    private readonly hooks: EngineHooks,
    private readonly deadlines: Deadlines,
    /** upstream_timeout_ms for this attempt. */
    private readonly timeoutMs: number,
    /** The request has a body to send. */
    private readonly hasBody: boolean,
  ) {}

  onConnect(abort: (reason?: Error) => void): void {
    this.abortUpstream = abort;
    if (this.request.closed || this.timedOut) abort();
  }

  /**
   * A body on its way is not a child that does not answer: while its bytes
   * flow the deadline moves on, and it counts from the body's end (as
   * undici's own header timer did), so a long upload is not cut at
   * upstream_timeout_ms; a child that stops reading it still is.
   */
  onBodySent(): void {
    if (!this.done && !this.started) this.deadlines.add(this, this.timeoutMs);
  }

  onRequestSent(): void {
    if (this.hasBody && !this.done && !this.started) this.deadlines.add(this, this.timeoutMs);
  }

  /** Called by the deadline list: no response headers within upstream_timeout_ms. */
  expire(): void {
    if (this.done) return;
    this.timedOut = true;
    const error = new Error('no response headers within upstream_timeout_ms');
    // Sent: abort the exchange, and undici reports it through onError at once.
    if (this.abortUpstream) this.abortUpstream(error);
    // Still waiting for a connection in undici's queue: answer now; onConnect aborts it later.
    else this.fail(error);
  }

  onHeaders(statusCode: number, rawHeaders: Buffer[], resume: () => void, statusText: string): boolean {
    const res = this.request.res as ServerResponse;
    if (this.request.closed || this.reported) return false;
    // 1xx informational answers (other than 101) are not forwarded; the final one follows.
    if (statusCode < 200) return true;
    this.deadlines.remove(this);
    this.started = true;
    this.resume = resume;
    this.hooks.onResponseStart(this.request);
    const headers: string[] = [];
    for (let i = 0; i < rawHeaders.length; i += 2) {
      const name = (rawHeaders[i] as Buffer).toString('latin1');
      if (!isDroppedResponseHeader(name)) headers.push(name, (rawHeaders[i + 1] as Buffer).toString('latin1'));
    }
    if (this.request.extraHeaders !== null) addGatewayHeaders(headers, this.request.extraHeaders);
    // HTTP/2 has no reason phrase, and takes some headers once only.
    if (this.request.h2) res.writeHead(statusCode, http2ResponseHeaders(headers));
    else if (statusText) res.writeHead(statusCode, statusText, headers);
    else res.writeHead(statusCode, headers);
    return true;
  }

  onData(chunk: Buffer): boolean {
    const res = this.request.res as ServerResponse;
    if (res.write(chunk)) return true;
    // Backpressure: undici stops reading from the child until the client has taken the data.
    if (this.resume) res.once('drain', this.resume);
    return false;
  }

  onComplete(trailers: Array<Buffer | string> | null): void {
    this.done = true;
    const res = this.request.res as ServerResponse;
    // Trailers pass (README, HTTPS): chunked on HTTP/1.1, a trailing HEADERS frame on HTTP/2.
    if (trailers !== null && trailers.length > 0) res.addTrailers(trailerFields(trailers));
    res.end();
  }

  onError(error: Error): void {
    this.done = true;
    this.deadlines.remove(this);
    const res = this.request.res as ServerResponse;
    if (this.request.closed || this.reported) return;
    if (this.started || res.headersSent) {
      // Mid-response: nothing honest to add, cut the client connection.
      res.destroy(error);
      return;
    }
    this.fail(error);
  }

  private fail(error: Error): void {
    this.done = true;
    this.reported = true;
    this.hooks.onFailure(this.request, {
      kind: this.timedOut ? 'timeout' : failureKind(error),
      bodyConsumed: (this.request.req as IncomingMessage).readableDidRead,
      error,
    });
  }

  cancel(): void {
    this.deadlines.remove(this);
    if (!this.done && this.abortUpstream) this.abortUpstream();
  }
}

/**
 * undici hands trailers over raw (name, value, …), as Buffers; both
 * responses take them as an object (HTTP/2's would read a list of pairs
 * as names "0", "1", …). A repeated name is joined, as for headers;
 * connection-specific names go (HTTP/2 throws on them).
 */
function trailerFields(raw: Array<Buffer | string>): Record<string, string> {
  const text = (v: Buffer | string | undefined): string => (typeof v === 'string' ? v : (v?.toString('latin1') ?? ''));
  const fields: Record<string, string> = {};
  for (let i = 0; i + 1 < raw.length; i += 2) {
    const name = text(raw[i]).toLowerCase();
    if (isDroppedResponseHeader(name)) continue;
    const value = text(raw[i + 1]);
    fields[name] = fields[name] === undefined ? value : `${fields[name]}, ${value}`;
  }
  return fields;
}

function failureKind(error: Error): UpstreamFailureKind {
  const code = (error as NodeJS.ErrnoException).code ?? '';
  if (code === 'UND_ERR_CONNECT_TIMEOUT') return 'refused';
  return classifyUpstreamError(error as NodeJS.ErrnoException);
}

/**
 * undici as the HTTP engine: one keep-alive Pool per child, requests sent
 * with `Pool.dispatch` and a raw handler. Chosen over http-proxy-3 by
 * measurement (see the README's Performance section). WebSocket upgrades
 * stay with http-proxy-3, which handles them well and is off the hot path.
 */
export class UndiciEngine implements ProxyEngine {
  readonly name = 'undici';
  /** Created on the first WebSocket upgrade. */
  private websocketEngine: HttpProxyEngine | null = null;
  /** upstream_timeout_ms for every attempt: precise, where undici's own timer is not (see deadlines.ts). */
  private readonly deadlines = new Deadlines();

  constructor(private readonly hooks: EngineHooks) {}

  private get websockets(): HttpProxyEngine {
    this.websocketEngine ??= new HttpProxyEngine(this.hooks);
    return this.websocketEngine;
  }

  forward(request: ProxyRequest, timeoutMs: number): void {
    const upstream = request.upstream as Upstream;
    let pool = upstream.pool as Pool | null;
    if (!pool) {
      pool = new Pool(upstream.origin, POOL_OPTIONS);
      upstream.pool = pool;
    }
    const req = request.req;
    const body = hasNoBody(req) ? null : req;
    if (body !== null && req.headers.trailer !== undefined) {
      const forward = new TrailerForward(request, this.hooks);
      request.engineState = forward;
      forward.start(timeoutMs);
      return;
    }
    const attempt = new ForwardAttempt(request, this.hooks, this.deadlines, timeoutMs, body !== null);
    request.engineState = attempt;
    this.deadlines.add(attempt, timeoutMs);
    let path = req.url ?? '/';
    // Absolute-form request targets (sent to proxies) become origin-form for the child.
    if (path.charCodeAt(0) !== 47) path = originForm(path);
    pool.dispatch(
      {
        path,
        method: req.method ?? 'GET',
        headers: upstreamRequestHeaders(req.rawHeaders, req.headers, request),
        body,
        // The deadline list enforces upstream_timeout_ms.
        headersTimeout: 0,
        bodyTimeout: 0,
      },
      attempt,
    );
  }

  upgrade(request: ProxyRequest, timeoutMs: number): void {
    this.websockets.upgrade(request, timeoutMs);
  }

  cancel(request: ProxyRequest): void {
    const attempt = request.engineState;
    if (attempt instanceof ForwardAttempt || attempt instanceof TrailerForward) attempt.cancel();
  }

  closeUpstream(upstream: Upstream): void {
    const pool = upstream.pool as Pool | null;
    upstream.pool = null;
    if (pool) pool.destroy().catch(() => {});
  }

  close(): void {
    this.deadlines.stop();
    this.websocketEngine?.close();
  }
}
