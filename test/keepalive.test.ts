/**
 * Client keep-alive connections and a busy event loop (README, Reliability):
 * in process, with a real upstream on loopback. A request that reaches an
 * idle connection just before its idle timer is due, while the gateway's
 * event loop is blocked past that moment (a reload starting children, a GC
 * pause), must be served: libuv runs due timers before it reads sockets,
 * and Node's default of destroying the socket there reset the connection
 * with the request unread (ECONNRESET, no response).
 */
import assert from 'node:assert/strict';
import http from 'node:http';
import net from 'node:net';
import { after, before, test } from 'node:test';
import { pino } from 'pino';
import { engineNamed, LocalDataPlane } from '../src/dataplane/local-data-plane.js';

const KEEP_ALIVE_MS = 400;

let upstream: http.Server;
let proxy: LocalDataPlane;
let port = 0;

before(async () => {
  upstream = http.createServer((req, res) => res.end(`upstream saw ${req.url}`));
  await new Promise<void>((r) => upstream.listen(0, '127.0.0.1', r));
  const upstreamPort = (upstream.address() as net.AddressInfo).port;
  const logger = pino({ level: 'silent' });
  proxy = new LocalDataPlane({
    logger,
    accessLogger: logger,
    settings: {
      upstreamTimeoutMs: 5_000,
      queueTimeoutMs: 1_000,
      trustedProxies: [],
      accessLog: false,
      redirectHttp: false,
      hstsMaxAge: 0,
    },
    engine: engineNamed(undefined),
    keepAliveTimeoutMs: KEEP_ALIVE_MS,
  });
  proxy.publish({
    version: 1,
    defaultApp: 'app',
    apps: [
      {
        name: 'app',
        hosts: ['app.test'],
        upstreams: [{ id: 'app#1', host: '127.0.0.1', port: upstreamPort }],
        tls: false,
      },
    ],
  });
  port = (await proxy.listen({ host: '127.0.0.1', port: 0 })).port;
});

after(async () => {
  await proxy.close(0);
  upstream.close();
});

/** Blocks this process's event loop, as a long synchronous task would. */
function blockEventLoop(ms: number): void {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    // busy
  }
}

test('a request arriving while the idle deadline passes in a blocked event loop is answered, not reset', async () => {
  const socket = net.connect(port, '127.0.0.1');
  let data = '';
  let error: string | null = null;
  socket.setEncoding('utf8');
  socket.on('data', (d: string) => (data += d));
  socket.on('error', (err: NodeJS.ErrnoException) => (error = err.code ?? err.message));
  await new Promise((r) => socket.once('connect', r));
  socket.write('GET /first HTTP/1.1\r\nHost: app.test\r\n\r\n');
  for (let i = 0; i < 200 && !data.includes('upstream saw /first'); i++) await new Promise((r) => setTimeout(r, 10));
  assert.match(data, /^HTTP\/1\.1 200/);
  data = '';
  // Just before the idle deadline, the next request goes out; then the loop is blocked past the
  // deadline (Node's is keepAliveTimeout, or a second more since Node 20.19), so the gateway's
  // idle timer and the request's bytes are both pending when it runs again.
  await new Promise((r) => setTimeout(r, KEEP_ALIVE_MS - 150));
  socket.write('GET /second HTTP/1.1\r\nHost: app.test\r\n\r\n');
  blockEventLoop(KEEP_ALIVE_MS + 1_400);
  for (let i = 0; i < 200 && !data.includes('upstream saw /second') && error === null; i++)
    await new Promise((r) => setTimeout(r, 10));
  assert.equal(error, null, 'the connection was not reset');
  assert.match(data, /^HTTP\/1\.1 200/, `the second request was answered: ${JSON.stringify(data)}`);
  assert.match(data, /upstream saw \/second/);
  socket.destroy();
});

test('an idle connection with nothing arriving is still closed by the gateway', async () => {
  const socket = net.connect(port, '127.0.0.1');
  let closed = false;
  socket.on('close', () => (closed = true));
  socket.on('error', () => {});
  socket.resume();
  await new Promise((r) => socket.once('connect', r));
  socket.write('GET /once HTTP/1.1\r\nHost: app.test\r\n\r\n');
  for (let i = 0; i < 500 && !closed; i++) await new Promise((r) => setTimeout(r, 10));
  assert.ok(closed, 'closed after the idle timeout');
});
