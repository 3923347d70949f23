import type { UpstreamFailure } from './engine.js';
import { IDEMPOTENT_METHODS } from './request.js';

/**
 * An idempotent request that may have reached a child is sent again at most
 * this often: a request that crashes children must not take down them all.
 */
export const MAX_RESENDS = 1;

/**
 * What happens to a request whose attempt failed before any response byte
 * came back (README, Routing and proxying: retries):
 * - `move`: nothing reached the child; try another ready instance.
 * - `wait`: every instance refused; wait for the next route table like a queued request.
 * - `resend`: it may have reached the child, but it is safe to send again.
 * - `answer`: give the client the gateway's own answer (502, 504).
 */
export type RetryAction = 'move' | 'wait' | 'resend' | 'answer';

export interface FailedAttempt {
  failure: UpstreamFailure;
  method: string;
  isUpgrade: boolean;
  /** Refusals so far, this one included. */
  refusals: number;
  /** Times already sent again. */
  resends: number;
  /** Ready instances of the app in the current table. */
  instances: number;
}

export function retryAction(attempt: FailedAttempt): RetryAction {
  const { failure } = attempt;
  // http-proxy-3 closes the client socket of a failed upgrade itself: answer at once.
  if (attempt.isUpgrade || failure.bodyConsumed) return 'answer';
  // Refused: the child has just died or does not listen yet; the supervisor republishes when it sees the exit.
  if (failure.kind === 'refused') return attempt.refusals > attempt.instances ? 'wait' : 'move';
  if (failure.kind === 'reset' && attempt.resends < MAX_RESENDS && IDEMPOTENT_METHODS.has(attempt.method))
    return 'resend';
  return 'answer';
}
