/**
 * TLS and HTTP/2 clients for the HTTPS tests: a bare handshake that reports
 * the certificate the gateway chose, one HTTPS/1.1 request, one HTTP/2
 * request on a session, all trusting only the test CA.
 */
import type http from 'node:http';
import http2 from 'node:http2';
import https from 'node:https';
import tls from 'node:tls';

export interface Handshake {
  /** Upper-case hex, as `X509Certificate.serialNumber` and pki's `Leaf.serial` spell it. */
  serial: string;
  subjectaltname: string;
  /** The chain verified against the CA given (the name is checked separately, by the caller). */
  authorized: boolean;
  alpn: string | false;
}

/**
 * One TLS handshake with 127.0.0.1:port; `servername` undefined or '' sends
 * no SNI. The host name is not checked here (a no-SNI handshake has none),
 * only the chain: `authorized` tells.
 */
export function handshake(
  port: number,
  options: { ca: string; servername?: string; ALPNProtocols?: string[] },
): Promise<Handshake> {
  return new Promise((resolve, reject) => {
    const socket = tls.connect({
      host: '127.0.0.1',
      port,
      ca: options.ca,
      servername: options.servername ?? '',
      rejectUnauthorized: false,
      // The chain only: a handshake without SNI has no name to check.
      checkServerIdentity: () => undefined,
      ...(options.ALPNProtocols ? { ALPNProtocols: options.ALPNProtocols } : {}),
    });
    socket.setTimeout(10_000, () => socket.destroy(new Error('handshake timeout')));
    socket.once('secureConnect', () => {
      const cert = socket.getPeerCertificate();
      resolve({
        serial: cert.serialNumber,
        subjectaltname: cert.subjectaltname ?? '',
        authorized: socket.authorized,
        alpn: socket.alpnProtocol ?? false,
      });
      socket.end();
    });
    socket.once('error', reject);
  });
}

export interface HttpsReply {
  status: number;
  headers: http.IncomingHttpHeaders;
  trailers: NodeJS.Dict<string>;
  body: string;
  raw: Buffer;
  /** The serial of the certificate on the connection that carried it. */
  serial: string;
  /** The request went on a connection the agent had used before. */
  reused: boolean;
  alpn: string | false;
}

export interface HttpsRequestOptions {
  ca: string;
  servername: string;
  host?: string;
  path?: string;
  method?: string;
  headers?: Record<string, string>;
  body?: string | Buffer | Buffer[];
  agent?: https.Agent | false;
  ALPNProtocols?: string[];
}

/** One HTTP/1.1 request over TLS to 127.0.0.1:port; `host` defaults to the servername. */
export function httpsRequest(port: number, options: HttpsRequestOptions): Promise<HttpsReply> {
  return new Promise((resolve, reject) => {
    const req = https.request(
      {
        host: '127.0.0.1',
        port,
        servername: options.servername,
        ca: options.ca,
        path: options.path ?? '/',
        method: options.method ?? 'GET',
        headers: { host: options.host ?? options.servername, ...options.headers },
        agent: options.agent ?? false,
        ...(options.ALPNProtocols ? { ALPNProtocols: options.ALPNProtocols } : {}),
      },
      (res) => {
        const socket = res.socket as tls.TLSSocket;
        const serial = socket.getPeerCertificate().serialNumber;
        const alpn = socket.alpnProtocol ?? false;
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          const raw = Buffer.concat(chunks);
          resolve({
            status: res.statusCode ?? 0,
            headers: res.headers,
            trailers: res.trailers,
            body: raw.toString('utf8'),
            raw,
            serial,
            reused: req.reusedSocket,
            alpn,
          });
        });
        res.on('error', reject);
      },
    );
    req.setTimeout(15_000, () => req.destroy(new Error('client timeout')));
    req.on('error', reject);
    if (Array.isArray(options.body)) {
      for (const chunk of options.body) req.write(chunk);
      req.end();
    } else req.end(options.body);
  });
}

/** An HTTP/2 session with 127.0.0.1:port, SNI `servername`, trusting `ca`; errors are the test's to see. */
export function h2Connect(
  port: number,
  options: { ca: string; servername: string },
): Promise<http2.ClientHttp2Session> {
  return new Promise((resolve, reject) => {
    const session = http2.connect(`https://127.0.0.1:${port}`, { ca: options.ca, servername: options.servername });
    session.once('connect', () => {
      session.off('error', reject);
      // A session error after connect fails the streams on it, which the tests see.
      session.on('error', () => {});
      resolve(session);
    });
    session.once('error', reject);
  });
}

export interface H2Reply {
  status: number;
  headers: http2.IncomingHttpHeaders;
  trailers: http2.IncomingHttpHeaders | null;
  body: string;
  raw: Buffer;
}

/**
 * One request on an HTTP/2 session. `authority` is the `:authority`
 * pseudo-header; a body (chunks written one by one, no content-length) is
 * sent when given.
 */
export function h2Request(
  session: http2.ClientHttp2Session,
  options: {
    authority: string;
    path?: string;
    method?: string;
    headers?: Record<string, string>;
    body?: string | Buffer | Buffer[];
    timeoutMs?: number;
  },
): Promise<H2Reply> {
  return new Promise((resolve, reject) => {
    const stream = session.request({
      ':method': options.method ?? 'GET',
      ':path': options.path ?? '/',
      ':authority': options.authority,
      ':scheme': 'https',
      ...options.headers,
    });
    let headers: http2.IncomingHttpHeaders = {};
    let trailers: http2.IncomingHttpHeaders | null = null;
    const chunks: Buffer[] = [];
    const timer = setTimeout(() => stream.close(http2.constants.NGHTTP2_CANCEL), options.timeoutMs ?? 15_000);
    stream.on('response', (h) => (headers = h));
    stream.on('trailers', (t) => (trailers = t));
    stream.on('data', (c: Buffer) => chunks.push(c));
    stream.on('end', () => {
      clearTimeout(timer);
      const raw = Buffer.concat(chunks);
      resolve({ status: Number(headers[':status']), headers, trailers, body: raw.toString('utf8'), raw });
    });
    stream.on('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    stream.on('close', () => {
      clearTimeout(timer);
      if (stream.rstCode !== http2.constants.NGHTTP2_NO_ERROR && headers[':status'] === undefined)
        reject(new Error(`stream closed with code ${stream.rstCode}, no response`));
    });
    const body = options.body;
    if (body === undefined) stream.end();
    else if (Array.isArray(body)) {
      writeChunks(stream, body).then(
        () => stream.end(),
        (err: Error) => stream.destroy(err),
      );
    } else stream.end(body);
  });
}

/** Writes chunks one after the other, each after the previous one has been taken (backpressure). */
async function writeChunks(stream: http2.ClientHttp2Stream, chunks: Buffer[]): Promise<void> {
  for (const chunk of chunks) {
    if (!stream.write(chunk)) await new Promise<void>((resolve) => stream.once('drain', resolve));
  }
}

/** Closes an HTTP/2 session and waits until it is gone. */
export function h2Close(session: http2.ClientHttp2Session): Promise<void> {
  if (session.closed || session.destroyed) return Promise.resolve();
  return new Promise((resolve) => session.close(() => resolve()));
}
