import type { CredentialKey } from '../credential/key.js';
import type { LatchkeyError } from '../errors.js';
import type { Logger } from '../log.js';
import type { ClientContext } from '../oauth/client-context.js';
import type { CredentialStore, LeaseHolder } from '../store/contract.js';
import type { BackoffPolicy } from './backoff.js';
import type { RevocationRetryPolicy } from './pending-revocations.js';

/** Counters a manager keeps about its own process, for tests, status and benchmarks. */
export interface ManagerStats {
  /** Refresh requests this process sent to an authorization server. */
  refreshRequests: number;
  /** Times this process adopted tokens another process (or an earlier write) produced. */
  adoptions: number;
  /** Callers that had to wait for a refresh because no usable token was cached. */
  callersWaitedOnRefresh: number;
  /** Interactive acquisitions this process ran. */
  acquisitions: number;
  /** Transient refresh failures seen by this process. */
  transientFailures: number;
  /** Cached credentials dropped to stay within `maxCachedCredentials` (they stay in the store). */
  cacheEvictions: number;
}

/**
 * What the refresh and login transactions need from the manager. The manager holds the whole
 * store; each module names the parts it uses as `Store` (e.g. refresh.ts's `RefreshStore`).
 */
export interface EngineContext<Store = CredentialStore> {
  store: Store;
  holder: LeaseHolder;
  skewMs: number;
  requestTimeoutMs: number;
  leaseTtlMs: number;
  waitTimeoutMs: number;
  pollMs: number;
  backoff: BackoffPolicy;
  fetch: typeof fetch | undefined;
  logger: Logger;
  stats: ManagerStats;
  /** Send RFC 8707 `resource` on refresh (some IdPs, e.g. Entra v1, reject it). */
  sendResource: boolean;
  /** When a newer login replaces a pending one (see login-lease.ts). */
  login: LoginPolicy;
  /** Schedule of revocations queued by a logout while the AS was down. Default DEFAULT_REVOCATION_RETRY. */
  revocationRetry?: RevocationRetryPolicy;
  /**
   * Extend the lease while a refresh is in flight (lease.ts `keepLease`). The fleet refresher
   * sets it: its leases are short so that a dead instance's claims are taken over soon, and
   * a slow token endpoint must not outlast them. A manager's lease outlasts its request
   * timeout by default, so it leaves the lease as taken, and a logout can take a lease whose
   * holder stopped answering, unless its owner asks (the manager's `keepLeaseAlive`).
   */
  keepLeaseAlive?: boolean;
  /**
   * Where refreshes get the client (AS metadata and registration) they send as. Default: read
   * from the store for every refresh. The fleet refresher keeps them for a while
   * (refresher/client-cache.ts).
   */
  clients?: ClientContextSource;
  /**
   * The holder whose lease this attempt took over: expired (the fleet refresher's claims) or
   * broken because its process on this host is gone (refresh.ts). Should the AS then reject
   * the refresh token, that holder most likely spent it and died before storing the answer
   * (the in-flight window); the needs-login status and event say so, naming it, instead of
   * leaving an operator to guess.
   */
  previousHolder?: string;
  /** Report a problem that is not thrown to any caller (background refresh). */
  warn(error: LatchkeyError): void;
}

/** A source of refresh clients that may keep them between refreshes. */
export interface ClientContextSource {
  /** The client for `key` as `clientId`; `load` builds it from the store when not kept. */
  get(key: CredentialKey, clientId: string, load: () => Promise<ClientContext>): Promise<ClientContext>;
  /** Stop keeping that client: a refresh with it failed. */
  forget(key: CredentialKey, clientId: string): void;
}

export interface LoginPolicy {
  supersedeAfterMs: number;
  maxLoginsPerMinute: number;
}

export function emptyStats(): ManagerStats {
  return {
    refreshRequests: 0,
    adoptions: 0,
    callersWaitedOnRefresh: 0,
    acquisitions: 0,
    transientFailures: 0,
    cacheEvictions: 0,
  };
}
