/**
 * Read the `exp` claim of a JWT access token without verifying it. The client is not the
 * audience of the token, so the claim is only a hint for when to refresh, used when the
 * token response carried no `expires_in`.
 */
export function jwtExpiry(token: string): number | undefined {
  const exp = jwtClaims(token)?.['exp'];
  if (typeof exp !== 'number' || !Number.isFinite(exp) || exp <= 0) return undefined;
  return Math.floor(exp * 1000);
}

/** Claims naming the user, most readable first. */
const ACCOUNT_CLAIMS = ['email', 'preferred_username', 'upn', 'sub'] as const;
const MAX_ACCOUNT_LENGTH = 200;

/**
 * Who the tokens belong to at the identity provider, for `latchkey status`: the first of
 * email, preferred_username, upn and sub found in the ID token, else in a JWT access token.
 * Unverified, and only ever displayed: nothing is decided on it.
 */
export function jwtAccount(...tokens: (string | undefined)[]): string | undefined {
  for (const token of tokens) {
    const claims = token === undefined ? undefined : jwtClaims(token);
    if (claims === undefined) continue;
    for (const name of ACCOUNT_CLAIMS) {
      const value = claims[name];
      // Printable text only: it ends up in a terminal table.
      if (typeof value === 'string' && value !== '' && value.length <= MAX_ACCOUNT_LENGTH && printable(value))
        return value;
    }
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

/** No control characters: an escape sequence in a claim must not reach the terminal. */
function printable(text: string): boolean {
  for (let i = 0; i < text.length; i++) {
    const code = text.charCodeAt(i);
    if (code < 0x20 || code === 0x7f) return false;
  }
  return true;
}
