// Minimal HTTPS reverse proxy for the benchmark's TLS reference rows: Node's
// TLS and HTTP/2 stack (HTTP/1.1 too, through allowHTTP1) in front of
// undici's Pool.dispatch with a raw handler, as the undici-dispatch proxy in
// proxies.mjs does for plain HTTP, with nothing around them. Not used by the
// gateway.
//
//   node scripts/bench/tls-proxy.mjs <upstream port> <cert.pem> <key.pem>
//
// Listens on 127.0.0.1 (any free port) and prints "listening <port>".
import { readFileSync } from 'node:fs';
import http2 from 'node:http2';
import { Pool } from 'undici';

const [upstreamPortText, certFile, keyFile] = process.argv.slice(2);
const origin = `http://127.0.0.1:${Number(upstreamPortText)}`;

// Hop-by-hop headers (RFC 9110 §7.6.1), plus transfer-encoding: undici frames
// bodies itself, and an HTTP/2 response throws on any of these.
const HOP_BY_HOP = new Set([
  'connection',
  'keep-alive',
  'proxy-connection',
  'te',
  'transfer-encoding',
  'trailer',
  'upgrade',
]);

/** Request headers for the upstream: no hop-by-hop ones, no HTTP/2 pseudo-headers, Host from :authority. */
function requestHeaders(req) {
  const raw = req.rawHeaders;
  const out = [];
  let host = false;
  for (let i = 0; i < raw.length; i += 2) {
    const key = raw[i];
    if (key.charCodeAt(0) === 58 /* ':' */) continue;
    const lower = key.toLowerCase();
    if (HOP_BY_HOP.has(lower)) continue;
    if (lower === 'host') host = true;
    out.push(key, raw[i + 1]);
  }
  if (!host && req.headers[':authority']) out.push('host', req.headers[':authority']);
  return out;
}

function hasBody(req) {
  return (
    req.headers['transfer-encoding'] !== undefined ||
    (req.headers['content-length'] !== undefined && req.headers['content-length'] !== '0')
  );
}

const pool = new Pool(origin, { keepAliveTimeout: 60_000 });

const server = http2.createSecureServer(
  { key: readFileSync(keyFile), cert: readFileSync(certFile), allowHTTP1: true },
  (req, res) => {
    pool.dispatch(
      {
        origin,
        method: req.method,
        path: req.url,
        headers: requestHeaders(req),
        body: hasBody(req) ? req : null,
      },
      {
        onConnect(abort) {
          res.once('close', () => {
            if (!res.writableFinished) abort();
          });
        },
        onHeaders(status, raw, resume) {
          // An object, not a flat list: Http2ServerResponse.writeHead takes no list in Node 20.
          const headers = {};
          for (let i = 0; i < raw.length; i += 2) {
            const key = raw[i].toString('latin1').toLowerCase();
            if (HOP_BY_HOP.has(key)) continue;
            const value = raw[i + 1].toString('latin1');
            const prev = headers[key];
            headers[key] = prev === undefined ? value : Array.isArray(prev) ? [...prev, value] : [prev, value];
          }
          res.writeHead(status, headers);
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
  },
);
server.listen(0, '127.0.0.1', () => console.log(`listening ${server.address().port}`));
process.on('SIGTERM', () => process.exit(0));
process.on('SIGINT', () => process.exit(0));
