import { formatListen, type ListenAddress } from '../addresses.js';
import type { Logger } from '../log.js';
import type { AdminApi } from './api.js';
import type { MetricsSource } from './metrics.js';
import { AdminServer } from './server.js';

/**
 * The admin listener over the gateway's life (README, `[admin]`): opened at
 * start-up, moved when a reload changes `[admin] listen`, closed at
 * shutdown.
 */
export class AdminEndpoint {
  private server: AdminServer | null = null;
  private address: string | null = null;

  constructor(private readonly options: { api: AdminApi; metrics: MetricsSource; logger: Logger }) {}

  /** Start-up: a failure (address taken) is the caller's to report. */
  async open(listen: ListenAddress | null): Promise<void> {
    if (listen) this.server = await this.listenOn(listen);
  }

  /**
   * A reload that moves `[admin] listen` moves the listener: the new one
   * first (if it cannot listen, the old one stays and a later reload tries
   * again), then the old one closes once its requests are answered. The
   * token applies at once either way.
   */
  async rebind(listen: ListenAddress | null): Promise<void> {
    const wanted = listen ? formatListen(listen) : null;
    if (wanted === this.address) return;
    const old = this.server;
    if (listen) {
      try {
        this.server = await this.listenOn(listen);
      } catch (err) {
        this.options.logger.error(
          { err: (err as Error).message, admin: wanted },
          'admin API could not listen on its new address; keeping the old one',
        );
        return;
      }
    } else {
      this.server = null;
      this.address = null;
      this.options.logger.info('admin API disabled');
    }
    void old?.close({ graceful: true });
  }

  close(): Promise<void> | undefined {
    return this.server?.close();
  }

  private async listenOn(listen: ListenAddress): Promise<AdminServer> {
    const server = new AdminServer({ ...this.options });
    const address = await server.listen(listen);
    const where = formatListen({ host: address.address, port: address.port });
    this.options.logger.info({ admin: `http://${where}` }, `admin API listening on http://${where}`);
    this.address = formatListen(listen);
    return server;
  }
}
