// Minimal reverse proxies for the benchmark's reference rows: each engine
// with nothing around it, so the gateway's own overhead above its engine is
// visible. Not used by the gateway.
//
//   node scripts/bench/proxies.mjs <kind> <upstream port>
//   kind: undici-dispatch | undici-stream | http-proxy-3 | tcp-pipe
//
// Listens on 127.0.0.1 (any free port) and prints "listening <port>".
import http from 'node:http';
import net from 'node:net';
import { createProxyServer } from 'http-proxy-3';
import { Pool } from 'undici';

const [kind, upstreamPortText] = process.argv.slice(2);
const upstreamPort = Number(upstreamPortText);
const origin = `http://127.0.0.1:${upstreamPort}`;

// Hop-by-hop headers (RFC 9110 §7.6.1), plus transfer-encoding: undici frames bodies itself.
const HOP_BY_HOP = new Set([
  'connection',
  'keep-alive',
  'proxy-connection',
  'te',
  'transfer-encoding',
  'trailer',
  'upgrade',
]);

function requestHeaders(raw) {
  const out = [];
  for (let i = 0; i < raw.length; i += 2) {
    if (!HOP_BY_HOP.has(raw[i].toLowerCase())) out.push(raw[i], raw[i + 1]);
  }
  return out;
}

function hasBody(req) {
  return (
    req.headers['transfer-encoding'] !== undefined ||
    (req.headers['content-length'] !== undefined && req.headers['content-length'] !== '0')
  );
}

function undiciDispatch() {
  const pool = new Pool(origin);
  return http.createServer((req, res) => {
    pool.dispatch(
      {
        origin,
        method: req.method,
        path: req.url,
        headers: requestHeaders(req.rawHeaders),
        body: hasBody(req) ? req : null,
      },
      {
        onConnect(abort) {
          res.once('close', () => {
            if (!res.writableFinished) abort();
          });
        },
        onHeaders(status, raw, resume) {
          const out = [];
          for (let i = 0; i < raw.length; i += 2) {
            const key = raw[i].toString('latin1');
            if (!HOP_BY_HOP.has(key.toLowerCase())) out.push(key, raw[i + 1].toString('latin1'));
          }
          res.writeHead(status, out);
          res.on('drain', resume);
          return true;
        },
        onData(chunk) {
          return res.write(chunk);
        },
        onComplete() {
          res.end();
        },
        onError() {
          if (res.headersSent) res.destroy();
          else {
            res.statusCode = 502;
            res.end();
          }
        },
      },
    );
  });
}

function undiciStream() {
  const pool = new Pool(origin);
  return http.createServer((req, res) => {
    pool.stream(
      { method: req.method, path: req.url, headers: requestHeaders(req.rawHeaders), body: hasBody(req) ? req : null },
      ({ statusCode, headers }) => {
        for (const key of HOP_BY_HOP) delete headers[key];
        res.writeHead(statusCode, headers);
        return res;
      },
      (err) => {
        if (!err) return;
        if (res.headersSent) res.destroy();
        else {
          res.statusCode = 502;
          res.end();
        }
      },
    );
  });
}

function httpProxy3() {
  const agent = new http.Agent({ keepAlive: true, maxSockets: 256 });
  const proxy = createProxyServer({ target: origin, agent });
  proxy.on('error', (_err, _req, res) => {
    if (res && 'writeHead' in res && !res.headersSent) {
      res.writeHead(502);
      res.end();
    }
  });
  return http.createServer((req, res) => proxy.web(req, res));
}

function tcpPipe() {
  return net.createServer((client) => {
    const upstream = net.connect(upstreamPort, '127.0.0.1');
    client.pipe(upstream).pipe(client);
    client.on('error', () => upstream.destroy());
    upstream.on('error', () => client.destroy());
  });
}

const servers = {
  'undici-dispatch': undiciDispatch,
  'undici-stream': undiciStream,
  'http-proxy-3': httpProxy3,
  'tcp-pipe': tcpPipe,
};
const make = servers[kind];
if (!make) {
  console.error(`unknown kind ${kind}; one of ${Object.keys(servers).join(', ')}`);
  process.exit(2);
}
const server = make();
if (server instanceof http.Server) server.keepAliveTimeout = 65_000;
server.listen(0, '127.0.0.1', () => console.log(`listening ${server.address().port}`));
process.on('SIGTERM', () => process.exit(0));
process.on('SIGINT', () => process.exit(0));
