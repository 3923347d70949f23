// Sample app A: a plain node:http program. The gateway gives it PORT and HOST.
import http from 'node:http';

const greeting = process.env.GREETING ?? 'Hello';

const server = http.createServer((req, res) => {
  if (req.url === '/health') {
    res.writeHead(200, { 'content-type': 'text/plain' });
    res.end('ok\n');
    return;
  }
  res.writeHead(200, { 'content-type': 'text/plain' });
  res.end(`${greeting} from ${process.env.NANO_APP} (pid ${process.pid}), you asked for ${req.url}\n`);
});

server.listen(Number(process.env.PORT), process.env.HOST, () => {
  console.log(`app-a listening on ${process.env.HOST}:${process.env.PORT}`);
});

process.on('SIGTERM', () => server.close(() => process.exit(0)));
