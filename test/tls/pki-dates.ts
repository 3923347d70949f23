/**
 * Leaf certificates with an exact validity window, for tests that run on
 * fake time: `openssl x509 -req` (OpenSSL 3.0) only takes `-days` from now,
 * so these are signed by `openssl ca` with `-startdate`/`-enddate`. The
 * leaf has the same shape as pki.ts's `makeLeaf` (ECDSA P-256, a DNS SAN per
 * name, serverAuth), signed by a CA from `makeCa`.
 */
import { execFileSync } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import type { Ca, Leaf } from './pki.js';

export interface DatedLeafOptions {
  /** DNS names (`*.example.test` allowed); the first is also the CN. */
  names: string[];
  /** Whole seconds (X.509 keeps no milliseconds); years 1950–2049. */
  notBefore: Date;
  notAfter: Date;
  /** Base name of the files: `<file>.crt` and `<file>.key` (default: from the first name). */
  file?: string;
}

function openssl(args: string[], cwd: string): void {
  try {
    execFileSync('openssl', args, { cwd, stdio: ['ignore', 'ignore', 'pipe'] });
  } catch (error) {
    const stderr = (error as { stderr?: Buffer }).stderr?.toString() ?? '';
    throw new Error(`openssl ${args[0]} failed: ${stderr || String(error)}`);
  }
}

/** `YYMMDDHHMMSSZ`, the UTCTime form `openssl ca -startdate/-enddate` takes. */
export function utcTime(date: Date): string {
  const ms = date.getTime();
  if (ms % 1000 !== 0) throw new Error(`${date.toISOString()}: certificates keep whole seconds only`);
  const year = date.getUTCFullYear();
  if (year < 1950 || year > 2049) throw new Error(`${date.toISOString()}: UTCTime covers 1950-2049 only`);
  const two = (n: number) => String(n).padStart(2, '0');
  return (
    two(year % 100) +
    two(date.getUTCMonth() + 1) +
    two(date.getUTCDate()) +
    two(date.getUTCHours()) +
    two(date.getUTCMinutes()) +
    two(date.getUTCSeconds()) +
    'Z'
  );
}

function fileSafe(name: string): string {
  return name.replace(/^\*\./, 'wildcard.').replace(/[^A-Za-z0-9._-]/g, '_');
}

/** A leaf valid from `notBefore` to `notAfter` exactly, as `<dir>/<file>.crt` and `.key`. */
export function makeLeafValid(ca: Ca, dir: string, options: DatedLeafOptions): Leaf {
  const { names, notBefore, notAfter } = options;
  if (names.length === 0) throw new Error('makeLeafValid: at least one name is needed');
  const base = path.join(dir, fileSafe(options.file ?? names[0]!));
  const certFile = `${base}.crt`;
  const keyFile = `${base}.key`;
  const scratch = mkdtempSync(path.join(dir, '.openssl-ca-'));
  try {
    const csrFile = path.join(scratch, 'leaf.csr');
    const configFile = path.join(scratch, 'ca.cnf');
    writeFileSync(path.join(scratch, 'index.txt'), '');
    writeFileSync(path.join(scratch, 'serial'), '01\n');
    writeFileSync(
      configFile,
      [
        '[ca]',
        'default_ca = test_ca',
        '[test_ca]',
        `database = ${path.join(scratch, 'index.txt')}`,
        `new_certs_dir = ${scratch}`,
        // Read by `openssl ca` even with -rand_serial, which picks the serial itself.
        `serial = ${path.join(scratch, 'serial')}`,
        'default_md = sha256',
        'policy = any_name',
        'unique_subject = no',
        'copy_extensions = none',
        'email_in_dn = no',
        '[any_name]',
        'commonName = supplied',
        '[leaf]',
        'basicConstraints = critical,CA:FALSE',
        'keyUsage = critical,digitalSignature',
        'extendedKeyUsage = serverAuth',
        `subjectAltName = ${names.map((n) => `DNS:${n}`).join(',')}`,
        'subjectKeyIdentifier = hash',
        'authorityKeyIdentifier = keyid',
        '',
      ].join('\n'),
    );
    openssl(
      [
        'req',
        '-new',
        '-newkey',
        'ec',
        '-pkeyopt',
        'ec_paramgen_curve:prime256v1',
        '-nodes',
        '-keyout',
        keyFile,
        '-out',
        csrFile,
        '-subj',
        `/CN=${names[0]!}`,
      ],
      scratch,
    );
    openssl(
      [
        'ca',
        '-batch',
        '-notext',
        '-rand_serial',
        '-config',
        configFile,
        '-cert',
        ca.certFile,
        '-keyfile',
        ca.keyFile,
        '-in',
        csrFile,
        '-out',
        certFile,
        '-extensions',
        'leaf',
        '-startdate',
        utcTime(notBefore),
        '-enddate',
        utcTime(notAfter),
      ],
      scratch,
    );
  } finally {
    rmSync(scratch, { recursive: true, force: true });
  }
  const certPem = readFileSync(certFile, 'utf8');
  const cert = new X509Certificate(certPem);
  if (Date.parse(cert.validFrom) !== notBefore.getTime() || Date.parse(cert.validTo) !== notAfter.getTime()) {
    throw new Error(
      `makeLeafValid: asked ${notBefore.toISOString()}..${notAfter.toISOString()}, got ${cert.validFrom}..${cert.validTo}`,
    );
  }
  return { certFile, keyFile, certPem, keyPem: readFileSync(keyFile, 'utf8'), serial: cert.serialNumber };
}
