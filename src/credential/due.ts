import { DEFAULT_SKEW_MS, effectiveSkewMs, mandatoryRefreshAt, PROACTIVE_FRACTION } from './expiry.js';
import { keyId, type CredentialKey } from './key.js';
import type { CredentialRecord, CredentialStatus } from './model.js';

/**
 * The due index (docs/refresher.md): when a fleet refresher should next refresh a credential.
 * Two steps, so that a store can keep the first beside the row and derive the second in SQL
 * when only the status changes:
 *   1. `refreshPointAt(record)`: from the tokens alone, or undefined when they cannot be
 *      refreshed at all (no refresh token, or no known expiry);
 *   2. `dueAt(point, status)`: pushed later by backoff / Retry-After, undefined at needs-login.
 */

/**
 * Spread of the refresh point around three quarters of the usable lifetime, as a fraction of
 * it: wider than the per-process proactive jitter, because a fleet's credentials are often
 * issued together (a deploy, a morning login wave) and must not all come due together.
 */
export const DUE_JITTER = 0.1;

/**
 * A fixed number in [-1, 1] per credential: the same key always lands on the same point, so
 * every instance (and every store) agrees on the due time without storing the jitter.
 */
export function keyJitter(key: CredentialKey): number {
  // FNV-1a over the key's UTF-16 code units, then a finalizer (MurmurHash3's fmix32) so that
  // keys differing only in their last character (user-1, user-2) land far apart.
  let hash = 0x811c9dc5;
  const text = keyId(key);
  for (let i = 0; i < text.length; i++) {
    hash ^= text.charCodeAt(i);
    hash = Math.imul(hash, 0x01000193);
  }
  hash ^= hash >>> 16;
  hash = Math.imul(hash, 0x85ebca6b);
  hash ^= hash >>> 13;
  hash = Math.imul(hash, 0xc2b2ae35);
  hash ^= hash >>> 16;
  return ((hash >>> 0) / 0xffffffff) * 2 - 1;
}

type DueFields = Pick<CredentialRecord, 'key' | 'expiresAt' | 'obtainedAt' | 'refreshTokenExpiresAt'> & {
  secrets: { refreshToken?: string | undefined };
};

/**
 * When the tokens should be refreshed, judged by the tokens alone: about 3/4 of the usable
 * lifetime, jittered per key by ±DUE_JITTER, never later than the mandatory point (expiry
 * minus skew), and before a known refresh-token expiry. Undefined: never (no refresh token,
 * or an access token without a known expiry, which is refreshed only when a server rejects it).
 */
export function refreshPointAt(record: DueFields, skewMs = DEFAULT_SKEW_MS): number | undefined {
  if (record.secrets.refreshToken === undefined || record.expiresAt === undefined) return undefined;
  const mandatory = mandatoryRefreshAt(record, skewMs);
  const usable = Math.max(0, mandatory - record.obtainedAt);
  const fraction = PROACTIVE_FRACTION + DUE_JITTER * keyJitter(record.key);
  let point = Math.min(record.obtainedAt + Math.round(usable * fraction), mandatory);
  if (record.refreshTokenExpiresAt !== undefined) {
    point = Math.min(point, record.refreshTokenExpiresAt - effectiveSkewMs(record, skewMs));
  }
  return point;
}

/**
 * The due time given the shared status: a credential waiting out a backoff or a Retry-After
 * is not due before `nextAttemptAt`; one that needs a login is never due.
 */
export function dueAt(point: number | undefined, status: CredentialStatus): number | undefined {
  if (point === undefined || status.state === 'needs-login') return undefined;
  return Math.max(point, notBefore(status));
}

/** The earliest attempt the status allows (0: no constraint). Stores use it in SQL too. */
export function notBefore(status: CredentialStatus): number {
  return status.state === 'retrying' ? (status.nextAttemptAt ?? 0) : 0;
}
