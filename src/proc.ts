import { closeSync, openSync, readSync } from 'node:fs';

/** VmRSS of a /proc status text, in bytes; 0 when absent. */
function parseVmRss(status: string): number {
  const match = /^VmRSS:\s+(\d+)\s+kB/m.exec(status);
  return match ? Number(match[1]) * 1024 : 0;
}

const STATUS_BUFFER = Buffer.alloc(8192);

/**
 * A child's RSS, read every second by the memory watchdog (README, Memory
 * watchdog) with one `pread` of its /proc status kept open: no open and
 * close per sample, and an fd that refers to that process only, so a
 * reused pid is never measured by mistake.
 */
export class RssProbe {
  private fd: number | null = null;
  private failed = false;

  constructor(private readonly pid: number) {}

  /** Bytes; 0 when it cannot be read (not Linux, or the process is gone). */
  read(): number {
    if (this.failed) return 0;
    try {
      this.fd ??= openSync(`/proc/${this.pid}/status`, 'r');
      const n = readSync(this.fd, STATUS_BUFFER, 0, STATUS_BUFFER.length, 0);
      return parseVmRss(STATUS_BUFFER.toString('latin1', 0, n));
    } catch {
      this.close();
      this.failed = true;
      return 0;
    }
  }

  close(): void {
    if (this.fd !== null) {
      try {
        closeSync(this.fd);
      } catch {
        // Already closed: nothing to free.
      }
      this.fd = null;
    }
  }
}
