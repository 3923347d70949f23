import type { AddressInfo } from 'node:net';
import { formatListen, type GatewayConfig, type ListenAddress } from './config/schema.js';
import type { Logger } from './log.js';
import type { EngineFactory } from './proxy/engine.js';
import { ProxyServer } from './proxy/server.js';
import type { RouteTableData } from './routing/table.js';
import { AppSupervisor, type SupervisorContext } from './supervisor/app-supervisor.js';
import { PortAllocator } from './supervisor/ports.js';

export interface GatewayOptions {
  config: GatewayConfig;
  logger: Logger;
  /** `--listen` on the command line wins over `[gateway] listen`. */
  listen?: ListenAddress;
  engine?: EngineFactory;
  accessLog?: boolean;
}

/**
 * The composition root. Data flows one way: config → supervisors start and
 * check children → a route table is built from their ready children and
 * published → the proxy reads the current table per request.
 */
export class Gateway {
  private config: GatewayConfig;
  private readonly log: Logger;
  private readonly proxy: ProxyServer;
  private readonly ports = new PortAllocator();
  private readonly supervisors = new Map<string, AppSupervisor>();
  private readonly supervisorContext: SupervisorContext;
  private readonly listenAddress: ListenAddress;
  private tableVersion = 0;
  private stopping: Promise<void> | null = null;
  address: AddressInfo | null = null;

  constructor(options: GatewayOptions) {
    this.config = options.config;
    this.log = options.logger;
    this.listenAddress = options.listen ?? options.config.gateway.listen;
    this.proxy = new ProxyServer({
      logger: options.logger,
      settings: options.config.gateway,
      ...(options.engine ? { engine: options.engine } : {}),
      accessLog: options.accessLog ?? true,
    });
    this.supervisorContext = {
      logger: options.logger,
      ports: this.ports,
      onServingChange: () => this.publish(),
      drainUpstream: (id, timeoutMs) => this.proxy.drainUpstream(id, timeoutMs),
      drainTimeoutMs: () => this.config.gateway.drainTimeoutMs,
    };
  }

  /** Listens at once (requests for apps not ready yet queue), then starts every app. */
  async start(): Promise<AddressInfo> {
    this.publish();
    this.address = await this.proxy.listen(this.listenAddress);
    const where = formatListen({ host: this.address.address, port: this.address.port });
    this.log.info({ address: `http://${where}`, engine: this.proxy.engineName }, `listening on http://${where}`);
    for (const app of this.config.apps) {
      const isDefault = app.name === this.config.defaultApp;
      this.log.info(
        { app: app.name, hosts: app.hosts, default: isDefault },
        `${app.hosts.join(', ')} -> ${app.name}${isDefault ? ' (default)' : ''}`,
      );
    }
    if (this.config.defaultApp === null) this.log.info('unmatched hosts -> 404');
    for (const app of this.config.apps) {
      const supervisor = new AppSupervisor(app, this.supervisorContext);
      this.supervisors.set(app.name, supervisor);
      supervisor.start();
    }
    return this.address;
  }

  /** Builds the route table from every app's ready children and swaps it in. */
  publish(): void {
    const data: RouteTableData = {
      version: ++this.tableVersion,
      defaultApp: this.config.defaultApp,
      apps: this.config.apps.map((app) => ({
        name: app.name,
        hosts: app.hosts,
        upstreams: this.supervisors.get(app.name)?.servingUpstreams() ?? [],
      })),
    };
    this.proxy.publish(data);
  }

  get currentConfig(): GatewayConfig {
    return this.config;
  }

  appSupervisors(): AppSupervisor[] {
    return this.config.apps.map((app) => this.supervisors.get(app.name)).filter((s): s is AppSupervisor => s !== undefined);
  }

  /**
   * SIGTERM/SIGINT: stop accepting, let in-flight requests finish (up to
   * drain_timeout_ms), then stop every child (SIGTERM, SIGKILL after
   * kill_timeout_ms).
   */
  stop(): Promise<void> {
    this.stopping ??= (async () => {
      this.log.info('shutting down: finishing in-flight requests');
      await this.proxy.close(this.config.gateway.drainTimeoutMs);
      await Promise.all([...this.supervisors.values()].map((s) => s.stop({ drain: false })));
      this.log.info('all apps stopped');
    })();
    return this.stopping;
  }

  /** For a gateway that must go down now: SIGKILL every child. */
  killChildren(): void {
    for (const supervisor of this.supervisors.values()) supervisor.killAll();
  }
}
