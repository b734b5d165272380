import { isUsable, refreshTokenUsable } from '../credential/expiry.js';
import { type CredentialKey, keyId } from '../credential/key.js';
import type { CredentialRecord, StoredCredential } from '../credential/model.js';
import { fingerprint, secrets } from '../redact.js';
import { credentialFromTokenResponse } from '../credential/token-response.js';
import { ErrorCode, LatchkeyError, loginRequired, refreshTransient } from '../errors.js';
import { networkText } from '../network-text.js';
import { loadClientContext } from '../oauth/client-context.js';
import { refreshTokenGrant } from '../oauth/grants.js';
import { evictRejectedRegistration } from '../oauth/registration.js';
import { classifyTokenFailure, type TokenFailure } from '../oauth/token-error.js';
import {
  type CredentialTable,
  type DiscoveryCache,
  type EventLog,
  EventType,
  type LeaseTable,
  type RegistrationCache,
} from '../store/contract.js';
import { backoffDelayMs, nextAttemptAllowedAt, THROTTLED } from './backoff.js';
import type { EngineContext } from './context.js';
import { breakLeaseIfHolderDead, keepLease, pollDelay, probableLoss, sleep } from './lease.js';
import { persistRotated } from './rotated-write.js';

/**
 * A refresh runs under the credential's lease and writes with an event; the registration and
 * the AS metadata make up the client it refreshes as.
 */
export type RefreshStore = CredentialTable & LeaseTable & EventLog & RegistrationCache & DiscoveryCache;

/** What a refresh needs of the credential its caller judged stale; it reads the rest again. */
export type SeenCredential = Pick<StoredCredential, 'key' | 'generation'>;

/**
 * Refresh one credential, at most once per generation across every process sharing the
 * store (design rule 2):
 *   1. take the credential's lease (or wait for whoever holds it and adopt their result);
 *   2. re-read the store under the lease; a newer generation is adopted, not refreshed;
 *   3. refresh, persist the new tokens with a generation check *before* anyone uses them;
 *   4. release.
 * `seen` is the credential the caller judged stale. `demand` is true when a caller is
 * blocked on the result (the token is unusable), false for proactive refresh.
 */
export async function refreshCredential(
  ctx: EngineContext<RefreshStore>,
  seen: SeenCredential,
  demand: boolean,
): Promise<StoredCredential> {
  const lease = await acquireLeaseOrAdopt(ctx, seen, demand);
  if ('adopted' in lease) return lease.adopted;
  const stopKeeping = leaseKeeper(ctx, seen.key);
  try {
    const under = lease.brokeFrom === undefined ? ctx : { ...ctx, previousHolder: lease.brokeFrom };
    return await refreshUnderLease(under, seen, demand);
  } finally {
    await stopKeeping();
    await ctx.store.releaseLease(seen.key, ctx.holder.owner).catch(() => undefined);
  }
}

/**
 * Refresh a credential whose lease this process already holds since it claimed it from the
 * due index, which read the row in the same transaction that leased it (the fleet refresher).
 * Taking the lease and reading the row again would cost two statements and learn nothing:
 * only a lease holder refreshes, and a login or logout that changed the row meanwhile makes
 * the generation-checked write refuse. The caller releases the lease.
 */
export async function refreshClaimedCredential(
  ctx: EngineContext<RefreshStore>,
  claimed: StoredCredential,
): Promise<StoredCredential> {
  const stopKeeping = leaseKeeper(ctx, claimed.key);
  try {
    return await refreshCurrent(ctx, claimed, false);
  } finally {
    await stopKeeping();
  }
}

/** Extends the lease during the refresh when the context asks for it (the fleet refresher). */
function leaseKeeper(ctx: EngineContext<RefreshStore>, key: CredentialKey): () => Promise<void> {
  return ctx.keepLeaseAlive === true
    ? keepLease(ctx.store, key, ctx.holder, ctx.leaseTtlMs)
    : () => Promise.resolve();
}

/**
 * A credential to adopt, or the lease, held now by this process; `brokeFrom` is the dead
 * holder whose lease was broken on the way (EngineContext.previousHolder says why it matters).
 */
async function acquireLeaseOrAdopt(
  ctx: EngineContext<RefreshStore>,
  seen: SeenCredential,
  demand: boolean,
): Promise<{ adopted: StoredCredential } | { brokeFrom: string | undefined }> {
  const deadline = Date.now() + ctx.waitTimeoutMs;
  let brokeFrom: string | undefined;
  for (;;) {
    if ((await ctx.store.acquireLease(seen.key, ctx.holder, ctx.leaseTtlMs)) !== undefined)
      return { brokeFrom };
    const current = await ctx.store.getCredential(seen.key);
    if (current === undefined)
      throw loginRequired(seen.key.server, 'the credential was removed (logged out)');
    if (current.generation > seen.generation && usableNow(ctx, current)) {
      ctx.stats.adoptions++;
      return { adopted: current };
    }
    if (current.status.state === 'needs-login') throw needsLogin(current);
    if (!demand) return { adopted: current }; // proactive: someone else is on it; nothing to wait for
    brokeFrom = (await breakLeaseIfHolderDead(ctx.store, seen.key)) ?? brokeFrom;
    if (Date.now() > deadline) throw waitTimeout(seen);
    await sleep(pollDelay(ctx.pollMs));
  }
}

async function refreshUnderLease(
  ctx: EngineContext<RefreshStore>,
  seen: SeenCredential,
  demand: boolean,
): Promise<StoredCredential> {
  const current = await ctx.store.getCredential(seen.key);
  if (current === undefined) throw loginRequired(seen.key.server, 'the credential was removed (logged out)');
  if (current.generation > seen.generation && usableNow(ctx, current)) {
    await recordAdoption(ctx, current, 'newer-generation');
    return current;
  }
  return refreshCurrent(ctx, current, demand);
}

/** Refresh `current`, the credential as the store holds it under this process's lease. */
async function refreshCurrent(
  ctx: EngineContext<RefreshStore>,
  current: StoredCredential,
  demand: boolean,
): Promise<StoredCredential> {
  if (current.status.state === 'needs-login') throw needsLogin(current);
  const refreshToken = current.secrets.refreshToken;
  if (refreshToken === undefined || !refreshTokenUsable(current, Date.now())) {
    throw loginRequired(current.key.server, 'the access token expired and there is no usable refresh token');
  }
  const allowedAt = nextAttemptAllowedAt(current.status, demand, ctx.backoff);
  if (Date.now() < allowedAt) {
    const throttled = current.status.lastError?.code === THROTTLED;
    const reason = current.status.lastError?.message ?? 'backing off';
    throw refreshTransient(current.key.server, reason, allowedAt, { rateLimited: throttled });
  }
  return sendRefresh(ctx, current, refreshToken);
}

async function sendRefresh(
  ctx: EngineContext<RefreshStore>,
  current: StoredCredential,
  refreshToken: string,
): Promise<StoredCredential> {
  // The AS may echo what we send it; whatever it answers is scrubbed of these.
  secrets.add(current.secrets.accessToken);
  secrets.add(refreshToken);
  let result: RefreshResult;
  try {
    result = await requestRefresh(ctx, current, refreshToken);
  } catch (error) {
    // Whatever went wrong, the next attempt builds its client from the store again.
    ctx.clients?.forget(current.key, current.clientId);
    if (error instanceof LatchkeyError) throw error;
    return handleFailure(ctx, current, classifyTokenFailure(error), error);
  }
  return storeRefreshed(ctx, current, result);
}

type RefreshResult = Awaited<ReturnType<typeof refreshTokenGrant>>;

/** The one refresh request of this attempt, sent as the client the credential was issued to. */
async function requestRefresh(
  ctx: EngineContext<RefreshStore>,
  current: StoredCredential,
  refreshToken: string,
): Promise<RefreshResult> {
  const { key } = current;
  const options = { fetch: ctx.fetch, warn: (text: string) => ctx.logger.warn(text, { server: key.server }) };
  const load = () => loadClientContext(ctx.store, key.server, key.issuer, current.clientId, options);
  const client = await (ctx.clients?.get(key, current.clientId, load) ?? load());
  ctx.stats.refreshRequests++;
  ctx.logger.debug('refreshing the access token', { server: key.server, generation: current.generation });
  return refreshTokenGrant(client, refreshToken, {
    timeoutMs: ctx.requestTimeoutMs,
    // A bearer credential stays bearer: binding it is decided at login (docs/dpop.md).
    dpop: current.tokenType === 'DPoP',
    ...refreshResource(ctx, current),
  });
}

async function storeRefreshed(
  ctx: EngineContext<RefreshStore>,
  current: StoredCredential,
  result: RefreshResult,
): Promise<StoredCredential> {
  const { key } = current;
  // From here to the write is the in-flight window (docs/security.md): the AS has rotated the
  // refresh token and this process holds the only copy. Nothing but building the row runs
  // before it is committed: the secrets were registered by grantResult, the event is part of
  // the same transaction, and logging, the read-back and the caller's cache all come after.
  const record = credentialFromTokenResponse(result.response, {
    key,
    clientId: current.clientId,
    requestedAt: result.requestedAt,
    previous: current,
  });
  const written = await persistRotated(() =>
    ctx.store.writeCredential(
      record,
      { expectedGeneration: current.generation, leaseOwner: ctx.holder.owner },
      {
        type: EventType.REFRESHED,
        ...key,
        generation: current.generation + 1,
        detail: refreshDetail(record),
      },
    ),
  );
  // A successful write stored exactly this record at this generation: no read-back.
  const stored = written.ok ? asWritten(record, written.generation) : await ctx.store.getCredential(key);
  if (written.ok) {
    ctx.logger.info('access token refreshed', {
      server: key.server,
      generation: written.generation,
      token: fingerprint(record.secrets.accessToken),
      ...refreshDetail(record),
    });
  } else {
    // Logged out (or replaced by a login) while we were refreshing: our tokens must not
    // resurrect the credential (design rule 5). Whatever the store holds now wins.
    ctx.logger.info('refreshed tokens discarded: the credential changed during the refresh', {
      server: key.server,
      reason: written.reason,
    });
  }
  if (stored === undefined) throw loginRequired(key.server, 'the credential was removed (logged out)');
  return stored;
}

async function handleFailure(
  ctx: EngineContext<RefreshStore>,
  current: StoredCredential,
  failure: TokenFailure,
  cause: unknown,
): Promise<StoredCredential> {
  const { key } = current;
  if (failure.kind === 'transient') return recordTransient(ctx, current, failure, cause);
  // Before believing a grant is dead, look again: a newer generation means we lost a race
  // with another writer (a stale refresh token), not that the user must log in.
  const latest = await ctx.store.getCredential(key);
  if (latest !== undefined && latest.generation > current.generation) {
    await recordAdoption(ctx, latest, 'stale-refresh-token');
    return latest;
  }
  const code = failure.kind === 'client-rejected' ? ErrorCode.CLIENT_REJECTED : ErrorCode.LOGIN_REQUIRED;
  // The AS forgot a client latchkey registered (restart, purged DCR clients): re-register at the next login.
  if (failure.kind === 'client-rejected') {
    await evictRejectedRegistration(ctx.store, key.issuer, current.clientId).catch(() => false);
  }
  ctx.logger.warn('the authorization server rejected the refresh; a new login is needed', {
    server: key.server,
    error: failure.error,
    cause,
  });
  const lost = failure.error === 'invalid_grant' ? ctx.previousHolder : undefined;
  const message =
    `${failure.error}${failure.description === undefined ? '' : `: ${failure.description}`}` +
    (lost === undefined ? '' : ` (${probableLoss(lost)})`);
  const at = Date.now();
  await ctx.store.updateStatus(
    key,
    { ...current.status, state: 'needs-login', lastError: { code, message: networkText(message), at } },
    {
      type: EventType.NEEDS_LOGIN,
      ...key,
      generation: current.generation,
      detail: { error: failure.error, ...(lost === undefined ? {} : { takenOverFrom: lost }) },
    },
  );
  throw loginRequired(key.server, `the authorization server rejected the refresh (${failure.error})`, cause);
}

async function recordTransient(
  ctx: EngineContext<RefreshStore>,
  current: StoredCredential,
  failure: Extract<TokenFailure, { kind: 'transient' }>,
  cause: unknown,
): Promise<never> {
  const { key } = current;
  const now = Date.now();
  const failures = current.status.failures + 1;
  const delay = Math.max(backoffDelayMs(failures, ctx.backoff), failure.retryAfterMs ?? 0);
  const code = failure.retryAfterMs === undefined ? ErrorCode.REFRESH_TRANSIENT : THROTTLED;
  ctx.stats.transientFailures++;
  ctx.logger.warn('refresh failed, will retry', {
    server: key.server,
    reason: failure.reason,
    failures,
    retryInMs: delay,
    cause,
  });
  await ctx.store.updateStatus(
    key,
    {
      ...current.status,
      state: 'retrying',
      failures,
      nextAttemptAt: now + delay,
      lastError: { code, message: networkText(failure.reason), at: now },
    },
    {
      type: EventType.REFRESH_FAILED,
      ...key,
      generation: current.generation,
      detail: {
        reason: failure.reason,
        failures,
        retryInMs: delay,
        ...(failure.status ? { status: failure.status } : {}),
      },
    },
  );
  const retryAt = failure.retryAfterMs === undefined ? now + ctx.backoff.demandIntervalMs : now + delay;
  throw refreshTransient(key.server, failure.reason, retryAt, { rateLimited: code === THROTTLED, cause });
}

async function recordAdoption(
  ctx: EngineContext<RefreshStore>,
  cred: StoredCredential,
  reason: string,
): Promise<void> {
  ctx.stats.adoptions++;
  ctx.logger.debug('adopted a newer credential', {
    server: cred.key.server,
    generation: cred.generation,
    reason,
  });
  await ctx.store.appendEvent({
    type: EventType.ADOPTED,
    ...cred.key,
    generation: cred.generation,
    detail: { reason },
  });
}

/** The credential a successful refresh write stored (the store's status for a refresh). */
function asWritten(record: CredentialRecord, generation: number): StoredCredential {
  const now = Date.now();
  return {
    ...record,
    generation,
    status: { state: 'valid', failures: 0, lastRefreshAt: now },
    updatedAt: now,
  };
}

function usableNow(ctx: EngineContext<RefreshStore>, cred: StoredCredential): boolean {
  return isUsable(cred, Date.now(), ctx.skewMs);
}

function needsLogin(cred: StoredCredential): LatchkeyError {
  const reason = cred.status.lastError?.message ?? 'the refresh token was rejected';
  return loginRequired(cred.key.server, `the stored credential needs a new login (${reason})`);
}

function waitTimeout(seen: SeenCredential): LatchkeyError {
  return new LatchkeyError(
    ErrorCode.WAIT_TIMEOUT,
    'timed out waiting for another process to finish refreshing the token.',
    {
      server: seen.key.server,
      retryable: true,
      next: { kind: 'inspect-events', server: seen.key.server },
    },
  );
}

function refreshDetail(record: { expiresAt?: number; obtainedAt: number }): Record<string, number> {
  return record.expiresAt === undefined ? {} : { expiresInMs: record.expiresAt - record.obtainedAt };
}

/** Single-flight key for refreshes of one credential. */
export function refreshFlightKey(cred: SeenCredential): string {
  return `refresh\u0000${keyId(cred.key)}`;
}

/**
 * The `resource` of a refresh: what the login sent (which may be the metadata's `resource` or
 * an override rather than the server URL), nothing when the login sent none, and nothing when
 * the manager is told never to send it.
 */
function refreshResource(ctx: EngineContext<RefreshStore>, current: StoredCredential): { resource?: string } {
  if (!ctx.sendResource || current.resource === null) return {};
  return { resource: current.resource ?? current.key.server };
}
