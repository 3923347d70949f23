/**
 * HTTPS clients for the ACME tests: the HTTPS port from the gateway's logs,
 * and one request over HTTP/1.1-over-TLS or HTTP/2 to 127.0.0.1 with SNI
 * and Host (or `:authority`) set to `host`, trusting only `ca`.
 */
import type http from 'node:http';
import http2 from 'node:http2';
import https from 'node:https';
import type tls from 'node:tls';
import type { LogLine } from '../helpers.js';

/** The port of `listening on https://HOST:PORT (HTTP/2 and HTTP/1.1)` in the logs, if it is there yet. */
export function httpsPortOf(logs: readonly LogLine[]): number | undefined {
  const line = logs.find((l) => typeof l.msg === 'string' && l.msg.startsWith('listening on https://'));
  if (!line) return undefined;
  return Number(new URL(String(line.address)).port);
}

export interface TlsRequestOptions {
  port: number;
  /** SNI, and Host (`:authority` on HTTP/2). */
  host: string;
  ca: string | string[];
  path?: string;
  method?: string;
  headers?: Record<string, string>;
  body?: string | Buffer;
  timeoutMs?: number;
}

export interface TlsReply {
  status: number;
  headers: http.IncomingHttpHeaders | http2.IncomingHttpHeaders;
  body: string;
  /** The peer certificate's serial (upper-case hex) and subjectAltName. */
  serial: string;
  subjectaltname: string;
  alpn: string | false;
}

/** One HTTP/1.1 request over TLS (no ALPN offered: HTTP/1.1). */
export function httpsRequest(options: TlsRequestOptions): Promise<TlsReply> {
  return new Promise((resolve, reject) => {
    const req = https.request(
      {
        host: '127.0.0.1',
        port: options.port,
        servername: options.host,
        ca: options.ca,
        path: options.path ?? '/',
        method: options.method ?? 'GET',
        headers: { host: options.host, ...options.headers },
        agent: false,
      },
      (res) => {
        const socket = res.socket as tls.TLSSocket;
        const cert = socket.getPeerCertificate();
        const alpn = socket.alpnProtocol || 'http/1.1';
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () =>
          resolve({
            status: res.statusCode ?? 0,
            headers: res.headers,
            body: Buffer.concat(chunks).toString('utf8'),
            serial: cert.serialNumber,
            subjectaltname: cert.subjectaltname ?? '',
            alpn,
          }),
        );
        res.on('error', reject);
      },
    );
    req.setTimeout(options.timeoutMs ?? 15_000, () => req.destroy(new Error('client timeout')));
    req.on('error', reject);
    req.end(options.body);
  });
}

/** One HTTP/2 request on a session of its own, closed afterwards. */
export function h2Request(options: TlsRequestOptions): Promise<TlsReply> {
  return new Promise((resolve, reject) => {
    const session = http2.connect(`https://127.0.0.1:${options.port}`, { ca: options.ca, servername: options.host });
    const fail = (err: Error): void => {
      session.destroy();
      reject(err);
    };
    session.on('error', fail);
    const timer = setTimeout(() => fail(new Error('client timeout')), options.timeoutMs ?? 15_000);
    const stream = session.request({
      ':method': options.method ?? 'GET',
      ':path': options.path ?? '/',
      ':authority': options.host,
      ...options.headers,
    });
    let headers: http2.IncomingHttpHeaders = {};
    const chunks: Buffer[] = [];
    stream.on('response', (h) => (headers = h));
    stream.on('data', (c: Buffer) => chunks.push(c));
    stream.on('error', fail);
    stream.on('end', () => {
      clearTimeout(timer);
      const socket = session.socket as tls.TLSSocket;
      const cert = socket.getPeerCertificate();
      const reply: TlsReply = {
        status: Number(headers[':status']),
        headers,
        body: Buffer.concat(chunks).toString('utf8'),
        serial: cert.serialNumber,
        subjectaltname: cert.subjectaltname ?? '',
        alpn: session.alpnProtocol ?? false,
      };
      session.close();
      resolve(reply);
    });
    stream.end(options.body);
  });
}
