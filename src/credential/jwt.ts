/**
 * Read the `exp` claim of a JWT access token without verifying it. The client is not the
 * audience of the token, so the claim is only a hint for when to refresh, used when the
 * token response carried no `expires_in`.
 */
const MAX_DATE_S = 8.64e12;

export function jwtExpiry(token: string): number | undefined {
  const exp = jwtClaims(token)?.['exp'];
  // Beyond the last instant a Date can hold (year 275760) is not a hint, it is garbage.
  if (typeof exp !== 'number' || !Number.isFinite(exp) || exp <= 0 || exp > MAX_DATE_S) return undefined;
  return Math.floor(exp * 1000);
}

/**
 * Claims naming the user, most readable first: an ID token's are about the user by
 * definition (`name` is a display name there); an access token's `username` is common in
 * Keycloak and Cognito. `upn` is Entra's. Nothing here asks the AS for more than it gives.
 */
const ID_TOKEN_CLAIMS = ['email', 'preferred_username', 'upn', 'name', 'sub'] as const;
const ACCESS_TOKEN_CLAIMS = ['email', 'preferred_username', 'upn', 'username', 'sub'] as const;
const MAX_ACCOUNT_LENGTH = 200;

/**
 * Who the tokens belong to at the identity provider, for `latchkey status`: the first
 * readable claim of the ID token, else of a JWT access token. Unverified, and only ever
 * displayed: nothing is decided on it.
 */
export function jwtAccount(idToken: string | undefined, accessToken?: string): string | undefined {
  return accountFrom(idToken, ID_TOKEN_CLAIMS) ?? accountFrom(accessToken, ACCESS_TOKEN_CLAIMS);
}

function accountFrom(token: string | undefined, names: readonly string[]): string | undefined {
  const claims = token === undefined ? undefined : jwtClaims(token);
  if (claims === undefined) return undefined;
  for (const name of names) {
    const value = claims[name];
    // Printable text only: it ends up in a terminal table.
    if (typeof value === 'string' && value !== '' && value.length <= MAX_ACCOUNT_LENGTH && printable(value))
      return value;
  }
  return undefined;
}

function jwtClaims(token: string): Record<string, unknown> | undefined {
  const parts = token.split('.');
  if (parts.length !== 3 || parts[1] === undefined) return undefined;
  try {
    const payload: unknown = JSON.parse(Buffer.from(parts[1], 'base64url').toString('utf8'));
    return typeof payload === 'object' && payload !== null && !Array.isArray(payload)
      ? (payload as Record<string, unknown>)
      : undefined;
  } catch {
    return undefined;
  }
}

/**
 * No control characters: an escape sequence in a claim must not reach the terminal. C1
 * controls (0x9b is a one-byte CSI) and bidi overrides (which reorder what is shown around
 * them) count too.
 */
function printable(text: string): boolean {
  for (let i = 0; i < text.length; i++) {
    const code = text.charCodeAt(i);
    if (code < 0x20 || (code >= 0x7f && code <= 0x9f)) return false;
    if ((code >= 0x202a && code <= 0x202e) || (code >= 0x2066 && code <= 0x2069)) return false;
  }
  return true;
}
