/**
 * Which scopes to ask for (AUTH-30..AUTH-34, AUTH-61, AUTH-67).
 *
 * 1. The `scope` of the server's challenge, when it names any: authoritative for the request
 *    that was refused (AUTH-33), with no assumed relation to `scopes_supported` (AUTH-32).
 * 2. Otherwise every scope in the PRM `scopes_supported` (AUTH-31), except the OpenID
 *    Connect identity scopes (`openid`, `profile`, `email`, `address`, `phone`): latchkey
 *    needs an access token for the server, not the user's identity, and asking for `openid`
 *    makes the AS add an ID token whose validation can fail the login (better-auth lists
 *    them in its PRM and signs that ID token HS256 without `iss`). A challenge that names
 *    them still gets them: the server asked.
 * 3. Otherwise nothing: the `scope` parameter is omitted and the AS applies its default.
 * Then, for a re-authorization or step-up, the union with the scopes granted before, so the
 * new token does not lose what the old one had (AUTH-34, AUTH-67).
 * Finally `offline_access` (AUTH-61), only when the caller wants it, the AS metadata lists it,
 * and some other scope is requested: alone it would replace the AS's default scope with one
 * that grants no access to the server.
 *
 * Values that are not RFC 6749 §3.3 scope tokens (empty, or with spaces, quotes, backslashes
 * or control characters) are dropped; order is first-seen, duplicates removed.
 */
import type { BearerChallenge } from './types.js';

export const OFFLINE_ACCESS = 'offline_access';
/** OpenID Connect Core §5.4 scopes, plus `openid` itself: identity, not access to the server. */
const OPENID_SCOPES = new Set(['openid', 'profile', 'email', 'address', 'phone']);

export interface ScopeSelectionInput {
  /** The Bearer challenge of the 401/403 that triggered authorization, if any. */
  challenge?: BearerChallenge | undefined;
  /** PRM `scopes_supported`. */
  scopesSupported?: readonly string[] | undefined;
  /** Scopes of the credential being replaced (step-up, re-login). */
  previouslyGranted?: readonly string[] | undefined;
  /** AS metadata `scopes_supported`. */
  asScopesSupported?: readonly unknown[] | undefined;
  /** Ask for `offline_access` when the AS supports it. Default false. */
  offlineAccess?: boolean | undefined;
}

/** The scopes to request, or undefined to omit the `scope` parameter. */
export function selectScopes(input: ScopeSelectionInput): string[] | undefined {
  const fromChallenge = scopeTokens(input.challenge?.scope);
  const base =
    fromChallenge.length > 0
      ? fromChallenge
      : scopeTokens(input.scopesSupported).filter((s) => !OPENID_SCOPES.has(s));
  const selected = union(base, scopeTokens(input.previouslyGranted));
  if (
    selected.length > 0 &&
    input.offlineAccess === true &&
    Array.isArray(input.asScopesSupported) &&
    input.asScopesSupported.includes(OFFLINE_ACCESS) &&
    !selected.includes(OFFLINE_ACCESS)
  ) {
    selected.push(OFFLINE_ACCESS);
  }
  return selected.length > 0 ? selected : undefined;
}

/** RFC 6749 §3.3: scope-token = 1*( %x21 / %x23-5B / %x5D-7E ). */
export function isScopeToken(value: unknown): value is string {
  return typeof value === 'string' && /^[\x21\x23-\x5b\x5d-\x7e]+$/.test(value);
}

function scopeTokens(values: readonly unknown[] | undefined): string[] {
  return union([], (values ?? []).filter(isScopeToken));
}

function union(a: readonly string[], b: readonly string[]): string[] {
  return [...new Set([...a, ...b])];
}
