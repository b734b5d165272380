import type { CredentialRecord } from './model.js';

/** Default skew margin: a token is treated as expired this long before its stated expiry. */
export const DEFAULT_SKEW_MS = 60_000;

/**
 * Short-lived tokens would be "expired" at birth under a fixed 60 s margin, so the margin
 * is clamped to a tenth of the token's lifetime ...
 */
const MAX_SKEW_FRACTION = 0.1;
/**
 * ... but never below the one-second resolution of `expires_in`: an AS that stamps `exp` as
 * whole seconds (oidc-provider, most JWT issuers) can expire a token up to a second before
 * requestedAt + expires_in. For tokens shorter than two seconds, half their lifetime.
 */
const EXPIRES_IN_RESOLUTION_MS = 1_000;

/** Proactive refresh happens at about three quarters of the usable lifetime ... */
export const PROACTIVE_FRACTION = 0.75;
/** ... plus or minus this fraction, so processes sharing a credential spread out. */
export const PROACTIVE_JITTER = 0.05;

/** A credential obtained this far in the future means the clock was turned back. */
const CLOCK_ROLLBACK_TOLERANCE_MS = 5 * 60_000;

export function lifetimeMs(cred: Pick<CredentialRecord, 'expiresAt' | 'obtainedAt'>): number | undefined {
  if (cred.expiresAt === undefined) return undefined;
  return cred.expiresAt - cred.obtainedAt;
}

export function effectiveSkewMs(
  cred: Pick<CredentialRecord, 'expiresAt' | 'obtainedAt'>,
  skewMs = DEFAULT_SKEW_MS,
): number {
  const lifetime = lifetimeMs(cred);
  if (lifetime === undefined) return 0;
  if (lifetime <= 0) return skewMs;
  const floor = Math.min(EXPIRES_IN_RESOLUTION_MS, lifetime / 2);
  return Math.min(skewMs, Math.max(lifetime * MAX_SKEW_FRACTION, floor));
}

/**
 * The moment after which callers must not be handed the access token (expiry minus skew).
 * `Infinity` for tokens without a known expiry: they are valid until the server rejects them.
 */
export function mandatoryRefreshAt(
  cred: Pick<CredentialRecord, 'expiresAt' | 'obtainedAt'>,
  skewMs = DEFAULT_SKEW_MS,
): number {
  if (cred.expiresAt === undefined) return Number.POSITIVE_INFINITY;
  return cred.expiresAt - effectiveSkewMs(cred, skewMs);
}

/**
 * When a long-running process should refresh ahead of need: about 3/4 of the usable lifetime,
 * jittered by `jitter` in [-1, 1], never later than the mandatory point.
 */
export function proactiveRefreshAt(
  cred: Pick<CredentialRecord, 'expiresAt' | 'obtainedAt'>,
  skewMs = DEFAULT_SKEW_MS,
  jitter = 0,
): number {
  const lifetime = lifetimeMs(cred);
  if (lifetime === undefined) return Number.POSITIVE_INFINITY;
  const fraction = PROACTIVE_FRACTION + PROACTIVE_JITTER * Math.max(-1, Math.min(1, jitter));
  // A fraction of the usable life (up to the mandatory point), so that a short token's
  // refresh still runs well before callers would have to wait for it.
  const mandatory = mandatoryRefreshAt(cred, skewMs);
  const usable = Math.max(0, mandatory - cred.obtainedAt);
  return Math.min(cred.obtainedAt + usable * fraction, mandatory);
}

/** True while the access token may be handed to a caller. */
export function isUsable(
  cred: Pick<CredentialRecord, 'expiresAt' | 'obtainedAt'>,
  now: number,
  skewMs = DEFAULT_SKEW_MS,
): boolean {
  if (cred.obtainedAt > now + CLOCK_ROLLBACK_TOLERANCE_MS) return false;
  return now < mandatoryRefreshAt(cred, skewMs);
}

/** True while the refresh token is worth presenting (unknown expiry counts as usable). */
export function refreshTokenUsable(
  cred: Pick<CredentialRecord, 'refreshTokenExpiresAt'>,
  now: number,
): boolean {
  return cred.refreshTokenExpiresAt === undefined || now < cred.refreshTokenExpiresAt;
}
