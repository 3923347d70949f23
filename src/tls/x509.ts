import { createPrivateKey, X509Certificate } from 'node:crypto';

/** What the gateway needs to know of a certificate: plain data, also shown by the admin API. */
export interface CertificateFacts {
  /** DNS names it covers, lower case (the subject's CN when it has no subjectAltName). */
  names: string[];
  /** ISO-8601. */
  notBefore: string;
  notAfter: string;
  issuer: string;
  serial: string;
}

const PEM_CERT = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g;

/** Thrown for PEM text that is not what it should be; the message says what is wrong. */
export class CertificateFormatError extends Error {
  override readonly name = 'CertificateFormatError';
}

/** The leaf (first) certificate of a PEM chain. */
export function leafCertificate(pem: string): X509Certificate {
  const first = pem.match(PEM_CERT)?.[0];
  if (first === undefined) throw new CertificateFormatError('no PEM certificate in it');
  try {
    return new X509Certificate(first);
  } catch (err) {
    throw new CertificateFormatError(`not a valid certificate: ${(err as Error).message}`);
  }
}

export function certificateFacts(cert: X509Certificate): CertificateFacts {
  return {
    names: certificateNames(cert),
    // validFrom/validTo are strings in Node 20 ("Dec  2 03:43:32 2026 GMT"), which Date parses.
    notBefore: new Date(cert.validFrom).toISOString(),
    notAfter: new Date(cert.validTo).toISOString(),
    issuer: issuerName(cert),
    serial: cert.serialNumber,
  };
}

/** The issuer as a person reads it: its organisation and common name. */
function issuerName(cert: X509Certificate): string {
  const fields = new Map<string, string>();
  for (const line of cert.issuer.split('\n')) {
    const eq = line.indexOf('=');
    if (eq > 0) fields.set(line.slice(0, eq), line.slice(eq + 1));
  }
  const parts = [fields.get('O'), fields.get('CN')].filter((p): p is string => p !== undefined && p !== '');
  return parts.length > 0 ? [...new Set(parts)].join(', ') : cert.issuer.replace(/\n/g, ', ');
}

export function certificateNames(cert: X509Certificate): string[] {
  const san = cert.subjectAltName;
  if (san) {
    const names: string[] = [];
    for (const entry of san.split(', ')) {
      if (entry.startsWith('DNS:')) names.push(entry.slice(4).replace(/^"|"$/g, '').toLowerCase());
    }
    return names;
  }
  const cn = /(?:^|\n)CN=([^\n]+)/.exec(cert.subject)?.[1];
  return cn ? [cn.toLowerCase()] : [];
}

/**
 * Whether a certificate name covers a host by X.509 rules (RFC 6125): a
 * `*.` name covers exactly one label, so `*.example.com` covers
 * `a.example.com`, not `example.com` nor `a.b.example.com`. A routing
 * wildcard host (`*.example.com`) is covered only by the same wildcard.
 */
export function nameCovers(name: string, host: string): boolean {
  if (name === host) return true;
  if (!name.startsWith('*.') || host.startsWith('*.')) return false;
  const dot = host.indexOf('.');
  return dot > 0 && host.slice(dot) === name.slice(1);
}

export function coversHost(names: readonly string[], host: string): boolean {
  return names.some((name) => nameCovers(name, host));
}

/** Whether the PEM private key is the certificate's; a CertificateFormatError when it is not a key. */
export function keyMatches(cert: X509Certificate, keyPem: string): boolean {
  let key: ReturnType<typeof createPrivateKey>;
  try {
    key = createPrivateKey(keyPem);
  } catch (err) {
    throw new CertificateFormatError(`not a PEM private key: ${(err as Error).message}`);
  }
  return cert.checkPrivateKey(key);
}
