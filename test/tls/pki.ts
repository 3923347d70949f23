/**
 * Test PKI made with the `openssl` CLI: a self-signed CA, leaf certificates it
 * signs (DNS and IP SANs, wildcards allowed) and stray keys. Everything is
 * ECDSA P-256 and written as PEM files into the directory the caller names.
 */
import { execFileSync } from 'node:child_process';
import { randomBytes, X509Certificate } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { isIP } from 'node:net';
import path from 'node:path';

/** A CA made by `makeCa`. */
export interface Ca {
  certFile: string;
  keyFile: string;
  certPem: string;
}

/** A leaf certificate made by `makeLeaf`. */
export interface Leaf {
  certFile: string;
  keyFile: string;
  certPem: string;
  keyPem: string;
  /** As `X509Certificate.serialNumber` spells it: upper-case hex. */
  serial: string;
}

export interface LeafOptions {
  /** DNS names (`*.example.test` allowed) and IP addresses; the first is also the CN. */
  names: string[];
  /** Validity in days from now (default 30). */
  days?: number;
  /** Base name of the files: `<file>.crt` and `<file>.key` (default: from the first name). */
  file?: string;
}

const EC_KEY = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];

function openssl(args: string[]): void {
  try {
    execFileSync('openssl', args, { stdio: ['ignore', 'ignore', 'pipe'] });
  } catch (error) {
    const stderr = (error as { stderr?: Buffer }).stderr?.toString() ?? '';
    throw new Error(`openssl ${args[0]} failed: ${stderr || String(error)}`);
  }
}

/** A scratch directory inside `dir` for one call's CSR and extension file, removed afterwards. */
function withScratch<T>(dir: string, fn: (scratch: string) => T): T {
  const scratch = mkdtempSync(path.join(dir, '.openssl-'));
  try {
    return fn(scratch);
  } finally {
    rmSync(scratch, { recursive: true, force: true });
  }
}

/** A positive 16-byte serial in the form `-set_serial` takes. */
function randomSerial(): string {
  const bytes = randomBytes(16);
  bytes[0] = (bytes[0]! & 0x7f) | 0x01;
  return `0x${bytes.toString('hex')}`;
}

function fileSafe(name: string): string {
  return name.replace(/^\*\./, 'wildcard.').replace(/[^A-Za-z0-9._-]/g, '_');
}

function subjectName(value: string): string {
  return `/CN=${value.replace(/[/\\]/g, '\\$&')}`;
}

/** A self-signed CA (`basicConstraints CA:TRUE`, `keyUsage keyCertSign`) as `<dir>/<name>.crt` and `.key`. */
export function makeCa(dir: string, name: string, days = 365): Ca {
  const base = path.join(dir, fileSafe(name));
  const certFile = `${base}.crt`;
  const keyFile = `${base}.key`;
  openssl([
    'req',
    '-x509',
    ...EC_KEY,
    '-keyout',
    keyFile,
    '-out',
    certFile,
    '-days',
    String(days),
    '-subj',
    subjectName(name),
    '-set_serial',
    randomSerial(),
    '-addext',
    'basicConstraints=critical,CA:TRUE',
    '-addext',
    'keyUsage=critical,keyCertSign,cRLSign',
    '-addext',
    'subjectKeyIdentifier=hash',
  ]);
  return { certFile, keyFile, certPem: readFileSync(certFile, 'utf8') };
}

/**
 * A server certificate signed by `ca` with a subjectAltName for every name
 * (IP addresses become `IP:` entries) and extendedKeyUsage serverAuth.
 * The same `file` in the same `dir` overwrites the previous pair.
 */
export function makeLeaf(ca: Ca, dir: string, options: LeafOptions): Leaf {
  const { names, days = 30 } = options;
  if (names.length === 0) throw new Error('makeLeaf: at least one name is needed');
  const base = path.join(dir, fileSafe(options.file ?? names[0]!));
  const certFile = `${base}.crt`;
  const keyFile = `${base}.key`;
  const san = names.map((name) => (isIP(name) ? `IP:${name}` : `DNS:${name}`)).join(',');
  withScratch(dir, (scratch) => {
    const csrFile = path.join(scratch, 'leaf.csr');
    const extFile = path.join(scratch, 'leaf.ext');
    writeFileSync(
      extFile,
      [
        'basicConstraints = critical,CA:FALSE',
        'keyUsage = critical,digitalSignature',
        'extendedKeyUsage = serverAuth',
        `subjectAltName = ${san}`,
        'subjectKeyIdentifier = hash',
        'authorityKeyIdentifier = keyid',
        '',
      ].join('\n'),
    );
    openssl(['req', '-new', ...EC_KEY, '-keyout', keyFile, '-out', csrFile, '-subj', subjectName(names[0]!)]);
    openssl([
      'x509',
      '-req',
      '-in',
      csrFile,
      '-CA',
      ca.certFile,
      '-CAkey',
      ca.keyFile,
      '-set_serial',
      randomSerial(),
      '-days',
      String(days),
      '-sha256',
      '-extfile',
      extFile,
      '-out',
      certFile,
    ]);
  });
  const certPem = readFileSync(certFile, 'utf8');
  return {
    certFile,
    keyFile,
    certPem,
    keyPem: readFileSync(keyFile, 'utf8'),
    serial: new X509Certificate(certPem).serialNumber,
  };
}

/** A standalone EC P-256 private key (PKCS#8 PEM) at `<dir>/<file>`, matching no certificate. */
export function makeKey(dir: string, file: string): { keyFile: string; keyPem: string } {
  const keyFile = path.join(dir, file);
  openssl(['genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256', '-out', keyFile]);
  return { keyFile, keyPem: readFileSync(keyFile, 'utf8') };
}
