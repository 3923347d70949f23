// Sample app B: answers JSON, runs as two instances behind the gateway.
import http from 'node:http';

const server = http.createServer((req, res) => {
  if (req.url === '/health') {
    res.writeHead(200, { 'content-type': 'text/plain' });
    res.end('ok\n');
    return;
  }
  const body = JSON.stringify({
    app: process.env.NANO_APP,
    pid: process.pid,
    path: req.url,
    forwardedFor: req.headers['x-forwarded-for'] ?? null,
  });
  res.writeHead(200, { 'content-type': 'application/json' });
  res.end(`${body}\n`);
});

server.listen(Number(process.env.PORT), process.env.HOST, () => {
  console.log(`app-b listening on ${process.env.HOST}:${process.env.PORT}`);
});

process.on('SIGTERM', () => server.close(() => process.exit(0)));
