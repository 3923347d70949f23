// The benchmark's upstream: a trivial node:http app, the same for every row.
// "/" answers a 12-byte body with Content-Length; "/1m" answers 1 MiB.
// Listens on PORT (0: any free port) and prints the port it got.
import http from 'node:http';

const small = Buffer.from('hello world\n');
const smallHeaders = { 'content-type': 'text/plain', 'content-length': String(small.length) };
const big = Buffer.alloc(1024 * 1024, 97);
const bigHeaders = { 'content-type': 'application/octet-stream', 'content-length': String(big.length) };

const server = http.createServer((req, res) => {
  if (req.url === '/1m') {
    res.writeHead(200, bigHeaders);
    res.end(big);
    return;
  }
  res.writeHead(200, smallHeaders);
  res.end(small);
});
server.keepAliveTimeout = 65_000;
server.listen(Number(process.env.PORT ?? 0), process.env.HOST ?? '127.0.0.1', () => {
  console.log(`listening ${server.address().port}`);
});
process.on('SIGTERM', () => process.exit(0));
