import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import { classifyUpstreamError, type EngineHooks } from './engine.js';
import {
  addGatewayHeaders,
  clientTrailers,
  http2ResponseHeaders,
  isDroppedResponseHeader,
  upstreamRequestHeaders,
} from './forwarded.js';
import { type ProxyRequest, requestPath } from './request.js';
import type { Upstream } from './upstream.js';

/**
 * A request that announces trailers (`Trailer:`, RFC 9110 §6.6.2), sent
 * with Node's own client on a connection of its own: undici cannot send
 * request trailers, and trailers pass both ways (README, HTTPS). Such
 * requests are rare (gRPC-web, some uploads with a checksum), so this path
 * favours being simple over pooling.
 */
export class TrailerForward {
  private outgoing: http.ClientRequest | null = null;
  private timer: NodeJS.Timeout | null = null;
  private responded = false;
  private timedOut = false;
  private done = false;

  constructor(
    private readonly request: ProxyRequest,
    private readonly hooks: EngineHooks,
  ) {}

  start(timeoutMs: number): void {
    const { request } = this;
    const req = request.req;
    const upstream = request.upstream as Upstream;
    const headers = upstreamRequestHeaders(req.rawHeaders, req.headers, request);
    // Trailers need chunked framing; the announcement goes on, so the child knows what follows.
    for (let i = headers.length - 2; i >= 0; i -= 2) {
      if (/^content-length$/i.test(headers[i] as string)) headers.splice(i, 2);
    }
    headers.push('trailer', String(req.headers.trailer));
    const out = http.request({
      host: upstream.host,
      port: upstream.port,
      method: req.method ?? 'POST',
      path: requestPath(req),
      headers,
      agent: false,
      setHost: false,
    });
    this.outgoing = out;
    out.on('response', (res) => this.onResponse(res));
    out.on('error', (error: NodeJS.ErrnoException) => this.onError(error));
    // The body is read only once the child's socket is up: a refused connection leaves it unread, so the
    // request can move to another child intact (README, Routing and proxying: retries).
    out.once('socket', (socket) => {
      if (socket.connecting) socket.once('connect', () => this.sendBody(out, timeoutMs));
      else this.sendBody(out, timeoutMs);
    });
  }

  private sendBody(out: http.ClientRequest, timeoutMs: number): void {
    const req = this.request.req;
    req.on('data', (chunk: Buffer) => {
      if (!out.write(chunk)) {
        req.pause();
        out.once('drain', () => req.resume());
      }
    });
    req.on('end', () => {
      const trailers = req.trailers;
      if (trailers && Object.keys(trailers).length > 0) out.addTrailers(trailers);
      out.end();
      // As for every request, upstream_timeout_ms counts from the end of the body.
      if (!this.done && !this.responded)
        this.timer = setTimeout(() => {
          this.timedOut = true;
          out.destroy(new Error('no response headers within upstream_timeout_ms'));
        }, timeoutMs);
    });
  }

  cancel(): void {
    if (!this.done) this.outgoing?.destroy();
    this.clearTimer();
  }

  private onResponse(upstream: IncomingMessage): void {
    const { request } = this;
    const res = request.res as ServerResponse;
    this.clearTimer();
    if (request.closed) {
      upstream.destroy();
      return;
    }
    this.responded = true;
    this.hooks.onResponseStart(request);
    const headers: string[] = [];
    const raw = upstream.rawHeaders;
    for (let i = 0; i < raw.length; i += 2)
      if (!isDroppedResponseHeader(raw[i] as string)) headers.push(raw[i] as string, raw[i + 1] as string);
    if (request.extraHeaders) addGatewayHeaders(headers, request.extraHeaders);
    try {
      res.writeHead(upstream.statusCode ?? 502, request.h2 ? http2ResponseHeaders(headers) : headers);
    } catch (err) {
      // Headers Node refuses to send: nothing honest to answer with.
      upstream.destroy();
      res.destroy(err as Error);
      return;
    }
    upstream.on('data', (chunk: Buffer) => {
      if (!res.write(chunk)) {
        upstream.pause();
        res.once('drain', () => upstream.resume());
      }
    });
    upstream.on('end', () => {
      this.done = true;
      try {
        const trailers = clientTrailers(upstream.trailers);
        if (Object.keys(trailers).length > 0) res.addTrailers(trailers);
        res.end();
      } catch (err) {
        res.destroy(err as Error);
      }
    });
    upstream.on('error', (err) => res.destroy(err));
  }

  private onError(error: NodeJS.ErrnoException): void {
    this.clearTimer();
    const { request } = this;
    if (this.done || request.closed) return;
    this.done = true;
    if (this.responded) {
      (request.res as ServerResponse).destroy(error);
      return;
    }
    this.hooks.onFailure(request, {
      kind: this.timedOut ? 'timeout' : classifyUpstreamError(error),
      bodyConsumed: request.req.readableDidRead,
      error,
    });
  }

  private clearTimer(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
  }
}
