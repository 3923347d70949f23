import type { CertificateJson } from '../wire.js';
import { type AdminTarget, adminRequest, CliError, errorMessage } from './admin-client.js';
import { formatTable } from './table.js';

/** `nano-gateway certs`: one line per host from GET /admin/certificates (README, HTTPS). */
export async function runCerts(admin: AdminTarget): Promise<number> {
  const reply = await adminRequest(admin, 'GET', '/admin/certificates');
  if (reply.status !== 200) throw new CliError(errorMessage(reply));
  const certificates = (reply.body as { certificates: CertificateJson[] }).certificates;
  if (certificates.length === 0) {
    process.stdout.write('no certificates: add a [tls] table to serve HTTPS\n');
    return 0;
  }
  const day = (iso: string | null): string => (iso ? iso.replace('T', ' ').slice(0, 16) : '-');
  const rows = certificates.map((c) => [
    c.host,
    c.app,
    c.source,
    c.state,
    day(c.not_after),
    day(c.renew_at),
    c.last_error ?? '-',
  ]);
  process.stdout.write(formatTable(['HOST', 'APP', 'SOURCE', 'STATE', 'EXPIRES', 'RENEWS', 'ERROR'], rows));
  return 0;
}
