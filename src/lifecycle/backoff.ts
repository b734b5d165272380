import type { CredentialStatus } from '../credential/model.js';

/**
 * Retry policy after transient refresh failures. Background (proactive) attempts back off
 * exponentially; a caller who needs a token *now* (the access token is already unusable) may
 * try again once per `demandIntervalMs`, so recovery after an outage takes about a second
 * while the AS still sees at most one attempt per interval across all processes (the lease
 * and the shared status make the interval global). A Retry-After from the AS always wins.
 */
export interface BackoffPolicy {
  /** First background retry delay. Default 1000 ms. */
  initialMs: number;
  /** Cap on the background retry delay. Default 60 000 ms. */
  maxMs: number;
  /** Growth per consecutive failure. Default 2. */
  factor: number;
  /** Random spread, as a fraction of the delay. Default 0.2. */
  jitter: number;
  /** Minimum spacing of on-demand attempts once the token is unusable. Default 1000 ms. */
  demandIntervalMs: number;
}

export const DEFAULT_BACKOFF: BackoffPolicy = {
  initialMs: 1000,
  maxMs: 60_000,
  factor: 2,
  jitter: 0.2,
  demandIntervalMs: 1000,
};

/** Status code recorded when the AS asked us to wait (429/503 with Retry-After). */
export const THROTTLED = 'REFRESH_THROTTLED';

export function backoffDelayMs(failures: number, policy: BackoffPolicy, random = Math.random): number {
  const base = Math.min(policy.maxMs, policy.initialMs * policy.factor ** Math.max(0, failures - 1));
  return Math.max(0, Math.round(base * (1 + (random() * 2 - 1) * policy.jitter)));
}

/**
 * The earliest time another attempt may be made. `demand` is true when a caller is blocked
 * because the access token is no longer usable.
 */
export function nextAttemptAllowedAt(
  status: CredentialStatus,
  demand: boolean,
  policy: BackoffPolicy,
): number {
  if (status.state !== 'retrying' || status.nextAttemptAt === undefined) return 0;
  if (!demand || status.lastError?.code === THROTTLED) return status.nextAttemptAt;
  const lastAttempt = status.lastError?.at ?? 0;
  return Math.min(status.nextAttemptAt, lastAttempt + policy.demandIntervalMs);
}
