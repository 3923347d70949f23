// The soak's app: a plain node:http program, like the sample apps. It
// answers "NAME VERSION PID" with Content-Length, optionally after DELAY_MS,
// and closes gracefully on SIGTERM as a well-behaved app does. GET /grow?mb=N
// makes it hold N MiB more.
//   KEEPALIVE_MS: the server's keepAliveTimeout (Node's default: 5000)
import http from 'node:http';

const body = Buffer.from(`${process.env.NANO_APP} ${process.env.VERSION ?? '-'} ${process.pid}\n`);
const headers = { 'content-type': 'text/plain', 'content-length': String(body.length) };
const delayMs = Number(process.env.DELAY_MS ?? 0);

/** What GET /grow?mb=N made this process hold (the soak's --kind memory). */
const held = [];

const server = http.createServer((req, res) => {
  if (req.url?.startsWith('/grow?mb=')) {
    // Filled, so the pages are resident and count in the RSS the watchdog reads.
    held.push(Buffer.alloc(Number(req.url.slice('/grow?mb='.length)) * 2 ** 20, 1));
    res.writeHead(200, { 'content-type': 'text/plain', 'content-length': '3' });
    res.end('ok\n');
    return;
  }
  if (req.url === '/health') {
    res.writeHead(200, { 'content-type': 'text/plain', 'content-length': '3' });
    res.end('ok\n');
    return;
  }
  if (delayMs > 0) setTimeout(() => res.writeHead(200, headers).end(body), delayMs);
  else res.writeHead(200, headers).end(body);
});
if (process.env.KEEPALIVE_MS) server.keepAliveTimeout = Number(process.env.KEEPALIVE_MS);
server.listen(Number(process.env.PORT), process.env.HOST ?? '127.0.0.1');

process.on('SIGTERM', () => {
  server.close(() => process.exit(0));
  server.closeIdleConnections();
});
