import { keyId } from '../../credential/key.js';
import type { StoredCredential } from '../../credential/model.js';
import { ErrorCode, isLatchkeyError, LatchkeyError } from '../../errors.js';
import { networkText } from '../../network-text.js';
import { EventType } from '../../store/contract.js';
import { backoffDelayMs } from '../backoff.js';
import { type EngineContext, emptyStats } from '../context.js';
import { refreshClaimedCredential, type RefreshStore } from '../refresh.js';

/** How one claimed credential's refresh ended, as the loop needs to know it. */
export type AttemptOutcome =
  | { kind: 'refreshed' | 'adopted'; cred: StoredCredential }
  /** Nothing changed here: another holder took the lease meanwhile, or it was deleted. */
  | { kind: 'skipped' }
  | {
      kind: 'transient';
      error: LatchkeyError;
      retryAt: number;
      issuerFault: 'rate-limited' | 'unavailable' | undefined;
    }
  | { kind: 'needs-login'; error: string; reason: string; takenOverFrom?: string };

export interface Attempt {
  outcome: AttemptOutcome;
  /** Refresh requests this attempt sent (0 or 1). */
  requests: number;
}

/**
 * Refresh one claimed credential through the engine (refresh.ts: under the claim's lease,
 * generation CAS, rotation, invalid_grant re-check, never delete), then make sure its due
 * time moved, so the due index cannot hand the same failure back at once. The lease is the
 * caller's to release, after this returns.
 */
export async function refreshClaimed(
  base: EngineContext<RefreshStore>,
  seen: StoredCredential,
  previousHolder?: string,
): Promise<Attempt> {
  // A private stats object tells this attempt's own request apart from the instance's others.
  const ctx = { ...base, stats: emptyStats(), ...(previousHolder === undefined ? {} : { previousHolder }) };
  try {
    const cred = await refreshClaimedCredential(ctx, seen);
    const requests = ctx.stats.refreshRequests;
    if (cred.generation <= seen.generation) return { outcome: { kind: 'skipped' }, requests };
    return { outcome: { kind: requests > 0 ? 'refreshed' : 'adopted', cred }, requests };
  } catch (error) {
    const failure = asLatchkeyError(error, seen);
    return { outcome: await settleFailure(ctx, seen, failure), requests: ctx.stats.refreshRequests };
  }
}

async function settleFailure(
  ctx: EngineContext<RefreshStore>,
  seen: StoredCredential,
  error: LatchkeyError,
): Promise<AttemptOutcome> {
  const latest = await ctx.store.getCredential(seen.key);
  if (latest === undefined) return { kind: 'skipped' };
  if (latest.status.state === 'needs-login') {
    // refresh.ts stored `${oauthError}: ${description}` when the AS rejected the grant.
    const message = latest.status.lastError?.message ?? error.message;
    const oauthError = message.split(':')[0] ?? 'invalid_grant';
    const lost = oauthError === 'invalid_grant' ? ctx.previousHolder : undefined;
    return {
      kind: 'needs-login',
      error: oauthError,
      reason: message,
      ...(lost === undefined ? {} : { takenOverFrom: lost }),
    };
  }
  if (error.code === ErrorCode.LOGIN_REQUIRED) return markNeedsLogin(ctx, latest, error);
  const retryAt = await ensureBackoff(ctx, seen, latest, error);
  return { kind: 'transient', error, retryAt, issuerFault: issuerFault(error) };
}

/**
 * The engine refuses to refresh without a usable refresh token (absent, or past its known
 * expiry) but leaves the status alone, because a caller may still hold a valid access token.
 * For the fleet that is a permanent failure: say so once, in the store and to the app.
 */
async function markNeedsLogin(
  ctx: EngineContext<RefreshStore>,
  cred: StoredCredential,
  error: LatchkeyError,
): Promise<AttemptOutcome> {
  const reason = networkText(error.message);
  await ctx.store.updateStatus(
    cred.key,
    {
      ...cred.status,
      state: 'needs-login',
      lastError: { code: error.code, message: reason, at: Date.now() },
    },
    {
      type: EventType.NEEDS_LOGIN,
      ...cred.key,
      generation: cred.generation,
      detail: { error: 'no_refresh_token' },
    },
  );
  return { kind: 'needs-login', error: 'no_refresh_token', reason };
}

/**
 * A transient failure the engine recorded has already pushed the due time (status
 * `retrying`, `nextAttemptAt`). Other failures (the store, discovery before the token
 * request, a wait that timed out) did not: record one here, with the same backoff.
 */
async function ensureBackoff(
  ctx: EngineContext<RefreshStore>,
  seen: StoredCredential,
  latest: StoredCredential,
  error: LatchkeyError,
): Promise<number> {
  const now = Date.now();
  const moved =
    latest.status.state === 'retrying' &&
    latest.status.nextAttemptAt !== undefined &&
    latest.status.nextAttemptAt > now &&
    latest.status.failures > seen.status.failures;
  if (moved) return latest.status.nextAttemptAt ?? now;
  if (latest.generation !== seen.generation) return now; // rewritten meanwhile: its own due time stands
  const failures = latest.status.failures + 1;
  const retryAt = Math.max(now + backoffDelayMs(failures, ctx.backoff), error.retryAt ?? 0);
  await ctx.store.updateStatus(
    latest.key,
    {
      ...latest.status,
      state: 'retrying',
      failures,
      nextAttemptAt: retryAt,
      lastError: { code: error.code, message: networkText(error.message), at: now },
    },
    {
      type: EventType.REFRESH_FAILED,
      ...latest.key,
      generation: latest.generation,
      detail: { reason: error.code, failures, retryInMs: retryAt - now },
    },
  );
  return retryAt;
}

function issuerFault(error: LatchkeyError): 'rate-limited' | 'unavailable' | undefined {
  if (error.code === ErrorCode.RATE_LIMITED) return 'rate-limited';
  if (error.code === ErrorCode.REFRESH_TRANSIENT || error.code === ErrorCode.AS_UNAVAILABLE)
    return 'unavailable';
  return undefined;
}

function asLatchkeyError(error: unknown, seen: StoredCredential): LatchkeyError {
  if (isLatchkeyError(error)) return error;
  return new LatchkeyError(ErrorCode.REFRESH_TRANSIENT, 'background refresh failed unexpectedly.', {
    server: seen.key.server,
    retryable: true,
    cause: error,
  });
}

/** The map key of a credential in the loop's bookkeeping. */
export const claimId = (cred: StoredCredential): string => keyId(cred.key);
