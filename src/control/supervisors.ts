import type { AppConfig } from '../config/schema.js';
import type { DataPlane } from '../dataplane/data-plane.js';
import type { Logger } from '../log.js';
import { AppSupervisor } from '../supervisor/app-supervisor.js';
import { PortAllocator } from '../supervisor/ports.js';
import type { AppSet } from './app-set.js';
import type { SupervisedApp } from './supervised.js';

/**
 * Makes supervisors whose events the control plane acts on: a change of
 * serving children publishes a new route table, a child gone for good is
 * forgotten by the data plane, a restart is counted.
 */
export class SupervisorFactory {
  /** Children started again after a crash or a failed start, by app, for the gateway's life. */
  readonly restarts = new Map<string, number>();
  /** Children replaced by the memory watchdog, by app, for the gateway's life (README, Memory watchdog). */
  readonly memoryReplacements = new Map<string, number>();
  private readonly ports = new PortAllocator();

  constructor(
    private readonly options: {
      logger: Logger;
      /** Where children's output lines go (batched). */
      outputLogger: Logger;
      apps: AppSet;
      dataPlane: DataPlane;
      publish(): void;
    },
  ) {}

  create(app: AppConfig): SupervisedApp {
    const { logger, outputLogger, apps, dataPlane, publish } = this.options;
    return new AppSupervisor(app, {
      logger,
      outputLogger,
      ports: this.ports,
      onServingChange: (supervisor, upstreams) => {
        apps.setRoutes(supervisor, upstreams);
        publish();
      },
      onChildGone: (_supervisor, id) => dataPlane.forget([id]),
      onRestart: (name) => void this.restarts.set(name, (this.restarts.get(name) ?? 0) + 1),
      onMemoryReplacement: (name) =>
        void this.memoryReplacements.set(name, (this.memoryReplacements.get(name) ?? 0) + 1),
      // The replaced child is already out of the published table (onServingChange published it).
      drainChild: (_supervisor, id) => dataPlane.drain([id], apps.current.gateway.drainTimeoutMs),
    });
  }
}
