import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describeValue as describe, type ListenAddress, parseListen } from '../addresses.js';
import { CertificateFormatError, certificateFacts, coversHost, keyMatches, leafCertificate } from '../tls/x509.js';
import { type AppTls, DEFAULTS, type FileCertificate, type TlsSettings } from './schema.js';
import { isTable, type Table, type Validator } from './validator.js';

const TLS_KEYS = new Set([
  'listen',
  'acme_directory',
  'acme_email',
  'acme_ca_file',
  'storage',
  'redirect_http',
  'hsts_max_age',
]);
const FILE_KEYS = new Set(['cert', 'key']);

/** Two years, the most HSTS preload lists ask for, times ten: a bound that catches a typo, not a policy. */
const MAX_HSTS_SECONDS = 630_720_000;

/** The `[tls]` table (README, HTTPS); null when the file has none. */
export function validateTls(v: Validator, raw: unknown, baseDir: string): TlsSettings | null {
  if (raw === undefined) return null;
  const at = ['tls'];
  if (!isTable(raw)) {
    v.fail(at, `expected a table, got ${describe(raw)}`);
    return null;
  }
  v.unknownKeys(raw, TLS_KEYS, at);

  let listen = parseListen(DEFAULTS.tlsListen) as ListenAddress;
  if (raw.listen !== undefined) {
    const parsed = parseListen(raw.listen);
    if (typeof parsed === 'string') v.fail([...at, 'listen'], parsed);
    else listen = parsed;
  }

  let acmeDirectory: string = DEFAULTS.acmeDirectory;
  const directory = v.string(raw, 'acme_directory', at);
  if (directory !== undefined) {
    if (!isHttpUrl(directory))
      v.fail([...at, 'acme_directory'], `expected an https:// (or http://) URL, got ${JSON.stringify(directory)}`);
    else acmeDirectory = directory;
  }

  let acmeEmail: string | null = null;
  const email = v.string(raw, 'acme_email', at);
  if (email !== undefined) {
    if (!/^[^@\s]+@[^@\s]+$/.test(email))
      v.fail([...at, 'acme_email'], `expected an e-mail address, got ${JSON.stringify(email)}`);
    else acmeEmail = email;
  }

  let acmeCa: string | null = null;
  const caFile = v.string(raw, 'acme_ca_file', at);
  if (caFile !== undefined) {
    const file = path.resolve(baseDir, caFile);
    const text = readText(v, [...at, 'acme_ca_file'], file);
    if (text !== undefined) {
      try {
        leafCertificate(text);
        acmeCa = text;
      } catch (err) {
        v.fail([...at, 'acme_ca_file'], `${file}: ${(err as Error).message}`);
      }
    }
  }

  const storageText = v.string(raw, 'storage', at);
  if (storageText === '') v.fail([...at, 'storage'], 'must not be empty');
  const storage = path.resolve(baseDir, storageText || DEFAULTS.storage);

  return {
    listen,
    acmeDirectory,
    acmeEmail,
    acmeCa,
    storage,
    redirectHttp: boolean(v, raw, 'redirect_http', at, true),
    hstsMaxAge: v.wholeNumber(raw, 'hsts_max_age', at, 0, 0, MAX_HSTS_SECONDS),
  };
}

/**
 * An app's `tls` key: "acme" (the default with a `[tls]` table), false, or
 * `{ cert, key }` PEM files, which are read and checked here: the key must
 * be the certificate's and the certificate must cover every host of the
 * app. Wildcard hosts cannot be issued by HTTP-01.
 */
export function validateAppTls(
  v: Validator,
  app: string,
  table: Table,
  hosts: readonly string[],
  baseDir: string,
  tlsTable: boolean,
): { tls: AppTls; file: FileCertificate | null } {
  const at = ['apps', app, 'tls'];
  const raw = table.tls;
  if (!tlsTable) {
    if (raw !== undefined && raw !== false)
      v.fail(at, 'needs a [tls] table: add one to listen for HTTPS (README, HTTPS)');
    return { tls: false, file: null };
  }
  if (raw === false) return { tls: false, file: null };
  if (raw === undefined || raw === 'acme') {
    for (const host of hosts) {
      if (host.startsWith('*.')) {
        v.fail(
          raw === undefined ? ['apps', app, 'hosts'] : at,
          `host "${host}": ACME's HTTP-01 challenge cannot issue a wildcard certificate; ` +
            'give the app tls = { cert, key } files, or tls = false',
        );
      }
    }
    return { tls: 'acme', file: null };
  }
  if (!isTable(raw)) {
    v.fail(at, `expected "acme", false or { cert = "FILE", key = "FILE" }, got ${describe(raw)}`);
    return { tls: false, file: null };
  }
  v.unknownKeys(raw, FILE_KEYS, at);
  const certName = v.string(raw, 'cert', at);
  const keyName = v.string(raw, 'key', at);
  if (raw.cert === undefined) v.fail([...at, 'cert'], 'required: the PEM certificate file (it may hold the chain)');
  if (raw.key === undefined) v.fail([...at, 'key'], 'required: the PEM private key file');
  if (certName === undefined || keyName === undefined) return { tls: false, file: null };
  const certFile = path.resolve(baseDir, certName);
  const keyFile = path.resolve(baseDir, keyName);
  const tls = { cert: certFile, key: keyFile };
  // Every file problem names the hosts it leaves without a certificate (README, HTTPS).
  const forHosts = ` (the certificate for ${hosts.map((h) => `"${h}"`).join(', ') || 'no host'})`;
  const certPem = readText(v, [...at, 'cert'], certFile, forHosts);
  const keyPem = readText(v, [...at, 'key'], keyFile, forHosts);
  if (certPem === undefined || keyPem === undefined) return { tls, file: null };
  let cert: ReturnType<typeof leafCertificate>;
  try {
    cert = leafCertificate(certPem);
  } catch (err) {
    v.fail([...at, 'cert'], `${certFile}: ${(err as Error).message}${forHosts}`);
    return { tls, file: null };
  }
  try {
    if (!keyMatches(cert, keyPem)) {
      v.fail([...at, 'key'], `${keyFile} is not the private key of the certificate in ${certFile}${forHosts}`);
      return { tls, file: null };
    }
  } catch (err) {
    if (!(err instanceof CertificateFormatError)) throw err;
    v.fail([...at, 'key'], `${keyFile}: ${err.message}${forHosts}`);
    return { tls, file: null };
  }
  const facts = certificateFacts(cert);
  const uncovered = hosts.filter((host) => !coversHost(facts.names, host));
  for (const host of uncovered) {
    v.fail(
      [...at, 'cert'],
      `the certificate in ${certFile} does not cover host "${host}" (it covers: ${facts.names.join(', ') || 'no names'})`,
    );
  }
  if (uncovered.length > 0) return { tls, file: null };
  return { tls, file: { app, hosts: [...hosts], certFile, keyFile, certPem, keyPem, facts } };
}

function readText(v: Validator, keyPath: readonly string[], file: string, context = ''): string | undefined {
  try {
    return readFileSync(file, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    const problem = code === 'ENOENT' ? `file not found: ${file}` : `cannot read ${file}: ${(err as Error).message}`;
    v.fail(keyPath, `${problem}${context}`);
    return undefined;
  }
}

function boolean(v: Validator, table: Table, key: string, at: readonly string[], fallback: boolean): boolean {
  const value = table[key];
  if (value === undefined) return fallback;
  if (typeof value === 'boolean') return value;
  v.fail([...at, key], `expected true or false, got ${describe(value)}`);
  return fallback;
}

function isHttpUrl(text: string): boolean {
  try {
    const url = new URL(text);
    return url.protocol === 'https:' || url.protocol === 'http:';
  } catch {
    return false;
  }
}
