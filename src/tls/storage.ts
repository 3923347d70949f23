import { mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import path from 'node:path';

export interface KeyPair {
  certPem: string;
  keyPem: string;
}

/**
 * The `storage` folder (README, HTTPS: what to back up): per ACME
 * directory, the account key and one certificate and key per host:
 *
 *     storage/acme-v02.api.letsencrypt.org-directory/account.key
 *     storage/acme-v02.api.letsencrypt.org-directory/blog.example.com/cert.pem, key.pem
 *
 * Staging and production certificates never mix, as in certmagic. Files
 * are 0600 in 0700 folders, each written to a temporary file and renamed,
 * so a crash never leaves half a key. One file per host and kind: nothing
 * grows without bound.
 */
export class CertificateStorage {
  readonly dir: string;

  constructor(root: string, directoryUrl: string) {
    this.dir = path.join(root, directoryFolder(directoryUrl));
  }

  readAccountKey(): string | null {
    return readOrNull(path.join(this.dir, 'account.key'));
  }

  writeAccountKey(keyPem: string): void {
    writePrivate(path.join(this.dir, 'account.key'), keyPem);
  }

  read(host: string): KeyPair | null {
    const folder = this.hostFolder(host);
    const certPem = readOrNull(path.join(folder, 'cert.pem'));
    const keyPem = readOrNull(path.join(folder, 'key.pem'));
    return certPem !== null && keyPem !== null ? { certPem, keyPem } : null;
  }

  /** The key first: a certificate on disk always has its key beside it. */
  write(host: string, pair: KeyPair): void {
    const folder = this.hostFolder(host);
    writePrivate(path.join(folder, 'key.pem'), pair.keyPem);
    writePrivate(path.join(folder, 'cert.pem'), pair.certPem);
  }

  private hostFolder(host: string): string {
    // Host names are validated ([a-z0-9.-]); this keeps any other name from leaving the folder.
    return path.join(this.dir, host.replace(/[^a-z0-9.-]/g, '_').replace(/^\.+/, '_'));
  }
}

/** `https://acme-v02.api.letsencrypt.org/directory` → `acme-v02.api.letsencrypt.org-directory`. */
export function directoryFolder(directoryUrl: string): string {
  let name: string;
  try {
    const url = new URL(directoryUrl);
    name = `${url.host}${url.pathname}`;
  } catch {
    name = directoryUrl;
  }
  const folder = name
    .toLowerCase()
    .replace(/[^a-z0-9.]+/g, '-')
    .replace(/^-+|-+$/g, '');
  // Never `.`, `..` or a hidden name: the folder stays inside storage.
  if (folder === '') return 'acme';
  return folder.startsWith('.') ? `acme-${folder}` : folder;
}

function readOrNull(file: string): string | null {
  try {
    return readFileSync(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw err;
  }
}

function writePrivate(file: string, text: string): void {
  mkdirSync(path.dirname(file), { recursive: true, mode: 0o700 });
  const temp = `${file}.${process.pid}.tmp`;
  writeFileSync(temp, text, { mode: 0o600 });
  renameSync(temp, file);
}
