import type { CredentialKey } from '../credential/key.js';
import type { StoredCredential } from '../credential/model.js';
import { ErrorCode, isLatchkeyError, LatchkeyError } from '../errors.js';
import { loadClientContext } from '../oauth/client-context.js';
import {
  type RevocationOutcome,
  type RevocationReport,
  revocationFailures,
  revokeTokens,
  rejectedClient,
} from '../oauth/revocation.js';
import { evictRejectedRegistration } from '../oauth/registration.js';
import {
  type CredentialTable,
  type DiscoveryCache,
  EventType,
  type LeaseTable,
  type PendingRevocationStore,
  type RegistrationCache,
  type RevocationTokenType,
} from '../store/contract.js';
import type { EngineContext } from './context.js';
import { breakLeaseIfHolderDead, keepLease, pollDelay, sleep } from './lease.js';
import { queueRevocations } from './pending-revocations.js';

/**
 * A logout deletes the credential under its lease, revokes as the client it was issued to
 * (registration and AS metadata), and queues what the AS could not take.
 */
export type LogoutStore = CredentialTable &
  LeaseTable &
  RegistrationCache &
  DiscoveryCache &
  PendingRevocationStore;

/**
 * Logout (design: `logout` → `revoked` → deleted): revoke the tokens at the authorization
 * server (RFC 7009), then delete the credential, under the same lease a refresh takes, so a
 * refresh in flight elsewhere can never write tokens back (design rule 5: its write is
 * conditional on the generation and the lease, and both are gone).
 */
export interface LogoutOptions {
  /**
   * Keep the local credential when any revocation failed, and throw a retryable error.
   * Default false (best effort): delete locally anyway and report the failure.
   */
  strict?: boolean;
  signal?: AbortSignal;
}

export interface LogoutReport {
  key: CredentialKey;
  /** False when no credential was stored under the key (nothing to do). */
  found: boolean;
  /** Whether latchkey obtained the tokens itself; only those are revoked. */
  owned: boolean;
  /** Per-token revocation outcomes; absent when nothing was sent to the AS. */
  revocation?: RevocationReport;
  /** True when the local credential was deleted. */
  deleted: boolean;
  /**
   * Tokens whose revocation failed transiently and that were queued for later latchkey runs
   * to retry (best-effort logout only). Absent or empty: nothing is pending.
   */
  pendingRevocation?: RevocationTokenType[];
  /** One sentence per thing the user should know (failures, unsupported revocation, not owned). */
  notes: string[];
}

/** A strict logout that kept the credential because revocation failed. */
export class LogoutError extends LatchkeyError {
  readonly report: LogoutReport;

  constructor(report: LogoutReport, code: ErrorCode, message: string, retryable: boolean) {
    super(code, message, {
      server: report.key.server,
      retryable,
      // Strict kept the credential: a later strict logout may get through, a best-effort one
      // deletes the local copy anyway.
      next: { kind: 'logout', server: report.key.server, strict: true, again: retryable },
    });
    this.report = report;
  }
}

/** How often the credential may change under us (our lease lapsed) before we give up. */
const MAX_ROUNDS = 3;

export async function logout(
  ctx: EngineContext<LogoutStore>,
  key: CredentialKey,
  options: LogoutOptions = {},
): Promise<LogoutReport> {
  const leased = await takeLease(ctx, key, options.signal);
  if (!leased) return notFound(key);
  let stopKeeping: (() => Promise<void>) | undefined;
  let previous: LogoutReport | undefined;
  try {
    for (let round = 0; round < MAX_ROUNDS; round++) {
      // Revocation can take two request timeouts; keep the lease alive meanwhile.
      stopKeeping = keepLease(ctx.store, key, ctx.holder, ctx.leaseTtlMs);
      const current = await ctx.store.getCredential(key);
      // Gone since an earlier round (another logout): what we revoked is still worth reporting.
      if (current === undefined) return previous ?? notFound(key);
      const report = await revokeForLogout(ctx, current, options);
      previous = report;
      await stopKeeping();
      if (await deleteLoggedOut(ctx, current, report)) return { ...report, deleted: true };
      // Our lease lapsed during revocation and someone refreshed: revoke the newer tokens too.
      if ((await ctx.store.acquireLease(key, ctx.holder, ctx.leaseTtlMs)) === undefined) {
        if (!(await takeLease(ctx, key, options.signal))) return report;
      }
    }
    throw new LatchkeyError(ErrorCode.WAIT_TIMEOUT, 'the credential kept changing during logout.', {
      server: key.server,
      retryable: true,
      next: { kind: 'logout', server: key.server },
    });
  } finally {
    await stopKeeping?.();
    await ctx.store.releaseLease(key, ctx.holder.owner).catch(() => undefined);
  }
}

/**
 * Revoke the credential's tokens, then stop (cancelled, or strict with a failure) or queue
 * what failed for later runs to retry.
 */
async function revokeForLogout(
  ctx: EngineContext<LogoutStore>,
  current: StoredCredential,
  options: LogoutOptions,
): Promise<LogoutReport> {
  const { key } = current;
  const report = await revokeIfOwned(ctx, current, options.signal);
  // Interrupted mid-way: keep everything; a later logout starts over.
  if (options.signal?.aborted === true) throw cancelled(key, options.signal.reason);
  const failures = report.revocation === undefined ? [] : revocationFailures(report.revocation);
  if (options.strict === true && failures.length > 0) throw strictFailure(report, failures);
  // Queued before the delete: a crash between the two leaves a revocation of tokens
  // that are still stored (harmless), never deleted tokens that nobody will revoke.
  const pending =
    failures.length > 0 && report.revocation !== undefined
      ? await queueRevocations(ctx, current, report.revocation)
      : [];
  if (pending.length > 0) {
    report.pendingRevocation = pending;
    report.notes = notesFor(key.server, key.issuer, report.revocation, pending);
  }
  return report;
}

/** Delete the credential if it is still the generation we revoked and our lease holds. */
async function deleteLoggedOut(
  ctx: EngineContext<LogoutStore>,
  current: StoredCredential,
  report: LogoutReport,
): Promise<boolean> {
  const { key } = current;
  const deleted = await ctx.store.deleteCredential(
    key,
    { expectedGeneration: current.generation, leaseOwner: ctx.holder.owner },
    {
      type: anyRevoked(report.revocation) ? EventType.REVOKED : EventType.DELETED,
      ...key,
      generation: current.generation,
      detail: eventDetail(report),
    },
  );
  if (deleted) ctx.logger.info('logged out', { server: key.server, ...eventDetail(report) });
  return deleted;
}

/**
 * Take the credential's lease, waiting like a refresh does for a live holder and breaking
 * the lease of a holder that died. False when the credential disappeared meanwhile.
 */
async function takeLease(
  ctx: EngineContext<LogoutStore>,
  key: CredentialKey,
  signal?: AbortSignal,
): Promise<boolean> {
  const deadline = Date.now() + ctx.waitTimeoutMs;
  for (;;) {
    if ((await ctx.store.acquireLease(key, ctx.holder, ctx.leaseTtlMs)) !== undefined) return true;
    if ((await ctx.store.getCredential(key)) === undefined) return false;
    await breakLeaseIfHolderDead(ctx.store, key);
    if (Date.now() > deadline) {
      throw new LatchkeyError(
        ErrorCode.WAIT_TIMEOUT,
        'timed out waiting for another process to finish with the credential before logging out.',
        { server: key.server, retryable: true, next: { kind: 'logout', server: key.server } },
      );
    }
    await sleep(pollDelay(ctx.pollMs), signal).catch((cause: unknown) => {
      throw cancelled(key, cause);
    });
  }
}

async function revokeIfOwned(
  ctx: EngineContext<LogoutStore>,
  cred: StoredCredential,
  signal: AbortSignal | undefined,
): Promise<LogoutReport> {
  const base = { key: cred.key, found: true, owned: cred.owned, deleted: false };
  const { issuer, server } = cred.key;
  if (!cred.owned) {
    return {
      ...base,
      notes: [
        `${server}: the tokens were supplied from outside latchkey, so they were not revoked at ${issuer}; only the local copy is removed.`,
      ],
    };
  }
  const tokens = { accessToken: cred.secrets.accessToken, refreshToken: cred.secrets.refreshToken };
  let revocation: RevocationReport;
  try {
    const client = await loadClientContext(ctx.store, server, issuer, cred.clientId, { fetch: ctx.fetch });
    revocation = await revokeTokens(client, tokens, { timeoutMs: ctx.requestTimeoutMs, signal });
    // The AS forgot this client: the next login registers afresh instead of presenting it.
    if (rejectedClient(revocation))
      await evictRejectedRegistration(ctx.store, issuer, cred.clientId).catch(() => false);
  } catch (error) {
    // No metadata, no client: nothing could be sent. Every token counts as failed.
    revocation = unreachable(tokens, error);
  }
  return { ...base, revocation, notes: notesFor(server, issuer, revocation) };
}

function unreachable(
  tokens: { accessToken: string; refreshToken?: string | undefined },
  error: unknown,
): RevocationReport {
  const retryable = isLatchkeyError(error) ? error.retryable : true;
  const outcome: RevocationOutcome = {
    status: 'failed',
    reason: isLatchkeyError(error)
      ? `could not reach the authorization server (${error.code})`
      : 'could not reach the authorization server',
    retryable,
  };
  return {
    endpoint: undefined,
    accessToken: outcome,
    ...(tokens.refreshToken === undefined ? {} : { refreshToken: outcome }),
  };
}

function notesFor(
  server: string,
  issuer: string,
  revocation: RevocationReport | undefined,
  pending: readonly RevocationTokenType[] = [],
): string[] {
  const notes: string[] = [];
  for (const [label, outcome, type] of [
    ['refresh token', revocation?.refreshToken, 'refresh_token'],
    ['access token', revocation?.accessToken, 'access_token'],
  ] as const) {
    if (outcome?.status === 'failed') {
      const later = pending.includes(type)
        ? '; revocation is pending: later latchkey runs retry it (it is listed with the credential status)'
        : outcome.retryable
          ? '; it may work later'
          : '';
      notes.push(`${server}: revoking the ${label} at ${issuer} failed (${outcome.reason})${later}.`);
    } else if (outcome?.status === 'unsupported') {
      notes.push(
        `${server}: the ${label} could not be revoked: ${outcome.reason}; it stays valid until it expires.`,
      );
    }
  }
  return notes;
}

function strictFailure(report: LogoutReport, failures: RevocationOutcome[]): LogoutError {
  const retryable = failures.every((f) => f.status === 'failed' && f.retryable);
  const reasons = failures.map((f) => (f.status === 'failed' ? f.reason : f.status)).join('; ');
  return new LogoutError(
    report,
    retryable ? ErrorCode.LOGOUT_INCOMPLETE : ErrorCode.CLIENT_REJECTED,
    `logout kept the stored credential because revocation at ${report.key.issuer} failed (${reasons}).`,
    retryable,
  );
}

function anyRevoked(revocation: RevocationReport | undefined): boolean {
  return revocation?.refreshToken?.status === 'revoked' || revocation?.accessToken?.status === 'revoked';
}

/** Non-secret scalars for the event log. */
function eventDetail(report: LogoutReport): Record<string, string | boolean> {
  const detail: Record<string, string | boolean> = { owned: report.owned };
  if (report.revocation?.refreshToken !== undefined)
    detail['refreshToken'] = report.revocation.refreshToken.status;
  if (report.revocation?.accessToken !== undefined)
    detail['accessToken'] = report.revocation.accessToken.status;
  return detail;
}

function cancelled(key: CredentialKey, cause: unknown): LatchkeyError {
  return new LatchkeyError(ErrorCode.CANCELLED, 'the logout was cancelled; the credential was kept.', {
    server: key.server,
    retryable: false,
    cause,
  });
}

function notFound(key: CredentialKey): LogoutReport {
  return { key, found: false, owned: false, deleted: false, notes: [] };
}
