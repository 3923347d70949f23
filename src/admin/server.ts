import { createHash, timingSafeEqual } from 'node:crypto';
import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { ListenAddress } from '../addresses.js';
import { GatewayOpError, type GatewayOpErrorKind } from '../errors.js';
import type { Logger } from '../log.js';
import { entryJson } from '../logs/ring.js';
import type { AppJson } from '../wire.js';
import type { AdminApi } from './api.js';
import { MetricsRenderer, type MetricsSource } from './metrics.js';
import { statusPage } from './status-page.js';

/** `GET /admin/logs` without `lines`. */
const DEFAULT_LOG_LINES = 100;
/** The most `log_lines` allows. */
const MAX_LOG_LINES = 10_000;

/**
 * A follower (`logs?follow=1`) that stops reading may fall this far behind
 * (bytes waiting in its response) before lines are skipped for it.
 */
export const MAX_FOLLOW_BACKLOG = 1024 * 1024;

/** Request bodies above this are refused with 413. */
export const MAX_BODY_BYTES = 1024 * 1024;

export interface AdminServerOptions {
  api: AdminApi;
  metrics: MetricsSource;
  logger: Logger;
}

/** An error answer of the admin API: `{"error":{"code","message"}}`. */
class AdminError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly headers: Record<string, string> = {},
  ) {
    super(message);
  }
}

const OP_ERROR_STATUS: Record<GatewayOpErrorKind, number> = {
  not_found: 404,
  invalid: 400,
  conflict: 409,
  not_ready: 422,
  config_error: 409,
  io_error: 500,
  upstream_error: 502,
};

function digest(value: string): Buffer {
  return createHash('sha256').update(value).digest();
}

/**
 * The admin API (README, Admin API) on its own listener, so that no app path is ever
 * shadowed. JSON in and out; with a token, every request must carry it.
 */
export class AdminServer {
  private readonly server: http.Server;
  private readonly api: AdminApi;
  private readonly log: Logger;
  private readonly metrics: MetricsRenderer;
  /** Open `logs?follow=1` responses, with their unsubscribe from the ring. */
  private readonly followers = new Map<ServerResponse, () => void>();

  constructor(options: AdminServerOptions) {
    this.api = options.api;
    this.log = options.logger.child({ kind: 'admin' });
    this.metrics = new MetricsRenderer(options.metrics);
    this.server = http.createServer({ headersTimeout: 20_000, requestTimeout: 600_000 }, (req, res) => {
      this.handle(req, res).catch((err: unknown) => this.fail(res, err));
    });
    this.server.on('error', (err: Error) => this.log.error({ err: err.message }, 'admin listener error'));
  }

  listen(address: ListenAddress): Promise<AddressInfo> {
    return new Promise((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(address.port, address.host, () => {
        this.server.off('error', reject);
        resolve(this.server.address() as AddressInfo);
      });
    });
  }

  /**
   * Stops listening. `graceful` lets requests in progress finish (the admin
   * call that moved the listener still gets its answer); otherwise
   * connections are cut.
   */
  async close(options: { graceful?: boolean } = {}): Promise<void> {
    this.metrics.close();
    // A followed log never ends on its own: end it, so the listener can close. Unsubscribed
    // first: a line logged before its 'close' must not be written after its end.
    for (const [res, unsubscribe] of this.followers) {
      unsubscribe();
      res.end();
    }
    this.followers.clear();
    await new Promise<void>((resolve) => {
      this.server.close(() => resolve());
      if (options.graceful) this.server.closeIdleConnections();
      else this.server.closeAllConnections();
    });
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const pathname = (req.url ?? '/').split('?')[0] as string;
    if (pathname !== '/admin' && !pathname.startsWith('/admin/')) {
      throw new AdminError(404, 'not_found', `no such endpoint: ${pathname} (the admin API lives under /admin/)`);
    }
    if (pathname === '/admin' || pathname === '/admin/') {
      // The status page (README, Status page) is served without a token: every API call it makes needs one.
      allow(req.method ?? 'GET', ['GET', 'HEAD']);
      const page = statusPage();
      res.writeHead(200, page.headers);
      res.end(req.method === 'HEAD' ? undefined : page.body);
      return;
    }
    this.authorize(req);
    let parts: string[];
    try {
      parts = pathname.split('/').filter(Boolean).map(decodeURIComponent);
    } catch {
      throw new AdminError(400, 'invalid_request', `malformed percent-encoding in the path: ${pathname}`);
    }
    const url = { pathname };
    const method = req.method ?? 'GET';
    const route = parts.slice(1);

    if (route.length === 1 && route[0] === 'health') {
      allow(method, ['GET']);
      return this.send(res, 200, { status: 'ok', config_error: this.api.configError() });
    }
    if (route.length === 1 && route[0] === 'metrics') {
      allow(method, ['GET']);
      const body = this.metrics.render();
      res.writeHead(200, {
        'content-type': 'text/plain; version=0.0.4; charset=utf-8',
        'content-length': Buffer.byteLength(body),
      });
      res.end(body);
      return;
    }
    if (route.length === 1 && route[0] === 'reload') {
      allow(method, ['POST']);
      await readBody(req);
      const outcome = await this.api.reload();
      if (!outcome.ok) throw new AdminError(400, 'config_error', outcome.error);
      return this.send(res, 200, outcome.summary);
    }
    if (route[0] === 'apps' && route.length === 1) {
      allow(method, ['GET', 'POST']);
      if (method === 'GET') return this.send(res, 200, { apps: this.api.apps() });
      const body = await readJsonBody(req);
      if (!body || typeof body !== 'object' || Array.isArray(body))
        throw new AdminError(
          400,
          'invalid_request',
          'expected a JSON object: {"name": ..., "hosts": [...], "entry": ...}',
        );
      const { name, ...keys } = body as Record<string, unknown>;
      const app = await this.api.addApp(name, keys);
      this.log.info({ app: app.name }, 'admin: app added');
      return this.send(res, 201, app);
    }
    if (route[0] === 'apps' && route.length === 2) {
      const name = route[1] as string;
      allow(method, ['GET', 'DELETE']);
      if (method === 'GET') {
        const app = this.api.app(name);
        if (!app) throw new AdminError(404, 'not_found', `no app named "${name}"`);
        return this.send(res, 200, app);
      }
      const removed = await this.api.removeApp(name);
      this.log.info({ app: name }, 'admin: app removed');
      return this.send(res, 200, removed);
    }
    if (route[0] === 'apps' && route.length === 3 && route[2] === 'restart') {
      allow(method, ['POST']);
      await readBody(req);
      const app = await this.api.restartApp(route[1] as string);
      this.log.info({ app: app.name }, 'admin: app restarted');
      return this.send(res, 200, app);
    }
    if (route[0] === 'apps' && route.length === 3 && ['pause', 'resume', 'maintenance'].includes(route[2] as string)) {
      allow(method, ['POST']);
      const name = route[1] as string;
      const action = route[2] as 'pause' | 'resume' | 'maintenance';
      let app: AppJson;
      if (action === 'maintenance') {
        const body = await readBody(req);
        let message: unknown;
        if (body.length > 0) {
          const parsed = parseJson(body);
          if (!parsed || typeof parsed !== 'object' || Array.isArray(parsed))
            throw new AdminError(400, 'invalid_request', 'expected a JSON object: {"message": "..."} or no body');
          message = (parsed as Record<string, unknown>).message;
        }
        app = await this.api.maintainApp(name, message);
      } else {
        await readBody(req);
        app = await (action === 'pause' ? this.api.pauseApp(name) : this.api.resumeApp(name));
      }
      return this.send(res, 200, app);
    }
    if (route.length === 1 && route[0] === 'logs') {
      allow(method, ['GET']);
      return this.sendLogs(req, res);
    }
    if (route.length === 1 && route[0] === 'traffic') {
      allow(method, ['GET']);
      return this.send(res, 200, { interval_s: 1, apps: this.api.traffic() });
    }
    if (route.length === 1 && route[0] === 'reloads') {
      allow(method, ['GET']);
      return this.send(res, 200, { reloads: this.api.reloads() });
    }
    if (route.length === 1 && route[0] === 'workers') {
      allow(method, ['GET']);
      return this.send(res, 200, { workers: this.api.workers() });
    }
    if (route[0] === 'certificates' && route.length === 1) {
      allow(method, ['GET']);
      return this.send(res, 200, { certificates: this.api.certificates() });
    }
    if (route[0] === 'certificates' && route.length === 3 && route[2] === 'renew') {
      allow(method, ['POST']);
      await readBody(req);
      const certificate = await this.api.renewCertificate(route[1] as string);
      this.log.info({ host: certificate.host }, 'admin: certificate renewed');
      return this.send(res, 200, certificate);
    }
    throw new AdminError(404, 'not_found', `no such endpoint: ${method} ${url.pathname}`);
  }

  /**
   * `GET /admin/logs?app=NAME&lines=N&follow=1` (README, Logs): NDJSON,
   * oldest first; with `follow` the response stays open and each new line
   * is written as it is logged, until the client goes away (or the admin
   * listener closes).
   */
  private sendLogs(req: IncomingMessage, res: ServerResponse): void {
    const query = new URL(req.url ?? '/', 'http://admin').searchParams;
    const app = query.get('app') || null;
    if (app !== null && this.api.app(app) === null) throw new AdminError(404, 'not_found', `no app named "${app}"`);
    const linesText = query.get('lines');
    // No more than a ring holds anyway (README, Logs): a huge `lines` is not a huge merge.
    const lines = Math.min(linesText === null ? DEFAULT_LOG_LINES : Number(linesText), MAX_LOG_LINES);
    if (!Number.isInteger(lines) || lines < 0)
      throw new AdminError(400, 'invalid_request', `lines: expected a whole number, got ${JSON.stringify(linesText)}`);
    const follow = query.get('follow') === '1' || query.get('follow') === 'true';
    res.writeHead(200, {
      'content-type': 'application/x-ndjson; charset=utf-8',
      'cache-control': 'no-store',
      // Streamed to the end: no proxy buffering in front (nginx honours it).
      'x-accel-buffering': 'no',
    });
    const recent = this.api.logs.lines(app, lines);
    res.write(recent.map((e) => `${entryJson(e)}\n`).join(''));
    if (!follow) {
      res.end();
      return;
    }
    // A reader that stops reading costs at most MAX_FOLLOW_BACKLOG: lines past it are skipped,
    // and it is told how many once it has caught up.
    let skipped = 0;
    let waitingDrain = false;
    const notice = (): void => {
      if (skipped === 0 || res.writableEnded || res.destroyed) return;
      const msg = `${skipped} line${skipped === 1 ? '' : 's'} skipped: this reader fell behind`;
      res.write(`${JSON.stringify({ time: new Date().toISOString(), app, pid: null, stream: 'gateway', msg })}\n`);
      skipped = 0;
    };
    const unsubscribe = this.api.logs.follow(app, (entry) => {
      if (res.writableEnded || res.destroyed) return;
      if (res.writableLength > MAX_FOLLOW_BACKLOG) {
        skipped++;
        if (!waitingDrain) {
          waitingDrain = true;
          res.once('drain', () => {
            waitingDrain = false;
            notice();
          });
        }
        return;
      }
      notice();
      res.write(`${entryJson(entry)}\n`);
    });
    this.followers.set(res, unsubscribe);
    res.once('close', () => {
      unsubscribe();
      this.followers.delete(res);
    });
  }

  /** Constant-time comparison of `Authorization: Bearer <token>` with the configured token. */
  private authorize(req: IncomingMessage): void {
    const token = this.api.token();
    if (token === null) return;
    const header = req.headers.authorization ?? '';
    const match = /^Bearer\s+(.+)$/i.exec(header.trim());
    const given = match?.[1] ?? '';
    // Hashing first gives equal lengths, so timingSafeEqual leaks nothing about the token's length either.
    if (!match || !timingSafeEqual(digest(given), digest(token))) {
      throw new AdminError(401, 'unauthorized', 'missing or wrong token: send Authorization: Bearer <token>', {
        'www-authenticate': 'Bearer realm="nano-gateway"',
      });
    }
  }

  private send(res: ServerResponse, status: number, value: unknown): void {
    const body = `${JSON.stringify(value)}\n`;
    res.writeHead(status, {
      'content-type': 'application/json; charset=utf-8',
      'content-length': Buffer.byteLength(body),
    });
    res.end(body);
  }

  private fail(res: ServerResponse, err: unknown): void {
    let error: AdminError;
    if (err instanceof AdminError) error = err;
    else if (err instanceof GatewayOpError) error = new AdminError(OP_ERROR_STATUS[err.kind], err.kind, err.message);
    else {
      this.log.error({ err }, 'admin request failed');
      error = new AdminError(500, 'internal', (err as Error)?.message ?? 'internal error');
    }
    if (res.headersSent) {
      res.destroy();
      return;
    }
    const body = `${JSON.stringify({ error: { code: error.code, message: error.message } })}\n`;
    const headers: Record<string, string | number> = {
      'content-type': 'application/json; charset=utf-8',
      'content-length': Buffer.byteLength(body),
      ...error.headers,
    };
    // An oversized body is not read to its end: close the connection rather than drain it.
    if (error.status === 413) headers.connection = 'close';
    res.writeHead(error.status, headers);
    res.end(body);
  }
}

function allow(method: string, methods: readonly string[]): void {
  if (!methods.includes(method)) {
    throw new AdminError(405, 'method_not_allowed', `${method} is not allowed here; use ${methods.join(' or ')}`, {
      allow: methods.join(', '),
    });
  }
}

/** Reads a request body of at most MAX_BODY_BYTES. */
function readBody(req: IncomingMessage): Promise<Buffer> {
  const declared = Number(req.headers['content-length'] ?? 0);
  if (declared > MAX_BODY_BYTES) return Promise.reject(tooLarge());
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size > MAX_BODY_BYTES) {
        req.removeAllListeners('data');
        req.pause();
        reject(tooLarge());
        return;
      }
      chunks.push(chunk);
    });
    req.on('end', () => resolve(Buffer.concat(chunks)));
    req.on('error', reject);
  });
}

function tooLarge(): AdminError {
  return new AdminError(413, 'payload_too_large', `request body over ${MAX_BODY_BYTES} bytes`);
}

async function readJsonBody(req: IncomingMessage): Promise<unknown> {
  return parseJson(await readBody(req));
}

function parseJson(body: Buffer): unknown {
  try {
    return JSON.parse(body.toString('utf8'));
  } catch (err) {
    throw new AdminError(400, 'invalid_json', `request body is not JSON: ${(err as Error).message}`);
  }
}
