import type { ProxyRequest } from './request.js';

/** Requests waiting for one app beyond this get 503 at once, so a dead app cannot eat memory. */
const MAX_QUEUED_PER_APP = 10_000;

/**
 * Requests waiting for an app that has no ready child (start-up, restarts,
 * every instance refused): README, How apps are run. Each waits at most
 * queue_timeout_ms in all, counted from when it first waited, however often
 * it is queued again; then `onTimeout` answers it.
 */
export class WaitQueues {
  private readonly queues = new Map<string, ProxyRequest[]>();

  constructor(private readonly onTimeout: (request: ProxyRequest) => void) {}

  /** False when the request has no time left or the app's queue is full: answer it at once. */
  enqueue(request: ProxyRequest, queueTimeoutMs: number): boolean {
    const name = request.target.name;
    let queue = this.queues.get(name);
    if (!queue) {
      queue = [];
      this.queues.set(name, queue);
    }
    if (!request.queueTimer) {
      const now = performance.now();
      if (request.queuedAt === 0) request.queuedAt = now;
      const remaining = queueTimeoutMs - (now - request.queuedAt);
      if (remaining <= 0 || queue.length >= MAX_QUEUED_PER_APP) return false;
      request.queueTimer = setTimeout(expire, remaining, this, request);
    }
    queue.push(request);
    return true;
  }

  /** The app's waiting requests, oldest first (a copy). */
  waiting(name: string): ProxyRequest[] {
    return (this.queues.get(name) ?? []).filter((request) => !request.closed);
  }

  /** Stops the request's wait (it was dispatched, answered or abandoned). */
  release(request: ProxyRequest): void {
    if (request.queueTimer) {
      clearTimeout(request.queueTimer);
      request.queueTimer = null;
    }
    this.unqueue(request);
  }

  /** Empties every queue: after a table swap each request looks up its app again. Their timers keep running. */
  takeAll(): ProxyRequest[] {
    const out: ProxyRequest[] = [];
    for (const [name, queue] of this.queues) {
      if (queue.length === 0) continue;
      this.queues.set(name, []);
      for (const request of queue) if (!request.closed) out.push(request);
    }
    return out;
  }

  /** @internal Called by the request's timer. */
  expire(request: ProxyRequest): void {
    request.queueTimer = null;
    this.unqueue(request);
    if (!request.closed) this.onTimeout(request);
  }

  private unqueue(request: ProxyRequest): void {
    const queue = this.queues.get(request.target.name);
    if (!queue) return;
    const i = queue.indexOf(request);
    if (i !== -1) queue.splice(i, 1);
  }
}

function expire(queues: WaitQueues, request: ProxyRequest): void {
  queues.expire(request);
}
