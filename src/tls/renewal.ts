/**
 * When certificates are renewed and failures retried (README, HTTPS:
 * lifecycle): pure functions, so the policy is tested without a clock.
 */

/** The first retry after a failed order; it doubles up to RETRY_MAX_MS. */
export const RETRY_MIN_MS = 60_000;
export const RETRY_MAX_MS = 6 * 3600_000;

/**
 * Renew when a third of the lifetime is left, as Let's Encrypt advises
 * (30 days of 90); by the lifetime, not a fixed number of days, so that
 * short-lived certificates are renewed in time too.
 */
export function renewAt(notBeforeMs: number, notAfterMs: number): number {
  return notAfterMs - Math.floor((notAfterMs - notBeforeMs) / 3);
}

/** The wait after the n-th failure in a row (n ≥ 1): 1 min, 2 min, 4 min, … at most 6 h. */
export function retryDelay(failures: number): number {
  const exponent = Math.max(0, Math.min(failures - 1, 20));
  return Math.min(RETRY_MAX_MS, RETRY_MIN_MS * 2 ** exponent);
}
