import type { AppConfig } from '../config/schema.js';
import type { UpstreamAddress } from '../routing/table.js';
import type { AppState, InstanceInfo } from '../supervisor/generation.js';

/** One generation of an app's children, as the control plane holds it: opaque, handed back to its supervisor. */
export interface GenerationHandle {
  /** Every child is still running (one can die after it was ready). */
  allAlive(): boolean;
}

/**
 * An app's children as the control plane sees them: what `AppSupervisor`
 * offers, and what a test's fake runtime provides instead.
 */
export interface SupervisedApp {
  readonly name: string;
  /** The serving generation's config. */
  readonly config: AppConfig;
  lastError: string | null;
  readonly current: GenerationHandle | null;
  /** Start-up: the first generation serves at once, child by child as each is ready. */
  start(): void;
  /** A complete new generation beside the serving one; rejects if it does not become ready. */
  prepare(config: AppConfig): Promise<GenerationHandle>;
  /** Makes it the serving one; returns the previous, for the caller to retire. */
  promote(gen: GenerationHandle): GenerationHandle | null;
  /** Throws away a prepared generation that will not serve. */
  discard(gen: GenerationHandle): Promise<void>;
  /** An old generation takes no new requests; returns its upstreams to drain. */
  beginDrain(gen: GenerationHandle): string[];
  stopGeneration(gen: GenerationHandle): Promise<void>;
  /** Scale to zero: the serving generation, if any, for the caller to retire; the app is idle until a promote. */
  sleep(): GenerationHandle | null;
  /** An idle app's new config (a reload changed it): it stays idle, and starts with it. */
  adopt(config: AppConfig): void;
  readonly isIdle: boolean;
  /** Every generation that still has children, the serving one first. */
  liveGenerations(): GenerationHandle[];
  stop(): Promise<void>;
  killAll(): void;
  servingUpstreams(): UpstreamAddress[];
  state(): AppState;
  instances(): InstanceInfo[];
}
