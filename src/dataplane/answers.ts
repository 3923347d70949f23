import type { ServerResponse } from 'node:http';
import { STATUS_CODES } from 'node:http';
import type { Duplex } from 'node:stream';

/**
 * The gateway's own answers (SPEC §7): short plain text naming the app or
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
