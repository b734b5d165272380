import type { CredentialKey } from './key.js';
import { jwtAccount, jwtExpiry } from './jwt.js';
import type { CredentialRecord } from './model.js';

/** The token endpoint response fields latchkey uses (RFC 6749 section 5.1). */
export interface TokenEndpointResult {
  access_token: string;
  token_type?: string;
  expires_in?: number;
  refresh_token?: string;
  scope?: string;
  id_token?: string;
  /** Non-standard but common (Entra, Okta, GitHub): lifetime of the refresh token. */
  refresh_token_expires_in?: number;
}

export interface TokenResponseContext {
  key: CredentialKey;
  clientId: string;
  /** Epoch ms taken just before the token request was sent: latency counts against the token. */
  requestedAt: number;
  requestedScopes?: readonly string[];
  /** The credential being refreshed, whose refresh token survives when the AS omits a new one. */
  previous?: CredentialRecord;
  /** The `resource` sent with the request (`null`: none); default: the previous credential's. */
  resource?: string | null;
  owned?: boolean;
  /** The IdP session the tokens derive from (enterprise login); default: the previous credential's. */
  idp?: string;
  /** The tokens are an enterprise IdP session; default: the previous credential's. */
  idpSession?: boolean;
}

export function credentialFromTokenResponse(
  res: TokenEndpointResult,
  ctx: TokenResponseContext,
): CredentialRecord {
  const { previous } = ctx;
  const expiry = accessTokenExpiry(res, ctx.requestedAt);
  const refreshToken = res.refresh_token ?? previous?.secrets.refreshToken;
  const idToken = res.id_token ?? previous?.secrets.idToken;
  const record: CredentialRecord = {
    key: ctx.key,
    secrets: {
      accessToken: res.access_token,
      ...(refreshToken === undefined ? {} : { refreshToken }),
      ...(idToken === undefined ? {} : { idToken }),
    },
    tokenType: normalizeTokenType(res.token_type),
    scopes: grantedScopes(res, ctx),
    clientId: ctx.clientId,
    obtainedAt: ctx.requestedAt,
    expirySource: expiry.source,
    owned: ctx.owned ?? previous?.owned ?? true,
  };
  if (expiry.at !== undefined) record.expiresAt = expiry.at;
  const rtExpiry = refreshTokenExpiry(res, ctx);
  if (rtExpiry !== undefined) record.refreshTokenExpiresAt = rtExpiry;
  const account = jwtAccount(idToken, res.access_token) ?? previous?.account;
  if (account !== undefined) record.account = account;
  const resource = ctx.resource === undefined ? previous?.resource : ctx.resource;
  if (resource !== undefined) record.resource = resource;
  const idp = ctx.idp ?? previous?.idp;
  if (idp !== undefined) record.idp = idp;
  if ((ctx.idpSession ?? previous?.idpSession) === true) record.idpSession = true;
  return record;
}

function accessTokenExpiry(
  res: TokenEndpointResult,
  requestedAt: number,
): { at: number | undefined; source: CredentialRecord['expirySource'] } {
  if (typeof res.expires_in === 'number' && Number.isFinite(res.expires_in) && res.expires_in > 0) {
    return { at: requestedAt + lifetimeMs(res.expires_in), source: 'expires_in' };
  }
  const exp = jwtExpiry(res.access_token);
  if (exp !== undefined) return { at: exp, source: 'jwt' };
  return { at: undefined, source: 'none' };
}

/**
 * A lifetime longer than a century is read as a century: `expires_in: 1e308` would otherwise
 * make an expiry of Infinity, which no Date can hold (printing it threw a RangeError).
 */
const MAX_LIFETIME_S = 100 * 365 * 24 * 3600;

function lifetimeMs(seconds: number): number {
  return Math.min(seconds, MAX_LIFETIME_S) * 1000;
}

function refreshTokenExpiry(res: TokenEndpointResult, ctx: TokenResponseContext): number | undefined {
  const seconds = res.refresh_token_expires_in;
  if (typeof seconds === 'number' && Number.isFinite(seconds) && seconds > 0) {
    return ctx.requestedAt + lifetimeMs(seconds);
  }
  // An unrotated refresh token keeps the expiry we already knew for it.
  if (res.refresh_token === undefined) return ctx.previous?.refreshTokenExpiresAt;
  return undefined;
}

function grantedScopes(res: TokenEndpointResult, ctx: TokenResponseContext): string[] {
  // RFC 6749 5.1: scope is omitted when identical to the requested scope.
  if (typeof res.scope === 'string') return res.scope.split(' ').filter((s) => s.length > 0);
  if (ctx.requestedScopes !== undefined) return [...ctx.requestedScopes];
  return [...(ctx.previous?.scopes ?? [])];
}

function normalizeTokenType(type: string | undefined): string {
  if (type === undefined || type.toLowerCase() === 'bearer') return 'Bearer';
  if (type.toLowerCase() === 'dpop') return 'DPoP';
  return type;
}
