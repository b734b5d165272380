import type { CredentialKey } from '../credential/key.js';
import type { CredentialRecord, CredentialStatus, StoredCredential } from '../credential/model.js';
import type { DPoPKeyTable } from './dpop-key-contract.js';
export type { DPoPKeyRecord, DPoPKeyTable } from './dpop-key-contract.js';

/**
 * The store contract, in seven small interfaces that one store object implements: the
 * credentials, the registration cache, the discovery cache, the leases, the event log (with
 * watch), and the pending revocations. Each consumer asks for the ones it uses, so a new
 * store (Postgres) is written against them and a consumer's needs show in its signature.
 * Every implementation passes the same contract test suite (test/store/contract.ts). All
 * methods are async so that network stores fit; the embedded ones answer synchronously
 * underneath.
 *
 * Concurrency model:
 * - Token writes are compare-and-set on `generation` (and, when given, on lease ownership).
 *   A write that lost the race is reported, never applied.
 * - Leases are time-bounded claims on one credential by one process, taken before a refresh
 *   or logout. They expire on their own, so a crashed holder never wedges anyone.
 * - Every change appends a lifecycle event in the same transaction. `watch()` delivers new
 *   events, from this and other processes, which is how processes learn about each other's
 *   writes.
 */
export interface CredentialStore
  extends
    CredentialTable,
    RegistrationCache,
    DiscoveryCache,
    LeaseTable,
    DueIndex,
    EventLog,
    PendingRevocationStore,
    DPoPKeyTable {
  readonly kind: 'memory' | 'sqlite' | 'postgres';
  /** Where secrets are protected and how; `insecure` means the user must be warned. */
  readonly security: StoreSecurity;
  close(): Promise<void>;
}

/** The credentials themselves: tokens, their generation and their shared lifecycle status. */
export interface CredentialTable {
  getCredential(key: CredentialKey): Promise<StoredCredential | undefined>;
  listCredentials(filter?: CredentialFilter): Promise<StoredCredential[]>;
  /**
   * Create or replace the tokens of a credential and append `event` atomically.
   * `expectedGeneration`: `0` means "must not exist yet"; `'any'` skips the check (login
   * replaces whatever is there). On success the new generation is previous + 1 (or 1).
   * A successful write resets status to `valid` with zero failures.
   */
  writeCredential(
    record: CredentialRecord,
    condition: WriteCondition,
    event: EventInput,
  ): Promise<WriteResult>;
  /**
   * Several `writeCredential`s in one transaction (one round trip's worth on Postgres), each
   * judged on its own condition: a refused write leaves the others written. Results in the
   * order given. All or none are committed if the store itself fails. The fleet refresher
   * writes a batch's refreshed tokens with it.
   */
  writeCredentials(writes: readonly CredentialWrite[]): Promise<WriteResult[]>;
  /** Update shared lifecycle status without touching tokens or generation. No-op if absent. */
  updateStatus(key: CredentialKey, status: CredentialStatus, event?: EventInput): Promise<void>;
  /** Delete a credential (and its lease) and append `event`. False if absent or the condition failed. */
  deleteCredential(key: CredentialKey, condition: WriteCondition, event: EventInput): Promise<boolean>;
}

/** OAuth clients registered (or configured) per authorization server, keyed by issuer. */
export interface RegistrationCache {
  getRegistration(issuer: string): Promise<Registration | undefined>;
  putRegistration(registration: Registration): Promise<void>;
  deleteRegistration(issuer: string): Promise<void>;
}

/** Cached discovery documents: protected-resource metadata by resource, AS metadata by issuer. */
export interface DiscoveryCache {
  getDiscovery(kind: DiscoveryKind, id: string): Promise<DiscoveryRecord | undefined>;
  putDiscovery(record: DiscoveryRecord): Promise<void>;
  deleteDiscovery(kind: DiscoveryKind, id: string): Promise<void>;
}

/** Time-bounded claims on a credential key, taken before a refresh, a logout or a login. */
export interface LeaseTable {
  /**
   * Take the lease on `key` for `ttlMs`. Succeeds when there is no lease, it has expired, or
   * it is already held by `holder.owner` (which extends it). Returns undefined when another
   * live holder has it. Lease keys need not name an existing credential (logins use them too).
   */
  acquireLease(key: CredentialKey, holder: LeaseHolder, ttlMs: number): Promise<Lease | undefined>;
  getLease(key: CredentialKey): Promise<Lease | undefined>;
  /** Live (unexpired) leases whose key matches `filter`, oldest first. */
  listLeases(filter?: CredentialFilter): Promise<Lease[]>;
  /** Release if `owner` still holds it. */
  releaseLease(key: CredentialKey, owner: string): Promise<void>;
  /** Release each of `keys` that `owner` still holds, together (the refresher's batches). */
  releaseLeases(keys: readonly CredentialKey[], owner: string): Promise<void>;
  /** Remove a lease held by `staleOwner` (e.g. its process is dead). False if it changed hands. */
  breakLease(key: CredentialKey, staleOwner: string): Promise<boolean>;
}

/**
 * The due index: when each credential should next be refreshed, kept by the store beside the
 * row, so a fleet refresher finds its work with one indexed query instead of a timer per
 * credential (docs/refresher.md). A credential's due time is
 *   - `refreshPointAt(record)` (src/credential/due.ts): about 3/4 of the usable lifetime with
 *     a fixed per-key jitter, never later than expiry minus the default skew margin;
 *   - pushed to `status.nextAttemptAt` while the status is `retrying` (backoff, Retry-After);
 *   - none (never due) with no refresh token, no known expiry, or status `needs-login`.
 * Every `writeCredential` and `updateStatus` recomputes it in the same transaction.
 *
 * Claims use the lease table: a claimed credential is leased to the claimer exactly as if it
 * had called `acquireLease`, so an on-demand refresh in a CLI or proxy and a refresher never
 * refresh the same generation twice, and a crashed claimer's claims are free again once
 * their leases expire.
 *
 * Postgres implements `claimDueCredentials` as one transaction on the database clock:
 * `SELECT … FROM credentials c WHERE c.due_at <= $now AND c.issuer <> ALL($excluded) AND NOT
 * EXISTS (a live lease on c's key) ORDER BY c.due_at LIMIT $limit FOR UPDATE OF c SKIP LOCKED`,
 * then an upsert of those keys' lease rows with `expires_at = now() + ttl`, conditional on the
 * lease still being free or expired, returning only the keys it took. SKIP LOCKED lets N
 * instances claim disjoint batches without waiting on each other.
 */
export interface DueIndex {
  /**
   * Lease up to `limit` credentials whose due time is at or before `now` and on which nobody
   * (the claimer included) holds a live lease, earliest due first, to `holder` for `ttlMs`.
   * Returns them with their secrets. Expired leases are taken over.
   */
  claimDueCredentials(claim: DueClaim): Promise<StoredCredential[]>;
  /** How many credentials are due at `now` (default the clock), claimed or not: the backlog. */
  countDue(now?: number): Promise<number>;
  /**
   * The earliest moment a claim could return something: the smallest due time, or for a
   * credential someone holds a live lease on, the later of its due time and the lease's
   * expiry. Undefined when nothing is ever due. Lets a scheduler sleep instead of polling.
   * `excludeIssuers` leaves out the issuers a claim would exclude, so that work the caller
   * cannot start now does not make it spin.
   */
  nextDueAt(options?: { excludeIssuers?: readonly string[] }): Promise<number | undefined>;
}

export interface DueClaim {
  holder: LeaseHolder;
  /** Lease time of each claim; the store's clock decides expiry. */
  ttlMs: number;
  /** Most credentials to claim. */
  limit: number;
  /**
   * Due cut-off. Default: the store's clock. Only the cut-off moves; lease liveness always
   * uses the store's clock.
   */
  now?: number;
  /** Issuers whose credentials must not be claimed now (paused or saturated by the caller). */
  excludeIssuers?: readonly string[];
  /**
   * Told, after the claim has committed, of each claimed credential whose lease row belonged
   * to another holder and had expired: a crashed or stalled claimer's work taken over. For
   * metrics; under a concurrent change of that row the previous owner may be a stale read.
   */
  onTakeover?: (key: CredentialKey, previousOwner: string) => void;
}

/** The lifecycle event log: how processes sharing a store learn about each other's writes. */
export interface EventLog {
  appendEvent(event: EventInput): Promise<LifecycleEvent>;
  /** Events in id order. `afterId` excludes older ones; `server` filters. */
  readEvents(query?: EventQuery): Promise<LifecycleEvent[]>;
  /** The id of the newest event, or 0. */
  lastEventId(): Promise<number>;
  /**
   * Deliver events appended after this call, from any process sharing the store, in id order,
   * within `pollMs` (default 250 ms for SQLite). Returns an unsubscribe function.
   */
  watch(listener: (events: LifecycleEvent[]) => void, options?: { pollMs?: number }): () => void;
}

/**
 * Revocations that failed transiently at logout (the AS was down), kept so that later
 * latchkey runs retry them until the AS accepts them or the token expires. Its own small
 * concern: the credential is already gone when these exist.
 *
 * Rows are claimed before a retry (a claim is a lease on the row, with its own expiry), so
 * two processes never send the same revocation at the same time; a crashed claimer's claim
 * simply expires.
 */
export interface PendingRevocationStore {
  /**
   * Queue revocations (one row per token) and append `event` in the same transaction. The
   * store assigns ids; the returned rows carry no secrets.
   */
  addPendingRevocations(
    entries: readonly NewPendingRevocation[],
    event: EventInput,
  ): Promise<PendingRevocation[]>;
  /** Queued revocations without their secrets, by next attempt time. Claimed rows included. */
  listPendingRevocations(filter?: CredentialFilter): Promise<PendingRevocation[]>;
  /**
   * Claim up to `limit` rows (default 20) whose next attempt time has come (`now`, default
   * the clock) and that nobody else holds a live claim on, for `ttlMs`. Returns them with
   * their secrets, by next attempt time.
   */
  claimPendingRevocations(claim: RevocationClaim): Promise<ClaimedRevocation[]>;
  /**
   * Record a failed attempt and release the claim. False (nothing changed) when `owner` no
   * longer holds the claim.
   */
  reschedulePendingRevocation(id: string, owner: string, next: RevocationSchedule): Promise<boolean>;
  /**
   * Remove a claimed row and append `event` atomically (revoked, refused or expired). False,
   * with no event, when `owner` no longer holds the claim.
   */
  removePendingRevocation(id: string, owner: string, event: EventInput): Promise<boolean>;
}

export type RevocationTokenType = 'access_token' | 'refresh_token';

/** A queued revocation as listed: everything but the secrets. */
export interface PendingRevocation {
  id: string;
  /** The credential the token belonged to (already deleted locally). */
  key: CredentialKey;
  /** Which token, sent as `token_type_hint`. */
  tokenType: RevocationTokenType;
  /**
   * The client that obtained the token; revocation needs its authentication. A snapshot,
   * so a later re-registration at the same issuer cannot take it away.
   */
  clientId: string;
  tokenEndpointAuthMethod: string;
  createdAt: number;
  /** When the token stops being valid anyway; the row is dropped after it. */
  expiresAt: number;
  /** Attempts made since the logout (the logout's own attempt not counted). */
  attempts: number;
  nextAttemptAt: number;
  /** A short, sanitized code of the last failure (`HTTP 503`, `network error`); never token text. */
  lastError?: string;
}

/** Secret parts of a queued revocation; sealed at rest like credential secrets. */
export interface RevocationSecrets {
  token: string;
  /** The client's secret at logout time, for confidential clients. */
  clientSecret?: string;
}

export type NewPendingRevocation = Omit<PendingRevocation, 'id' | 'attempts' | 'lastError'> & {
  secrets: RevocationSecrets;
  lastError?: string;
};

export interface ClaimedRevocation extends PendingRevocation {
  secrets: RevocationSecrets;
}

export interface RevocationClaim {
  owner: string;
  ttlMs: number;
  now?: number;
  limit?: number;
}

export interface RevocationSchedule {
  attempts: number;
  nextAttemptAt: number;
  lastError?: string;
}

export interface CredentialFilter {
  server?: string;
  issuer?: string;
  subject?: string;
}

export interface WriteCondition {
  expectedGeneration: number | 'any';
  /** When set, the write succeeds only while this owner holds the credential's lease. */
  leaseOwner?: string;
}

/** One write of `writeCredentials`: the arguments of `writeCredential`. */
export interface CredentialWrite {
  record: CredentialRecord;
  condition: WriteCondition;
  event: EventInput;
}

export type WriteResult =
  | { ok: true; generation: number }
  | { ok: false; reason: 'generation-mismatch' | 'lease-lost' | 'missing'; currentGeneration?: number };

export interface StoreSecurity {
  /**
   * Where the key-encryption key lives. `provider`: a caller's KeyProvider (a KMS). `none`:
   * the store keeps no secrets at rest (memory).
   */
  keySource: 'keyring' | 'file' | 'env' | 'provider' | 'none';
  /** True when secrets are protected only by file permissions. */
  insecure: boolean;
  /** A user-facing warning to surface when `insecure` is true. */
  warning?: string;
  /** Store location (file path, connection description, or `memory`). */
  location: string;
}

export interface Registration {
  issuer: string;
  clientId: string;
  /** Secret; encrypted at rest. */
  clientSecret?: string;
  tokenEndpointAuthMethod: string;
  method: 'pre-registered' | 'client-id-metadata-document' | 'dynamic';
  /** Extra registration response fields (non-secret), e.g. redirect_uris. */
  metadata?: Record<string, unknown>;
  registeredAt: number;
  clientSecretExpiresAt?: number;
}

export type DiscoveryKind = 'protected-resource' | 'authorization-server';

export interface DiscoveryRecord {
  kind: DiscoveryKind;
  /** Canonical resource URI or issuer identifier. */
  id: string;
  document: Record<string, unknown>;
  /** The URL the document was fetched from. */
  sourceUrl: string;
  fetchedAt: number;
}

export interface LeaseHolder {
  /** Unique per holder, e.g. `${hostname}:${pid}:${random}`. */
  owner: string;
  pid: number;
  host: string;
}

export interface Lease extends LeaseHolder {
  key: CredentialKey;
  acquiredAt: number;
  expiresAt: number;
}

export const EventType = {
  ACQUIRED: 'acquired',
  REFRESHED: 'refreshed',
  REFRESH_FAILED: 'refresh-failed',
  ADOPTED: 'adopted',
  NEEDS_LOGIN: 'needs-login',
  REVOKED: 'revoked',
  DELETED: 'deleted',
  RECONNECT: 'reconnect',
  /** A device login is waiting for the user: its URL, user code and expiry (never the device code). */
  DEVICE_PROMPT: 'device-prompt',
  /** A proxy's device-login agent gave up: the error `code` only (the proxy tells the host). */
  DEVICE_LOGIN_FAILED: 'device-login-failed',
  /**
   * An interactive login took the login lease: its attempt id (which prefixes the OAuth
   * `state`, so a late tab can be told it was replaced), whether a person started it, and
   * whether it replaced another process's pending login.
   */
  LOGIN_STARTED: 'login-started',
  /**
   * Revocation at logout failed transiently; the tokens are queued for retry. Not `revoked`
   * or `deleted` (the logout event itself is one of those): by the time a retry ends, the
   * user may have logged in again, and connections read those two as "logged out".
   */
  REVOCATION_PENDING: 'revocation-pending',
  /** A queued revocation ended at the AS: `outcome` revoked, unsupported or refused. */
  REVOCATION_RETRIED: 'revocation-retried',
  /** A queued revocation was dropped because its token expired before the AS accepted it. */
  REVOCATION_EXPIRED: 'revocation-expired',
} as const;
export type EventType = (typeof EventType)[keyof typeof EventType];

/**
 * A lifecycle event. Never holds secrets: `detail` values are short scalars such as error
 * codes, generations and durations, and stores reject token-looking strings is not relied on,
 * so callers must only put non-secret values in it.
 */
export interface LifecycleEvent {
  id: number;
  at: number;
  type: EventType;
  server: string;
  issuer: string;
  subject: string;
  generation?: number;
  pid: number;
  detail?: Record<string, string | number | boolean>;
}

export type EventInput = Omit<LifecycleEvent, 'id' | 'at' | 'pid'> & { at?: number; pid?: number };

export interface EventQuery {
  afterId?: number;
  server?: string;
  limit?: number;
}
