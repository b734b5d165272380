import { DEFAULT_SKEW_MS } from '../../credential/expiry.js';
import { createLogger, type Logger } from '../../log.js';
import type { CredentialStore, LeaseHolder } from '../../store/contract.js';
import { type BackoffPolicy, DEFAULT_BACKOFF } from '../backoff.js';
import { newLeaseHolder } from '../lease.js';

/**
 * Options of `startRefresher`. Limits are per instance: N instances on one store allow up
 * to N times each per-issuer figure at an AS (docs/refresher.md, "Running N instances").
 */
export interface RefresherOptions {
  /** The shared store whose due credentials this instance refreshes. */
  store: CredentialStore;
  /** Most credentials claimed in one store round trip, and most token writes or lease releases batched in one. Default 50. */
  batchSize?: number;
  /** Most refreshes in flight in this instance, all issuers together. Default 64. */
  maxConcurrency?: number;
  /** Most refreshes in flight at one issuer from this instance. Default 8. */
  perIssuerConcurrency?: number;
  /** Token-bucket refill rate per issuer, in refresh requests per second. Default 20. */
  perIssuerRatePerSecond?: number;
  /** Token-bucket size per issuer: the largest burst after a quiet spell. Default 20. */
  perIssuerBurst?: number;
  /**
   * How long the AS metadata a refresh sends with is kept in memory before it is read from
   * the store again (the registration is read with every claim); a failed refresh drops it
   * at once. Default 60 000 ms.
   */
  clientCacheMs?: number;
  /** Timeout of one request to a token endpoint. Default 30 000 ms. */
  requestTimeoutMs?: number;
  /**
   * How long a claim (a lease) lasts. A killed instance's claims are taken over by others
   * this long after they were made or last extended. Default requestTimeoutMs + 15 000 ms.
   */
  leaseTtlMs?: number;
  /**
   * Treat tokens as expired this long before expiry, as the manager does. Default 60 000 ms.
   * The due times themselves use the default margin.
   */
  skewMs?: number;
  /** Retry policy after transient failures, per credential and per issuer (BackoffPolicy). */
  backoff?: Partial<BackoffPolicy>;
  /** Longest sleep between looks at the due index, even when nothing is due. Default 30 000 ms. */
  maxSleepMs?: number;
  /** Store watch interval (SQLite polling); a change wakes the loop early. Default 250 ms. */
  watchPollMs?: number;
  /** Send RFC 8707 `resource` on refresh. Default true (see CredentialManagerOptions). */
  sendResource?: boolean;
  /**
   * fetch for OAuth requests. Default: latchkey's token client on node:http(s) with keep-alive
   * connections, which reads each answer whole (oauth/token-http.ts); cheaper per refresh
   * than the global fetch. Metadata refetches use the same.
   */
  fetch?: typeof fetch;
  /** Default: a redacting stderr logger at `LATCHKEY_LOG_LEVEL`. */
  logger?: Logger;
  /** Lease identity. Default: `${hostname}:${pid}:${random}`. */
  holder?: LeaseHolder;
}

export interface ResolvedRefresherOptions {
  store: CredentialStore;
  batchSize: number;
  maxConcurrency: number;
  perIssuerConcurrency: number;
  perIssuerRatePerSecond: number;
  perIssuerBurst: number;
  clientCacheMs: number;
  requestTimeoutMs: number;
  leaseTtlMs: number;
  skewMs: number;
  backoff: BackoffPolicy;
  maxSleepMs: number;
  watchPollMs: number;
  sendResource: boolean;
  fetch: typeof fetch | undefined;
  logger: Logger;
  holder: LeaseHolder;
}

export function resolveRefresherOptions(options: RefresherOptions): ResolvedRefresherOptions {
  const requestTimeoutMs = positive(options.requestTimeoutMs, 30_000, 'requestTimeoutMs');
  const rate = positive(options.perIssuerRatePerSecond, 20, 'perIssuerRatePerSecond');
  return {
    store: options.store,
    batchSize: positive(options.batchSize, 50, 'batchSize'),
    maxConcurrency: positive(options.maxConcurrency, 64, 'maxConcurrency'),
    perIssuerConcurrency: positive(options.perIssuerConcurrency, 8, 'perIssuerConcurrency'),
    perIssuerRatePerSecond: rate,
    perIssuerBurst: positive(options.perIssuerBurst, Math.max(1, rate), 'perIssuerBurst'),
    clientCacheMs: positive(options.clientCacheMs, 60_000, 'clientCacheMs'),
    requestTimeoutMs,
    leaseTtlMs: positive(options.leaseTtlMs, requestTimeoutMs + 15_000, 'leaseTtlMs'),
    skewMs: options.skewMs ?? DEFAULT_SKEW_MS,
    backoff: { ...DEFAULT_BACKOFF, ...options.backoff },
    maxSleepMs: positive(options.maxSleepMs, 30_000, 'maxSleepMs'),
    watchPollMs: positive(options.watchPollMs, 250, 'watchPollMs'),
    sendResource: options.sendResource ?? true,
    fetch: options.fetch,
    logger: options.logger ?? createLogger(),
    holder: options.holder ?? newLeaseHolder(),
  };
}

function positive(value: number | undefined, fallback: number, name: string): number {
  if (value === undefined) return fallback;
  if (!Number.isFinite(value) || value <= 0) throw new RangeError(`refresher option ${name} must be > 0`);
  return value;
}
