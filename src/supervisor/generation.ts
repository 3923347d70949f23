import type { AppConfig } from '../config/schema.js';
import type { UpstreamAddress } from '../routing/table.js';
import { RestartBackoff } from './backoff.js';
import type { AppChild } from './child.js';

/** One of an app's `instances` positions; it outlives the children it restarts. */
export class InstanceSlot {
  child: AppChild | null = null;
  restarts = 0;
  readonly backoff = new RestartBackoff();
  restartTimer: NodeJS.Timeout | null = null;
  /** The latest start never became ready (README, Admin API: state `failed`). Cleared when a start succeeds. */
  lastStartFailed = false;
  /** A ready child crashed and is being restarted (README, Admin API: state `restarting`). */
  crashed = false;
  constructor(readonly index: number) {}
}

/** `idle`: stopped by idle_timeout_ms until the next request (README, Scale to zero). */
export type AppState = 'starting' | 'ready' | 'restarting' | 'failed' | 'idle';

/** One instance of a generation, as the status projection shows it. */
export interface InstanceInfo {
  pid: number | null;
  port: number;
  state: string;
  startedAt: number;
  restarts: number;
  rssBytes: number;
}

/** The children started from one version of an app's config. */
export class Generation {
  readonly slots: InstanceSlot[];
  /** Only the serving generation restarts crashed children and is in the route table. */
  serving = false;
  retired = false;
  /** Retired as an old generation (not thrown away, not stopped at shutdown): its stop is logged. */
  draining = false;

  constructor(
    readonly id: number,
    readonly config: AppConfig,
  ) {
    this.slots = Array.from({ length: config.instances }, (_, i) => new InstanceSlot(i));
  }

  /** Every slot has a child that is still running (a child can die after it was ready). */
  allAlive(): boolean {
    return this.slots.every((slot) => slot.child?.alive === true);
  }

  liveChildren(): AppChild[] {
    const out: AppChild[] = [];
    for (const slot of this.slots) if (slot.child?.alive) out.push(slot.child);
    return out;
  }

  /** Its ready children, as the route table names them. */
  readyUpstreams(): UpstreamAddress[] {
    const out: UpstreamAddress[] = [];
    for (const slot of this.slots) {
      const child = slot.child;
      if (child?.state === 'ready') out.push({ id: child.id, host: '127.0.0.1', port: child.port });
    }
    return out;
  }

  /** The app's state while this generation serves (README, Admin API: `state`). */
  state(): AppState {
    if (this.slots.some((s) => s.child?.state === 'ready')) return 'ready';
    if (this.slots.some((s) => s.lastStartFailed)) return 'failed';
    if (this.slots.some((s) => s.crashed)) return 'restarting';
    return 'starting';
  }

  instances(): InstanceInfo[] {
    return this.slots.map((slot) => {
      const child = slot.child;
      return {
        pid: child?.pid ?? null,
        port: child?.port ?? 0,
        state: child ? (child.alive ? child.state : slot.restartTimer ? 'restarting' : 'exited') : 'starting',
        startedAt: child?.startedAt ?? 0,
        restarts: slot.restarts,
        rssBytes: child?.rssBytes() ?? 0,
      };
    });
  }
}
