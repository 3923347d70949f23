import type { UpstreamAddress } from '../routing/table.js';

/**
 * A child as the proxy sees it: where to connect, how many requests are in
 * flight to it, and the engine's connection pool for it. One object per
 * child for its whole life, shared by every route table that lists it, so
 * counts and pools survive table swaps.
 */
export class Upstream {
  readonly id: string;
  readonly host: string;
  readonly port: number;
  readonly origin: string;
  /** Parsed once: engines that want a URL object must not parse one per request. */
  readonly url: URL;
  inFlight = 0;
  /** Engine-owned connection pool (an http.Agent, an undici Pool, ...). */
  pool: unknown = null;
  private idleWaiters: Array<() => void> = [];

  constructor(address: UpstreamAddress) {
    this.id = address.id;
    this.host = address.host;
    this.port = address.port;
    this.origin = `http://${address.host}:${address.port}`;
    this.url = new URL(this.origin);
  }

  acquire(): void {
    this.inFlight++;
  }

  release(): void {
    if (--this.inFlight === 0 && this.idleWaiters.length > 0) {
      const waiters = this.idleWaiters;
      this.idleWaiters = [];
      for (const resolve of waiters) resolve();
    }
  }

  /** Resolves when no request is in flight, or after `timeoutMs`; true when it went idle. */
  whenIdle(timeoutMs: number): Promise<boolean> {
    if (this.inFlight === 0) return Promise.resolve(true);
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.idleWaiters = this.idleWaiters.filter((w) => w !== onIdle);
        resolve(false);
      }, timeoutMs);
      const onIdle = (): void => {
        clearTimeout(timer);
        resolve(true);
      };
      this.idleWaiters.push(onIdle);
    });
  }
}

/** Every upstream the proxy knows, by id; tables resolve their addresses here. */
export class UpstreamRegistry {
  private readonly byId = new Map<string, Upstream>();

  resolve(address: UpstreamAddress): Upstream {
    let upstream = this.byId.get(address.id);
    if (!upstream) {
      upstream = new Upstream(address);
      this.byId.set(address.id, upstream);
    }
    return upstream;
  }

  get(id: string): Upstream | undefined {
    return this.byId.get(id);
  }

  forget(id: string): void {
    this.byId.delete(id);
  }

  all(): IterableIterator<Upstream> {
    return this.byId.values();
  }
}
