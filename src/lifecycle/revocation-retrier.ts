import { secrets } from '../redact.js';
import { ErrorCode, isLatchkeyError } from '../errors.js';
import type { Logger } from '../log.js';
import { buildContext } from '../oauth/client-context.js';
import { dpopKeysOf } from '../oauth/dpop.js';
import { authorizationServerMetadata } from '../oauth/discovery.js';
import { type RevocationOutcome, revokeTokens } from '../oauth/revocation.js';
import {
  type ClaimedRevocation,
  type DiscoveryCache,
  EventType,
  type PendingRevocationStore,
} from '../store/contract.js';
import { type RevocationRetryPolicy, retryDelayMs } from './pending-revocations.js';

/**
 * Retrying the revocations a logout could not complete. One pass claims the due rows (so
 * no other process sends them meanwhile), tries each once within a time budget, and then
 * removes or reschedules it. A transient failure never drops a row; only the AS's final
 * answer or the token's expiry does.
 */
export interface RetryDeps {
  /** The queue, and the discovery cache for the AS metadata of each row's issuer. */
  store: PendingRevocationStore & DiscoveryCache;
  /** Claim owner: the manager's lease holder. */
  owner: string;
  fetch: typeof fetch | undefined;
  logger: Logger;
  /** Upper bound of one revocation request (cut further by the pass budget). */
  requestTimeoutMs: number;
  policy: RevocationRetryPolicy;
}

export interface RetryPassResult {
  revoked: number;
  /** Removed without a revocation: expired, unsupported, or refused by the AS. */
  dropped: number;
  rescheduled: number;
}

/** Rows one pass claims at most; the rest wait for the next pass. */
const PASS_LIMIT = 20;

export async function retryPendingRevocations(deps: RetryDeps): Promise<RetryPassResult> {
  const result: RetryPassResult = { revoked: 0, dropped: 0, rescheduled: 0 };
  const deadline = Date.now() + deps.policy.passBudgetMs;
  const claimed = await deps.store.claimPendingRevocations({
    owner: deps.owner,
    // Outlives the pass, so the claim cannot lapse while its last request is in flight.
    ttlMs: deps.policy.passBudgetMs + deps.requestTimeoutMs,
    limit: PASS_LIMIT,
  });
  for (const row of claimed) {
    secrets.add(row.secrets.token);
    secrets.add(row.secrets.clientSecret);
    const remaining = deadline - Date.now();
    if (row.expiresAt <= Date.now()) {
      await expire(deps, row);
      result.dropped++;
    } else if (remaining <= 0) {
      // Out of time: hand the row back untouched for the next pass (or another process).
      await deps.store.reschedulePendingRevocation(row.id, deps.owner, scheduleOf(row));
    } else {
      const outcome = await attempt(deps, row, deadline);
      const kind = await settle(deps, row, outcome);
      result[kind]++;
    }
  }
  return result;
}

/** Each request's timeout is what is left of the pass (at least a moment), capped per request. */
function timeoutBefore(deadline: number, deps: RetryDeps): number {
  return Math.max(250, Math.min(deps.requestTimeoutMs, deadline - Date.now()));
}

async function attempt(
  deps: RetryDeps,
  row: ClaimedRevocation,
  deadline: number,
): Promise<RevocationOutcome> {
  const { issuer, server } = row.key;
  try {
    const as = await authorizationServerMetadata(deps.store, issuer, {
      server,
      fetch: deps.fetch,
      timeoutMs: timeoutBefore(deadline, deps),
    });
    const client = buildContext(
      as,
      {
        issuer,
        clientId: row.clientId,
        tokenEndpointAuthMethod: row.tokenEndpointAuthMethod,
        method: 'pre-registered',
        registeredAt: 0,
        ...(row.secrets.clientSecret === undefined ? {} : { clientSecret: row.secrets.clientSecret }),
      },
      { fetch: deps.fetch, dpopKeys: dpopKeysOf(deps.store) },
    );
    const field = row.tokenType === 'refresh_token' ? 'refreshToken' : 'accessToken';
    const report = await revokeTokens(
      client,
      { [field]: row.secrets.token },
      { timeoutMs: timeoutBefore(deadline, deps) },
    );
    return report[field] ?? { status: 'failed', reason: 'no outcome', retryable: true };
  } catch (error) {
    // No metadata (AS down, discovery timed out, metadata broken for now) or an unusable
    // client snapshot. Only the latter is final: metadata an operator may still fix is
    // waited for, and the token's expiry bounds the wait.
    const code = isLatchkeyError(error) ? error.code : 'unreachable';
    return { status: 'failed', reason: code, retryable: code !== ErrorCode.CLIENT_REJECTED, error: code };
  }
}

async function settle(
  deps: RetryDeps,
  row: ClaimedRevocation,
  outcome: RevocationOutcome,
): Promise<keyof RetryPassResult> {
  const attempts = row.attempts + 1;
  const base = { ...row.key, detail: { token: row.tokenType, attempts } };
  if (outcome.status === 'failed' && outcome.retryable) {
    // A Retry-After from the AS wins over a shorter backoff (capped like the backoff).
    const delay = Math.max(
      retryDelayMs(attempts + 1, deps.policy),
      Math.min(outcome.retryAfterMs ?? 0, deps.policy.maxMs),
    );
    const nextAttemptAt = Math.min(Date.now() + delay, row.expiresAt);
    await deps.store.reschedulePendingRevocation(row.id, deps.owner, {
      attempts,
      nextAttemptAt,
      lastError: shortError(outcome),
    });
    deps.logger.debug('a pending revocation failed again; rescheduled', {
      server: row.key.server,
      kind: row.tokenType,
      attempts,
      lastError: shortError(outcome),
      inMs: nextAttemptAt - Date.now(),
    });
    return 'rescheduled';
  }
  const final =
    outcome.status === 'failed'
      ? { outcome: 'refused', error: shortError(outcome) }
      : { outcome: outcome.status };
  await deps.store.removePendingRevocation(row.id, deps.owner, {
    type: EventType.REVOCATION_RETRIED,
    ...base,
    detail: { ...base.detail, ...final },
  });
  deps.logger.info(
    outcome.status === 'revoked' ? 'a pending revocation went through' : 'a pending revocation was given up',
    // `kind`, not `token`: the logger redacts every field whose name says token.
    { server: row.key.server, kind: row.tokenType, attempts, ...final },
  );
  return outcome.status === 'revoked' ? 'revoked' : 'dropped';
}

async function expire(deps: RetryDeps, row: ClaimedRevocation): Promise<void> {
  await deps.store.removePendingRevocation(row.id, deps.owner, {
    type: EventType.REVOCATION_EXPIRED,
    ...row.key,
    detail: {
      token: row.tokenType,
      attempts: row.attempts,
      ...(row.lastError === undefined ? {} : { lastError: row.lastError }),
    },
  });
  deps.logger.warn('a token expired before the authorization server accepted its revocation', {
    server: row.key.server,
    kind: row.tokenType,
  });
}

function scheduleOf(row: ClaimedRevocation) {
  return {
    attempts: row.attempts,
    nextAttemptAt: row.nextAttemptAt,
    ...(row.lastError === undefined ? {} : { lastError: row.lastError }),
  };
}

/** A short code for status and events: an HTTP status, an OAuth error code, or a kind. */
function shortError(outcome: Extract<RevocationOutcome, { status: 'failed' }>): string {
  if (outcome.error !== undefined && outcome.httpStatus !== undefined)
    return `${outcome.error} (HTTP ${outcome.httpStatus})`;
  if (outcome.error !== undefined) return outcome.error;
  if (outcome.httpStatus !== undefined) return `HTTP ${outcome.httpStatus}`;
  return /timed out/i.test(outcome.reason) ? 'timeout' : 'network error';
}

/**
 * Runs passes for a manager: at once, when told a row was queued, at the earliest due time
 * of what is queued, and at least every `checkIntervalMs`. Timers never keep a process alive.
 */
export class RevocationRetrier {
  readonly #deps: RetryDeps;
  #pass: Promise<void> | undefined;
  #again = false;
  #timer: NodeJS.Timeout | undefined;
  #closed = false;

  constructor(deps: RetryDeps) {
    this.#deps = deps;
  }

  /** Run a pass now, or right after the one in flight. */
  wake(): void {
    if (this.#closed) return;
    if (this.#pass !== undefined) {
      this.#again = true;
      return;
    }
    clearTimeout(this.#timer);
    this.#pass = this.#run().finally(() => {
      this.#pass = undefined;
      if (this.#again) {
        this.#again = false;
        this.wake();
      }
    });
  }

  /** The pass in flight, if any (it never rejects). */
  inFlight(): Promise<void> | undefined {
    return this.#pass;
  }

  close(): void {
    this.#closed = true;
    clearTimeout(this.#timer);
  }

  async #run(): Promise<void> {
    try {
      await retryPendingRevocations(this.#deps);
      if (!this.#again) await this.#scheduleNext();
    } catch (error) {
      this.#deps.logger.debug('retrying pending revocations failed', { error });
      this.#arm(this.#deps.policy.checkIntervalMs);
    }
  }

  async #scheduleNext(): Promise<void> {
    const rows = await this.#deps.store.listPendingRevocations();
    const next = Math.min(...rows.map((r) => r.nextAttemptAt));
    // At least a second: a row another process holds a claim on is due but not ours to take.
    this.#arm(Math.max(1000, Math.min(this.#deps.policy.checkIntervalMs, next - Date.now())));
  }

  #arm(delayMs: number): void {
    if (this.#closed) return;
    clearTimeout(this.#timer);
    this.#timer = setTimeout(() => this.wake(), delayMs);
    this.#timer.unref();
  }
}
