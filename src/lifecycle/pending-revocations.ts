import type { StoredCredential } from '../credential/model.js';
import type { RevocationOutcome, RevocationReport } from '../oauth/revocation.js';
import {
  EventType,
  type NewPendingRevocation,
  type PendingRevocationStore,
  type RegistrationCache,
  type RevocationTokenType,
} from '../store/contract.js';
import type { EngineContext } from './context.js';

/** Queueing needs the registration (its auth method is snapshotted) and the queue itself. */
export type RevocationQueueStore = RegistrationCache & PendingRevocationStore;

/**
 * Pending revocations (issue 13): a logout whose revocation failed transiently deletes the
 * credential locally but keeps each unrevoked token, sealed like every secret, for later
 * latchkey runs to revoke. See docs/security.md, "Logout while the AS is down".
 */
export interface RevocationRetryPolicy {
  /** Delay before the first retry after the failed logout. Default 5 000 ms. */
  initialMs: number;
  /** Growth of the delay per failed retry. Default 2. */
  factor: number;
  /** Cap on the delay between retries. Default 3 600 000 ms (1 h). */
  maxMs: number;
  /** Random spread, as a fraction of the delay. Default 0.2. */
  jitter: number;
  /**
   * How long a token whose expiry is unknown (most refresh tokens, access tokens without
   * `expires_in`) is kept for retry. Known expiries are capped by it too. Default 30 days.
   */
  maxAgeMs: number;
  /**
   * How often a long-running manager (a proxy, an embedding app) looks for due revocations
   * when it was not told of any. Default 60 000 ms. Rows queued by another process are seen
   * sooner through the store watch.
   */
  checkIntervalMs: number;
  /**
   * The longest one retry pass may take: no request starts after it, and each request's
   * timeout is cut to what is left. Default 5 000 ms; the CLI uses 3 000 ms so that no command
   * waits long for it.
   */
  passBudgetMs: number;
}

export const DEFAULT_REVOCATION_RETRY: RevocationRetryPolicy = {
  initialMs: 5_000,
  factor: 2,
  maxMs: 3_600_000,
  jitter: 0.2,
  maxAgeMs: 30 * 86_400_000,
  checkIntervalMs: 60_000,
  passBudgetMs: 5_000,
};

/** Delay before retry number `attempt` (1-based), with jitter. */
export function retryDelayMs(attempt: number, policy: RevocationRetryPolicy, random = Math.random): number {
  const base = Math.min(policy.maxMs, policy.initialMs * policy.factor ** Math.max(0, attempt - 1));
  return Math.max(0, Math.round(base * (1 + (random() * 2 - 1) * policy.jitter)));
}

/**
 * Queue the tokens whose revocation failed with a retryable outcome. Tokens already expired
 * are not queued: there is nothing left to revoke. Returns the token types queued.
 */
export async function queueRevocations(
  ctx: EngineContext<RevocationQueueStore>,
  cred: StoredCredential,
  revocation: RevocationReport,
): Promise<RevocationTokenType[]> {
  const policy = ctx.revocationRetry ?? DEFAULT_REVOCATION_RETRY;
  const now = Date.now();
  const candidates: [
    RevocationTokenType,
    RevocationOutcome | undefined,
    string | undefined,
    number | undefined,
  ][] = [
    ['refresh_token', revocation.refreshToken, cred.secrets.refreshToken, cred.refreshTokenExpiresAt],
    ['access_token', revocation.accessToken, cred.secrets.accessToken, cred.expiresAt],
  ];
  const due = candidates.filter(
    ([, outcome, token, expiry]) =>
      outcome?.status === 'failed' && outcome.retryable && token !== undefined && (expiry ?? Infinity) > now,
  );
  if (due.length === 0) return [];
  // Snapshot the client: a re-registration at this issuer before the retry must not leave
  // the queued token without the client authentication its revocation needs.
  const registration = await ctx.store.getRegistration(cred.key.issuer);
  const client = registration?.clientId === cred.clientId ? registration : undefined;
  const entries: NewPendingRevocation[] = due.map(([tokenType, outcome, token, expiry]) => {
    const expiresAt = Math.min(expiry ?? Infinity, now + policy.maxAgeMs);
    const retryAfterMs = outcome?.status === 'failed' ? (outcome.retryAfterMs ?? 0) : 0;
    const nextAttemptAt = now + Math.max(retryDelayMs(1, policy), Math.min(retryAfterMs, policy.maxMs));
    return {
      key: cred.key,
      tokenType,
      clientId: cred.clientId,
      tokenEndpointAuthMethod: client?.tokenEndpointAuthMethod ?? 'none',
      createdAt: now,
      expiresAt,
      // A token that expires before the first retry is looked at (and dropped) when it does.
      nextAttemptAt: Math.min(nextAttemptAt, expiresAt),
      secrets: {
        token: token as string,
        ...(client?.clientSecret === undefined ? {} : { clientSecret: client.clientSecret }),
      },
    };
  });
  const types = entries.map((e) => e.tokenType);
  await ctx.store.addPendingRevocations(entries, {
    type: EventType.REVOCATION_PENDING,
    ...cred.key,
    generation: cred.generation,
    detail: { tokens: types.join(','), nextAttemptAt: Math.min(...entries.map((e) => e.nextAttemptAt)) },
  });
  return types;
}
