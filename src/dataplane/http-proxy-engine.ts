import http, { type ClientRequest, type IncomingMessage, type ServerResponse } from 'node:http';
import { createRequire } from 'node:module';
import type { Socket } from 'node:net';
import { type Duplex, PassThrough } from 'node:stream';
import type * as HttpProxy3 from 'http-proxy-3';
import { answerOnSocket } from './answers.js';
import { classifyUpstreamError, type EngineHooks, type ProxyEngine } from './engine.js';
import { isDroppedResponseHeader, rewriteRequestHeaders, setForwardedHeaders } from './forwarded.js';
import { hasNoBody, type ProxyRequest } from './request.js';
import { tieTunnel } from './tunnel.js';
import type { Upstream } from './upstream.js';

const kRequest = Symbol('nano.request');

interface RequestWithContext extends IncomingMessage {
  [kRequest]?: ProxyRequest;
}

/** Per-attempt state of this engine, kept on ProxyRequest.engineState. */
interface AttemptState {
  outgoing: ClientRequest | null;
  timer: NodeJS.Timeout | null;
  timedOut: boolean;
  /** The body goes through this gate, opened only once the child's socket is connected. */
  gate: PassThrough | null;
  bodyConsumed: boolean;
}

interface UpstreamPool {
  agent: http.Agent;
}

/** Idle pooled sockets live at most this long, or less when the child announces `Keep-Alive: timeout=N`. */
const IDLE_SOCKET_MS = 30_000;

/**
 * http-proxy-3 as the HTTP engine, with one keep-alive agent per child.
 *
 * The agent's `timeout` makes Node honour a child's `Keep-Alive: timeout=N`
 * (it drops idle sockets a second before the child would), so a request is
 * not sent on a connection the child has already closed. A request body is
 * held back until the connection to the child is up, so a refused
 * connection leaves the body unread and the request can move to another
 * child intact.
 */
const require = createRequire(import.meta.url);

export class HttpProxyEngine implements ProxyEngine {
  readonly name = 'http-proxy-3';
  private readonly proxy: HttpProxy3.ProxyServer;

  constructor(private readonly hooks: EngineHooks) {
    // Required here rather than imported: with the undici engine this one
    // only serves WebSockets and is created on the first upgrade.
    const { createProxyServer } = require('http-proxy-3') as typeof HttpProxy3;
    this.proxy = createProxyServer({ xfwd: false, ws: true });
    this.proxy.on(
      'proxyReq',
      (outgoing: ClientRequest, req: RequestWithContext, _res: unknown, _opts: unknown, socket: Socket) =>
        this.onOutgoing(outgoing, req, socket),
    );
    this.proxy.on('proxyReqWs', (outgoing: ClientRequest, req: RequestWithContext) =>
      this.onOutgoingUpgrade(outgoing, req),
    );
    this.proxy.on('proxyRes', (upstreamRes: IncomingMessage, req: RequestWithContext, res: ServerResponse) =>
      this.onResponse(upstreamRes, req, res),
    );
    // Errors reach the per-call callback; this keeps a stray one from becoming an uncaught 'error'.
    this.proxy.on('error', () => {});
  }

  forward(request: ProxyRequest, timeoutMs: number): void {
    const req = request.req as RequestWithContext;
    const res = request.res as ServerResponse;
    req[kRequest] = request;
    const state: AttemptState = {
      outgoing: null,
      timer: setTimeout(onAttemptTimeout, timeoutMs, request),
      timedOut: false,
      gate: hasNoBody(req) ? null : new PassThrough(),
      bodyConsumed: false,
    };
    request.engineState = state;
    const upstream = request.upstream as Upstream;
    const pool = this.pool(upstream);
    if (!request.headersPrepared) {
      request.headersPrepared = true;
      rewriteRequestHeaders(req.headers, request);
    }
    this.proxy.web(
      req,
      res,
      { target: upstream.url, agent: pool.agent, buffer: state.gate ?? undefined },
      this.onError as never,
    );
  }

  upgrade(request: ProxyRequest, timeoutMs: number): void {
    const req = request.req as RequestWithContext;
    req[kRequest] = request;
    const state: AttemptState = {
      outgoing: null,
      timer: setTimeout(onAttemptTimeout, timeoutMs, request),
      timedOut: false,
      gate: null,
      bodyConsumed: false,
    };
    request.engineState = state;
    if (!request.headersPrepared) {
      request.headersPrepared = true;
      setForwardedHeaders(req.headers, request);
    }
    const target = (request.upstream as Upstream).url;
    this.proxy.ws(req, request.socket as Socket, request.head ?? undefined, { target }, this.onWsError as never);
  }

  cancel(): void {
    // http-proxy-3 destroys its outgoing request itself when the client goes away.
  }

  closeUpstream(upstream: Upstream): void {
    const pool = upstream.pool as UpstreamPool | null;
    if (pool) pool.agent.destroy();
    upstream.pool = null;
  }

  close(): void {
    this.proxy.removeAllListeners();
  }

  private pool(upstream: Upstream): UpstreamPool {
    let pool = upstream.pool as UpstreamPool | null;
    if (!pool) {
      pool = {
        agent: new http.Agent({ keepAlive: true, timeout: IDLE_SOCKET_MS, maxFreeSockets: 256, scheduling: 'lifo' }),
      };
      upstream.pool = pool;
    }
    return pool;
  }

  private onOutgoing(outgoing: ClientRequest, req: RequestWithContext, socket: Socket): void {
    const request = req[kRequest];
    if (!request) return;
    const state = request.engineState as AttemptState;
    state.outgoing = outgoing;
    if (state.timedOut) {
      outgoing.destroy();
      return;
    }
    const gate = state.gate;
    if (gate) {
      const open = (): void => {
        state.bodyConsumed = true;
        req.pipe(gate);
      };
      if (socket.connecting) socket.once('connect', open);
      else open();
    }
  }

  private onOutgoingUpgrade(outgoing: ClientRequest, req: RequestWithContext): void {
    const request = req[kRequest];
    if (!request) return;
    const state = request.engineState as AttemptState;
    state.outgoing = outgoing;
    // Either the child switches protocols or it answers plain HTTP, which http-proxy-3 relays.
    outgoing.once('upgrade', (_res: IncomingMessage, proxySocket: Socket) => {
      clearAttemptTimer(state);
      request.upgradeStatus = 101;
      this.hooks.onResponseStart(request);
      // http-proxy-3 only half-closes the tunnel; the request stays in flight until the client's socket closes.
      tieTunnel(request.socket as Duplex, proxySocket);
    });
    outgoing.once('response', (res: IncomingMessage) => {
      clearAttemptTimer(state);
      request.upgradeStatus = res.statusCode ?? 0;
      this.hooks.onResponseStart(request);
    });
  }

  private onResponse(upstreamRes: IncomingMessage, req: RequestWithContext, res: ServerResponse): void {
    const request = req[kRequest];
    if (!request) return;
    clearAttemptTimer(request.engineState as AttemptState);
    // The child's Connection and Keep-Alive are about its connection to the
    // gateway; the client's connection follows the gateway's own decision
    // (false while shutting down, or when the client asked to close).
    // The agent still needs the child's `Keep-Alive: timeout=N` when the
    // response ends, so it is hidden only while http-proxy-3 copies headers
    // (synchronously, right after this event) and then put back.
    const keepAliveHint = upstreamRes.headers['keep-alive'];
    if (keepAliveHint !== undefined) {
      delete upstreamRes.headers['keep-alive'];
      process.nextTick(restoreKeepAliveHint, upstreamRes, keepAliveHint);
    }
    if (request.h2) {
      // HTTP/2 throws on connection-specific headers (README, HTTPS).
      for (const name of Object.keys(upstreamRes.headers))
        if (isDroppedResponseHeader(name)) delete upstreamRes.headers[name];
    } else if (res.req.httpVersionMinor === 1)
      upstreamRes.headers.connection = res.shouldKeepAlive ? 'keep-alive' : 'close';
    else delete upstreamRes.headers.connection;
    const extra = request.extraHeaders;
    if (extra !== null && upstreamRes.headers[extra[0] as string] === undefined)
      upstreamRes.headers[extra[0] as string] = extra[1] as string;
    this.hooks.onResponseStart(request);
  }

  private readonly onError = (error: NodeJS.ErrnoException, req: RequestWithContext): void => {
    const request = req[kRequest];
    if (!request) return;
    const state = request.engineState as AttemptState;
    clearAttemptTimer(state);
    if (request.closed) return;
    this.hooks.onFailure(request, {
      kind: state.timedOut ? 'timeout' : classifyUpstreamError(error),
      bodyConsumed: state.bodyConsumed || req.readableDidRead,
      error,
    });
  };

  private readonly onWsError = (error: NodeJS.ErrnoException, req: RequestWithContext, socket: Socket): void => {
    const request = req[kRequest];
    if (!request) {
      answerOnSocket(socket, 502, 'bad gateway');
      return;
    }
    const state = request.engineState as AttemptState;
    clearAttemptTimer(state);
    if (request.responseStarted || request.closed) {
      socket.destroy();
      return;
    }
    this.hooks.onFailure(request, {
      kind: state.timedOut ? 'timeout' : classifyUpstreamError(error),
      bodyConsumed: false,
      error,
    });
  };
}

function restoreKeepAliveHint(upstreamRes: IncomingMessage, hint: string): void {
  upstreamRes.headers['keep-alive'] = hint;
}

function clearAttemptTimer(state: AttemptState): void {
  if (state.timer) {
    clearTimeout(state.timer);
    state.timer = null;
  }
}

function onAttemptTimeout(request: ProxyRequest): void {
  const state = request.engineState as AttemptState;
  state.timer = null;
  state.timedOut = true;
  // Destroying the outgoing request makes http-proxy-3 call the error callback, which reports the timeout.
  if (state.outgoing) state.outgoing.destroy(new Error('upstream timeout'));
}
