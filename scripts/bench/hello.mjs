// The benchmark's upstream: a trivial node:http app with a 12-byte body and
// Content-Length, the same for every row. Listens on PORT (0: any free port)
// and prints the port it got.
import http from 'node:http';

const body = Buffer.from('hello world\n');
const headers = { 'content-type': 'text/plain', 'content-length': String(body.length) };

const server = http.createServer((req, res) => {
  if (req.url === '/health') {
    res.writeHead(200, headers);
    res.end(body);
    return;
  }
  res.writeHead(200, headers);
  res.end(body);
});
server.keepAliveTimeout = 65_000;
server.listen(Number(process.env.PORT ?? 0), process.env.HOST ?? '127.0.0.1', () => {
  console.log(`listening ${server.address().port}`);
});
process.on('SIGTERM', () => process.exit(0));
