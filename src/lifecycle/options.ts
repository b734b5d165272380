import { DEFAULT_SKEW_MS } from '../credential/expiry.js';
import { LOCAL_SUBJECT } from '../credential/key.js';
import type { LatchkeyError } from '../errors.js';
import { createLogger, type Logger } from '../log.js';
import type { CredentialStore } from '../store/contract.js';
import type { AcquireHook } from './acquire.js';
import { type BackoffPolicy, DEFAULT_BACKOFF } from './backoff.js';
import type { EngineContext, ManagerStats } from './context.js';
import { newLeaseHolder } from './lease.js';
import { DEFAULT_MAX_CACHED_CREDENTIALS } from './token-cache.js';
import { DEFAULT_REVOCATION_RETRY, type RevocationRetryPolicy } from './pending-revocations.js';

export interface CredentialManagerOptions {
  /** Where credentials live. Shared by every process that should coordinate. */
  store: CredentialStore;
  /**
   * Interactive acquisition (browser, device or client-credentials flow), run when there is
   * no usable credential. Without it, `getAccessToken` throws `LOGIN_REQUIRED` instead.
   */
  acquire?: AcquireHook;
  /** The subject (end user) credentials belong to. Default `'local'` (the desktop user). */
  subject?: string;
  /** Treat tokens as expired this long before expiry; clamped to 10% of lifetime, at least 1 s (half of a sub-2-s lifetime). Default 60 000 ms. */
  skewMs?: number;
  /**
   * Refresh ahead of need, at ~3/4 of the usable lifetime. Default true: on a timer for every
   * cached credential, and from the hot path when a call finds its token past that point.
   * `false`: no timers (one-shot CLI processes), hot-path starts only. `'refresher'`: a fleet
   * refresher (docs/refresher.md) keeps the store fresh, so this manager never refreshes ahead
   * at all and refreshes only what a caller cannot use; two schedulers would otherwise race to
   * the same credentials and the one with the earlier jitter would win half the time.
   */
  proactiveRefresh?: boolean | 'refresher';
  /**
   * Most credentials (one per server and subject) kept decrypted in memory; beyond it the
   * least recently used are dropped from memory (never from the store) and read from the
   * store on their next call. Only cached credentials are refreshed proactively by this
   * manager. Default 10 000 (docs/architecture.md, "Many subjects in one process").
   */
  maxCachedCredentials?: number;
  /** Most proactive refreshes in flight at once (at least 1); due ones wait their turn. Default 32. */
  maxBackgroundRefreshes?: number;
  /** Timeout of one request to the token endpoint. Default 30 000 ms. */
  requestTimeoutMs?: number;
  /**
   * How long a refresh lease lasts before others may take it: how soon another process takes
   * over the refresh of one that died holding it. Default requestTimeoutMs + 15 000 ms. Set it
   * shorter only with `keepLeaseAlive`.
   */
  leaseTtlMs?: number;
  /**
   * Extend a refresh's lease every third of `leaseTtlMs` while the refresh runs, so that a
   * token request slower than a short lease never lets a second process send the same
   * refresh token (with rotation the AS would revoke the grant). Default false: the default
   * lease already outlasts any request. `latchkey serve --lease-ttl` sets it.
   */
  keepLeaseAlive?: boolean;
  /** Longest a caller waits for another process's refresh. Default leaseTtlMs + 5 000 ms. */
  waitTimeoutMs?: number;
  /** Longest an interactive acquisition (or waiting for another process's) may take. Default 300 000 ms. */
  loginTimeoutMs?: number;
  /**
   * A pending login in another process that began this long before this process wanted one
   * is replaced by a new flow here (its tab was most likely never seen). A login the person
   * starts (`manager.login()`, or the CLI's login command) replaces a pending one at once. Default 1 000 ms.
   */
  supersedeLoginAfterMs?: number;
  /**
   * The cross-process storm cap: automatic logins stop replacing pending ones once this many
   * logins started for a server in the last minute (they wait instead). Default 3.
   */
  maxLoginsPerMinute?: number;
  /** How often a waiting caller re-reads the store. Default 25 ms. */
  pollMs?: number;
  /** Watch the store for other processes' changes. Default true. */
  watch?: boolean;
  /** Store watch interval. Default 250 ms (changes reach this process well within 1 s). */
  watchPollMs?: number;
  /** Retry policy after transient failures (see BackoffPolicy for defaults). */
  backoff?: Partial<BackoffPolicy>;
  /**
   * Retry the revocations that a logout (in any process sharing the store) could not
   * complete because the AS was unreachable: once when the manager starts, then in the
   * background as they fall due. Default true. With false, this manager still queues
   * revocations on logout, for other latchkey runs to retry.
   */
  retryRevocations?: boolean;
  /** Schedule of those retries (see RevocationRetryPolicy for defaults). */
  revocationRetry?: Partial<RevocationRetryPolicy>;
  /** fetch used for OAuth requests. Default: the global fetch. */
  fetch?: typeof fetch;
  /** Default: a redacting stderr logger at `LATCHKEY_LOG_LEVEL` (default warn). */
  logger?: Logger;
  /**
   * Send the RFC 8707 `resource` parameter on refresh. Default true. Set false only for
   * authorization servers that reject it (Microsoft Entra ID v2 endpoints, AADSTS9010010).
   */
  sendResource?: boolean;
}

export type ResolvedOptions = Required<
  Omit<CredentialManagerOptions, 'acquire' | 'fetch' | 'backoff' | 'revocationRetry'>
> & {
  acquire: AcquireHook | undefined;
  fetch: typeof fetch | undefined;
  backoff: BackoffPolicy;
  revocationRetry: RevocationRetryPolicy;
};

export function resolveOptions(options: CredentialManagerOptions): ResolvedOptions {
  const requestTimeoutMs = options.requestTimeoutMs ?? 30_000;
  const leaseTtlMs = options.leaseTtlMs ?? requestTimeoutMs + 15_000;
  return {
    store: options.store,
    acquire: options.acquire,
    subject: options.subject ?? LOCAL_SUBJECT,
    skewMs: options.skewMs ?? DEFAULT_SKEW_MS,
    proactiveRefresh: options.proactiveRefresh ?? true,
    maxCachedCredentials: options.maxCachedCredentials ?? DEFAULT_MAX_CACHED_CREDENTIALS,
    maxBackgroundRefreshes: Math.max(1, options.maxBackgroundRefreshes ?? 32),
    requestTimeoutMs,
    leaseTtlMs,
    keepLeaseAlive: options.keepLeaseAlive ?? false,
    waitTimeoutMs: options.waitTimeoutMs ?? leaseTtlMs + 5_000,
    loginTimeoutMs: options.loginTimeoutMs ?? 300_000,
    supersedeLoginAfterMs: options.supersedeLoginAfterMs ?? 1_000,
    maxLoginsPerMinute: options.maxLoginsPerMinute ?? 3,
    pollMs: options.pollMs ?? 25,
    watch: options.watch ?? true,
    watchPollMs: options.watchPollMs ?? 250,
    backoff: { ...DEFAULT_BACKOFF, ...options.backoff },
    retryRevocations: options.retryRevocations ?? true,
    revocationRetry: { ...DEFAULT_REVOCATION_RETRY, ...options.revocationRetry },
    fetch: options.fetch,
    logger: options.logger ?? createLogger(),
    sendResource: options.sendResource ?? true,
  };
}

/** What the manager hands its refresh, login and logout transactions: one lease holder per manager. */
export function engineContext(
  o: ResolvedOptions,
  stats: ManagerStats,
  warn: (error: LatchkeyError) => void,
): EngineContext {
  return {
    store: o.store,
    holder: newLeaseHolder(),
    skewMs: o.skewMs,
    requestTimeoutMs: o.requestTimeoutMs,
    leaseTtlMs: o.leaseTtlMs,
    keepLeaseAlive: o.keepLeaseAlive,
    waitTimeoutMs: o.waitTimeoutMs,
    pollMs: o.pollMs,
    backoff: o.backoff,
    fetch: o.fetch,
    logger: o.logger,
    stats,
    sendResource: o.sendResource,
    login: { supersedeAfterMs: o.supersedeLoginAfterMs, maxLoginsPerMinute: o.maxLoginsPerMinute },
    revocationRetry: o.revocationRetry,
    warn,
  };
}
