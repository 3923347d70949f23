import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import type { Logger } from '../log.js';
import { normalizeHost } from '../routing/host.js';
import type { RouteTable, RouteTableData } from '../routing/table.js';
import { answer, answerOnSocket, failureAnswer, maintenancePage, requestProblem } from './answers.js';
import type { DataPlaneSettings } from './data-plane.js';
import type { EngineHooks, ProxyEngine, UpstreamFailure } from './engine.js';
import { clientAddress, TrustedProxies } from './forwarded.js';
import type { RequestHandler } from './listener.js';
import { isHttp2, ProxyRequest, requestPath } from './request.js';
import { retryAction } from './retry.js';
import type { StatsRegistry } from './stats.js';
import { type AppTarget, TargetCompiler } from './target.js';
import type { UpstreamRegistry } from './upstream.js';
import { WaitQueues } from './wait-queue.js';

/** Seconds a client is told to wait when an app is not ready. */
const RETRY_AFTER_SECONDS = '2';
/** A client is told to come back in 30 s during maintenance (README, Pause and maintenance). */
const MAINTENANCE_HEADERS: Readonly<Record<string, string>> = { 'retry-after': '30' };
/** Media types are case-insensitive (RFC 9110 §8.3.1). */
const HTML_ACCEPT = /text\/html/i;

const kRequest = Symbol('nano.proxyRequest');

type TaggedResponse = ServerResponse & { [kRequest]?: ProxyRequest };
type TaggedSocket = Duplex & { [kRequest]?: ProxyRequest };

function hstsHeader(maxAge: number): readonly string[] | null {
  return maxAge > 0 ? ['strict-transport-security', `max-age=${maxAge}`] : null;
}

const EMPTY_TABLE: RouteTableData = { version: 0, apps: [], defaultApp: null };

export interface RequestPathOptions {
  logger: Logger;
  /** Where access lines go (batched). */
  accessLogger: Logger;
  settings: DataPlaneSettings;
  stats: StatsRegistry;
  upstreams: UpstreamRegistry;
}

/** What the plain listener needs to know of the HTTPS one, to redirect (README, HTTPS: redirect). */
export interface HttpsFacts {
  /** Whether a published certificate covers this host name (lower case). */
  covers(host: string): boolean;
  /** The port it listens on: part of the Location unless it is 443. */
  port: number;
}

const ACME_CHALLENGE_PREFIX = '/.well-known/acme-challenge/';
/** Bounded so that a flood of random Host headers cannot grow memory. */
const REDIRECT_CACHE_LIMIT = 1024;

/**
 * One request's way through the gateway (README, Routing and proxying): the
 * app by Host on the current route table, the child with the fewest
 * requests in flight, the engine; a wait when the app has no ready child; a
 * retry when one is safe; the gateway's own answer otherwise. The table is
 * an immutable snapshot, swapped by one assignment.
 */
export class RequestPath implements RequestHandler, EngineHooks {
  private table: RouteTable<AppTarget>;
  private engine: ProxyEngine | null = null;
  private readonly queues: WaitQueues;
  private readonly log: Logger;
  private readonly targets: TargetCompiler;
  private settings: DataPlaneSettings;
  private trusted: TrustedProxies;
  /** Pending HTTP-01 challenges, token → key authorization; null when none is pending. */
  private challenges: ReadonlyMap<string, string> | null = null;
  private https: HttpsFacts | null = null;
  /** Raw Host → the `https://host[:port]` to redirect to, or null: not redirected. Reset when certificates change. */
  private redirects = new Map<string, string | null>();
  /** `Strict-Transport-Security` as raw header pairs, shared by every HTTPS request; null when off. */
  private hsts: readonly string[] | null = null;
  /** The same for the gateway's own answers. */
  private hstsFields: Record<string, string> | undefined;
  /** Told when requests wait for an idle app (README, Scale to zero). */
  onWake: ((app: string) => void) | null = null;
  /** Set while shutting down: answers close their connections. */
  closing = false;
  /** Client requests (and open WebSockets) not yet finished. */
  private active = 0;
  private idleWaiters: Array<() => void> = [];
  private readonly onClientClose: (this: TaggedResponse) => void;
  private readonly onSocketClose: (this: TaggedSocket) => void;

  constructor(options: RequestPathOptions) {
    this.log = options.logger;
    this.targets = new TargetCompiler(options.accessLogger, options.stats, options.upstreams);
    this.settings = options.settings;
    this.trusted = new TrustedProxies(options.settings.trustedProxies);
    this.hsts = hstsHeader(options.settings.hstsMaxAge);
    this.hstsFields = this.hsts ? { [this.hsts[0] as string]: this.hsts[1] as string } : undefined;
    this.queues = new WaitQueues((request) => this.notReady(request));
    this.table = this.targets.compile(EMPTY_TABLE, this.settings.accessLog);

    // Created once and bound through `this`, so that no closure is made per request.
    const path = this;
    this.onClientClose = function (this: TaggedResponse) {
      const request = this[kRequest];
      if (!request) return;
      // An HTTP/2 stream the client cancelled reports writableFinished too: the engine's own `done` tells
      // (cancel is a no-op for a finished exchange).
      const abandoned = request.upstream !== null && (request.h2 || !this.writableFinished);
      // Finished (closed) first, so that the engine's error for the cancelled exchange is ignored,
      // not counted as a failed child nor retried.
      path.finish(request, this.headersSent ? this.statusCode : 499);
      if (abandoned) path.engine?.cancel(request);
    };
    this.onSocketClose = function (this: TaggedSocket) {
      const request = this[kRequest];
      if (request) path.finish(request, request.upgradeStatus || 499);
    };
  }

  /** The engine is made with this path as its hooks, so it is attached after construction. */
  attach(engine: ProxyEngine): void {
    this.engine = engine;
  }

  configure(settings: DataPlaneSettings): void {
    const accessChanged = settings.accessLog !== this.settings.accessLog;
    this.settings = settings;
    this.trusted = new TrustedProxies(settings.trustedProxies);
    this.hsts = hstsHeader(settings.hstsMaxAge);
    this.hstsFields = this.hsts ? { [this.hsts[0] as string]: this.hsts[1] as string } : undefined;
    this.redirects = new Map();
    // Targets carry their logger: rebuild them so the change applies to the next request.
    if (accessChanged) this.table = this.targets.compile(this.table.data, settings.accessLog);
  }

  /** The HTTPS listener's facts, once it listens (none: nothing is redirected). */
  setHttps(https: HttpsFacts | null): void {
    this.https = https;
    this.redirects = new Map();
  }

  /** The certificates changed: redirect decisions are made again. */
  forgetRedirects(): void {
    if (this.redirects.size > 0) this.redirects = new Map();
  }

  publishChallenges(challenges: Readonly<Record<string, string>>): void {
    const entries = Object.entries(challenges);
    this.challenges = entries.length > 0 ? new Map(entries) : null;
  }

  /** Swaps in a new route table in one assignment, then lets waiting requests try again. */
  publish(data: RouteTableData): void {
    this.table = this.targets.compile(data, this.settings.accessLog);
    this.redirects = new Map();
    for (const request of this.queues.takeAll()) {
      const target = this.table.get(request.target.name) ?? this.table.lookup(request.host);
      if (target === undefined) {
        this.queues.release(request);
        this.reply(request, 404, `no app for host "${request.host ?? ''}"`);
        continue;
      }
      request.target = target;
      // A new table is new information: the child that failed may be back.
      request.avoid = null;
      this.dispatch(request);
    }
  }

  /**
   * Shutdown: requests held for a paused app reached no child and would
   * only wait out queue_timeout_ms, so they get 503 now. Those waiting for
   * an app still starting keep waiting: it may become ready and serve them.
   */
  releaseHeld(): void {
    for (const request of this.queues.takeAll()) {
      if (!request.target.blocked) {
        this.dispatch(request);
        continue;
      }
      this.queues.release(request);
      this.reply(request, 503, `service unavailable: the gateway is shutting down`, {
        'retry-after': RETRY_AFTER_SECONDS,
      });
    }
  }

  /** Resolves once no client request is in flight, or after `timeoutMs`. */
  whenIdle(timeoutMs: number): Promise<void> {
    if (this.active === 0) return Promise.resolve();
    return new Promise((resolve) => {
      const timer = setTimeout(resolve, timeoutMs);
      this.idleWaiters.push(() => {
        clearTimeout(timer);
        resolve();
      });
    });
  }

  // ---- per request -------------------------------------------------------

  handleRequest(req: IncomingMessage, res: ServerResponse, secure = false): void {
    const h2 = secure && isHttp2(req);
    // HTTP/2 names the host in `:authority` (README, HTTPS).
    const host = h2 ? ((req.headers[':authority'] as string | undefined) ?? req.headers.host) : req.headers.host;
    const problem = h2 ? null : requestProblem(req);
    if (problem !== null) {
      // Node's parser has accepted the request line, but the connection's framing is not to be trusted.
      res.shouldKeepAlive = false;
      answer(res, problem.status, problem.message, secure ? this.hstsFields : undefined);
      return;
    }
    // The ACME server's HTTP-01 check, before routing: no app sees it (README, HTTPS).
    if (!secure && this.challenges !== null && this.answerChallenge(req, res)) return;
    const target = this.table.lookup(host);
    if (target === undefined) {
      answer(res, 404, `no app for host "${host ?? ''}"`, secure ? this.hstsFields : undefined);
      return;
    }
    if (!secure && target.tls && this.https !== null && this.settings.redirectHttp && host !== undefined) {
      const origin = this.redirectOrigin(host);
      const path = origin === null ? '' : requestPath(req);
      if (origin !== null && !path.startsWith(ACME_CHALLENGE_PREFIX)) {
        answer(res, 308, `moved to ${origin}${path}`, { location: `${origin}${path}` });
        return;
      }
    }
    if (this.closing) res.shouldKeepAlive = false;
    const request = new ProxyRequest(req, res, target, host, performance.now());
    request.secure = secure;
    request.h2 = h2;
    // The engine adds these to the child's headers (a raw array: setHeader's would be merged and lose repeats).
    if (secure) request.extraHeaders = this.hsts;
    (res as TaggedResponse)[kRequest] = request;
    // 'close' comes once per response; `on` spares the wrapper `once` would allocate.
    res.on('close', this.onClientClose);
    this.begin(request, req);
  }

  handleUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer, secure = false): void {
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
    request.secure = secure;
    (socket as TaggedSocket)[kRequest] = request;
    socket.once('close', this.onSocketClose);
    this.begin(request, req);
  }

  /** Answers a pending HTTP-01 challenge; false when the path is no pending token's (it is routed as usual). */
  private answerChallenge(req: IncomingMessage, res: ServerResponse): boolean {
    const url = requestPath(req);
    if (!url.startsWith(ACME_CHALLENGE_PREFIX)) return false;
    const keyAuthorization = (this.challenges as ReadonlyMap<string, string>).get(
      url.slice(ACME_CHALLENGE_PREFIX.length),
    );
    if (keyAuthorization === undefined) return false;
    res.writeHead(200, {
      'content-type': 'application/octet-stream',
      'content-length': Buffer.byteLength(keyAuthorization),
      'cache-control': 'no-store',
    });
    res.end(req.method === 'HEAD' ? undefined : keyAuthorization);
    this.log.debug({ host: req.headers.host, path: url }, 'answered an ACME HTTP-01 challenge');
    return true;
  }

  /** `https://host[:port]` when a certificate covers the host, else null; cached per raw Host. */
  private redirectOrigin(rawHost: string): string | null {
    const cached = this.redirects.get(rawHost);
    if (cached !== undefined) return cached;
    const https = this.https as HttpsFacts;
    const host = normalizeHost(rawHost);
    const origin = https.covers(host) ? `https://${host}${https.port === 443 ? '' : `:${https.port}`}` : null;
    if (this.redirects.size >= REDIRECT_CACHE_LIMIT) this.redirects.clear();
    this.redirects.set(rawHost, origin);
    return origin;
  }

  private begin(request: ProxyRequest, req: IncomingMessage): void {
    this.active++;
    const stats = request.target.stats;
    request.activeStats = stats;
    stats.active++;
    stats.lastActive = request.startedAt;
    request.client = clientAddress(req.socket.remoteAddress);
    request.trusted = this.trusted.trusts(request.client);
    request.proto = request.secure ? 'https' : 'http';
    this.dispatch(request);
  }

  private dispatch(request: ProxyRequest): void {
    const target = request.target;
    if (target.blocked) {
      // Paused apps hold requests in arrival order; maintenance answers them (README, Pause and maintenance).
      if (target.maintenance !== null) this.maintenanceAnswer(request, target.maintenance);
      else {
        // Its arrival (startedAt) on the clock all processes share, computed here, off the hot path.
        request.heldAt ??= process.hrtime.bigint() - BigInt(Math.round((performance.now() - request.startedAt) * 1e6));
        if (!this.queues.enqueue(request, this.settings.queueTimeoutMs)) this.notReady(request);
      }
      return;
    }
    this.send(request);
  }

  /**
   * Requests a pause holds for these apps, oldest first: the primary of
   * proxy workers merges every worker's by `heldAt` and sends them on one by
   * one through `sendHeld` before the table that resumes the app (README,
   * Workers).
   */
  held(apps: ReadonlySet<string>): ProxyRequest[] {
    const out: ProxyRequest[] = [];
    for (const app of apps)
      for (const request of this.queues.waiting(app)) if (request.target.blocked) out.push(request);
    return out;
  }

  /** Sends a held request on as if its app were resumed; nothing when it has been answered or has gone. */
  sendHeld(request: ProxyRequest): void {
    if (request.closed || request.queueTimer === null) return;
    this.queues.release(request);
    this.send(request);
  }

  /** To a child of the request's app, or into its queue while it has none ready. */
  private send(request: ProxyRequest): void {
    const target = request.target;
    const upstream = target.pick(request.avoid);
    if (upstream === undefined) {
      if (target.idle && !target.wakeSent) {
        // Once per table: the control plane starts the app, then publishes a table with its children.
        target.wakeSent = true;
        this.onWake?.(target.name);
      }
      if (!this.queues.enqueue(request, this.settings.queueTimeoutMs)) this.notReady(request);
      return;
    }
    if (request.queueTimer) {
      clearTimeout(request.queueTimer);
      request.queueTimer = null;
    }
    request.upstream = upstream;
    upstream.acquire();
    const engine = this.engine as ProxyEngine;
    if (request.isUpgrade) engine.upgrade(request, this.settings.upstreamTimeoutMs);
    else engine.forward(request, this.settings.upstreamTimeoutMs);
  }

  onResponseStart(request: ProxyRequest): void {
    request.responseStarted = true;
    if (request.onAnswer !== null) request.onAnswer();
  }

  onFailure(request: ProxyRequest, failure: UpstreamFailure): void {
    const failed = request.upstream;
    this.releaseUpstream(request);
    if (request.closed || request.responseStarted) return;
    // A retry goes by the current table: the child that failed may belong to a generation now draining,
    // or to an app that is gone (its upstreams drained and forgotten): then the host says where to go.
    const current = this.table.get(request.target.name) ?? this.table.lookup(request.host);
    if (current === undefined) {
      this.reply(request, 404, `no app for host "${request.host ?? ''}"`);
      return;
    }
    request.target = current;
    const refused = failure.kind === 'refused';
    const action = retryAction({
      failure,
      method: request.req.method ?? '',
      isUpgrade: request.isUpgrade,
      refusals: refused ? request.refusals + 1 : request.refusals,
      resends: request.resends,
      instances: request.target.upstreams.length,
    });
    if (action === 'move' || action === 'wait') {
      request.refusals++;
      request.avoid = failed;
      if (action === 'move') this.dispatch(request);
      else if (!this.queues.enqueue(request, this.settings.queueTimeoutMs)) this.notReady(request);
      return;
    }
    if (action === 'resend') {
      request.resends++;
      // Prefer another child; with none, the same one (likely a stale pooled connection).
      request.avoid = request.target.upstreams.length > 1 ? failed : null;
      this.log.debug({ app: request.target.name, upstream: failed?.id }, 'resending an idempotent request');
      this.dispatch(request);
      return;
    }
    const app = request.target.name;
    this.log.warn(
      {
        app,
        upstream: failed?.id,
        kind: failure.kind,
        err: failure.error.message,
        method: request.req.method,
        path: request.req.url,
      },
      'upstream request failed',
    );
    const [status, message] = failureAnswer(app, failure.kind, this.settings.upstreamTimeoutMs);
    this.reply(request, status, message);
  }

  private reply(request: ProxyRequest, status: number, message: string, headers?: Record<string, string>): void {
    if (status === 502 || status === 503 || status === 504) request.target.stats.upstreamErrors[status]++;
    if (request.res) {
      const hsts = request.secure ? this.hstsFields : undefined;
      answer(request.res, status, message, hsts && headers ? { ...headers, ...hsts } : (headers ?? hsts));
    } else if (request.socket) {
      request.upgradeStatus = status;
      answerOnSocket(request.socket, status, message, headers);
    }
  }

  /**
   * 503 with Retry-After and the message: a small HTML page for a browser,
   * plain text otherwise. Not counted as an upstream error: nothing failed.
   */
  private maintenanceAnswer(request: ProxyRequest, message: string): void {
    const res = request.res;
    const hsts = request.secure ? this.hstsFields : undefined;
    if (res === null) {
      request.upgradeStatus = 503;
      answerOnSocket(request.socket as Duplex, 503, message, MAINTENANCE_HEADERS);
      return;
    }
    const headers = hsts ? { ...MAINTENANCE_HEADERS, ...hsts } : MAINTENANCE_HEADERS;
    const accept = request.req.headers.accept;
    if (accept !== undefined && HTML_ACCEPT.test(accept)) maintenancePage(res, message, headers);
    else answer(res, 503, message, headers);
  }

  private notReady(request: ProxyRequest): void {
    const why = request.target.blocked ? 'is paused' : 'has no ready instance';
    this.reply(request, 503, `service unavailable: app "${request.target.name}" ${why}`, {
      'retry-after': RETRY_AFTER_SECONDS,
    });
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
    // Only a waiting request has a timer; the others skip the queue lookup.
    if (request.queueTimer) this.queues.release(request);
    this.releaseUpstream(request);
    const now = performance.now();
    const elapsedMs = now - request.startedAt;
    const activeStats = request.activeStats;
    if (activeStats !== null) {
      activeStats.active--;
      activeStats.lastActive = now;
    }
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
        proto: request.h2 ? 'h2' : 'http/1.1',
        tls: request.secure,
      });
    }
    if (--this.active === 0 && this.idleWaiters.length > 0) {
      const waiters = this.idleWaiters;
      this.idleWaiters = [];
      for (const resolve of waiters) resolve();
    }
  }
}
