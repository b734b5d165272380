import { isUsable, mandatoryRefreshAt, proactiveRefreshAt } from '../credential/expiry.js';
import type { CredentialKey } from '../credential/key.js';
import type { StoredCredential } from '../credential/model.js';
import { secrets } from '../redact.js';
import type { Schedulable } from './due-queue.js';
import type { SeenCredential } from './refresh.js';

/** What `getToken` hands out: the access token and what a caller may want to know about it. */
export interface AccessToken {
  readonly token: string;
  /** `Bearer` or `DPoP`. */
  readonly tokenType: string;
  /** Epoch ms; undefined when the AS gave no lifetime (valid until rejected). */
  readonly expiresAt: number | undefined;
  readonly scopes: readonly string[];
  readonly server: string;
  readonly issuer: string;
  readonly subject: string;
  readonly generation: number;
}

/**
 * One cached credential with its precomputed deadlines, so the hot path is a map lookup and
 * two comparisons. It keeps what callers are handed and what scheduling needs, not the
 * whole stored credential: a refresh reads the row again under its lease anyway, and each
 * byte here is held per cached credential and, once evicted, left for the collector (issue
 * 16: 859 bytes per entry instead of 1,365, and about 20 MB off the peak at 100k known).
 */
export interface CacheEntry extends Schedulable {
  readonly token: AccessToken;
  /** The stored row's write time, with the generation telling one write from another. */
  readonly updatedAt: number;
  /** Whether the credential has a refresh token, i.e. anything to schedule. */
  readonly refreshable: boolean;
  /** After this, callers must not get the token (expiry minus skew). */
  readonly mandatoryAt: number;
  /** After this, a background refresh is started (about 3/4 of the lifetime, jittered). */
  readonly proactiveAt: number;
  /** Throttle for starting background refreshes from the hot path. */
  nextBackgroundAt: number;
  /** Read since the eviction sweep last passed it (see TokenCache). */
  used: boolean;
}

/** The credential an entry caches, as far as a refresh needs to know it. */
export function seenCredential(entry: CacheEntry): SeenCredential {
  const { server, issuer, subject, generation } = entry.token;
  return { key: { server, issuer, subject }, generation };
}

/**
 * The map key of (server, subject). The server part, with its separator, is made once per
 * server: a fresh concatenation per entry held two string objects, this holds one.
 */
export function cacheSlot(server: string, subject: string): string {
  let prefix = slotPrefixes.get(server);
  if (prefix === undefined) {
    if (slotPrefixes.size >= 1024) slotPrefixes.clear();
    prefix = `${server}\u0000`;
    slotPrefixes.set(server, prefix);
  }
  return prefix + subject;
}

const slotPrefixes = new Map<string, string>();

export function createEntry(cred: StoredCredential, skewMs: number): CacheEntry {
  const token: AccessToken = Object.freeze({
    token: cred.secrets.accessToken,
    tokenType: cred.tokenType,
    expiresAt: cred.expiresAt,
    scopes: frozenScopes(cred.scopes),
    server: cred.key.server,
    issuer: cred.key.issuer,
    subject: cred.key.subject,
    generation: cred.generation,
  });
  const usable = isUsable(cred, Date.now(), skewMs);
  return {
    token,
    updatedAt: cred.updatedAt,
    refreshable: cred.secrets.refreshToken !== undefined,
    mandatoryAt: usable ? mandatoryRefreshAt(cred, skewMs) : 0,
    proactiveAt: proactiveRefreshAt(cred, skewMs, Math.random() * 2 - 1),
    nextBackgroundAt: 0,
    // A new entry survives one sweep, so it is never the one its own insertion evicts.
    used: true,
    dueAt: Number.POSITIVE_INFINITY,
    queueIndex: -1,
  };
}

/**
 * The last frozen scope list handed out, reused while credentials keep having the same
 * scopes (the usual case: one server, one client): a copy per cached credential was two
 * objects each, kept for as long as it is cached (issue 16).
 */
let lastScopes: readonly string[] = Object.freeze([]);

function frozenScopes(scopes: readonly string[]): readonly string[] {
  if (scopes.length !== lastScopes.length || scopes.some((scope, i) => scope !== lastScopes[i])) {
    lastScopes = Object.freeze([...scopes]);
  }
  return lastScopes;
}

export function hasScopes(granted: readonly string[], wanted: readonly string[] | undefined): boolean {
  return wanted === undefined || wanted.every((s) => granted.includes(s));
}

/** Default bound of the manager's cache (`maxCachedCredentials`). */
export const DEFAULT_MAX_CACHED_CREDENTIALS = 10_000;

export interface TokenCacheOptions {
  skewMs: number;
  /** Most entries held; beyond it the least recently used are dropped. At least 1. */
  maxEntries: number;
  /** A new entry, to schedule its proactive refresh. */
  onEntry(entry: CacheEntry): void;
  /** An entry replaced, forgotten or evicted, to unschedule it. */
  onDrop(entry: CacheEntry): void;
}

/**
 * The manager's in-memory view of the credentials it handed out, one entry per (server,
 * subject), at most `maxEntries` of them. The store stays the source of truth: an entry
 * dropped here is read from the store again on its next call, and nothing is deleted there.
 *
 * Eviction is CLOCK (second chance) over the map's insertion order: a hit only sets
 * `used`, so the hot path never reorders the map; the sweep moves used entries to the back
 * and drops the first unused one. The access tokens of held entries are pinned in the
 * redaction registry, and unpinned when the entry goes.
 */
export class TokenCache {
  readonly #entries = new Map<string, CacheEntry>();
  readonly #o: TokenCacheOptions;
  #evictions = 0;

  constructor(options: TokenCacheOptions) {
    this.#o = { ...options, maxEntries: Math.max(1, Math.floor(options.maxEntries)) };
  }

  get size(): number {
    return this.#entries.size;
  }

  /** Entries dropped to stay within `maxEntries` since the cache was made. */
  get evictions(): number {
    return this.#evictions;
  }

  /** The entry a caller is about to use (marks it recently used). */
  get(server: string, subject: string): CacheEntry | undefined {
    const entry = this.#entries.get(cacheSlot(server, subject));
    if (entry !== undefined) entry.used = true;
    return entry;
  }

  /** The entry, without counting it as a use (the store watch looking). */
  peek(server: string, subject: string): CacheEntry | undefined {
    return this.#entries.get(cacheSlot(server, subject));
  }

  /** Whether `entry` is still the one cached for its credential (not replaced or dropped). */
  holds(entry: CacheEntry): boolean {
    return this.peek(entry.token.server, entry.token.subject) === entry;
  }

  /** Cache `cred` (unless the same generation is cached already) and return its entry. */
  remember(cred: StoredCredential): CacheEntry {
    const slot = cacheSlot(cred.key.server, cred.key.subject);
    const previous = this.#entries.get(slot);
    if (previous?.token.generation === cred.generation && previous.updatedAt === cred.updatedAt) {
      previous.used = true;
      return previous;
    }
    const entry = createEntry(cred, this.#o.skewMs);
    // From now on the redacting logger masks it wherever it turns up. The refresh token is
    // not held here; a refresh or a revocation registers it before sending it.
    secrets.pin(cred.secrets.accessToken);
    if (previous !== undefined) {
      this.#entries.delete(slot); // re-inserted at the back: it is the newest now
      this.#drop(previous);
    }
    this.#entries.set(slot, entry);
    this.#o.onEntry(entry);
    this.#evict();
    return entry;
  }

  /** Drop the entry for `key`; an entry of another issuer in the same slot stays. */
  forget(key: CredentialKey): void {
    const slot = cacheSlot(key.server, key.subject);
    const entry = this.#entries.get(slot);
    if (entry === undefined || entry.token.issuer !== key.issuer) return;
    this.#entries.delete(slot);
    this.#drop(entry);
  }

  clear(): void {
    for (const entry of this.#entries.values()) this.#drop(entry);
    this.#entries.clear();
  }

  #evict(): void {
    while (this.#entries.size > this.#o.maxEntries) {
      const oldest = this.#entries.entries().next();
      if (oldest.done === true) return;
      const [slot, entry] = oldest.value;
      this.#entries.delete(slot);
      if (entry.used) {
        entry.used = false;
        this.#entries.set(slot, entry);
        continue;
      }
      this.#drop(entry);
      this.#evictions++;
    }
  }

  #drop(entry: CacheEntry): void {
    this.#o.onDrop(entry);
    secrets.unpin(entry.token.token);
  }
}
