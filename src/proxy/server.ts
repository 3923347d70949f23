import http, { ServerResponse, type IncomingMessage } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import type { ListenAddress } from '../config/schema.js';
import type { Logger } from '../log.js';
import { hostNameOf } from '../routing/host.js';
import { RouteTable, type RouteTableData } from '../routing/table.js';
import { StatsRegistry, type AppStats } from '../stats.js';
import { answer, answerOnSocket } from './answers.js';
import type { EngineFactory, EngineHooks, ProxyEngine, UpstreamFailure } from './engine.js';
import { clientAddress, TrustedProxies } from './forwarded.js';
import { HttpProxyEngine } from './http-proxy-engine.js';
import { UndiciEngine } from './undici-engine.js';
import { hasNoBody, IDEMPOTENT_METHODS, ProxyRequest } from './request.js';
import { AppTarget } from './target.js';
import { UpstreamRegistry } from './upstream.js';

export interface ProxySettings {
  upstreamTimeoutMs: number;
  queueTimeoutMs: number;
  trustedProxies: readonly string[];
  /** One log line per request (default true). */
  accessLog?: boolean;
}

export interface ProxyServerOptions {
  logger: Logger;
  /** Where access lines go (batched); defaults to a child of `logger`. */
  accessLogger?: Logger;
  settings: ProxySettings;
  /** Defaults to http-proxy-3. */
  engine?: EngineFactory;
  /** Per-app counters; shared with the supervisors and the admin API. */
  stats?: StatsRegistry;
  /** Idle keep-alive client connections close after this; default 75 s (for tests). */
  keepAliveTimeoutMs?: number;
}

/**
 * An idempotent request that may have reached a child is sent again at most
 * this often: a request that crashes children must not take down them all.
 */
const MAX_RESENDS = 1;
/** Requests waiting for one app beyond this get 503 at once, so a dead app cannot eat memory. */
const MAX_QUEUED_PER_APP = 10_000;
/** Seconds a client is told to wait when an app is not ready. */
const RETRY_AFTER_SECONDS = '2';

/** Idle keep-alive client connections close after this (Node adds a second of its own). */
const KEEP_ALIVE_TIMEOUT_MS = 75_000;

const kRequest = Symbol('nano.proxyRequest');

type TaggedResponse = ServerResponse & { [kRequest]?: ProxyRequest };
type TaggedSocket = Duplex & { [kRequest]?: ProxyRequest };

const EMPTY_TABLE: RouteTableData = { version: 0, apps: [], defaultApp: null };

/**
 * The public listener: routes each request by Host on the current route
 * table, queues requests for apps that have no ready child, retries what is
 * safe to retry, and maps failures to the gateway's own answers (SPEC §4, §7).
 */
export class ProxyServer implements EngineHooks {
  readonly server: http.Server;
  private table: RouteTable<AppTarget>;
  private readonly upstreams = new UpstreamRegistry();
  private readonly stats: StatsRegistry;
  private readonly queues = new Map<string, ProxyRequest[]>();
  /** @internal */
  readonly engine: ProxyEngine;
  private readonly log: Logger;
  private accessOn: boolean;
  private readonly accessLogger: Logger;
  /** Per-app children of the access logger, so the app name is serialised once, not per request. */
  private readonly appAccessLoggers = new Map<string, Logger>();
  private settings: ProxySettings;
  private trusted: TrustedProxies;
  private closing = false;
  /** Client requests (and open WebSockets) not yet finished. */
  private active = 0;
  private idleWaiters: Array<() => void> = [];
  private readonly onClientClose: (this: TaggedResponse) => void;
  private readonly onSocketClose: (this: TaggedSocket) => void;

  constructor(options: ProxyServerOptions) {
    this.log = options.logger;
    this.accessLogger = options.accessLogger ?? options.logger.child({ kind: 'access' });
    this.accessOn = options.settings.accessLog !== false;
    this.settings = options.settings;
    this.stats = options.stats ?? new StatsRegistry();
    this.trusted = new TrustedProxies(options.settings.trustedProxies);
    this.engine = (options.engine ?? defaultEngine())(this);
    this.table = this.compile(EMPTY_TABLE);

    // Created once and bound through `this`, so that no closure is made per request.
    const proxy = this;
    this.onClientClose = function (this: TaggedResponse) {
      const request = this[kRequest];
      if (!request) return;
      const abandoned = !this.writableFinished && request.upstream !== null;
      // Finished (closed) first, so that the engine's error for the cancelled exchange is ignored,
      // not counted as a failed child nor retried.
      proxy.finish(request, this.headersSent ? this.statusCode : 499);
      if (abandoned) proxy.engine.cancel(request);
    };
    this.onSocketClose = function (this: TaggedSocket) {
      const request = this[kRequest];
      if (request) proxy.finish(request, request.upgradeStatus || 499);
    };

    this.server = http.createServer(
      {
        // The gateway answers a missing Host itself, with a body that says why (RFC 9112 §3.2).
        requireHostHeader: false,
        maxHeaderSize: 16 * 1024,
        // Slowloris: a client gets this long to send its headers, checked every 2 s.
        headersTimeout: 20_000,
        requestTimeout: 300_000,
        connectionsCheckingInterval: 2_000,
      },
      (req, res) => this.onRequest(req, res),
    );
    // nginx's default, above the 60 s of the balancers that may sit in front (an AWS ALB, say), so
    // that they, and clients that honour the advertised `Keep-Alive: timeout=75`, close an idle
    // connection before the gateway does (README, client connections).
    this.server.keepAliveTimeout = options.keepAliveTimeoutMs ?? KEEP_ALIVE_TIMEOUT_MS;
    // Node would destroy an idle connection when its timer fires; see closeIfStillIdle.
    this.server.on('timeout', (socket: Socket) => setImmediate(closeIfStillIdle, socket, socket.bytesRead));
    // Accept errors (EMFILE when out of descriptors) must not become an uncaught exception.
    this.server.on('error', (err: Error) => this.log.error({ err: err.message }, 'listener error'));
    this.server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => this.onUpgrade(req, socket, head));
    this.server.on('clientError', (err: NodeJS.ErrnoException, socket: Duplex) => this.onClientError(err, socket));
    // A forward proxy's method: this gateway tunnels nothing (nginx answers 400 too; README, gateway answers).
    this.server.on('connect', (_req: IncomingMessage, socket: Duplex) => {
      socket.on('error', noop);
      answerOnSocket(socket, 400, 'bad request: CONNECT is not supported');
    });
  }

  get engineName(): string {
    return this.engine.name;
  }

  configure(settings: ProxySettings): void {
    this.settings = settings;
    this.trusted = new TrustedProxies(settings.trustedProxies);
    const accessOn = settings.accessLog !== false;
    if (accessOn !== this.accessOn) {
      this.accessOn = accessOn;
      // Targets carry their logger: rebuild them so the change applies to the next request.
      this.table = this.compile(this.table.data);
    }
  }

  /** Swaps in a new route table in one assignment, then lets queued requests try again. */
  publish(data: RouteTableData): void {
    this.table = this.compile(data);
    this.flushQueues();
  }

  statsFor(app: string): AppStats {
    return this.stats.for(app);
  }

  listen(address: ListenAddress): Promise<AddressInfo> {
    return new Promise((resolve, reject) => {
      const onError = (err: Error): void => reject(err);
      this.server.once('error', onError);
      this.server.listen(address.port, address.host, () => {
        this.server.off('error', onError);
        resolve(this.server.address() as AddressInfo);
      });
    });
  }

  /**
   * Waits until no request is in flight to a child (or the timeout), then
   * closes the pooled connections to it. The child must already be out of
   * the route table.
   */
  async drainUpstream(id: string, timeoutMs: number): Promise<void> {
    const upstream = this.upstreams.get(id);
    if (!upstream) return;
    const idle = await upstream.whenIdle(timeoutMs);
    if (!idle) this.log.warn({ upstream: id, in_flight: upstream.inFlight }, 'drain timeout: stopping with requests in flight');
    this.engine.closeUpstream(upstream);
    this.upstreams.forget(id);
  }

  /**
   * A child that crashed: it is already out of the route table (the
   * supervisor republished); requests still in flight to it fail on their
   * own. Its pool and registry entry are freed so that a crash loop does
   * not grow memory.
   */
  forgetUpstream(id: string): void {
    const upstream = this.upstreams.get(id);
    if (!upstream) return;
    this.engine.closeUpstream(upstream);
    this.upstreams.forget(id);
  }

  /**
   * Graceful stop: refuse new connections, let in-flight requests finish
   * (up to `timeoutMs`), then cut what is left.
   */
  async close(timeoutMs: number): Promise<void> {
    this.closing = true;
    this.server.close();
    this.server.closeIdleConnections();
    if (this.active > 0) {
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, timeoutMs);
        this.idleWaiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
    this.server.closeAllConnections();
    for (const upstream of this.upstreams.all()) this.engine.closeUpstream(upstream);
    this.engine.close();
  }

  // ---- per request -------------------------------------------------------

  private onRequest(req: IncomingMessage, res: ServerResponse): void {
    const host = req.headers.host;
    const problem = requestProblem(req);
    if (problem !== null) {
      // Node's parser has accepted the request line, but the connection's framing is not to be trusted.
      res.shouldKeepAlive = false;
      answer(res, problem.status, problem.message);
      return;
    }
    const target = this.table.lookup(host);
    if (target === undefined) {
      answer(res, 404, `no app for host "${host ?? ''}"`);
      return;
    }
    if (this.closing) res.shouldKeepAlive = false;
    const request = new ProxyRequest(req, res, target, host, performance.now());
    (res as TaggedResponse)[kRequest] = request;
    // 'close' comes once per response; `on` spares the wrapper `once` would allocate.
    res.on('close', this.onClientClose);
    this.active++;
    request.client = clientAddress(req.socket.remoteAddress);
    request.trusted = this.trusted.trusts(request.client);
    this.dispatch(request);
  }

  private onUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void {
    socket.on('error', noop);
    if (!isWebSocketUpgrade(req)) {
      this.serveIgnoringUpgrade(req, socket, head);
      return;
    }
    const host = req.headers.host;
    const problem = requestProblem(req);
    if (problem !== null) {
      answerOnSocket(socket, problem.status, problem.message);
      return;
    }
    const target = this.table.lookup(host);
    if (target === undefined) {
      answerOnSocket(socket, 404, `no app for host "${host ?? ''}"`);
      return;
    }
    const request = new ProxyRequest(req, null, target, host, performance.now(), socket, head);
    (socket as TaggedSocket)[kRequest] = request;
    socket.once('close', this.onSocketClose);
    this.active++;
    request.client = clientAddress(req.socket.remoteAddress);
    request.trusted = this.trusted.trusts(request.client);
    this.dispatch(request);
  }

  /**
   * Node hands every `Upgrade:` request to the upgrade path, but only
   * WebSockets are proxied as upgrades. A client offering another protocol
   * (`Upgrade: h2c` from curl --http2 or Java's HttpClient) gets a plain
   * HTTP/1.1 answer, as from nginx, on a connection that then closes (the
   * HTTP parser has already let go of it). With a body, which cannot be read
   * any more, the answer is 400.
   */
  private serveIgnoringUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void {
    if (!hasNoBody(req) || head.length > 0) {
      answerOnSocket(socket, 400, `bad request: cannot upgrade to ${JSON.stringify(req.headers.upgrade ?? '')}`);
      return;
    }
    const res = new ServerResponse(req);
    res.shouldKeepAlive = false;
    res.assignSocket(socket as Socket);
    res.once('finish', () => {
      // As Node's server does for its own responses: detach, close, then 'close' (which finishes the request).
      res.detachSocket(socket as Socket);
      socket.end();
      process.nextTick(() => res.emit('close'));
    });
    this.onRequest(req, res);
  }

  private dispatch(request: ProxyRequest): void {
    const upstream = request.target.pick(request.avoid);
    if (upstream === undefined) {
      this.enqueue(request);
      return;
    }
    if (request.queueTimer) {
      clearTimeout(request.queueTimer);
      request.queueTimer = null;
    }
    request.upstream = upstream;
    upstream.acquire();
    if (request.isUpgrade) this.engine.upgrade(request, this.settings.upstreamTimeoutMs);
    else this.engine.forward(request, this.settings.upstreamTimeoutMs);
  }

  onResponseStart(request: ProxyRequest): void {
    request.responseStarted = true;
  }

  onFailure(request: ProxyRequest, failure: UpstreamFailure): void {
    const failed = request.upstream;
    this.releaseUpstream(request);
    if (request.closed || request.responseStarted) return;
    // A retry goes by the current table: the child that failed may belong to a generation now draining.
    request.target = this.table.get(request.target.name) ?? request.target;
    // http-proxy-3 closes the client socket of a failed upgrade itself: answer now, do not retry.
    if (failure.kind === 'refused' && !failure.bodyConsumed && !request.isUpgrade) {
      // Nothing reached the child (it has just died, or not yet listened):
      // move to another ready child; once each has refused, wait for the
      // next route table like a queued request (the supervisor republishes
      // when it sees the exit).
      request.avoid = failed;
      if (++request.refusals > request.target.upstreams.length) this.enqueue(request);
      else this.dispatch(request);
      return;
    }
    if (
      failure.kind === 'reset' &&
      !request.isUpgrade &&
      !failure.bodyConsumed &&
      request.resends < MAX_RESENDS &&
      IDEMPOTENT_METHODS.has(request.req.method ?? '')
    ) {
      request.resends++;
      // Prefer another child; with none, the same one (likely a stale pooled connection).
      const others = request.target.upstreams.length > 1;
      request.avoid = others ? failed : null;
      this.log.debug({ app: request.target.name, upstream: failed?.id }, 'resending an idempotent request');
      this.dispatch(request);
      return;
    }
    const app = request.target.name;
    this.log.warn(
      { app, upstream: failed?.id, kind: failure.kind, err: failure.error.message, method: request.req.method, path: request.req.url },
      'upstream request failed',
    );
    const [status, message] =
      failure.kind === 'timeout'
        ? [504, `gateway timeout: app "${app}" sent no response within ${this.settings.upstreamTimeoutMs} ms`]
        : failure.kind === 'protocol'
          ? [502, `bad gateway: app "${app}" sent an invalid response`]
          : [502, `bad gateway: app "${app}" refused or reset the connection`];
    this.reply(request, status, message);
  }

  private reply(request: ProxyRequest, status: number, message: string, headers?: Record<string, string>): void {
    if (status === 502 || status === 503 || status === 504) request.target.stats.upstreamErrors[status]++;
    if (request.res) answer(request.res, status, message, headers);
    else if (request.socket) {
      request.upgradeStatus = status;
      answerOnSocket(request.socket, status, message, headers);
    }
  }

  private enqueue(request: ProxyRequest): void {
    const name = request.target.name;
    let queue = this.queues.get(name);
    if (!queue) {
      queue = [];
      this.queues.set(name, queue);
    }
    if (!request.queueTimer) {
      const now = performance.now();
      if (request.queuedAt === 0) request.queuedAt = now;
      const remaining = this.settings.queueTimeoutMs - (now - request.queuedAt);
      if (remaining <= 0 || queue.length >= MAX_QUEUED_PER_APP) {
        this.notReady(request);
        return;
      }
      request.queueTimer = setTimeout(onQueueTimeout, remaining, this, request);
    }
    queue.push(request);
  }

  /** @internal Called by the queue timer. */
  queueTimedOut(request: ProxyRequest): void {
    request.queueTimer = null;
    this.unqueue(request);
    if (!request.closed) this.notReady(request);
  }

  private notReady(request: ProxyRequest): void {
    this.reply(request, 503, `service unavailable: app "${request.target.name}" has no ready instance`, {
      'retry-after': RETRY_AFTER_SECONDS,
    });
  }

  private unqueue(request: ProxyRequest): void {
    const queue = this.queues.get(request.target.name);
    if (!queue) return;
    const i = queue.indexOf(request);
    if (i !== -1) queue.splice(i, 1);
  }

  /** After a table swap, queued requests look up their app again: it may be ready now, or gone. */
  private flushQueues(): void {
    for (const [name, queue] of this.queues) {
      if (queue.length === 0) continue;
      this.queues.set(name, []);
      for (const request of queue) {
        if (request.closed) continue;
        const target = this.table.get(name) ?? this.table.lookup(request.host);
        if (target === undefined) {
          if (request.queueTimer) clearTimeout(request.queueTimer);
          request.queueTimer = null;
          this.reply(request, 404, `no app for host "${request.host ?? ''}"`);
          continue;
        }
        request.target = target;
        // A new table is new information: the child that failed may be back.
        request.avoid = null;
        this.dispatch(request);
      }
    }
  }

  private releaseUpstream(request: ProxyRequest): void {
    const upstream = request.upstream;
    if (upstream) {
      request.upstream = null;
      upstream.release();
    }
  }

  private finish(request: ProxyRequest, status: number): void {
    if (request.closed) return;
    request.closed = true;
    if (request.queueTimer) {
      clearTimeout(request.queueTimer);
      request.queueTimer = null;
      this.unqueue(request);
    }
    this.releaseUpstream(request);
    const elapsedMs = performance.now() - request.startedAt;
    request.target.stats.observe(status, elapsedMs / 1000);
    const access = request.target.access;
    if (access !== null) {
      const req = request.req;
      access.info({
        method: req.method,
        host: request.host,
        path: req.url,
        status,
        duration_ms: Math.round(elapsedMs * 100) / 100,
      });
    }
    if (--this.active === 0 && this.idleWaiters.length > 0) {
      const waiters = this.idleWaiters;
      this.idleWaiters = [];
      for (const resolve of waiters) resolve();
    }
  }

  private onClientError(err: NodeJS.ErrnoException, socket: Duplex): void {
    const code = err.code ?? '';
    // A response already on the wire (pipelining) must not get a 400 written into its middle.
    const current = (socket as Duplex & { _httpMessage?: ServerResponse | null })._httpMessage;
    if (code === 'ECONNRESET' || code === 'EPIPE' || !socket.writable || current?.headersSent) {
      socket.destroy();
      return;
    }
    if (code === 'HPE_HEADER_OVERFLOW') answerOnSocket(socket, 431, 'request header fields too large');
    else if (code === 'ERR_HTTP_REQUEST_TIMEOUT') answerOnSocket(socket, 408, 'request timeout');
    else answerOnSocket(socket, 400, `bad request: ${err.message.replace(/^Parse Error: /, '')}`);
    this.log.debug({ code, err: err.message }, 'malformed request');
  }

  private accessFor(app: string): Logger | null {
    if (!this.accessOn) return null;
    let logger = this.appAccessLoggers.get(app);
    if (!logger) {
      logger = this.accessLogger.child({ app });
      this.appAccessLoggers.set(app, logger);
    }
    return logger;
  }

  private compile(data: RouteTableData): RouteTable<AppTarget> {
    return new RouteTable(
      data,
      (app) =>
        new AppTarget(
          app.name,
          app.upstreams.map((u) => this.upstreams.resolve(u)),
          this.statsFor(app.name),
          this.accessFor(app.name),
          hostNameOf(app.hosts),
        ),
    );
  }
}

/**
 * undici by default (measured faster: see the README's Performance
 * section); `NANO_GATEWAY_ENGINE=http-proxy-3` selects the other engine, for
 * comparisons.
 */
function defaultEngine(): EngineFactory {
  if (process.env.NANO_GATEWAY_ENGINE === 'http-proxy-3') return (hooks) => new HttpProxyEngine(hooks);
  return (hooks) => new UndiciEngine(hooks);
}

/**
 * An idle keep-alive connection's timer has fired (server.timeout is 0, so
 * this is the only socket timeout). Node would destroy the socket at once,
 * but libuv runs due timers before it reads sockets: when the event loop
 * was busy (a reload starting children, a GC pause) past the deadline, a
 * request that arrived meanwhile was still unread, and destroying a socket
 * with unread bytes resets it, so the client got ECONNRESET and no
 * response (README, Reliability). Checking again after the poll phase, the
 * request has been read (its bytes restart the timer): the connection
 * stays and the request is served.
 */
function closeIfStillIdle(socket: Socket, bytesRead: number): void {
  if (!socket.destroyed && socket.bytesRead === bytesRead) socket.destroy();
}

function onQueueTimeout(proxy: ProxyServer, request: ProxyRequest): void {
  proxy.queueTimedOut(request);
}

function noop(): void {}

function isWebSocketUpgrade(req: IncomingMessage): boolean {
  return req.method === 'GET' && (req.headers.upgrade ?? '').toLowerCase().split(',').some((p) => p.trim() === 'websocket');
}

/**
 * What makes a parsed request one the gateway refuses (README, the
 * gateway's own answers). Node's parser takes a request line without a
 * version as HTTP/0.9, which has no headers, no Host and no status line:
 * nothing an app should be handed. Other major versions (`HTTP/2.0` in an
 * HTTP/1 request line) get 505. RFC 9112 §3.2: an HTTP/1.1 request needs
 * exactly one Host header; Node keeps only the first of several, so the raw
 * headers are counted.
 */
function requestProblem(req: IncomingMessage): { status: number; message: string } | null {
  if (req.httpVersionMajor !== 1) {
    return req.httpVersionMajor === 0
      ? { status: 400, message: 'bad request: a request line without an HTTP version (HTTP/0.9)' }
      : { status: 505, message: `HTTP version not supported: HTTP/${req.httpVersion}` };
  }
  const raw = req.rawHeaders;
  let count = 0;
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i] as string;
    if (name.length === 4 && (name === 'Host' || name === 'host' || name.toLowerCase() === 'host')) count++;
  }
  if (count > 1) return { status: 400, message: 'bad request: more than one Host header' };
  if (count === 0 && req.httpVersionMinor >= 1) return { status: 400, message: 'bad request: HTTP/1.1 request without a Host header' };
  return null;
}
