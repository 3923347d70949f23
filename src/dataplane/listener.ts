import http, { type IncomingMessage, ServerResponse } from 'node:http';
import type { AddressInfo, Server as NetServer, Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import type { ListenAddress } from '../addresses.js';
import type { Logger } from '../log.js';
import { answer, answerOnSocket } from './answers.js';
import { hasNoBody, isHttp2 } from './request.js';

/** What a listener hands its requests to: the request path. */
export interface RequestHandler {
  /** `secure`: it came over TLS (the HTTPS listener). An HTTP/2 stream comes as Node's compatibility objects. */
  handleRequest(req: IncomingMessage, res: ServerResponse, secure?: boolean): void;
  /** A WebSocket upgrade; the socket is the client's, detached from the HTTP parser. */
  handleUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer, secure?: boolean): void;
}

export interface HttpListenerOptions {
  handler: RequestHandler;
  logger: Logger;
  /** Idle keep-alive client connections close after this; default 75 s (shorter in tests). */
  keepAliveTimeoutMs?: number;
}

/**
 * nginx's default, above the 60 s of the balancers that may sit in front (an
 * AWS ALB, say), so that they, and clients that honour the advertised
 * `Keep-Alive: timeout=75`, close an idle connection before the gateway does
 * (README, Routing and proxying: client connections). Node adds a second.
 */
export const KEEP_ALIVE_TIMEOUT_MS = 75_000;

/**
 * The plain-HTTP listener (README, Routing and proxying): the `node:http`
 * server and its limits, listen and close; its HTTP/1 edges are shared
 * with the HTTPS listener. Everything that is a request goes to the
 * handler.
 */
export class HttpListener {
  readonly server: http.Server;
  private readonly log: Logger;

  constructor(options: HttpListenerOptions) {
    this.log = options.logger;
    const handler = options.handler;
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
      (req, res) => handler.handleRequest(req, res),
    );
    this.server.keepAliveTimeout = options.keepAliveTimeoutMs ?? KEEP_ALIVE_TIMEOUT_MS;
    new Http1Edges(this.server as unknown as EdgeServer, handler, this.log, false);
  }

  listen(address: ListenAddress): Promise<AddressInfo> {
    return listenOn(this.server, address);
  }

  /** New connections are refused; idle keep-alive ones close; requests in flight go on. */
  stopAccepting(): void {
    this.server.close();
    this.server.closeIdleConnections();
  }

  /** Cuts whatever is left. */
  closeAll(): void {
    this.server.closeAllConnections();
  }
}

/** The server events both listeners share for HTTP/1 connections. */
export interface EdgeServer {
  on(event: 'timeout', listener: (socket: Socket) => void): this;
  on(event: 'error', listener: (err: Error) => void): this;
  on(event: 'upgrade', listener: (req: IncomingMessage, socket: Duplex, head: Buffer) => void): this;
  on(event: 'clientError', listener: (err: NodeJS.ErrnoException, socket: Duplex) => void): this;
  on(event: 'connect', listener: (req: IncomingMessage, socket: Duplex | ServerResponse) => void): this;
}

/**
 * What HTTP/1 connections need on either listener, plain or TLS: idle
 * connections closed only when really idle, the answers to what never
 * becomes a request (parse errors, CONNECT, other upgrades than
 * WebSocket), and WebSocket upgrades handed to the request path.
 */
export class Http1Edges {
  constructor(
    server: EdgeServer,
    private readonly handler: RequestHandler,
    private readonly log: Logger,
    private readonly secure: boolean,
  ) {
    // Node would destroy an idle connection when its timer fires; see closeIfStillIdle.
    server.on('timeout', (socket: Socket) => setImmediate(closeIfStillIdle, socket, socket.bytesRead));
    // Accept errors (EMFILE when out of descriptors) must not become an uncaught exception.
    server.on('error', (err: Error) => this.log.error({ err: err.message }, 'listener error'));
    server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => this.onUpgrade(req, socket, head));
    server.on('clientError', (err: NodeJS.ErrnoException, socket: Duplex) => this.onClientError(err, socket));
    // A forward proxy's method: this gateway tunnels nothing (nginx answers 400 too;
    // README, the gateway's own answers).
    server.on('connect', (req: IncomingMessage, socket: Duplex | ServerResponse) => {
      // On the HTTPS listener an HTTP/2 CONNECT stream comes here too, with a response object.
      if (isHttp2(req)) {
        answer(socket as ServerResponse, 400, 'bad request: CONNECT is not supported');
        return;
      }
      socket.on('error', noop);
      answerOnSocket(socket as Duplex, 400, 'bad request: CONNECT is not supported');
    });
  }

  private onUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void {
    socket.on('error', noop);
    if (isWebSocketUpgrade(req)) this.handler.handleUpgrade(req, socket, head, this.secure);
    else this.serveIgnoringUpgrade(req, socket, head);
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
    this.handler.handleRequest(req, res, this.secure);
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
}

/** Listens; the promise rejects with the listen error (address in use) rather than an 'error' event. */
export function listenOn(server: NetServer, address: ListenAddress): Promise<AddressInfo> {
  return new Promise((resolve, reject) => {
    const onError = (err: Error): void => reject(err);
    server.once('error', onError);
    server.listen(address.port, address.host, () => {
      server.off('error', onError);
      resolve(server.address() as AddressInfo);
    });
  });
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

function noop(): void {}

function isWebSocketUpgrade(req: IncomingMessage): boolean {
  return (
    req.method === 'GET' &&
    (req.headers.upgrade ?? '')
      .toLowerCase()
      .split(',')
      .some((p) => p.trim() === 'websocket')
  );
}
