import type { IncomingMessage, ServerResponse } from 'node:http';
import http2, { type Http2SecureServer, type ServerHttp2Session } from 'node:http2';
import type { AddressInfo, Socket } from 'node:net';
import type { TLSSocket } from 'node:tls';
import type { ListenAddress } from '../addresses.js';
import type { Logger } from '../log.js';
import { CertificateIndex, ContextCache } from './certificate-index.js';
import type { CertificateSetData } from './data-plane.js';
import { type EdgeServer, Http1Edges, KEEP_ALIVE_TIMEOUT_MS, listenOn, type RequestHandler } from './listener.js';

export interface HttpsListenerOptions {
  handler: RequestHandler;
  logger: Logger;
  /** Idle client connections (HTTP/1.1 keep-alive, HTTP/2 sessions) close after this; default 75 s. */
  keepAliveTimeoutMs?: number;
}

/** nginx's `http2_max_concurrent_streams`: one client cannot hold unbounded work in one connection. */
const MAX_CONCURRENT_STREAMS = 128;

/**
 * The HTTPS listener (README, HTTPS): one port, HTTP/2 and HTTP/1.1 by
 * ALPN, beside the plain listener and with the same request handler. SNI
 * picks the certificate from an index that is swapped whole when the
 * control plane publishes certificates, so a new certificate serves the
 * next handshake with no restart; connections already open keep theirs.
 */
export class HttpsListener {
  readonly server: Http2SecureServer;
  private readonly log: Logger;
  private readonly contexts: ContextCache;
  private index: CertificateIndex;
  /** The PEM pair of the certificate for handshakes without SNI, as last set. */
  private defaultPair: { cert: string; key: string } | undefined;
  private readonly sessions = new Set<ServerHttp2Session>();
  /** Every TLS connection, so that a shutdown can cut HTTP/1.1 and WebSocket ones too. */
  private readonly sockets = new Set<TLSSocket>();
  private readonly keepAliveTimeoutMs: number;
  private closing = false;

  constructor(options: HttpsListenerOptions) {
    this.log = options.logger;
    this.keepAliveTimeoutMs = options.keepAliveTimeoutMs ?? KEEP_ALIVE_TIMEOUT_MS;
    this.contexts = new ContextCache((err) => this.log.error({ err: err.message }, 'certificate refused by OpenSSL'));
    this.index = CertificateIndex.empty(this.contexts);
    const handler = options.handler;
    this.server = http2.createSecureServer(
      {
        allowHTTP1: true,
        // ALPN: h2 first, so that browsers and curl speak HTTP/2; others fall back to HTTP/1.1.
        ALPNProtocols: ['h2', 'http/1.1'],
        SNICallback: (servername, done) => done(null, this.index.find(sniName(servername))),
        settings: { maxConcurrentStreams: MAX_CONCURRENT_STREAMS },
      },
      (req, res) => handler.handleRequest(req as unknown as IncomingMessage, res as unknown as ServerResponse, true),
    );
    // The HTTP/1.1 side is Node's http server code, which reads these off the server (none is set for it).
    const h1 = this.server as unknown as { keepAliveTimeout: number; headersTimeout: number; requestTimeout: number };
    h1.keepAliveTimeout = this.keepAliveTimeoutMs;
    h1.headersTimeout = 20_000;
    h1.requestTimeout = 300_000;
    new Http1Edges(this.server as unknown as EdgeServer, handler, this.log, true);
    this.server.on('session', (session: ServerHttp2Session) => this.onSession(session));
    this.server.on('secureConnection', (socket: TLSSocket) => {
      this.sockets.add(socket);
      socket.once('close', () => this.sockets.delete(socket));
    });
    // A handshake that fails (no certificate for the name, a client that gives up) is the client's problem.
    this.server.on('tlsClientError', (err: NodeJS.ErrnoException, socket: TLSSocket) => {
      this.log.debug({ err: err.message, code: err.code, sni: socket.servername || null }, 'TLS handshake failed');
    });
  }

  /** The certificates for new handshakes, swapped in one step. */
  setCertificates(set: CertificateSetData): void {
    const index = new CertificateIndex(set, this.contexts);
    this.index = index;
    const pair = index.defaultPair;
    if (pair && (pair.cert !== this.defaultPair?.cert || pair.key !== this.defaultPair?.key)) {
      // Handshakes without SNI get the server's own context; SNICallback is not asked for them.
      this.server.setSecureContext({ cert: pair.cert, key: pair.key });
      this.defaultPair = pair;
    } else if (!pair && this.defaultPair) {
      // No default any more (removed, expired): such handshakes fail rather than get a stale certificate.
      this.server.setSecureContext({});
      this.defaultPair = undefined;
    }
  }

  /** Whether a certificate covers this host name (lower case), for the plain listener's redirect. */
  covers(host: string): boolean {
    return this.index.covers(host);
  }

  listen(address: ListenAddress): Promise<AddressInfo> {
    return listenOn(this.server, address);
  }

  /** New connections are refused; HTTP/2 sessions get GOAWAY and end after their streams; idle HTTP/1.1 closes. */
  stopAccepting(): void {
    this.closing = true;
    this.server.close();
    for (const session of this.sessions) session.close();
    (this.server as unknown as { closeIdleConnections?: () => void }).closeIdleConnections?.();
  }

  /** Cuts whatever is left. */
  closeAll(): void {
    for (const session of this.sessions) session.destroy();
    for (const socket of this.sockets) socket.destroy();
  }

  private onSession(session: ServerHttp2Session): void {
    if (this.closing) {
      session.close();
      return;
    }
    this.sessions.add(session);
    session.once('close', () => this.sessions.delete(session));
    session.on('error', (err: Error) => this.log.debug({ err: err.message }, 'HTTP/2 session error'));
    // An idle session goes, as an idle HTTP/1.1 connection does; close() lets open streams finish.
    session.setTimeout(this.keepAliveTimeoutMs, () => session.close());
    (session.socket as Socket).on('error', noop);
  }
}

/** SNI names compare as host names do: lower case, no trailing dot. */
function sniName(servername: string): string {
  const lower = servername.toLowerCase();
  return lower.endsWith('.') ? lower.slice(0, -1) : lower;
}

function noop(): void {}
