import type { AddressInfo } from 'node:net';
import type { ListenAddress } from '../addresses.js';
import type { Logger } from '../log.js';
import type { RouteTableData } from '../routing/table.js';
import type { CertificateSetData, DataPlaneSettings, ServingDataPlane, WorkerInfo } from './data-plane.js';
import type { EngineFactory, ProxyEngine } from './engine.js';
import { HttpProxyEngine } from './http-proxy-engine.js';
import { HttpsListener } from './https-listener.js';
import { HttpListener } from './listener.js';
import type { ProxyRequest } from './request.js';
import { RequestPath } from './request-path.js';
import { StatsRegistry, type TrafficSnapshot } from './stats.js';
import { UndiciEngine } from './undici-engine.js';
import { UpstreamRegistry } from './upstream.js';

/**
 * The engine by name: undici unless `http-proxy-3` is asked for (README,
 * Performance: why undici). The composition root reads the name from
 * `NANO_GATEWAY_ENGINE`.
 */
export function engineNamed(name: string | undefined): EngineFactory {
  if (name === 'http-proxy-3') return (hooks) => new HttpProxyEngine(hooks);
  return (hooks) => new UndiciEngine(hooks);
}

export interface LocalDataPlaneOptions {
  logger: Logger;
  /** Where access lines go (batched). */
  accessLogger: Logger;
  settings: DataPlaneSettings;
  engine: EngineFactory;
  /** Idle keep-alive client connections close after this; default 75 s (shorter in tests). */
  keepAliveTimeoutMs?: number;
}

/**
 * The data plane in this process: the listener, the request path, the
 * engine and the upstreams it knows. `workers = 1` runs this one directly;
 * it is also what a proxy worker would run behind IPC.
 */
export class LocalDataPlane implements ServingDataPlane {
  private readonly upstreams = new UpstreamRegistry();
  private readonly traffic = new StatsRegistry();
  private readonly path: RequestPath;
  private readonly engine: ProxyEngine;
  private readonly listener: HttpListener;
  /** The HTTPS listener, made by listenTls (a `[tls]` table). */
  private httpsListener: HttpsListener | null = null;
  private readonly keepAliveTimeoutMs: number | undefined;
  private certificates: CertificateSetData = { version: 0, certificates: [], defaultName: null };
  private readonly log: Logger;

  constructor(options: LocalDataPlaneOptions) {
    this.log = options.logger;
    this.path = new RequestPath({
      logger: options.logger,
      accessLogger: options.accessLogger,
      settings: options.settings,
      stats: this.traffic,
      upstreams: this.upstreams,
    });
    this.engine = options.engine(this.path);
    this.path.attach(this.engine);
    this.keepAliveTimeoutMs = options.keepAliveTimeoutMs;
    this.listener = new HttpListener({
      handler: this.path,
      logger: options.logger,
      ...(options.keepAliveTimeoutMs !== undefined ? { keepAliveTimeoutMs: options.keepAliveTimeoutMs } : {}),
    });
  }

  get engineName(): string {
    return this.engine.name;
  }

  listen(address: ListenAddress): Promise<AddressInfo> {
    return this.listener.listen(address);
  }

  /** The HTTPS listener beside the plain one (README, HTTPS), serving the certificates published so far. */
  async listenTls(address: ListenAddress): Promise<AddressInfo> {
    const listener = new HttpsListener({
      handler: this.path,
      logger: this.log,
      ...(this.keepAliveTimeoutMs !== undefined ? { keepAliveTimeoutMs: this.keepAliveTimeoutMs } : {}),
    });
    listener.setCertificates(this.certificates);
    const bound = await listener.listen(address);
    this.httpsListener = listener;
    this.path.setHttps({ covers: (host) => listener.covers(host), port: bound.port });
    return bound;
  }

  publishCertificates(set: CertificateSetData): void {
    this.certificates = set;
    this.httpsListener?.setCertificates(set);
    // Redirects follow the certificates: a host that just got one is redirected from the next request.
    this.path.forgetRedirects();
  }

  publishChallenges(challenges: Readonly<Record<string, string>>): void {
    this.path.publishChallenges(challenges);
  }

  publish(table: RouteTableData): void {
    this.path.publish(table);
  }

  /** Requests a pause holds for these apps, oldest first (README, Workers: pause and resume). */
  held(apps: ReadonlySet<string>): ProxyRequest[] {
    return this.path.held(apps);
  }

  /** Sends one held request on before the table that resumes its app. */
  sendHeld(request: ProxyRequest): void {
    this.path.sendHeld(request);
  }

  onWake(listener: (app: string) => void): void {
    this.path.onWake = listener;
  }

  configure(settings: DataPlaneSettings): void {
    this.path.configure(settings);
  }

  async drain(upstreamIds: readonly string[], timeoutMs: number): Promise<void> {
    await Promise.all(
      upstreamIds.map(async (id) => {
        const upstream = this.upstreams.get(id);
        if (!upstream) return;
        const idle = await upstream.whenIdle(timeoutMs);
        if (!idle)
          this.log.warn(
            { upstream: id, in_flight: upstream.inFlight },
            'drain timeout: stopping with requests in flight',
          );
        this.engine.closeUpstream(upstream);
        this.upstreams.forget(id);
      }),
    );
  }

  forget(upstreamIds: readonly string[]): void {
    for (const id of upstreamIds) {
      const upstream = this.upstreams.get(id);
      if (!upstream) continue;
      this.engine.closeUpstream(upstream);
      this.upstreams.forget(id);
    }
  }

  stats(): TrafficSnapshot {
    return this.traffic.snapshot();
  }

  settled(): Promise<void> {
    return Promise.resolve();
  }

  kill(): void {
    // Nothing runs outside this process.
  }

  workers(): WorkerInfo[] {
    return [];
  }

  /**
   * Graceful stop: refuse new connections, let in-flight requests finish
   * (up to `timeoutMs`), then cut what is left.
   */
  async close(timeoutMs: number): Promise<void> {
    this.path.closing = true;
    this.listener.stopAccepting();
    this.httpsListener?.stopAccepting();
    this.path.releaseHeld();
    await this.path.whenIdle(timeoutMs);
    this.listener.closeAll();
    this.httpsListener?.closeAll();
    for (const upstream of this.upstreams.all()) this.engine.closeUpstream(upstream);
    this.engine.close();
  }
}
