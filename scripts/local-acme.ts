// npm run local-acme [-- --http-port 8080 --out DIR]
//
// A local ACME server for trying automatic HTTPS on one machine (README,
// HTTPS: a worked example): Debian's `pebble` (apt-get install pebble), with
// a DNS responder on loopback that answers 127.0.0.1 for every name, so
// pebble's HTTP-01 checks reach the gateway's plain port. Prints the
// `[tls]` lines to use and writes the root that signs the certificates, for
// curl's --cacert. Runs until Ctrl-C. Not for production.
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { startDnsResponder } from '../test/tls/dns.js';
import { startPebble } from '../test/tls/pebble.js';

const { values } = parseArgs({
  options: { 'http-port': { type: 'string', default: '8080' }, out: { type: 'string', default: 'local-acme' } },
});
const httpPort = Number(values['http-port']);
const out = path.resolve(values.out ?? 'local-acme');
mkdirSync(out, { recursive: true });
const dns = await startDnsResponder();
const pebble = await startPebble({ httpPort, dnsPort: dns.port });
writeFileSync(path.join(out, 'acme-ca.pem'), pebble.caPem);
writeFileSync(path.join(out, 'root.pem'), pebble.issuerRootPem);
const apps = path.relative(out, path.join(import.meta.dirname, '..', 'apps'));
const tls = `[tls]
listen = "127.0.0.1:8443"
acme_directory = "${pebble.directoryUrl}"
acme_ca_file = "acme-ca.pem"
storage = "certs"`;
// The sample apps, each host with its own certificate (no wildcard: HTTP-01 cannot issue one).
writeFileSync(
  path.join(out, 'nano.toml'),
  `# Written by npm run local-acme: the sample apps over HTTPS with certificates from a local pebble.
[gateway]
listen = "127.0.0.1:${httpPort}"

${tls}

[apps.app-a]
hosts = ["app-a.local"]
entry = "${apps}/app-a/server.js"
health_path = "/health"

[apps.app-b]
hosts = ["app-b.local"]
entry = "${apps}/app-b/server.js"
health_path = "/health"
instances = 2
`,
);
process.stdout.write(`pebble is running; it validates HTTP-01 on 127.0.0.1:${httpPort}.

Wrote ${path.join(out, 'nano.toml')} (the sample apps) with:

${tls}

Certificates it issues chain to ${path.join(out, 'root.pem')} (for curl --cacert).
Ctrl-C stops it.
`);
const stop = async (): Promise<void> => {
  await pebble.stop();
  await dns.close();
  process.exit(0);
};
process.once('SIGINT', () => void stop());
process.once('SIGTERM', () => void stop());
setInterval(() => {}, 1 << 30);
