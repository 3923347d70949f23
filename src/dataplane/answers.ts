import type { IncomingMessage, ServerResponse } from 'node:http';
import { STATUS_CODES } from 'node:http';
import type { Duplex } from 'node:stream';
import type { UpstreamFailureKind } from './engine.js';

/**
 * The gateway's own answers (README, the gateway's own answers): short plain text naming the app or
 * host. When the response has already started there is nothing honest to
 * send, so the connection is cut and the client sees a truncated response.
 */
export function answer(res: ServerResponse, status: number, message: string, headers?: Record<string, string>): void {
  if (res.headersSent || res.destroyed) {
    res.destroy();
    return;
  }
  const body = `${message}\n`;
  res.statusCode = status;
  res.setHeader('content-type', 'text/plain; charset=utf-8');
  res.setHeader('content-length', Buffer.byteLength(body));
  res.setHeader('cache-control', 'no-store');
  if (headers) for (const [key, value] of Object.entries(headers)) res.setHeader(key, value);
  res.end(res.req.method === 'HEAD' ? undefined : body);
}

const HTML_ESCAPES: Record<string, string> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' };

/**
 * The maintenance answer for a browser (README, Pause and maintenance): 503
 * and the message, escaped, in a page that needs nothing else; the caller
 * gives the headers (Retry-After).
 */
export function maintenancePage(res: ServerResponse, message: string, headers: Readonly<Record<string, string>>): void {
  if (res.headersSent || res.destroyed) {
    res.destroy();
    return;
  }
  const text = message.replace(/[&<>"']/g, (c) => HTML_ESCAPES[c] as string);
  const body =
    '<!doctype html>\n<html lang="en"><head><meta charset="utf-8">' +
    '<meta name="viewport" content="width=device-width, initial-scale=1">' +
    `<title>${text}</title><style>body{font-family:system-ui,sans-serif;margin:15vh auto;max-width:36em;` +
    `padding:0 1em;color:#222}h1{font-size:1.4em;font-weight:600}</style></head>` +
    `<body><h1>${text}</h1><p>Please try again in a little while.</p></body></html>\n`;
  res.statusCode = 503;
  res.setHeader('content-type', 'text/html; charset=utf-8');
  res.setHeader('content-length', Buffer.byteLength(body));
  res.setHeader('cache-control', 'no-store');
  for (const [key, value] of Object.entries(headers)) res.setHeader(key, value);
  res.end(res.req.method === 'HEAD' ? undefined : body);
}

/** The same answer on a raw socket: for parse errors and failed WebSocket upgrades. */
export function answerOnSocket(
  socket: Duplex,
  status: number,
  message: string,
  headers?: Record<string, string>,
): void {
  if (!socket.writable) {
    socket.destroy();
    return;
  }
  const body = `${message}\n`;
  let extra = '';
  if (headers) for (const [key, value] of Object.entries(headers)) extra += `${key}: ${value}\r\n`;
  socket.end(
    `HTTP/1.1 ${status} ${STATUS_CODES[status] ?? ''}\r\n` +
      'content-type: text/plain; charset=utf-8\r\n' +
      `content-length: ${Buffer.byteLength(body)}\r\n` +
      extra +
      'connection: close\r\n\r\n' +
      body,
  );
}

/** The gateway's answer when a child failed a request before its response started. */
export function failureAnswer(app: string, kind: UpstreamFailureKind, timeoutMs: number): [number, string] {
  if (kind === 'timeout') return [504, `gateway timeout: app "${app}" sent no response within ${timeoutMs} ms`];
  if (kind === 'protocol') return [502, `bad gateway: app "${app}" sent an invalid response`];
  return [502, `bad gateway: app "${app}" refused or reset the connection`];
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
export function requestProblem(req: IncomingMessage): { status: number; message: string } | null {
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
  if (count === 0 && req.httpVersionMinor >= 1)
    return { status: 400, message: 'bad request: HTTP/1.1 request without a Host header' };
  return null;
}
