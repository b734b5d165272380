import { isUsable, mandatoryRefreshAt, proactiveRefreshAt } from '../credential/expiry.js';
import type { StoredCredential } from '../credential/model.js';

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
