import { isUsable, mandatoryRefreshAt, proactiveRefreshAt } from '../credential/expiry.js';
import type { CredentialKey } from '../credential/key.js';
import type { StoredCredential } from '../credential/model.js';
import { secrets } from '../redact.js';

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
 * two comparisons.
 */
export interface CacheEntry {
  readonly cred: StoredCredential;
  readonly token: AccessToken;
  /** After this, callers must not get the token (expiry minus skew). */
  readonly mandatoryAt: number;
  /** After this, a background refresh is started (about 3/4 of the lifetime, jittered). */
  readonly proactiveAt: number;
  /** Throttle for starting background refreshes from the hot path. */
  nextBackgroundAt: number;
  timer: NodeJS.Timeout | undefined;
}

export function cacheSlot(server: string, subject: string): string {
  return `${server}\u0000${subject}`;
}

export function createEntry(cred: StoredCredential, skewMs: number): CacheEntry {
  const token: AccessToken = Object.freeze({
    token: cred.secrets.accessToken,
    tokenType: cred.tokenType,
    expiresAt: cred.expiresAt,
    scopes: Object.freeze([...cred.scopes]),
    server: cred.key.server,
    issuer: cred.key.issuer,
    subject: cred.key.subject,
    generation: cred.generation,
  });
  const usable = isUsable(cred, Date.now(), skewMs);
  return {
    cred,
    token,
    mandatoryAt: usable ? mandatoryRefreshAt(cred, skewMs) : 0,
    proactiveAt: proactiveRefreshAt(cred, skewMs, Math.random() * 2 - 1),
    nextBackgroundAt: 0,
    timer: undefined,
  };
}

export function hasScopes(granted: readonly string[], wanted: readonly string[] | undefined): boolean {
  return wanted === undefined || wanted.every((s) => granted.includes(s));
}

/**
 * The manager's in-memory view of the credentials it handed out, one entry per (server,
 * subject). Each new entry is passed to `onEntry` so its proactive refresh can be scheduled;
 * a replaced or forgotten entry's timer is cleared here, so no stale timer ever fires.
 */
export class TokenCache {
  readonly #entries = new Map<string, CacheEntry>();
  readonly #skewMs: number;
  readonly #onEntry: (entry: CacheEntry) => void;

  constructor(skewMs: number, onEntry: (entry: CacheEntry) => void) {
    this.#skewMs = skewMs;
    this.#onEntry = onEntry;
  }

  get(server: string, subject: string): CacheEntry | undefined {
    return this.#entries.get(cacheSlot(server, subject));
  }

  /** Whether `entry` is still the one cached for its credential (not replaced or forgotten). */
  holds(entry: CacheEntry): boolean {
    return this.get(entry.cred.key.server, entry.cred.key.subject) === entry;
  }

  /** Cache `cred` (unless the same generation is cached already) and return its entry. */
  remember(cred: StoredCredential): CacheEntry {
    // From now on the redacting logger masks these wherever they turn up.
    secrets.add(cred.secrets.accessToken);
    secrets.add(cred.secrets.refreshToken);
    const slot = cacheSlot(cred.key.server, cred.key.subject);
    const previous = this.#entries.get(slot);
    if (previous?.cred.generation === cred.generation && previous.cred.updatedAt === cred.updatedAt)
      return previous;
    clearTimeout(previous?.timer);
    const entry = createEntry(cred, this.#skewMs);
    this.#entries.set(slot, entry);
    this.#onEntry(entry);
    return entry;
  }

  /** Drop the entry for `key`; an entry of another issuer in the same slot stays. */
  forget(key: CredentialKey): void {
    const entry = this.#entries.get(cacheSlot(key.server, key.subject));
    if (entry === undefined || entry.cred.key.issuer !== key.issuer) return;
    clearTimeout(entry.timer);
    this.#entries.delete(cacheSlot(key.server, key.subject));
  }

  clear(): void {
    for (const entry of this.#entries.values()) clearTimeout(entry.timer);
    this.#entries.clear();
  }
}
